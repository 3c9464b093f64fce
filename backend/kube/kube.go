// Package kube implements the leasehold backend contract on Kubernetes
// coordination.k8s.io/v1 Lease objects.
//
// Each lock is one Lease (namespace + name) whose spec is the record, field
// for field as client-go's leader election (resourcelock.LeaseLock) writes
// it: holderIdentity, leaseDurationSeconds, acquireTime, renewTime and
// leaseTransitions (the term). A Lease written by leasehold is therefore a
// valid client-go leader-election Lease and the other way round. The
// record's Instance, which client-go does not know, is kept in the
// annotation leasehold.io/instance, and the record's job entries (slot
// claims) in one annotation per job, job.leasehold.io/<job> (see
// docs/backends.md).
//
// The version is the Lease's resourceVersion: Create fails with
// elector.ErrConflict when the Lease exists, Update sends the
// resourceVersion read and the Lease's uid as read with it (a Lease created
// again since, on a store that went back in time, has another), and a
// Conflict is elector.ErrConflict. Followers wait on one watch of the
// Lease, so they send no request while nothing changes. A read below what
// was seen before is the store going back in time: logged once, and the
// watch starts over from the present (see leaseState).
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/watchstate"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Defaults.
const (
	DefaultNamespace      = "default"
	DefaultRequestTimeout = 2 * time.Second
	// MaxTimeout bounds RequestTimeout: longer is a unit typo.
	MaxTimeout = time.Hour
	// QPS and Burst of the client: far above what one elector sends (a
	// renewal per RetryPeriod), so client-side throttling never delays a
	// renewal.
	QPS   = 50
	Burst = 100
)

// Annotations leasehold keeps on a Lease beyond client-go's fields.
const (
	// AnnotationInstance is the holder's process instance
	// (elector.Record.Instance).
	AnnotationInstance = "leasehold.io/instance"
	// AnnotationInstanceRenewTime is the renewTime the instance was written
	// with. client-go keeps annotations when it writes a Lease; when the
	// renewTime no longer matches, the instance annotation is stale (a
	// client-go candidate wrote since) and is ignored.
	AnnotationInstanceRenewTime = "leasehold.io/instance-renew-time"
	// AnnotationJobPrefix prefixes the annotations that hold the record's
	// job entries (elector.Record.Jobs), one per job: the annotation
	// job.leasehold.io/<job name> holds elector.EncodeJobState of the
	// job's entry. A job name (at most 63 characters) is a valid
	// annotation name. leasehold rewrites every annotation with this
	// prefix on each write and leaves the others alone.
	AnnotationJobPrefix = "job.leasehold.io/"
)

// Config says how to reach the Kubernetes API. It is also the `kube:` block
// of the leasehold config file: the fields with a yaml tag are its keys
// (docs/config.md), and Validate names them (kube.namespace).
type Config struct {
	// Kubeconfig is the path of a kubeconfig file. Empty: in a pod (the
	// KUBERNETES_SERVICE_HOST variable is set) the in-cluster config, else
	// $KUBECONFIG or ~/.kube/config.
	Kubeconfig string `yaml:"kubeconfig"`
	// Context in the kubeconfig file; empty means its current context.
	Context string `yaml:"context"`
	// Namespace of the Leases; empty means DefaultNamespace.
	Namespace string `yaml:"namespace"`
	// RequestTimeout bounds every request (the elector's own, shorter
	// deadlines apply too); zero means DefaultRequestTimeout. Keep it
	// below RenewDeadline.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// LeaseDuration is the elector's lease duration, when known (the CLI
	// sets it): a Lease keeps whole seconds, so a duration that is not a
	// whole number of seconds is refused rather than truncated. Not a
	// config file key.
	LeaseDuration time.Duration `yaml:"-"`
	// REST, when set, is used instead of Kubeconfig and Context (programs
	// and tests that have a *rest.Config). Not a config file key.
	REST *rest.Config `yaml:"-"`
	// Logger receives watch recoveries; nil discards them.
	Logger *slog.Logger `yaml:"-"`
}

