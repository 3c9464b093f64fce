package kube_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/leasehold-go/leasehold/backend/backendtest"
	"github.com/leasehold-go/leasehold/backend/kube"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

// server is the apiserver every test of this package shares, started once.
var (
	server    *servers.Kube
	serverErr error
)

func TestMain(m *testing.M) {
	// client-go's leader election logs every attempt through klog.
	klog.SetLogger(logr.Discard())
	server, serverErr = servers.StartKube()
	code := m.Run()
	if server != nil {
		server.Stop()
	}
	os.Exit(code)
}

func need(t testing.TB) *servers.Kube {
	t.Helper()
	servers.Require(t, serverErr)
	return server
}

// restConfig loads a kubeconfig file of the test server.
func restConfig(t testing.TB, path string) *rest.Config {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// counter counts the requests a client sends, by method.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

type countingRT struct {
	c  *counter
	rt http.RoundTripper
}

func (c countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.c.mu.Lock()
	if c.c.n == nil {
		c.c.n = map[string]int{}
	}
	k := r.Method
	if r.URL.Query().Get("watch") == "true" {
		k = "WATCH"
	}
	c.c.n[k]++
	c.c.mu.Unlock()
	return c.rt.RoundTrip(r)
}

func (c *counter) wrap(rc *rest.Config) {
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return countingRT{c, rt} }
}

func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}

func (c *counter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for k, v := range c.n {
		b.WriteString(k + "=" + strconv.Itoa(v) + " ")
	}
	return b.String()
}

func fmtInt(n int) string { return strconv.Itoa(n) }

// client opens a kube.Client on the shared apiserver as the admin, with
// its own connection; c, when not nil, counts its requests.
func client(t testing.TB, c *counter) *kube.Client {
	t.Helper()
	s := need(t)
	rc := restConfig(t, s.AdminKubeconfig)
	if c != nil {
		c.wrap(rc)
	}
	cfg := kube.DefaultConfig()
	cfg.REST = rc
	cfg.Logger = slog.New(slog.DiscardHandler)
	kc, err := kube.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kc.Close() })
	return kc
}

// admin is a client-go clientset of the admin.
func admin(t testing.TB) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(restConfig(t, need(t).AdminKubeconfig))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func ptr[T any](v T) *T { return &v }

func TestConformance(t *testing.T) {
	need(t)
	cs := admin(t)
	backendtest.Run(t, backendtest.Harness{
		New: func(t testing.TB, lock string) elector.Backend { return client(t, nil).Lock(lock) },
		Corrupt: func(t testing.TB, lock string) func(t testing.TB) {
			// A holder without leaseDurationSeconds: how long it may lead
			// is unknown, so the Lease cannot be mapped.
			l, err := cs.CoordinationV1().Leases("default").Create(ctxT(t), &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: lock},
				Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr("someone")},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return func(t testing.TB) {
				got, err := cs.CoordinationV1().Leases("default").Get(ctxT(t), lock, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if got.ResourceVersion != l.ResourceVersion {
					t.Fatalf("the corrupt Lease was written: resourceVersion %s, was %s; spec %+v", got.ResourceVersion, l.ResourceVersion, got.Spec)
				}
			}
		},
		Delete: func(t testing.TB, lock string) {
			if err := cs.CoordinationV1().Leases("default").Delete(ctxT(t), lock, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		},
		CorruptJobs: func(t testing.TB, lock string) func(t testing.TB) {
			// A Lease that maps but for a job annotation that does not parse.
			now := metav1.NewMicroTime(time.Now())
			l, err := cs.CoordinationV1().Leases("default").Create(ctxT(t), &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: lock, Annotations: map[string]string{
					kube.AnnotationJobPrefix + "backup": `{"started":"not a time","started_term":3}`}},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr("someone"), LeaseDurationSeconds: ptr(int32(15)),
					AcquireTime: &now, RenewTime: &now, LeaseTransitions: ptr(int32(3))},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return func(t testing.TB) {
				got, err := cs.CoordinationV1().Leases("default").Get(ctxT(t), lock, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if got.ResourceVersion != l.ResourceVersion {
					t.Fatalf("the corrupt Lease was written: resourceVersion %s, was %s", got.ResourceVersion, l.ResourceVersion)
				}
			}
		},
		Lease: elector.Config{LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 250 * time.Millisecond},
	})
}

// TestBadLeases: Leases written past leasehold that do not map cleanly.
func TestBadLeases(t *testing.T) {
	cs := admin(t)
	leases := cs.CoordinationV1().Leases("default")
	now := metav1.NewMicroTime(time.Now())
	future := metav1.NewMicroTime(time.Now().Add(time.Hour))
	for _, tc := range []struct {
		name    string
		spec    coordinationv1.LeaseSpec
		corrupt bool
		check   func(t *testing.T, r elector.Record)
	}{
		{name: "no-duration-with-holder", spec: coordinationv1.LeaseSpec{HolderIdentity: ptr("a")}, corrupt: true},
		{name: "empty", spec: coordinationv1.LeaseSpec{}, check: func(t *testing.T, r elector.Record) {
			if r.Holder != "" || r.LeaseDuration != 0 || r.Term != 0 {
				t.Fatalf("empty Lease = %+v, want a released record", r)
			}
		}},
		{name: "empty-holder-future-renew", spec: coordinationv1.LeaseSpec{HolderIdentity: ptr(""), LeaseDurationSeconds: ptr(int32(10)),
			RenewTime: &future, LeaseTransitions: ptr(int32(4))}, check: func(t *testing.T, r elector.Record) {
			if r.Holder != "" || r.Term != 4 || r.LeaseDuration != 10*time.Second {
				t.Fatalf("released Lease = %+v, want holder \"\" term 4", r)
			}
		}},
		{name: "client-go-release", spec: coordinationv1.LeaseSpec{HolderIdentity: ptr(""), LeaseDurationSeconds: ptr(int32(1)),
			AcquireTime: &now, RenewTime: &now, LeaseTransitions: ptr(int32(3))}, check: func(t *testing.T, r elector.Record) {
			if r.Holder != "" || r.Term != 3 {
				t.Fatalf("client-go release = %+v", r)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "bad-" + tc.name + "-" + fmtInt(int(time.Now().UnixNano()%1e6))
			l, err := leases.Create(ctxT(t), &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: tc.spec}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			b := client(t, nil).Lock(name)
			r, v, err := b.Get(ctxT(t))
			if tc.corrupt {
				if !errors.Is(err, elector.ErrCorrupt) || !strings.Contains(err.Error(), "default/"+name) {
					t.Fatalf("Get = %+v %v, want ErrCorrupt naming default/%s", r, err, name)
				}
				wr, _, err := b.Watch(ctxT(t), "")
				if !errors.Is(err, elector.ErrCorrupt) {
					t.Fatalf("Watch = %+v %v, want ErrCorrupt", wr, err)
				}
				return
			}
			if err != nil || string(v) != l.ResourceVersion {
				t.Fatalf("Get = %v %q, want the Lease at %s", err, v, l.ResourceVersion)
			}
			tc.check(t, r)
		})
	}
	// A negative duration or term cannot even be stored: the apiserver
	// validates them, so the decoder's checks are for other writers' bugs.
	_, err := leases.Create(ctxT(t), &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "bad-negative"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr("a"), LeaseDurationSeconds: ptr(int32(-1))}}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("creating a Lease with leaseDurationSeconds -1: %v, want Invalid", err)
	}
}

