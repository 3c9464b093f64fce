// Package benchreal is `leasehold bench backend`: it measures leader
// election on a real server — leasehold's elector on the configured
// backend, and side by side, in the same run, the native election of that
// server's own client library: client-go's leaderelection (LeaseLock) on
// a Kubernetes apiserver, etcd's concurrency.Election, Consul's api.Lock.
//
// Figures, each over Rounds samples (p50 / p90 / max):
//
//   - acquire: a candidate alone on a fresh lock, from the start of its
//     campaign to its leading;
//   - renew: one renewal round trip of a leader;
//   - handoff: the leader stops gracefully (it releases) → another leads;
//   - crash failover: the leader is dropped without a release (it neither
//     renews nor releases any more) → another leads;
//   - leader and follower requests per second while nothing changes.
//
// leasehold runs twice: with followers watching (when the backend can) and
// polling (the Watch method hidden). Run measures on the wall clock: it is
// a benchmark of real servers, not a simulation.
package benchreal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/leasehold-go/leasehold/backend/consul"
	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/backend/kube"
	"github.com/leasehold-go/leasehold/elector"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/client-go/rest"
)

// Defaults of Options.
const (
	DefaultCandidates = 5
	DefaultRounds     = 20
	DefaultLock       = "leasehold-bench"
	DefaultNamespace  = "default"
)

// MaxCandidates and MaxRounds bound a run: each candidate holds a
// connection, each round of crash failover takes about a LeaseDuration.
const (
	MaxCandidates = 100
	MaxRounds     = 10000
)

// Output formats of Options.Format.
const (
	FormatText = "text"
	FormatJSON = "json"
	FormatCSV  = "csv"
)

// Options say what to measure, where, and how to print it. Start from the
// zero value: zero fields mean the defaults.
type Options struct {
	// Backend is the backend's name as the CLI's config names it: etcd,
	// consul or kube are compared with their native election; any other
	// (memory) is measured alone.
	Backend string

	// NewBackend opens one candidate's own connection to the lock named
	// lock, for the candidate identity; close releases the connection.
	// Run calls it once per candidate (leasehold's candidates are separate
	// processes in real use), with lock names it makes from Lock. It must
	// open the lock for the durations below where the backend needs them
	// (the kube backend's whole-second LeaseDuration; the etcd backend's
	// reconnect delay). The candidates must share one store: for the
	// memory backend, whose Open makes a private store each time, open
	// the locks of one memory.Store (store.Backend(lock, identity)).
	// Required.
	NewBackend func(ctx context.Context, lock, identity string) (b elector.Backend, close func() error, err error)

	// Lock is the prefix of every lock, key and Lease the run creates
	// (each run adds a random suffix); default DefaultLock. Run deletes
	// what it created at the end where it can (etcd, consul, kube).
	Lock string

	// EtcdEndpoints are the etcd endpoints of the native Election (the
	// CLI's etcd.endpoints). Etcd, when set, is the base client
	// configuration instead (TLS, credentials); EtcdEndpoints, when set,
	// replace its Endpoints.
	EtcdEndpoints []string
	Etcd          *clientv3.Config

	// ConsulAddress is the agent's host:port for the native api.Lock (the
	// CLI's consul.address); ConsulToken its ACL token. Consul, when set,
	// is the base client configuration instead (scheme, TLS, datacenter);
	// ConsulAddress and ConsulToken, when set, replace its fields.
	ConsulAddress string
	ConsulToken   string
	Consul        *api.Config
	// ConsulLockDelay is the lock-delay of api.Lock's sessions: after a
	// session is invalidated (a crashed holder) the key cannot be taken
	// for that long. Zero means Consul's default, 15s; the least Consul
	// takes is 1ms.
	ConsulLockDelay time.Duration

	// KubeConfig and KubeContext name the kubeconfig file and context of
	// client-go's leaderelection (the CLI's kube.kubeconfig and
	// kube.context; empty: $KUBECONFIG or ~/.kube/config, or in-cluster);
	// KubeNamespace the namespace of its Leases (default "default").
	// KubeREST, when set, is used instead of KubeConfig and KubeContext.
	KubeConfig    string
	KubeContext   string
	KubeNamespace string
	KubeREST      *rest.Config

	// FromEtcd, FromConsul and FromKube, when set, are the CLI's
	// configuration of the backend (its etcd:, consul: or kube: block):
	// the native client is built from it — endpoints, address, TLS files,
	// credentials, kubeconfig, context, namespace — unless Etcd, Consul or
	// KubeREST is set; the fields above, when set, override it.
	FromEtcd   *etcd.Config
	FromConsul *consul.Config
	FromKube   *kube.Config

	// NoNative measures leasehold alone, without the native election.
	NoNative bool

	// Candidates is how many candidates campaign on the lock (default
	// DefaultCandidates, at least 2); Rounds how many acquisitions,
	// handoffs and crash failovers are sampled (default DefaultRounds).
	Candidates int
	Rounds     int

	// The lease timing, elector.Config's meaning (default 15s / 10s /
	// 2s). The native elections get the same where their API has it:
	// client-go all three; etcd a session TTL of LeaseDuration rounded up
	// to whole seconds; Consul a session TTL of LeaseDuration and a
	// LockWaitTime of LeaseDuration.
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration

	// Window is how long requests are counted while nothing changes;
	// default the longest of 10s, 2 × LeaseDuration and 5 × RetryPeriod.
	Window time.Duration

	// Format is the output: FormatText (default), FormatJSON or FormatCSV.
	Format string

	// Log receives progress (one line per phase); nil: none.
	Log *slog.Logger
}