// DefaultConfig is namespace "default", DefaultRequestTimeout, and the
// kubeconfig found as Config.Kubeconfig says.
func DefaultConfig() Config {
	return Config{Namespace: DefaultNamespace, RequestTimeout: DefaultRequestTimeout}
}

// Validate checks c without reading a file or connecting. Every error is an
// *elector.ConfigError naming the config file keys (kube.namespace).
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &elector.ConfigError{Fields: []string{field}, Msg: fmt.Sprintf(format, args...)}
	}
	if c.Namespace != "" && !validName(c.Namespace, 63) {
		return bad("kube.namespace", "kube.namespace %q is not a valid namespace name (lower-case letters, digits and '-', at most 63)", c.Namespace)
	}
	switch {
	case c.RequestTimeout < 0:
		return bad("kube.request_timeout", "kube.request_timeout (%v) must not be negative (leave it out for the default)", c.RequestTimeout)
	case c.RequestTimeout > MaxTimeout:
		return bad("kube.request_timeout", "kube.request_timeout (%v) must be at most %v", c.RequestTimeout, MaxTimeout)
	}
	if c.LeaseDuration < 0 || c.LeaseDuration%time.Second != 0 {
		return bad("lease.duration", "lease.duration %v: a Kubernetes Lease keeps whole seconds; use a whole number of seconds (for example %v) with the kube backend",
			c.LeaseDuration, max(time.Second, c.LeaseDuration.Truncate(time.Second)+time.Second))
	}
	return nil
}

// validName reports whether s is a DNS-1123 label (namespaces) or, with
// n = 253, a DNS-1123 subdomain-ish name (Lease names).
func validName(s string, n int) bool {
	if s == "" || len(s) > n || s[0] == '-' || s[0] == '.' || s[len(s)-1] == '-' || s[len(s)-1] == '.' {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
		case r == '.' && n > 63:
		default:
			return false
		}
	}
	return true
}

func (c Config) withDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// restConfig loads the client configuration c names.
func (c Config) restConfig() (*rest.Config, error) {
	if c.REST != nil {
		return rest.CopyConfig(c.REST), nil
	}
	if c.Kubeconfig == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kube: in-cluster config: %w", err)
		}
		return rc, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if c.Kubeconfig != "" {
		if _, err := os.Stat(c.Kubeconfig); err != nil {
			return nil, &elector.ConfigError{Fields: []string{"kube.kubeconfig"}, Msg: fmt.Sprintf("kube.kubeconfig %s: %v", c.Kubeconfig, err)}
		}
		rules.ExplicitPath = c.Kubeconfig
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: c.Context}).ClientConfig()
	if err != nil {
		field := "kube.kubeconfig"
		if c.Context != "" {
			field = "kube.context"
		}
		return nil, &elector.ConfigError{Fields: []string{field}, Msg: fmt.Sprintf("%s: %v", field, err)}
	}
	return rc, nil
}

// Client is a connection to the Kubernetes API from which locks are opened.
type Client struct {
	leases    leaseClient
	rest      rest.Interface         // of coordination.k8s.io/v1: the watch requests
	params    runtime.ParameterCodec // of the watch requests' options
	namespace string
	timeout   time.Duration
	host      string
	log       *slog.Logger

	ctx    context.Context // cancelled by Close: ends the watch loops
	cancel context.CancelFunc
	wg     sync.WaitGroup

	watchMu sync.Mutex
	states  map[string]*leaseState // by Lease name
}

