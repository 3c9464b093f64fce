package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/leasehold-go/leasehold/backend/consul"
	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/backend/kube"
	"github.com/leasehold-go/leasehold/backend/memory"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/smallfile"
	"github.com/leasehold-go/leasehold/internal/yamlx"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// backends is every backend the CLI can open: the one table from a
// backend's name to its package's Config and Open. The file's block named
// after the backend (etcd:) is decoded strictly into its Config, by the
// Config's yaml tags; the keys listed get a LEASEHOLD_* variable (and maybe
// a flag); only the chosen backend's Config is validated and opened.
//
// Adding a backend is one package and one line here, plus its docs:
//
//   - backend/<name>/: a Config struct whose `yaml:"..."` tags are its keys
//     (an empty value must mean the default: empty counts as unset), a
//     DefaultConfig, a Validate returning *elector.ConfigError whose Fields
//     are the full keys (<name>.endpoints), and an Open(ctx, Config, lock,
//     *slog.Logger) (elector.Backend, func() error, error) whose file errors
//     are ConfigErrors naming the key; tests running backend/backendtest
//     against the real server. In a module of its own (go.mod replacing the
//     root with ../..), also a `use` line in go.work and a require + replace
//     in cmd/leasehold/go.mod.
//   - cmd/leasehold/config.go: its entry below, with its open func (a
//     call of its Open, like openMemory; openEtcd also hands it the lease
//     timing).
//   - docs/config.md (keys, variables, flags), docs/config/<name>.yaml (an
//     example, loaded by TestExampleConfigs), docs/backends.md (the stored
//     mapping), docs/cli.md if it adds a flag.
var backends = []backendSpec{
	newBackend("etcd", etcd.DefaultConfig, openEtcd,
		backendKey{key: "endpoints", env: "LEASEHOLD_ETCD_ENDPOINTS", flag: "etcd-endpoints", usage: "comma-separated etcd endpoints"},
		backendKey{key: "prefix", env: "LEASEHOLD_ETCD_PREFIX"},
		backendKey{key: "username", env: "LEASEHOLD_ETCD_USERNAME"},
		backendKey{key: "password_file", env: "LEASEHOLD_ETCD_PASSWORD_FILE"},
	).withDeleteHint(etcdDeleteHint),
	newBackend("consul", consul.DefaultConfig, openConsul,
		backendKey{key: "address", env: "LEASEHOLD_CONSUL_ADDRESS", flag: "consul-address", usage: "Consul agent HTTP address, host:port"},
		backendKey{key: "token_file", env: "LEASEHOLD_CONSUL_TOKEN_FILE"},
	).withDeleteHint(consulDeleteHint),
	newBackend("kube", kube.DefaultConfig, openKube,
		backendKey{key: "kubeconfig", env: "LEASEHOLD_KUBE_KUBECONFIG"},
		backendKey{key: "context", env: "LEASEHOLD_KUBE_CONTEXT"},
		backendKey{key: "namespace", env: "LEASEHOLD_KUBE_NAMESPACE", flag: "namespace", short: "n", usage: "Kubernetes namespace of the Lease"},
	).withDeleteHint(kubeDeleteHint),
	newBackend("memory", memory.DefaultConfig, openMemory),
}

// openEtcd caps the etcd client's reconnect backoff at the RetryPeriod: back
// within about a RetryPeriod once etcd answers again after an outage
// (gRPC's default backoff grows to 120s).
func openEtcd(ctx context.Context, c etcd.Config, a openArgs) (elector.Backend, func() error, error) {
	c.MaxReconnectDelay = a.lease.RetryPeriod
	return etcd.Open(ctx, c, a.lock, a.log)
}

func etcdDeleteHint(b elector.Backend) string {
	if eb, ok := b.(*etcd.Backend); ok {
		return fmt.Sprintf("etcd key %s, for example with etcdctl del %s", eb.Key(), eb.Key())
	}
	return b.Describe()
}

func openConsul(ctx context.Context, c consul.Config, a openArgs) (elector.Backend, func() error, error) {
	return consul.Open(ctx, c, a.lock, a.log)
}

func consulDeleteHint(b elector.Backend) string {
	if cb, ok := b.(*consul.Backend); ok {
		return fmt.Sprintf("consul key %s, for example with consul kv delete %s", cb.Key(), cb.Key())
	}
	return b.Describe()
}

// openKube hands the kube backend the lease duration, which a Lease keeps
// in whole seconds: a sub-second one is refused there, not truncated.
func openKube(ctx context.Context, c kube.Config, a openArgs) (elector.Backend, func() error, error) {
	c.LeaseDuration = a.lease.LeaseDuration
	return kube.Open(ctx, c, a.lock, a.log)
}