// TestTermBackwards: a Lease whose leaseTransitions went down (edited by
// hand) is read as it is; an elector taking it over continues from a term
// above the highest it saw.
func TestTermBackwards(t *testing.T) {
	cs := admin(t)
	name := "term-back-" + fmtInt(int(time.Now().UnixNano()%1e6))
	b := client(t, nil).Lock(name)
	v, err := b.Create(ctxT(t), elector.Record{Holder: "a", LeaseDuration: time.Second, Term: 9})
	if err != nil {
		t.Fatal(err)
	}
	l, err := cs.CoordinationV1().Leases("default").Get(ctxT(t), name, metav1.GetOptions{})
	if err != nil || l.ResourceVersion != string(v) {
		t.Fatal(err, l.ResourceVersion, v)
	}
	l.Spec.LeaseTransitions = ptr(int32(2))
	if _, err := cs.CoordinationV1().Leases("default").Update(ctxT(t), l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r, _, err := b.Get(ctxT(t))
	if err != nil || r.Term != 2 || r.Holder != "a" {
		t.Fatalf("Get = %+v %v, want holder a term 2", r, err)
	}
}

// TestSubSecondLease: the lease duration must be whole seconds.
func TestSubSecondLease(t *testing.T) {
	cfg := kube.DefaultConfig()
	cfg.LeaseDuration = 1500 * time.Millisecond
	err := cfg.Validate()
	var ce *elector.ConfigError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "whole seconds") {
		t.Fatalf("Validate with a 1.5s lease = %v, want a ConfigError about whole seconds", err)
	}
	cfg.LeaseDuration = 2 * time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []kube.Config{{Namespace: "Bad_NS"}, {RequestTimeout: -1}, {RequestTimeout: 2 * time.Hour}} {
		if err := bad.Validate(); !errors.As(err, &ce) || !strings.Contains(err.Error(), "kube.") {
			t.Errorf("Validate(%+v) = %v, want a ConfigError naming a kube.* key", bad, err)
		}
	}
}