// New validates cfg, builds the client and checks within RequestTimeout
// that the API answers for the namespace's Leases (a get of a Lease; "not
// found" is an answer). Forbidden and Unauthorized are reported plainly.
func New(ctx context.Context, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rc, err := cfg.restConfig()
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst = QPS, Burst
	if rc.UserAgent == "" {
		rc.UserAgent = "leasehold"
	}
	rcl, params, err := leaseRESTClient(rc)
	if err != nil {
		return nil, fmt.Errorf("kube: client for %s: %w", rc.Host, err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	c := &Client{leases: leaseClient{rest: rcl, params: params, namespace: cfg.Namespace}, rest: rcl, params: params, namespace: cfg.Namespace,
		timeout: cfg.RequestTimeout, host: rc.Host, log: cfg.Logger,
		ctx: cctx, cancel: cancel, states: map[string]*leaseState{}}
	pctx, pcancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer pcancel()
	_, err = c.leases.Get(pctx, "leasehold-ping", metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsForbidden(err) {
		// Forbidden on a get of another name is fine: Roles limit get to
		// the lock's Lease by resourceNames.
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if apierrors.IsUnauthorized(err) {
			return nil, fmt.Errorf("kube: %w", c.friendly("get", "", err))
		}
		return nil, fmt.Errorf("kube: no answer from %s within %v: %w", rc.Host, cfg.RequestTimeout, c.friendly("get", "", err))
	}
	return c, nil
}

// Open connects as New does and returns the Backend of the lock named lock
// and the function that closes the connection: the shape every backend's
// Open has. log receives watch recoveries unless cfg.Logger is set.
func Open(ctx context.Context, cfg Config, lock string, log *slog.Logger) (elector.Backend, func() error, error) {
	if cfg.Logger == nil {
		cfg.Logger = log
	}
	if !validName(lock, 253) {
		return nil, nil, &elector.ConfigError{Fields: []string{"lock"},
			Msg: fmt.Sprintf("lock %q is not a valid Lease name (lower-case letters, digits, '-' and '.')", lock)}
	}
	c, err := New(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return c.Lock(lock), c.Close, nil
}

// Close stops the watches.
func (c *Client) Close() error {
	c.cancel()
	c.wg.Wait()
	return nil
}

// Namespace is the namespace of the client's Leases.
func (c *Client) Namespace() string { return c.namespace }

// Lock returns the Backend of the Lease named name.
func (c *Client) Lock(name string) *Backend {
	return &Backend{c: c, name: name}
}

// friendly turns permission errors into messages naming the verb, the
// resource and the namespace.
func (c *Client) friendly(verb, name string, err error) error {
	obj := "leases"
	if name != "" {
		obj = "lease " + name
	}
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("permission denied: cannot %s %s (coordination.k8s.io) in namespace %s: the account needs a Role allowing %s on leases (docs/deploy/kubernetes.yaml): %w",
			verb, obj, c.namespace, verb, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("unauthorized: %s rejected the credentials (%s %s in namespace %s): %w", c.host, verb, obj, c.namespace, err)
	}
	return err
}

// Backend is one lock: one Lease.
type Backend struct {
	c    *Client
	name string

	mu   sync.Mutex
	last *coordinationv1.Lease // the last Lease read or written, to keep its other fields on Update
}

var (
	_ elector.Backend = (*Backend)(nil)
	_ elector.Watcher = (*Backend)(nil)
)

// Describe names the Lease.
func (b *Backend) Describe() string { return "kube lease " + b.c.namespace + "/" + b.name }

// Name is the Lease's name.
func (b *Backend) Name() string { return b.name }

// Namespace is the Lease's namespace.
func (b *Backend) Namespace() string { return b.c.namespace }

func (b *Backend) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.c.timeout)
}

func (b *Backend) remember(l *coordinationv1.Lease) {
	b.mu.Lock()
	b.last = l
	b.mu.Unlock()
}

// Get reads the Lease.
func (b *Backend) Get(ctx context.Context) (elector.Record, elector.Version, error) {
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	s := b.c.state(b.name)
	floor := s.floor()
	l, err := b.c.leases.Get(ctx, b.name, metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return elector.Record{}, "", fmt.Errorf("kube: lease %s/%s: %w", b.c.namespace, b.name, elector.ErrNotFound)
		}
		return elector.Record{}, "", fmt.Errorf("kube: get lease %s/%s: %w", b.c.namespace, b.name, b.c.friendly("get", b.name, err))
	}
	// A Get without a resourceVersion is a quorum read of etcd: below what
	// was seen before, the store went back in time.
	b.observe(s, l, floor, false)
	r, err := b.decode(l)
	if err != nil {
		return elector.Record{}, "", err
	}
	b.remember(l)
	return r, elector.Version(l.ResourceVersion), nil
}

// Create creates the Lease; AlreadyExists is elector.ErrConflict.
func (b *Backend) Create(ctx context.Context, r elector.Record) (elector.Version, error) {
	if err := elector.CheckRecord(r); err != nil {
		return "", fmt.Errorf("kube: create lease %s/%s: %w", b.c.namespace, b.name, err)
	}
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: b.name, Namespace: b.c.namespace}}
	encode(l, r)
	s := b.c.state(b.name)
	floor := s.floor()
	out, err := b.c.leases.Create(ctx, l, metav1.CreateOptions{})
	if err != nil {
		if apierrors.IsAlreadyExists(err) {
			return "", fmt.Errorf("kube: create lease %s/%s: %w", b.c.namespace, b.name, elector.ErrConflict)
		}
		return "", fmt.Errorf("kube: create lease %s/%s: %w", b.c.namespace, b.name, b.c.friendly("create", b.name, err))
	}
	b.observe(s, out, floor, true)
	b.remember(out)
	return elector.Version(out.ResourceVersion), nil
}