func kubeDeleteHint(b elector.Backend) string {
	if kb, ok := b.(*kube.Backend); ok {
		return fmt.Sprintf("lease %s/%s, for example with kubectl -n %s delete lease %s", kb.Namespace(), kb.Name(), kb.Namespace(), kb.Name())
	}
	return b.Describe()
}

func openMemory(ctx context.Context, c memory.Config, a openArgs) (elector.Backend, func() error, error) {
	return memory.Open(ctx, c, a.lock, a.log)
}

// backendConfig is what every backend's Config has.
type backendConfig interface{ Validate() error }

// openArgs is what a backend's open gets besides its Config.
type openArgs struct {
	lock  string
	lease elector.Config // the timing, identity included
	log   *slog.Logger
}

// backendKey is a key of a backend's block that a LEASEHOLD_* variable,
// and maybe a flag, sets (as text: a list is comma-separated).
type backendKey struct {
	key   string // in the block: endpoints (the full key is etcd.endpoints)
	env   string // LEASEHOLD_ETCD_ENDPOINTS
	flag  string // etcd-endpoints; "" for none
	short string // a one-letter spelling of the flag ("n" for --namespace, as kubectl's); "" for none
	usage string // the flag's help
}

// backendSpec is one line of the backends table. Make it with newBackend.
type backendSpec struct {
	name string
	// newConfig returns a pointer to a fresh default Config.
	newConfig func() any
	// validate calls the Validate of the Config newConfig made.
	validate func(cfg any) error
	// open opens the lock on the Config newConfig made.
	open func(ctx context.Context, cfg any, a openArgs) (elector.Backend, func() error, error)
	keys []backendKey
	// deleteHint says how to delete a lock's record by hand (status's
	// "term exhausted" advice); nil: the backend's Describe.
	deleteHint func(b elector.Backend) string
}

// newBackend makes a table line from a backend package's DefaultConfig and
// an open func taking its Config, so that the table is type-checked.
func newBackend[C backendConfig](name string, defaults func() C,
	open func(context.Context, C, openArgs) (elector.Backend, func() error, error), keys ...backendKey) backendSpec {
	return backendSpec{
		name:      name,
		newConfig: func() any { c := defaults(); return &c },
		validate:  func(cfg any) error { return (*cfg.(*C)).Validate() },
		open: func(ctx context.Context, cfg any, a openArgs) (elector.Backend, func() error, error) {
			return open(ctx, *cfg.(*C), a)
		},
		keys: keys,
	}
}

func (s backendSpec) withDeleteHint(f func(elector.Backend) string) backendSpec {
	s.deleteHint = f
	return s
}

// backendNamed returns the table line of name, or nil.
func backendNamed(name string) *backendSpec {
	for i := range backends {
		if backends[i].name == name {
			return &backends[i]
		}
	}
	return nil
}

// backendNames lists the backends for messages: "etcd, memory".
func backendNames() string {
	var names []string
	for _, b := range backends {
		names = append(names, b.name)
	}
	return strings.Join(names, ", ")
}

// config is what run, sidecar and status need: which lock, on which
// backend, with which timing. See docs/config.md.
type config struct {
	Backend  string
	Name     string
	Identity string
	Lease    elector.Config // durations and ReleaseOnCancel; Identity is filled in last
	// Cron is the cron: block, for leasehold cron (flags override it) and
	// for status, which shows the schedule's next slot.
	Cron cronConfig

	// backendConfigs holds a pointer to every known backend's Config, by
	// name (what backendSpec.newConfig made).
	backendConfigs map[string]any

	source string            // the file, for messages
	lines  map[string]int    // line of each key set by the file
	setBy  map[string]string // the flag or LEASEHOLD_* variable that set a key, for messages

	// identityFromHost: the identity is the bare hostname, the sidecar's
	// default (the caller warns about it once).
	identityFromHost bool
}

// cronConfig is the config file's cron: block; empty means unset.
type cronConfig struct {
	Schedule, Timezone, Job string
	CatchUp                 time.Duration
	CatchUpSet              bool
	Interrupted, Overlap    string
}

func defaultConfig() config {
	c := config{
		Backend:        "etcd",
		Lease:          elector.DefaultConfig(""),
		backendConfigs: map[string]any{},
		lines:          map[string]int{},
		setBy:          map[string]string{},
	}
	for _, b := range backends {
		c.backendConfigs[b.name] = b.newConfig()
	}
	return c
}