// withDefaults fills in the zero fields.
func (o Options) withDefaults() Options {
	if o.Lock == "" {
		o.Lock = DefaultLock
	}
	if o.Candidates == 0 {
		o.Candidates = DefaultCandidates
	}
	if o.Rounds == 0 {
		o.Rounds = DefaultRounds
	}
	def := elector.DefaultConfig("")
	if o.LeaseDuration == 0 {
		o.LeaseDuration = def.LeaseDuration
	}
	if o.RenewDeadline == 0 {
		o.RenewDeadline = def.RenewDeadline
	}
	if o.RetryPeriod == 0 {
		o.RetryPeriod = def.RetryPeriod
	}
	if o.Window == 0 {
		o.Window = max(10*time.Second, 2*o.LeaseDuration, 5*o.RetryPeriod)
	}
	if o.Format == "" {
		o.Format = FormatText
	}
	o = o.kubeFrom()
	if o.KubeNamespace == "" {
		o.KubeNamespace = DefaultNamespace
	}
	if o.ConsulLockDelay == 0 {
		o.ConsulLockDelay = 15 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Validate checks o (after defaults) without connecting anywhere.
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case o.NewBackend == nil:
		return errors.New("bench backend: Options.NewBackend is nil")
	case o.Candidates < 2 || o.Candidates > MaxCandidates:
		return fmt.Errorf("bench backend: candidates %d: want 2 to %d", o.Candidates, MaxCandidates)
	case o.Rounds < 1 || o.Rounds > MaxRounds:
		return fmt.Errorf("bench backend: rounds %d: want 1 to %d", o.Rounds, MaxRounds)
	case o.Window < 0:
		return fmt.Errorf("bench backend: window %v must not be negative", o.Window)
	case o.ConsulLockDelay < 0:
		return fmt.Errorf("bench backend: consul lock delay %v must not be negative", o.ConsulLockDelay)
	case !lockName(o.Lock):
		return fmt.Errorf("bench backend: lock prefix %q: use lower-case letters, digits and '-', starting with a letter, at most 200", o.Lock)
	}
	switch o.Format {
	case FormatText, FormatJSON, FormatCSV:
	default:
		return fmt.Errorf("bench backend: format %q: want %s, %s or %s", o.Format, FormatText, FormatJSON, FormatCSV)
	}
	if err := o.electorConfig("x").Validate(); err != nil {
		return fmt.Errorf("bench backend: lease timing: %w", err)
	}
	return nil
}