// canonicalVersion reports whether v looks like a resourceVersion the API
// returned: a decimal number without sign or leading zeros. An empty
// resourceVersion would make Update unconditional.
func canonicalVersion(v elector.Version) (uint64, bool) {
	n, err := strconv.ParseUint(string(v), 10, 64)
	return n, err == nil && n > 0 && strconv.FormatUint(n, 10) == string(v)
}

// Update replaces the Lease if its resourceVersion is still v and its uid
// is still the one read with v: a Conflict is elector.ErrConflict, a
// missing Lease elector.ErrNotFound. Labels, annotations and owner
// references of the Lease as last read are kept.
//
// The uid precondition: a resourceVersion alone is not an identity. A Lease
// deleted and created again on a fresh etcd (or after etcd was restored)
// can reach the resourceVersion of the Lease a candidate read, and an
// Update with that resourceVersion would replace a Lease the candidate
// never read. The apiserver takes the metadata.uid of an update as a
// precondition and refuses it with a Conflict when the stored Lease has
// another uid, so Update sends the uid of the Lease read at v: from this
// Backend's last Get, Create or Update, else from the Lease this Client's
// watch or another Backend of this Lease on this Client saw at v. When
// neither has seen v (a version from elsewhere), nothing extra is fetched:
// the update then carries no uid and the apiserver compares the
// resourceVersion alone.
func (b *Backend) Update(ctx context.Context, r elector.Record, v elector.Version) (elector.Version, error) {
	if _, ok := canonicalVersion(v); !ok {
		return "", fmt.Errorf("kube: update lease %s/%s: version %q is not a resourceVersion: %w", b.c.namespace, b.name, v, elector.ErrConflict)
	}
	if err := elector.CheckRecord(r); err != nil {
		return "", fmt.Errorf("kube: update lease %s/%s: %w", b.c.namespace, b.name, err)
	}
	s := b.c.state(b.name)
	b.mu.Lock()
	var l *coordinationv1.Lease
	if b.last != nil && b.last.ResourceVersion == string(v) {
		l = b.last.DeepCopy()
	} else if known := s.at(string(v)); known != nil {
		l = known.DeepCopy()
	} else {
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: b.name, Namespace: b.c.namespace}}
	}
	b.mu.Unlock()
	l.ResourceVersion = string(v)
	encode(l, r)
	ctx, cancel := b.ctx(ctx)
	defer cancel()
	floor := s.floor()
	out, err := b.c.leases.Update(ctx, l, metav1.UpdateOptions{})
	if err != nil {
		switch {
		case apierrors.IsConflict(err):
			// Leases allow create-on-update: a deleted Lease is a Conflict
			// too. Tell the two apart. (Another uid is a Conflict too.)
			_, gerr := b.c.leases.Get(ctx, b.name, metav1.GetOptions{})
			if apierrors.IsNotFound(gerr) {
				return "", fmt.Errorf("kube: update lease %s/%s: %w", b.c.namespace, b.name, elector.ErrNotFound)
			}
			return "", fmt.Errorf("kube: update lease %s/%s at resourceVersion %s: %w", b.c.namespace, b.name, v, elector.ErrConflict)
		case apierrors.IsNotFound(err):
			return "", fmt.Errorf("kube: update lease %s/%s: %w", b.c.namespace, b.name, elector.ErrNotFound)
		case apierrors.IsBadRequest(err) || apierrors.IsInvalid(err):
			if strings.Contains(err.Error(), "resourceVersion") {
				return "", fmt.Errorf("kube: update lease %s/%s: %v: %w", b.c.namespace, b.name, err, elector.ErrConflict)
			}
		}
		return "", fmt.Errorf("kube: update lease %s/%s: %w", b.c.namespace, b.name, b.c.friendly("update", b.name, err))
	}
	// An update that changes nothing is not written: the apiserver answers
	// the Lease as it was, at v.
	b.observe(s, out, floor, out.ResourceVersion != string(v))
	b.remember(out)
	return elector.Version(out.ResourceVersion), nil
}