// overrides are the flags every config-using command takes; unset flags
// leave the value alone.
type overrides struct {
	config, backend, name, id string
	lease, renew, retry       time.Duration
	release                   bool
	// ttl is the sidecar's --ttl (leader-elector's): the lease duration,
	// with the renew deadline and retry period derived from it.
	ttl time.Duration
	// hostIdentity: the default identity is the hostname alone (the
	// sidecar, whose GET / apps compare with $HOSTNAME).
	hostIdentity        bool
	backendFlags        map[string]*string // by flag name
	logFormat, logLevel string
	flagSet             *pflag.FlagSet
}

// Which of the shared flags a command takes: a candidate (run, sidecar)
// campaigns, so it takes the identity and the lease timing; a reader
// (status) only reads the lock.
const (
	reader    = false
	candidate = true
)

// addConfigFlags defines the flags of the commands that use a lock; the
// values override the environment and the file only when given.
func addConfigFlags(fs *pflag.FlagSet, campaigns bool) *overrides {
	o := &overrides{flagSet: fs, backendFlags: map[string]*string{}}
	fs.StringVar(&o.config, "config", "", "config file (YAML, see docs/config.md)")
	fs.StringVar(&o.backend, "backend", "", "backend: one of "+backendNames()+" (overrides LEASEHOLD_BACKEND and the file; default etcd)")
	fs.StringVar(&o.name, "name", "", "name of the lock (overrides LEASEHOLD_NAME and the file)")
	if campaigns {
		fs.StringVar(&o.id, "id", "", "identity of this candidate (default: hostname_random; overrides LEASEHOLD_IDENTITY and the file)")
		fs.DurationVar(&o.lease, "lease-duration", 0, "LeaseDuration (overrides LEASEHOLD_LEASE_DURATION and the file; default 15s)")
		fs.DurationVar(&o.renew, "renew-deadline", 0, "RenewDeadline (overrides LEASEHOLD_RENEW_DEADLINE and the file; default 10s)")
		fs.DurationVar(&o.retry, "retry-period", 0, "RetryPeriod (overrides LEASEHOLD_RETRY_PERIOD and the file; default 2s)")
		fs.BoolVar(&o.release, "release-on-cancel", true, "release the lock when stopping (overrides LEASEHOLD_RELEASE_ON_CANCEL and the file)")
	}
	for _, b := range backends {
		for _, k := range b.keys {
			if k.flag != "" {
				o.backendFlags[k.flag] = fs.StringP(k.flag, k.short, "", fmt.Sprintf("%s (overrides %s and the file's %s.%s)", k.usage, k.env, b.name, k.key))
			}
		}
	}
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return o
}

// flagKeys maps the shared flags to the keys they set.
var flagKeys = []struct{ flag, key string }{
	{"backend", "backend"}, {"name", "name"}, {"id", "identity"},
	{"lease-duration", "lease.duration"}, {"renew-deadline", "lease.renew_deadline"},
	{"retry-period", "lease.retry_period"}, {"release-on-cancel", "lease.release_on_cancel"},
}