// TestInstanceAnnotation: the instance survives a round trip and is
// dropped once another writer (client-go) changes the renewTime.
func TestInstanceAnnotation(t *testing.T) {
	cs := admin(t)
	name := "instance-" + fmtInt(int(time.Now().UnixNano()%1e6))
	b := client(t, nil).Lock(name)
	now := time.Now()
	if _, err := b.Create(ctxT(t), elector.Record{Holder: "a", Instance: "i1", LeaseDuration: 3 * time.Second, AcquireTime: now, RenewTime: now, Term: 1}); err != nil {
		t.Fatal(err)
	}
	r, _, err := b.Get(ctxT(t))
	if err != nil || r.Instance != "i1" {
		t.Fatalf("Get = %+v %v, want instance i1", r, err)
	}
	l, err := cs.CoordinationV1().Leases("default").Get(ctxT(t), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rt := metav1.NewMicroTime(now.Add(time.Second))
	l.Spec.RenewTime = &rt
	if _, err := cs.CoordinationV1().Leases("default").Update(ctxT(t), l, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if r, _, err = b.Get(ctxT(t)); err != nil || r.Instance != "" {
		t.Fatalf("Get after a foreign renewal = %+v %v, want no instance", r, err)
	}
}

// TestJobAnnotations: the record's job entries are one annotation per job,
// exactly as documented; a write rewrites them and leaves every other
// annotation alone; annotations that do not parse are ErrCorrupt naming
// them.
func TestJobAnnotations(t *testing.T) {
	cs := admin(t)
	leases := cs.CoordinationV1().Leases("default")
	name := "jobs-" + fmtInt(int(time.Now().UnixNano()%1e6))
	b := client(t, nil).Lock(name)
	slot := time.Date(2026, 12, 2, 7, 5, 0, 123456789, time.UTC)
	r := elector.Record{Holder: "a", LeaseDuration: 15 * time.Second, Term: 4, Jobs: map[string]elector.JobState{
		"backup":    {Started: slot, StartedTerm: 4, Done: slot.Add(-5 * time.Minute)},
		"report.v2": {Started: slot, StartedTerm: 2},
	}}
	v, err := b.Create(ctxT(t), r)
	if err != nil {
		t.Fatal(err)
	}
	l, err := leases.Get(ctxT(t), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"job.leasehold.io/backup":    `{"started":"2026-12-02T07:05:00.123456789Z","started_term":4,"done":"2026-12-02T07:00:00.123456789Z"}`,
		"job.leasehold.io/report.v2": `{"started":"2026-12-02T07:05:00.123456789Z","started_term":2}`,
	} {
		if got := l.Annotations[k]; got != want {
			t.Errorf("annotation %s = %q, want %q", k, got, want)
		}
	}
	// Someone else's annotation, added past leasehold, survives its writes.
	l.Annotations["example.com/owner"] = "team-a"
	l, err = leases.Update(ctxT(t), l, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, v, err := b.Get(ctxT(t))
	if err != nil || got.Jobs["backup"] != r.Jobs["backup"] || got.Jobs["report.v2"] != r.Jobs["report.v2"] || len(got.Jobs) != 2 {
		t.Fatalf("Get = %+v %v, want the jobs %+v", got.Jobs, err, r.Jobs)
	}
	r.Jobs = map[string]elector.JobState{"backup": r.Jobs["backup"]}
	if v, err = b.Update(ctxT(t), r, v); err != nil {
		t.Fatal(err)
	}
	l, err = leases.Get(ctxT(t), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.Annotations["job.leasehold.io/report.v2"]; ok || l.Annotations["example.com/owner"] != "team-a" || l.Annotations["job.leasehold.io/backup"] == "" {
		t.Fatalf("annotations after an update with one job: %v", l.Annotations)
	}

	ok := `{"started":"2026-12-02T07:05:00Z","started_term":2}`
	many := map[string]string{}
	for i := range elector.MaxJobs + 1 {
		many[fmt.Sprintf("job.leasehold.io/j%02d", i)] = ok
	}
	for _, tc := range []struct {
		name        string
		annotations map[string]string
		want        string
	}{
		{"bad-name", map[string]string{"job.leasehold.io/Bad_Name": ok}, `annotation job.leasehold.io/Bad_Name: job name "Bad_Name"`},
		{"bad-value", map[string]string{"job.leasehold.io/backup": "yes"}, "annotation job.leasehold.io/backup: "},
		{"unknown-field", map[string]string{"job.leasehold.io/backup": `{"started":"2026-12-02T07:05:00Z","started_term":2,"by":"x"}`}, `unknown field "by"`},
		{"no-term", map[string]string{"job.leasehold.io/backup": `{"started":"2026-12-02T07:05:00Z"}`}, "started_term 0 out of range"},
		{"too-many", many, "33 job annotations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "badjobs-" + tc.name + "-" + fmtInt(int(time.Now().UnixNano()%1e6))
			now := metav1.NewMicroTime(time.Now())
			if _, err := leases.Create(ctxT(t), &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: tc.annotations},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr("a"), LeaseDurationSeconds: ptr(int32(15)),
					RenewTime: &now, LeaseTransitions: ptr(int32(2))},
			}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			r, _, err := client(t, nil).Lock(name).Get(ctxT(t))
			if !errors.Is(err, elector.ErrCorrupt) || !strings.Contains(err.Error(), "default/"+name) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Get = %+v %v, want ErrCorrupt naming default/%s and saying %q", r, err, name, tc.want)
			}
		})
	}
}