// encode writes r into l's spec as client-go's LeaseLock does, and the
// instance and job annotations.
func encode(l *coordinationv1.Lease, r elector.Record) {
	for k := range l.Annotations {
		if strings.HasPrefix(k, AnnotationJobPrefix) {
			delete(l.Annotations, k)
		}
	}
	if len(r.Jobs) > 0 && l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	for name, st := range r.Jobs {
		l.Annotations[AnnotationJobPrefix+name] = string(elector.EncodeJobState(st))
	}
	secs := int64(r.LeaseDuration / time.Second)
	if r.LeaseDuration > time.Duration(secs)*time.Second {
		secs++ // never make a reader wait less than the writer meant
	}
	if secs > 1<<31-1 {
		secs = 1<<31 - 1
	}
	d := int32(secs)
	term := int32(min(r.Term, 1<<31-1))
	holder := r.Holder
	at, rt := metav1.NewMicroTime(r.AcquireTime), metav1.NewMicroTime(r.RenewTime)
	l.Spec.HolderIdentity = &holder
	l.Spec.LeaseDurationSeconds = &d
	l.Spec.AcquireTime = &at
	l.Spec.RenewTime = &rt
	l.Spec.LeaseTransitions = &term
	if r.Instance == "" {
		delete(l.Annotations, AnnotationInstance)
		delete(l.Annotations, AnnotationInstanceRenewTime)
		return
	}
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[AnnotationInstance] = r.Instance
	l.Annotations[AnnotationInstanceRenewTime] = microString(rt)
}

func microString(t metav1.MicroTime) string {
	return t.UTC().Truncate(time.Microsecond).Format(metav1.RFC3339Micro)
}

