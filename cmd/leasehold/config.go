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

	source string         // the file, for messages
	lines  map[string]int // line of each key set by the file
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

// load builds the config: defaults, then LEASEHOLD_* environment variables,
// then the file, then the flags that were set. Errors name the key.
func (o *overrides) load(getenv func(string) string) (config, error) {
	cfg := defaultConfig()
	if err := cfg.applyEnv(getenv); err != nil {
		return cfg, err
	}
	if o.config != "" {
		data, err := os.ReadFile(o.config)
		if err != nil {
			return cfg, usagef("config: %v", err)
		}
		if err := cfg.parse(data); err != nil {
			return cfg, usagef("%s: %v", o.config, err)
		}
		cfg.source = o.config
	}
	set := map[string]bool{}
	o.flagSet.Visit(func(f *flag.Flag) { set[f.Name] = true })
	// A value from a flag was not set at a line of the file.
	for flagName, key := range map[string]string{"backend": "backend", "name": "name",
		"lease-duration": "lease.duration", "renew-deadline": "lease.renew_deadline",
		"retry-period": "lease.retry_period", "etcd-endpoints": "etcd.endpoints"} {
		if set[flagName] {
			delete(cfg.lines, key)
			delete(cfg.lines, "lease")
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
	if err := cfg.validate(); err != nil {
		return cfg, err
	}
	if cfg.Identity == "" {
		id, err := defaultIdentity()
		if err != nil {
			return cfg, err
		}
		cfg.Identity = id
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
var envKeys = []string{
	"LEASEHOLD_BACKEND", "LEASEHOLD_NAME", "LEASEHOLD_IDENTITY",
	"LEASEHOLD_LEASE_DURATION", "LEASEHOLD_RENEW_DEADLINE", "LEASEHOLD_RETRY_PERIOD", "LEASEHOLD_RELEASE_ON_CANCEL",
	"LEASEHOLD_ETCD_ENDPOINTS", "LEASEHOLD_ETCD_PREFIX", "LEASEHOLD_ETCD_USERNAME", "LEASEHOLD_ETCD_PASSWORD_FILE",
	"LEASEHOLD_CONSUL_ADDRESS", "LEASEHOLD_CONSUL_TOKEN_FILE",
	"LEASEHOLD_KUBE_KUBECONFIG", "LEASEHOLD_KUBE_NAMESPACE",
}

func (c *config) applyEnv(getenv func(string) string) error {
	for _, k := range envKeys {
		v := getenv(k)
		if v == "" {
			continue
		}
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
	mark := func(key string, v *yaml.Node) { c.lines[key] = v.Line }
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

func (c *config) validate() error {
	known := false
	for _, b := range backends {
		known = known || c.Backend == b
	}
	switch {
	case !known:
		return usagef("%sbackend: unknown backend %q (want %s)", c.at("backend"), c.Backend, strings.Join(backends, ", "))
	case c.Name == "":
		return usagef("name: missing: name the lock (for example name: nightly-report)")
	case !lockName.MatchString(c.Name):
		return usagef("%sname: %q is not a valid lock name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)", c.at("name"), c.Name)
	case c.Lease.LeaseDuration <= c.Lease.RenewDeadline:
		return usagef("%slease.renew_deadline (%v) must be less than lease.duration (%v)",
			c.at("lease.renew_deadline", "lease.duration", "lease"), c.Lease.RenewDeadline, c.Lease.LeaseDuration)
	case float64(c.Lease.RenewDeadline) <= elector.DefaultJitterFactor*float64(c.Lease.RetryPeriod):
		return usagef("%slease.renew_deadline (%v) must be greater than 1.2 × lease.retry_period (%v)",
			c.at("lease.renew_deadline", "lease.retry_period", "lease"), c.Lease.RenewDeadline, c.Lease.RetryPeriod)
	case c.Backend == "etcd" && len(c.Etcd.Endpoints) == 0:
		return usagef("%setcd.endpoints: empty: list at least one endpoint", c.at("etcd.endpoints"))
	case (c.Etcd.TLS.Cert == "") != (c.Etcd.TLS.Key == ""):
		return usagef("%setcd.tls.cert and etcd.tls.key go together: set both or neither", c.at("etcd.tls"))
	}
	return nil
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

func readSecret(key, path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", usagef("%s: %v", key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// openBackend connects to the configured backend. close releases the
// connection.
func (c *config) openBackend(ctx context.Context, log *slog.Logger) (b elector.Backend, close func(), err error) {
	switch c.Backend {
	case "memory":
		log.Warn("the memory backend lives inside this process: no other process sees the lock")
		return memory.New().Backend(c.Name, c.Identity), func() {}, nil
	case "etcd":
		pw, err := readSecret("etcd.password_file", c.Etcd.PasswordFile)
		if err != nil {
			return nil, nil, err
		}
		cli, err := etcd.New(ctx, etcd.Config{
			Endpoints: c.Etcd.Endpoints, Prefix: c.Etcd.Prefix,
			DialTimeout: c.Etcd.DialTimeout, RequestTimeout: c.Etcd.RequestTimeout,
			CAFile: c.Etcd.TLS.CA, CertFile: c.Etcd.TLS.Cert, KeyFile: c.Etcd.TLS.Key,
			Username: c.Etcd.Username, Password: pw, Logger: log,
		})
		if err != nil {
			return nil, nil, err
		}
		return cli.Lock(c.Name), func() { cli.Close() }, nil
	}
	return nil, nil, usagef("backend: %s is not available yet in this version of leasehold (available: etcd, memory)", c.Backend)
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
func (o *overrides) open(ctx context.Context, stderr io.Writer, check func(config) error) (*session, error) {
	cfg, err := o.load(os.Getenv)
	if err != nil {
		return nil, err
	}
	if check != nil {
		if err := check(cfg); err != nil {
			return nil, err
		}
	}
	base, err := o.newLogger(stderr)
	if err != nil {
		return nil, err
	}
	s := &session{cfg: cfg, base: base, log: base.With("lock", cfg.Name, "identity", cfg.Identity)}
	if s.srv, err = newServer(cfg.Name, s.log); err != nil {
		return nil, err
	}
	if s.backend, s.close, err = cfg.openBackend(ctx, s.log); err != nil {
		return nil, err
	}
	return s, nil
}