// load builds the config: defaults, then the file, then LEASEHOLD_*
// environment variables, then the flags that were set; an empty value in
// the file or the environment counts as unset. Everything is checked here,
// before anything is connected. Errors name the flag, variable or key (with
// its line in the file).
func (o *overrides) load(getenv func(string) string) (config, error) {
	set := map[string]bool{}
	o.flagSet.Visit(func(f *pflag.Flag) { set[f.Name] = true })
	// An empty --id is a mistake (an unset variable in a script, say), not a
	// request for the default: leave --id out for that.
	if set["id"] && o.id == "" {
		return config{}, usagef("--id: empty: give this candidate an identity, or leave --id out for the default (hostname_<random>)")
	}
	cfg := defaultConfig()
	if o.config != "" {
		data, err := smallfile.Read(o.config)
		if err != nil {
			return cfg, usagef("--config %s: %v", o.config, err)
		}
		if err := cfg.parse(data); err != nil {
			return cfg, usagef("%s: %v", o.config, err)
		}
		cfg.source = o.config
	}
	if err := cfg.applyEnv(getenv); err != nil {
		return cfg, err
	}
	// A value from a flag was not set at a line of the file.
	for _, fk := range flagKeys {
		if set[fk.flag] {
			cfg.setKey(fk.key, "--"+fk.flag)
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
	if set["ttl"] {
		// leader-elector's rule: renew deadline ttl/2, retry period ttl/4,
		// unless given on their own; messages name --ttl.
		cfg.Lease.LeaseDuration = o.ttl
		cfg.setKey("lease.duration", "--ttl")
		if !set["renew-deadline"] {
			cfg.Lease.RenewDeadline = o.ttl / 2
			cfg.setKey("lease.renew_deadline", "--ttl (renew deadline ttl/2)")
		}
		if !set["retry-period"] {
			cfg.Lease.RetryPeriod = o.ttl / 4
			cfg.setKey("lease.retry_period", "--ttl (retry period ttl/4)")
		}
	}
	for _, b := range backends {
		for _, k := range b.keys {
			if k.flag == "" || !set[k.flag] {
				continue
			}
			v := *o.backendFlags[k.flag]
			if strings.TrimSpace(v) == "" {
				return cfg, usagef("--%s: empty: give a value, or leave --%s out", k.flag, k.flag)
			}
			if err := cfg.setText(b, k, v); err != nil {
				return cfg, usagef("--%s: %v", k.flag, err)
			}
			cfg.setKey(b.name+"."+k.key, "--"+k.flag)
		}
	}
	// An empty identity from the file or the environment means the default;
	// the identity is validated with the rest once it is filled in.
	if cfg.Identity == "" && o.hostIdentity {
		host, err := os.Hostname()
		if err != nil || host == "" {
			return cfg, fmt.Errorf("identity: no hostname to use: %v (set identity or --id)", err)
		}
		cfg.Identity, cfg.identityFromHost = host, true
	}
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

// setKey records that a flag or variable named by set key: messages name
// it instead of the key, and no longer a line of the file.
func (c *config) setKey(key, by string) {
	delete(c.lines, key)
	c.setBy[key] = by
}

// setText sets key k of backend b's Config from the text of a flag or
// variable; the error is the bare reason.
func (c *config) setText(b backendSpec, k backendKey, text string) error {
	err := yamlx.SetText(c.backendConfigs[b.name], k.key, text)
	var fe *yamlx.FieldError
	if errors.As(err, &fe) {
		return errors.New(fe.Msg)
	}
	return err
}

// envKeys maps the LEASEHOLD_* variables of the keys outside the backends'
// blocks to the keys they set; each backend's are in the backends table.
var envKeys = []struct{ env, key string }{
	{"LEASEHOLD_BACKEND", "backend"}, {"LEASEHOLD_NAME", "name"}, {"LEASEHOLD_IDENTITY", "identity"},
	{"LEASEHOLD_LEASE_DURATION", "lease.duration"}, {"LEASEHOLD_RENEW_DEADLINE", "lease.renew_deadline"},
	{"LEASEHOLD_RETRY_PERIOD", "lease.retry_period"}, {"LEASEHOLD_RELEASE_ON_CANCEL", "lease.release_on_cancel"},
}

// envVars lists every LEASEHOLD_* variable the config reads.
func envVars() []string {
	var out []string
	for _, ek := range envKeys {
		out = append(out, ek.env)
	}
	for _, b := range backends {
		for _, k := range b.keys {
			out = append(out, k.env)
		}
	}
	return out
}

// applyEnv applies the LEASEHOLD_* variables over the defaults and the file;
// an empty variable is unset.
func (c *config) applyEnv(getenv func(string) string) error {
	for _, ek := range envKeys {
		k := ek.env
		v := getenv(k)
		if v == "" {
			continue
		}
		c.setKey(ek.key, k)
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
		}
		if err != nil {
			return err
		}
	}
	for _, b := range backends {
		for _, k := range b.keys {
			v := getenv(k.env)
			if strings.TrimSpace(v) == "" {
				continue
			}
			if err := c.setText(b, k, v); err != nil {
				return usagef("%s: %v", k.env, err)
			}
			c.setKey(b.name+"."+k.key, k.env)
		}
	}
	return nil
}

// isEmpty reports whether a value in the file counts as unset: nothing,
// ~, null or an empty string.
func isEmpty(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || n.Value == "")
}

// parse reads a config file over the defaults. Empty values are skipped.
func (c *config) parse(data []byte) error {
	root, err := yamlx.Document(data)
	if err != nil {
		return err
	}
	p := &yamlx.Parser{}
	mark := func(key string, v *yaml.Node) { c.lines[key] = v.Line }
	p.Mapping(root, "", func(key string, k, v *yaml.Node) {
		if isEmpty(v) {
			return
		}
		switch key {
		case "backend":
			mark(key, v)
			c.Backend = p.Str(v, key)
		case "name":
			mark(key, v)
			c.Name = p.Str(v, key)
		case "identity":
			mark(key, v)
			c.Identity = p.Str(v, key)
		case "cron":
			mark(key, v)
			p.Mapping(v, "cron.", func(key string, k, v *yaml.Node) {
				if isEmpty(v) {
					return
				}
				name := "cron." + key
				mark(name, v)
				switch key {
				case "schedule":
					c.Cron.Schedule = p.Str(v, name)
				case "timezone":
					c.Cron.Timezone = p.Str(v, name)
				case "job":
					c.Cron.Job = p.Str(v, name)
				case "catch_up":
					c.Cron.CatchUp, c.Cron.CatchUpSet = p.NonNegative(v, name), true
				case "interrupted":
					c.Cron.Interrupted = p.Str(v, name)
				case "overlap":
					c.Cron.Overlap = p.Str(v, name)
				default:
					p.Unknown(k, name)
				}
			})
		case "lease":
			mark(key, v)
			p.Mapping(v, "lease.", func(key string, k, v *yaml.Node) {
				if isEmpty(v) {
					return
				}
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
		default:
			if backendNamed(key) != nil {
				if err := yamlx.Decode(v, key, c.backendConfigs[key], c.lines); err != nil && p.Err == nil {
					p.Err = err
				}
				return
			}
			if v.Kind == yaml.MappingNode {
				p.Fail(k, key, "unknown backend %q (want %s)", key, backendNames())
				return
			}
			p.Unknown(k, key)
		}
	})
	return p.Err
}

// at says where key was set in the file ("f.yaml: line 4: ") — the first of
// keys that was — or nothing if they came from defaults, the environment or
// flags.
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

func (c *config) validate() error {
	b := backendNamed(c.Backend)
	switch {
	case b == nil:
		return usagef("%s%s: unknown backend %q (want %s)", c.at("backend"), c.name("backend"), c.Backend, backendNames())
	case c.Name == "":
		return usagef("name: missing: name the lock (for example name: nightly-report)")
	case !validLockName(c.Name):
		return usagef("%s%s: %q is not a valid lock name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)", c.at("name"), c.name("name"), c.Name)
	}
	if err := c.validateLease(); err != nil {
		return err
	}
	if err := b.validate(c.backendConfigs[b.name]); err != nil {
		return c.keyError(b, err)
	}
	return nil
}

// keyError says a backend's error in the config's words: a
// *elector.ConfigError's fields are keys (etcd.endpoints); the message
// leads with the line of the first one set in the file and names the flag
// or variable of those set by one. Other errors are bad input about the
// backend.
func (c *config) keyError(b *backendSpec, err error) error {
	var ce *elector.ConfigError
	if !errors.As(err, &ce) {
		return usagef("%s: %v", b.name, err)
	}
	var pairs []string
	for _, f := range ce.Fields {
		if n := c.name(f); n != f {
			pairs = append(pairs, f, n)
		}
	}
	return usagef("%s%s", c.at(ce.Fields...), strings.NewReplacer(pairs...).Replace(ce.Msg))
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
const maxFileSize = smallfile.MaxSize

// openBackend connects to the configured backend; close releases the
// connection. A file the backend refuses (a password or TLS file) is bad
// input naming the key and its line.
func (c *config) openBackend(ctx context.Context, log *slog.Logger) (b elector.Backend, close func() error, err error) {
	spec := backendNamed(c.Backend)
	if spec == nil { // validate refuses it first
		return nil, nil, usagef("%s: unknown backend %q (want %s)", c.name("backend"), c.Backend, backendNames())
	}
	if log == nil {
		log = slog.Default()
	}
	b, close, err = spec.open(ctx, c.backendConfigs[spec.name], openArgs{lock: c.Name, lease: c.Lease, log: log})
	if err != nil {
		if errors.Is(err, elector.ErrInvalidConfig) {
			return nil, nil, c.keyError(spec, err)
		}
		return nil, nil, err
	}
	return b, close, nil
}

// deleteHint says where a lock's record is and how to delete it by hand.
func (c *config) deleteHint(b elector.Backend) string {
	if spec := backendNamed(c.Backend); spec != nil && spec.deleteHint != nil {
		return spec.deleteHint(b)
	}
	return b.Describe()
}

// durationText writes durations as Go spells them ("1.5s"), not as
// nanosecond integers (what slog's JSON handler would write).
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// newLogger builds the slog logger of --log-format and --log-level.
func (o *overrides) newLogger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, usagef("--log-level: %q is not one of debug, info, warn, error", o.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationText}
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
	close   func() error
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