// decode maps a Lease to a record (see docs/backends.md):
//   - no holder (absent or ""): a released lock, whatever renewTime says;
//     a missing leaseDurationSeconds then reads as 0;
//   - a holder without leaseDurationSeconds, or a duration <= 0, or
//     negative leaseTransitions: elector.ErrCorrupt (it is never
//     overwritten: how long that holder may lead is unknown);
//   - leaseTransitions going backwards is passed on as it is: the elector
//     continues from the highest term it has seen;
//   - a job annotation (AnnotationJobPrefix) whose name is not a job name
//     or whose value elector.DecodeJobState refuses, or more than
//     elector.MaxJobs of them: elector.ErrCorrupt naming the annotation.
func (b *Backend) decode(l *coordinationv1.Lease) (elector.Record, error) {
	corrupt := func(format string, args ...any) (elector.Record, error) {
		return elector.Record{}, fmt.Errorf("kube: lease %s/%s: %w: %s", l.Namespace, l.Name, elector.ErrCorrupt, fmt.Sprintf(format, args...))
	}
	var r elector.Record
	s := l.Spec
	if s.HolderIdentity != nil {
		r.Holder = *s.HolderIdentity
	}
	switch {
	case s.LeaseDurationSeconds == nil && r.Holder != "":
		return corrupt("holder %q but no leaseDurationSeconds", r.Holder)
	case s.LeaseDurationSeconds != nil && *s.LeaseDurationSeconds < 0:
		return corrupt("leaseDurationSeconds %d is negative", *s.LeaseDurationSeconds)
	case s.LeaseDurationSeconds != nil && *s.LeaseDurationSeconds == 0 && r.Holder != "":
		return corrupt("holder %q with leaseDurationSeconds 0", r.Holder)
	case s.LeaseTransitions != nil && *s.LeaseTransitions < 0:
		return corrupt("leaseTransitions %d is negative", *s.LeaseTransitions)
	}
	if s.LeaseDurationSeconds != nil {
		r.LeaseDuration = time.Duration(*s.LeaseDurationSeconds) * time.Second
	}
	if s.AcquireTime != nil {
		r.AcquireTime = s.AcquireTime.Time
	}
	if s.RenewTime != nil {
		r.RenewTime = s.RenewTime.Time
	}
	if s.LeaseTransitions != nil {
		r.Term = int64(*s.LeaseTransitions)
	}
	if inst, ok := l.Annotations[AnnotationInstance]; ok && r.Holder != "" && s.RenewTime != nil &&
		l.Annotations[AnnotationInstanceRenewTime] == microString(*s.RenewTime) {
		r.Instance = inst
	}
	for k, v := range l.Annotations {
		name, ok := strings.CutPrefix(k, AnnotationJobPrefix)
		if !ok {
			continue
		}
		if err := elector.ValidJobName(name); err != nil {
			return corrupt("annotation %s: %v", k, err)
		}
		st, err := elector.DecodeJobState([]byte(v))
		if err != nil {
			return corrupt("annotation %s: %v", k, err)
		}
		if r.Jobs == nil {
			r.Jobs = map[string]elector.JobState{}
		}
		r.Jobs[name] = st
	}
	if len(r.Jobs) > elector.MaxJobs {
		return corrupt("%d job annotations (%s*), more than %d", len(r.Jobs), AnnotationJobPrefix, elector.MaxJobs)
	}
	return r, nil
}

// Watch returns once the Lease's state is newer than resourceVersion v (a
// missing Lease is elector.ErrNotFound). The first Watch of a Lease starts
// one watch on it (field selector metadata.name), shared by the Backends of
// that Lease on this Client and ended by Client.Close; "resource version
// too old" (410 Gone) and a closed watch are recovered by listing the Lease
// again and watching from there. resourceVersions compare as numbers, as
// the apiserver's etcd storage makes them.
//
// When the store went back in time (a List or a Get answers a
// resourceVersion below one published before, or the same one with another
// uid: see leaseState), waiters holding a version from the forgotten
// history are handed the present state at once, and the watch lists and
// watches again. A waiter holding exactly the resourceVersion the present
// Lease has is not woken by that (a version alone cannot tell the two
// apart); the elector's own expiry timer ends its wait.
func (b *Backend) Watch(ctx context.Context, v elector.Version) (elector.Record, elector.Version, error) {
	after, _ := strconv.ParseInt(string(v), 10, 64)
	r, ver, err := b.c.watchOf(b).Wait(ctx, after, b.c.ctx.Done())
	if err != nil && (errors.Is(err, watchstate.ErrClosed) || err == ctx.Err()) {
		err = fmt.Errorf("kube: watch lease %s/%s: %w", b.c.namespace, b.name, err)
	}
	return r, ver, err
}

