package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/backend/memory"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/yamlx"
	"gopkg.in/yaml.v3"
)

// config is what run, sidecar and status need: which lock, on which
// backend, with which timing. See docs/config.md.
type config struct {
	Backend  string
	Name     string
	Identity string
	Lease    elector.Config // durations and ReleaseOnCancel; Identity is filled in last

	Etcd   etcdConfig
	Consul consulConfig
	Kube   kubeConfig

	source string            // the file, for messages
	lines  map[string]int    // line of each key set by the file
	setBy  map[string]string // the flag or LEASEHOLD_* variable that set a key, for messages
}

type tlsFiles struct{ CA, Cert, Key string }

type etcdConfig struct {
	Endpoints      []string
	Prefix         string
	TLS            tlsFiles
	Username       string
	PasswordFile   string
	DialTimeout    time.Duration
	RequestTimeout time.Duration
}

type consulConfig struct {
	Address   string
	Prefix    string
	TokenFile string
	TLS       tlsFiles
}

type kubeConfig struct {
	Kubeconfig string
	Context    string
	Namespace  string
}

var backends = []string{"kube", "etcd", "consul", "memory"}

func defaultConfig() config {
	d := elector.DefaultConfig("")
	return config{
		Backend: "etcd",
		Lease:   d,
		Etcd:    etcdConfig{Endpoints: []string{"127.0.0.1:2379"}, Prefix: etcd.DefaultPrefix},
		Consul:  consulConfig{Address: "127.0.0.1:8500", Prefix: "leasehold/"},
		Kube:    kubeConfig{Namespace: "default"},
	}
}

// overrides are the flags every config-using command takes; unset flags
// leave the value alone.
type overrides struct {
	config, backend, name, id string
	lease, renew, retry       time.Duration
	release                   bool
	etcdEndpoints, kubeNS     string
	logFormat, logLevel       string
	flagSet                   *flag.FlagSet
}