func lockName(s string) bool {
	if s == "" || len(s) > 200 || s[0] < 'a' || s[0] > 'z' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func (o Options) electorConfig(id string) elector.Config {
	return elector.Config{Identity: id, LeaseDuration: o.LeaseDuration, RenewDeadline: o.RenewDeadline,
		RetryPeriod: o.RetryPeriod, ReleaseOnCancel: true}
}

// Run measures as o says and writes the report to out in o.Format; it
// returns the report too. An implementation that fails is reported with
// its error (the others are still measured) and makes Run's error non-nil;
// bad options fail before anything is connected. Cancelling ctx stops the
// candidates (leaders release) and returns what was measured so far.
func Run(ctx context.Context, opts Options, out io.Writer) (Report, error) {
	if err := opts.Validate(); err != nil {
		return Report{}, err
	}
	o := opts.withDefaults()
	start := time.Now()
	rep := Report{
		Backend:       o.Backend,
		Candidates:    o.Candidates,
		Rounds:        o.Rounds,
		LeaseDuration: Duration(o.LeaseDuration),
		RenewDeadline: Duration(o.RenewDeadline),
		RetryPeriod:   Duration(o.RetryPeriod),
		Window:        Duration(o.Window),
		Started:       start.UTC().Round(time.Millisecond),
	}
	run, err := newRunID()
	if err != nil {
		return rep, err
	}
	kinds, cleanup, err := o.kinds(ctx, run)
	if err != nil {
		return rep, err
	}
	var errs []error
	for _, k := range kinds {
		if ctx.Err() != nil {
			break
		}
		o.Log.Info("bench backend: measuring", "implementation", k.name(), "mode", k.mode())
		res, err := runTrial(ctx, o, run, k)
		if err != nil {
			res.Error = err.Error()
			errs = append(errs, fmt.Errorf("%s %s: %w", k.name(), k.mode(), err))
		}
		rep.Results = append(rep.Results, res)
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	for _, c := range cleanup {
		if err := c(cctx); err != nil {
			o.Log.Warn("bench backend: cleaning up", "err", err)
		}
	}
	cancel()
	rep.Ratios = ratios(rep.Results)
	rep.Took = Duration(time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		errs = append(errs, fmt.Errorf("bench backend: stopped: %w", ctx.Err()))
	}
	if out != nil {
		if err := rep.Write(out, o.Format); err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

// newRunID makes the random part of a run's lock names.
func newRunID() (string, error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("bench backend: random run id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// kinds lists what a run measures, and what to call at the end to delete
// what it stored.
func (o Options) kinds(ctx context.Context, run string) ([]kind, []func(context.Context) error, error) {
	var cl cleaner
	var native kind
	if !o.NoNative {
		var err error
		switch strings.ToLower(o.Backend) {
		case "etcd":
			native, cl, err = newEtcdKind(o, run)
		case "consul":
			native, cl, err = newConsulKind(o, run)
		case "kube":
			native, cl, err = newClientGoKind(o, run)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	watch := &leaseholdKind{o: o, run: run, short: "lw"}
	poll := &leaseholdKind{o: o, run: run, short: "lp", poll: true}
	kinds := []kind{watch, poll}
	if native != nil {
		kinds = append(kinds, native)
	}
	var cleanup []func(context.Context) error
	if cl != nil {
		cleanup = append(cleanup, func(ctx context.Context) error {
			return cl.clean(ctx, append(watch.stored(), poll.stored()...))
		})
		cleanup = append(cleanup, cl.close)
	}
	return kinds, cleanup, nil
}

// cleaner deletes what a run stored, with a native client of the server.
type cleaner interface {
	// clean deletes the native election's keys and the leasehold records
	// of backends (those of this server's backend package).
	clean(ctx context.Context, backends []elector.Backend) error
	close(ctx context.Context) error
}