func (c *Client) watchOf(b *Backend) *watchstate.State {
	s := c.state(b.name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		s.started = true
		c.wg.Add(1)
		go b.watchLoop(s)
	}
	return s.ws
}

// watchTimeout asks the apiserver to end a watch after this long; the loop
// then lists and watches again (one request every few minutes).
const watchTimeout = 5 * time.Minute

func (b *Backend) watchLoop(s *leaseState) {
	defer b.c.wg.Done()
	ws := s.ws
	ctx := b.c.ctx
	const first, most = 100 * time.Millisecond, time.Second
	wait := first
	sel := fields.OneTermEqualSelector("metadata.name", b.name).String()
	missing := func() error {
		return fmt.Errorf("kube: lease %s/%s: %w", b.c.namespace, b.name, elector.ErrNotFound)
	}
	publish := func(l *coordinationv1.Lease) {
		r, err := b.decode(l)
		s.mu.Lock()
		defer s.mu.Unlock()
		ws.Publish(rvOf(l), r, elector.Version(l.ResourceVersion), err)
		s.rememberLocked(l)
	}
	publishMissing := func(rv int64) {
		s.mu.Lock()
		defer s.mu.Unlock()
		ws.Publish(rv, elector.Record{}, "", missing())
		s.high = max(s.high, rv)
	}
	backoff := func(what string, err error) bool {
		b.c.log.Warn("kube: watch: "+what+"; retrying", "lease", b.c.namespace+"/"+b.name, "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
		wait = min(2*wait, most)
		return true
	}
	for ctx.Err() == nil {
		lctx, cancel := b.ctx(ctx)
		list, err := b.c.leases.List(lctx, metav1.ListOptions{FieldSelector: sel})
		cancel()
		if err != nil {
			if !backoff("cannot list the lease", b.c.friendly("list", b.name, err)) {
				return
			}
			continue
		}
		if list, err = b.checkList(ctx, s, list); err != nil {
			if !backoff("cannot read the lease to check the list", err) {
				return
			}
			continue
		}
		resets := b.listed(s, list, missing)
		w, wcancel, err := b.watchFrom(ctx, sel, list.ResourceVersion)
		if err != nil {
			if !backoff("cannot watch the lease", b.c.friendly("watch", b.name, err)) {
				return
			}
			continue
		}
		wait = first
		b.follow(ctx, w, resets, publish, publishMissing)
		w.Stop()
		wcancel()
	}
}

// watchFrom starts a watch of the Lease from resourceVersion from, the
// revision of the List just answered; cancel ends it.
//
// The request is sent once (client-go would send it again, after a second,
// when its connection breaks): a watch request repeated blindly can reach
// an apiserver that was restarted meanwhile on an etcd that went back in
// time (replaced, restored), which accepts a watch from a revision its
// store has not reached and sends nothing until it does, so a follower
// waiting past a forgotten version would not be woken and the loop would
// not list again. Instead a broken request ends the watch at once (an
// empty watch), and the loop lists again: on the apiserver as it is now,
// where a store that went back shows. Starting a watch is also bounded by
// the request timeout, since an apiserver may hold a watch request from a
// revision it has not reached for seconds before it answers.
func (b *Backend) watchFrom(ctx context.Context, sel, from string) (watch.Interface, context.CancelFunc, error) {
	wctx, cancel := context.WithCancel(ctx)
	started := make(chan struct{})
	stop := time.AfterFunc(b.c.timeout, func() {
		select {
		case <-started:
		default:
			cancel()
		}
	})
	secs := int64(watchTimeout / time.Second)
	opts := metav1.ListOptions{FieldSelector: sel, ResourceVersion: from,
		TimeoutSeconds: &secs, AllowWatchBookmarks: true, Watch: true}
	w, err := b.c.rest.Get().
		UseProtobufAsDefaultIfPreferred(true).
		Namespace(b.c.namespace).
		Resource("leases").
		VersionedParams(&opts, b.c.params).
		Timeout(watchTimeout).
		MaxRetries(0).
		Watch(wctx)
	close(started)
	stop.Stop()
	if err == nil && wctx.Err() != nil {
		w.Stop()
		err = wctx.Err()
	}
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return w, cancel, nil
}

// listed publishes the state a List answered, or resets the watch state to
// it when it shows the store went back in time: the list's resourceVersion
// (the store's revision, read from a quorum: a List without a
// resourceVersion is a consistent read) below the highest revision
// published, or the Lease's own resourceVersion below it, or the same
// resourceVersion with another uid. It returns the channel the next Reset
// closes.
func (b *Backend) listed(s *leaseState, list *coordinationv1.LeaseList, missing func() error) <-chan struct{} {
	listRV, _ := strconv.ParseInt(list.ResourceVersion, 10, 64)
	var l *coordinationv1.Lease
	var r elector.Record
	var derr error
	if len(list.Items) > 0 {
		l = &list.Items[0]
		r, derr = b.decode(l)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	last, behind := s.ws.Behind(listRV)
	if l != nil && !behind {
		_, behind = s.ws.Behind(rvOf(l))
		behind = behind || (s.known != nil && s.known.ResourceVersion == l.ResourceVersion && s.known.UID != l.UID)
	}
	switch {
	case behind && l == nil:
		b.warnBack(listRV, max(last, s.high), nil, nil)
		s.high, s.known, s.wentBack = listRV, nil, true
		s.ws.Reset(listRV, elector.Record{}, "", missing())
	case behind:
		b.warnBack(rvOf(l), max(last, s.high), l, s.known)
		s.high, s.known, s.wentBack = rvOf(l), l, true
		var ver elector.Version
		if derr == nil {
			ver = elector.Version(l.ResourceVersion)
		}
		s.ws.Reset(rvOf(l), r, ver, derr)
	case l == nil:
		s.ws.Publish(listRV, elector.Record{}, "", missing())
		s.high = max(s.high, listRV)
	default:
		var ver elector.Version
		if derr == nil {
			ver = elector.Version(l.ResourceVersion)
		}
		s.ws.Publish(rvOf(l), r, ver, derr)
		s.rememberLocked(l)
	}
	return s.ws.Resets()
}

// follow publishes the watch's events until it ends or fails, or until the
// watch state is Reset (a Get saw the store go back in time: the watch is
// on a history the store no longer has; list and watch again).
func (b *Backend) follow(ctx context.Context, w watch.Interface, resets <-chan struct{}, publish func(*coordinationv1.Lease), publishMissing func(int64)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-resets:
			return
		case ev, ok := <-w.ResultChan():
			if !ok {
				return // expired or closed: list and watch again
			}
			switch ev.Type {
			case watch.Added, watch.Modified:
				if l, ok := ev.Object.(*coordinationv1.Lease); ok {
					publish(l)
				}
			case watch.Deleted:
				if l, ok := ev.Object.(*coordinationv1.Lease); ok {
					publishMissing(rvOf(l))
				}
			case watch.Bookmark:
			case watch.Error:
				err := apierrors.FromObject(ev.Object)
				if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
					b.c.log.Info("kube: watch error; listing the lease and watching again", "lease", b.c.namespace+"/"+b.name, "err", err)
				}
				return
			}
		}
	}
}