func addConfigFlags(fs *flag.FlagSet) *overrides {
	o := &overrides{flagSet: fs}
	fs.StringVar(&o.config, "config", "", "config file (YAML, see docs/config.md)")
	fs.StringVar(&o.backend, "backend", "", "backend: etcd or memory; kube and consul are not available yet (overrides the file)")
	fs.StringVar(&o.name, "name", "", "name of the lock (overrides the file)")
	fs.StringVar(&o.id, "id", "", "identity of this candidate (default: hostname_random)")
	fs.DurationVar(&o.lease, "lease-duration", 0, "LeaseDuration (overrides the file)")
	fs.DurationVar(&o.renew, "renew-deadline", 0, "RenewDeadline (overrides the file)")
	fs.DurationVar(&o.retry, "retry-period", 0, "RetryPeriod (overrides the file)")
	fs.BoolVar(&o.release, "release-on-cancel", true, "release the lock when stopping (overrides the file)")
	fs.StringVar(&o.etcdEndpoints, "etcd-endpoints", "", "comma-separated etcd endpoints (overrides the file)")
	fs.StringVar(&o.kubeNS, "namespace", "", "Kubernetes namespace of the Lease (overrides the file)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return o
}

// flagKeys maps the shared flags to the keys they set.
var flagKeys = []struct{ flag, key string }{
	{"backend", "backend"}, {"name", "name"}, {"id", "identity"},
	{"lease-duration", "lease.duration"}, {"renew-deadline", "lease.renew_deadline"},
	{"retry-period", "lease.retry_period"}, {"release-on-cancel", "lease.release_on_cancel"},
	{"etcd-endpoints", "etcd.endpoints"}, {"namespace", "kube.namespace"},
}

// load builds the config: defaults, then LEASEHOLD_* environment variables,
// then the file, then the flags that were set. Everything is checked here,
// before anything is connected. Errors name the flag, variable or key (with
// its line in the file).
func (o *overrides) load(getenv func(string) string) (config, error) {
	set := map[string]bool{}
	o.flagSet.Visit(func(f *flag.Flag) { set[f.Name] = true })
	// An empty --id is a mistake (an unset variable in a script, say), not a
	// request for the default: leave --id out for that.
	if set["id"] && o.id == "" {
		return config{}, usagef("--id: empty: give this candidate an identity, or leave --id out for the default (hostname_<random>)")
	}
	cfg := defaultConfig()
	if err := cfg.applyEnv(getenv); err != nil {
		return cfg, err
	}
	if o.config != "" {
		data, err := readSmallFile(o.config)
		if err != nil {
			return cfg, usagef("--config %s: %v", o.config, err)
		}
		if err := cfg.parse(data); err != nil {
			return cfg, usagef("%s: %v", o.config, err)
		}
		cfg.source = o.config
	}
	// A value from a flag was not set at a line of the file.
	for _, fk := range flagKeys {
		if set[fk.flag] {
			delete(cfg.lines, fk.key)
			cfg.setBy[fk.key] = "--" + fk.flag
		}
	}
	if set["backend"] {
		cfg.Backend = o.backend
	}
	if set["name"] {
		cfg.Name = o.name
	}
	if set["id"] {
		cfg.Identity = o.id
	}
	if set["lease-duration"] {
		cfg.Lease.LeaseDuration = o.lease
	}
	if set["renew-deadline"] {
		cfg.Lease.RenewDeadline = o.renew
	}
	if set["retry-period"] {
		cfg.Lease.RetryPeriod = o.retry
	}
	if set["release-on-cancel"] {
		cfg.Lease.ReleaseOnCancel = o.release
	}
	if set["etcd-endpoints"] {
		cfg.Etcd.Endpoints = splitList(o.etcdEndpoints)
	}
	if set["namespace"] {
		cfg.Kube.Namespace = o.kubeNS
	}
	// An empty identity from the file or the environment means the default;
	// the identity is validated with the rest once it is filled in.
	if cfg.Identity == "" {
		id, err := defaultIdentity()
		if err != nil {
			return cfg, err
		}
		cfg.Identity = id
	}
	if err := cfg.validate(); err != nil {
		return cfg, err
	}
	cfg.Lease.Identity = cfg.Identity
	return cfg, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// envKeys maps LEASEHOLD_* variables to the keys they set.
var envKeys = []struct{ env, key string }{
	{"LEASEHOLD_BACKEND", "backend"}, {"LEASEHOLD_NAME", "name"}, {"LEASEHOLD_IDENTITY", "identity"},
	{"LEASEHOLD_LEASE_DURATION", "lease.duration"}, {"LEASEHOLD_RENEW_DEADLINE", "lease.renew_deadline"},
	{"LEASEHOLD_RETRY_PERIOD", "lease.retry_period"}, {"LEASEHOLD_RELEASE_ON_CANCEL", "lease.release_on_cancel"},
	{"LEASEHOLD_ETCD_ENDPOINTS", "etcd.endpoints"}, {"LEASEHOLD_ETCD_PREFIX", "etcd.prefix"},
	{"LEASEHOLD_ETCD_USERNAME", "etcd.username"}, {"LEASEHOLD_ETCD_PASSWORD_FILE", "etcd.password_file"},
	{"LEASEHOLD_CONSUL_ADDRESS", "consul.address"}, {"LEASEHOLD_CONSUL_TOKEN_FILE", "consul.token_file"},
	{"LEASEHOLD_KUBE_KUBECONFIG", "kube.kubeconfig"}, {"LEASEHOLD_KUBE_NAMESPACE", "kube.namespace"},
}

func (c *config) applyEnv(getenv func(string) string) error {
	if c.setBy == nil {
		c.setBy = map[string]string{}
	}
	for _, ek := range envKeys {
		k := ek.env
		v := getenv(k)
		if v == "" {
			continue
		}
		c.setBy[ek.key] = k
		dur := func(d *time.Duration) error {
			x, err := time.ParseDuration(v)
			if err != nil {
				return usagef("%s: %q is not a duration (write it like 15s)", k, v)
			}
			*d = x
			return nil
		}
		var err error
		switch k {
		case "LEASEHOLD_BACKEND":
			c.Backend = v
		case "LEASEHOLD_NAME":
			c.Name = v
		case "LEASEHOLD_IDENTITY":
			c.Identity = v
		case "LEASEHOLD_LEASE_DURATION":
			err = dur(&c.Lease.LeaseDuration)
		case "LEASEHOLD_RENEW_DEADLINE":
			err = dur(&c.Lease.RenewDeadline)
		case "LEASEHOLD_RETRY_PERIOD":
			err = dur(&c.Lease.RetryPeriod)
		case "LEASEHOLD_RELEASE_ON_CANCEL":
			b, perr := strconv.ParseBool(v)
			if perr != nil {
				err = usagef("%s: want true or false, got %q", k, v)
			}
			c.Lease.ReleaseOnCancel = b
		case "LEASEHOLD_ETCD_ENDPOINTS":
			c.Etcd.Endpoints = splitList(v)
		case "LEASEHOLD_ETCD_PREFIX":
			c.Etcd.Prefix = v
		case "LEASEHOLD_ETCD_USERNAME":
			c.Etcd.Username = v
		case "LEASEHOLD_ETCD_PASSWORD_FILE":
			c.Etcd.PasswordFile = v
		case "LEASEHOLD_CONSUL_ADDRESS":
			c.Consul.Address = v
		case "LEASEHOLD_CONSUL_TOKEN_FILE":
			c.Consul.TokenFile = v
		case "LEASEHOLD_KUBE_KUBECONFIG":
			c.Kube.Kubeconfig = v
		case "LEASEHOLD_KUBE_NAMESPACE":
			c.Kube.Namespace = v
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parse reads a config file over the current values.
func (c *config) parse(data []byte) error {
	root, err := yamlx.Document(data)
	if err != nil {
		return err
	}
	p := &yamlx.Parser{}
	if c.lines == nil {
		c.lines = map[string]int{}
	}
	if c.setBy == nil {
		c.setBy = map[string]string{}
	}
	// The file overrides the environment: the key is now set at its line.
	mark := func(key string, v *yaml.Node) { c.lines[key] = v.Line; delete(c.setBy, key) }
	p.Mapping(root, "", func(key string, k, v *yaml.Node) {
		mark(key, v)
		switch key {
		case "backend":
			c.Backend = p.Str(v, key)
		case "name":
			c.Name = p.Str(v, key)
		case "identity":
			c.Identity = p.Str(v, key)
		case "lease":
			p.Mapping(v, "lease.", func(key string, k, v *yaml.Node) {
				mark("lease."+key, v)
				switch key {
				case "duration":
					c.Lease.LeaseDuration = p.Positive(v, "lease."+key)
				case "renew_deadline":
					c.Lease.RenewDeadline = p.Positive(v, "lease."+key)
				case "retry_period":
					c.Lease.RetryPeriod = p.Positive(v, "lease."+key)
				case "release_on_cancel":
					c.Lease.ReleaseOnCancel = p.Boolean(v, "lease."+key)
				default:
					p.Unknown(k, "lease."+key)
				}
			})
		case "etcd":
			p.Mapping(v, "etcd.", func(key string, k, v *yaml.Node) {
				name := "etcd." + key
				mark(name, v)
				switch key {
				case "endpoints":
					c.Etcd.Endpoints = p.Strings(v, name)
				case "prefix":
					c.Etcd.Prefix = p.Str(v, name)
				case "tls":
					c.Etcd.TLS = parseTLS(p, v, name)
				case "username":
					c.Etcd.Username = p.Str(v, name)
				case "password_file":
					c.Etcd.PasswordFile = p.Str(v, name)
				case "dial_timeout":
					c.Etcd.DialTimeout = p.Positive(v, name)
				case "request_timeout":
					c.Etcd.RequestTimeout = p.Positive(v, name)
				case "password":
					p.Fail(k, name, "secrets are read from files: use etcd.password_file")
				default:
					p.Unknown(k, name)
				}
			})
		case "consul":
			p.Mapping(v, "consul.", func(key string, k, v *yaml.Node) {
				name := "consul." + key
				switch key {
				case "address":
					c.Consul.Address = p.Str(v, name)
				case "prefix":
					c.Consul.Prefix = p.Str(v, name)
				case "token_file":
					c.Consul.TokenFile = p.Str(v, name)
				case "tls":
					c.Consul.TLS = parseTLS(p, v, name)
				case "token":
					p.Fail(k, name, "secrets are read from files: use consul.token_file")
				default:
					p.Unknown(k, name)
				}
			})
		case "kube":
			p.Mapping(v, "kube.", func(key string, k, v *yaml.Node) {
				name := "kube." + key
				switch key {
				case "kubeconfig":
					c.Kube.Kubeconfig = p.Str(v, name)
				case "context":
					c.Kube.Context = p.Str(v, name)
				case "namespace":
					c.Kube.Namespace = p.Str(v, name)
				default:
					p.Unknown(k, name)
				}
			})
		default:
			p.Unknown(k, key)
		}
	})
	return p.Err
}

func parseTLS(p *yamlx.Parser, n *yaml.Node, prefix string) tlsFiles {
	var t tlsFiles
	p.Mapping(n, prefix+".", func(key string, k, v *yaml.Node) {
		switch key {
		case "ca":
			t.CA = p.Str(v, prefix+".ca")
		case "cert":
			t.Cert = p.Str(v, prefix+".cert")
		case "key":
			t.Key = p.Str(v, prefix+".key")
		default:
			p.Unknown(k, prefix+"."+key)
		}
	})
	return t
}

// lockName is valid everywhere: a Kubernetes object name, an etcd key
// suffix, a Consul key segment.
var lockName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)

// at says where key was set in the file ("f.yaml: line 4: "), or nothing
// if it came from a default, the environment or a flag.
func (c *config) at(keys ...string) string {
	for _, k := range keys {
		if l, ok := c.lines[k]; ok && c.source != "" {
			return fmt.Sprintf("%s: line %d: ", c.source, l)
		}
	}
	return ""
}

// name is how messages call key: the flag or LEASEHOLD_* variable that set
// its value, or the key itself (then at gives the line, if from the file).
func (c *config) name(key string) string {
	if n := c.setBy[key]; n != "" {
		return n
	}
	return key
}

// maxEtcdTimeout bounds etcd.dial_timeout and etcd.request_timeout: longer
// is a unit typo, and would keep a stop or a failover waiting that long.
const maxEtcdTimeout = time.Hour

func (c *config) validate() error {
	known := false
	for _, b := range backends {
		known = known || c.Backend == b
	}
	switch {
	case !known:
		return usagef("%s%s: unknown backend %q (want %s)", c.at("backend"), c.name("backend"), c.Backend, strings.Join(backends, ", "))
	case c.Name == "":
		return usagef("name: missing: name the lock (for example name: nightly-report)")
	case !lockName.MatchString(c.Name):
		return usagef("%s%s: %q is not a valid lock name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)", c.at("name"), c.name("name"), c.Name)
	}
	if err := c.validateLease(); err != nil {
		return err
	}
	switch {
	case c.Backend == "etcd" && len(c.Etcd.Endpoints) == 0:
		return usagef("%s%s: empty: list at least one endpoint", c.at("etcd.endpoints"), c.name("etcd.endpoints"))
	case (c.Etcd.TLS.Cert == "") != (c.Etcd.TLS.Key == ""):
		return usagef("%setcd.tls.cert and etcd.tls.key go together: set both or neither", c.at("etcd.tls"))
	case c.Etcd.DialTimeout > maxEtcdTimeout:
		return usagef("%setcd.dial_timeout (%v) must be at most %v", c.at("etcd.dial_timeout"), c.Etcd.DialTimeout, maxEtcdTimeout)
	case c.Etcd.RequestTimeout > maxEtcdTimeout:
		return usagef("%setcd.request_timeout (%v) must be at most %v", c.at("etcd.request_timeout"), c.Etcd.RequestTimeout, maxEtcdTimeout)
	}
	return nil
}

// leaseFields maps elector.Config fields to the keys that set them.
var leaseFields = map[string]string{
	"Identity":      "identity",
	"LeaseDuration": "lease.duration",
	"RenewDeadline": "lease.renew_deadline",
	"RetryPeriod":   "lease.retry_period",
}

// validateLease checks identity and timing with the elector's own rule
// (elector.Config.Validate, so the CLI and the library cannot disagree),
// and says it in the config's words: the message's field names become the
// flags, variables or keys that set them, and the line of the first one set
// in the file leads.
func (c *config) validateLease() error {
	l := c.Lease
	l.Identity = c.Identity
	err := l.Validate()
	if err == nil {
		return nil
	}
	var ce *elector.ConfigError
	if !errors.As(err, &ce) {
		return usagef("%v", err)
	}
	var keys, pairs []string
	for _, f := range ce.Fields {
		if k, ok := leaseFields[f]; ok {
			keys = append(keys, k)
			pairs = append(pairs, f, c.name(k))
		}
	}
	// Not a setting of the CLI (always the default); named for what it is.
	pairs = append(pairs, "JitterFactor", "the jitter factor")
	return usagef("%s%s", c.at(keys...), strings.NewReplacer(pairs...).Replace(ce.Msg))
}

func defaultIdentity() (string, error) {
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("identity: no hostname to build one from: %w (set identity or --id)", err)
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return host + "_" + hex.EncodeToString(b), nil
}

// maxFileSize bounds the config and secret files leasehold reads.
const maxFileSize = 1 << 20

var errTooLarge = errors.New("larger than 1 MiB")

// readSmallFile reads a regular file of at most maxFileSize bytes. It opens
// with O_NONBLOCK, so that a FIFO cannot block the open, and refuses
// anything but a regular file (a FIFO, a device like /dev/zero, a
// directory) before reading a byte; the read itself stops past the limit.
// Errors are the bare reason ("not a regular file (a directory)"), for the
// caller to prefix with the flag or key and the path.
func readSmallFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, bare(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, bare(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fileKind(fi.Mode()))
	}
	if fi.Size() > maxFileSize {
		return nil, errTooLarge
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, bare(err)
	}
	if len(b) > maxFileSize { // it grew after the fstat
		return nil, errTooLarge
	}
	return b, nil
}

// bare drops the operation and path from a *PathError: the caller names the
// path already.
func bare(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "mode " + m.String()
}

// readSecret reads the secret in the file named by key (content trimmed).
func (c *config) readSecret(key, path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := readSmallFile(path)
	if err != nil {
		return "", usagef("%s%s %s: %v", c.at(key), c.name(key), path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// checkTLSFiles refuses TLS files that are not small regular files before
// the etcd client reads them (which would hang on a FIFO).
func (c *config) checkTLSFiles(prefix string, t tlsFiles) error {
	for _, f := range []struct{ key, path string }{{"ca", t.CA}, {"cert", t.Cert}, {"key", t.Key}} {
		if f.path == "" {
			continue
		}
		if _, err := readSmallFile(f.path); err != nil {
			return usagef("%s%s.tls.%s %s: %v", c.at(prefix+".tls"), prefix, f.key, f.path, err)
		}
	}
	return nil
}

// openBackend connects to the configured backend. close releases the
// connection.
func (c *config) openBackend(ctx context.Context, log *slog.Logger) (b elector.Backend, close func(), err error) {
	switch c.Backend {
	case "memory":
		log.Warn("the memory backend lives inside this process: no other process sees the lock")
		return memory.New().Backend(c.Name, c.Identity), func() {}, nil
	case "etcd":
		pw, err := c.readSecret("etcd.password_file", c.Etcd.PasswordFile)
		if err != nil {
			return nil, nil, err
		}
		if err := c.checkTLSFiles("etcd", c.Etcd.TLS); err != nil {
			return nil, nil, err
		}
		cli, err := dialEtcd(ctx, etcd.Config{
			Endpoints: c.Etcd.Endpoints, Prefix: c.Etcd.Prefix,
			DialTimeout: c.Etcd.DialTimeout, RequestTimeout: c.Etcd.RequestTimeout,
			CAFile: c.Etcd.TLS.CA, CertFile: c.Etcd.TLS.Cert, KeyFile: c.Etcd.TLS.Key,
			Username: c.Etcd.Username, Password: pw, Logger: log,
			// Back within about a RetryPeriod once etcd answers again
			// after an outage (gRPC's default backoff grows to 120s).
			MaxReconnectDelay: c.Lease.RetryPeriod,
		})
		if err != nil {
			return nil, nil, err
		}
		return cli.Lock(c.Name), func() { cli.Close() }, nil
	}
	return nil, nil, usagef("backend: %s is not available yet in this version of leasehold (available: etcd, memory)", c.Backend)
}

// dialEtcd is etcd.New that returns as soon as ctx is done. etcd.New gives
// up on ctx while it waits for the first answer, but with a username and
// password the etcd client first authenticates under its own dial timeout,
// which ctx does not reach; a client that connects after all is closed.
func dialEtcd(ctx context.Context, cfg etcd.Config) (*etcd.Client, error) {
	type result struct {
		cli *etcd.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		cli, err := etcd.New(ctx, cfg)
		done <- result{cli, err}
	}()
	select {
	case r := <-done:
		return r.cli, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.cli != nil {
				r.cli.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// newLogger builds the slog logger of --log-format and --log-level.
func (o *overrides) newLogger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, usagef("--log-level: %q is not one of debug, info, warn, error", o.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch o.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format: %q is not text or json", o.logFormat)
}

func isNotFound(err error) bool { return errors.Is(err, elector.ErrNotFound) }

// session is what run, sidecar and status share once their flags are
// parsed: the config, the loggers, the metrics server and the open backend.
type session struct {
	cfg     config
	base    *slog.Logger // for the elector, which adds lock and identity itself
	log     *slog.Logger
	srv     *server
	backend elector.Backend
	close   func()
}

// open loads the config, runs check on it (command-specific rules), and
// connects to the backend.
//
// Everything that can be checked is checked before connecting. A stop
// signal (ctx done) while connecting is logged as such and returned as
// errStopped: a clean stop, not a failure to report.
func (o *overrides) open(ctx context.Context, stderr io.Writer, check func(config) error) (*session, error) {
	base, err := o.newLogger(stderr)
	if err != nil {
		return nil, err
	}
	cfg, err := o.load(os.Getenv)
	if err != nil {
		return nil, err
	}
	if check != nil {
		if err := check(cfg); err != nil {
			return nil, err
		}
	}
	s := &session{cfg: cfg, base: base, log: base.With("lock", cfg.Name, "identity", cfg.Identity)}
	if s.srv, err = newServer(cfg.Name, s.log); err != nil {
		return nil, err
	}
	if s.backend, s.close, err = cfg.openBackend(ctx, s.log); err != nil {
		if ctx.Err() != nil {
			s.log.Info("stopped on signal while connecting to the store")
			return nil, errStopped
		}
		return nil, err
	}
	return s, nil
}
