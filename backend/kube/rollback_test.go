package kube_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/backendtest"
	"github.com/leasehold-go/leasehold/backend/kube"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// wentBack is what a Client's warning that the store went back in time says.
const wentBack = "went back in time"

// puts records the bodies of the PUT requests a client sends.
type puts struct {
	mu     sync.Mutex
	bodies [][]byte
	rt     http.RoundTripper
}

func (p *puts) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && r.Body != nil {
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.bodies = append(p.bodies, b)
		p.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	return p.rt.RoundTrip(r)
}

func (p *puts) last() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.bodies) == 0 {
		return nil
	}
	return p.bodies[len(p.bodies)-1]
}

// TestUpdateCarriesUID: every Update sends the uid of the Lease read at the
// version it sends, whether this Backend read it (Get, Create, Update) or
// the Client's watch did; and the apiserver refuses an update whose uid is
// not the stored Lease's with a Conflict, even at the current
// resourceVersion.
func TestUpdateCarriesUID(t *testing.T) {
	cs := admin(t)
	rc := restConfig(t, need(t).AdminKubeconfig)
	p := &puts{}
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { p.rt = rt; return p }
	var warn backendtest.Log
	cfg := kube.DefaultConfig()
	cfg.REST = rc
	cfg.Logger = warn.Logger()
	kc, err := kube.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	name := "uid-" + fmtInt(int(time.Now().UnixNano()%1e6))
	rec := elector.Record{Holder: "a", LeaseDuration: 3 * time.Second, Term: 1}
	v, err := kc.Lock(name).Create(ctxT(t), rec)
	if err != nil {
		t.Fatal(err)
	}
	l, err := cs.CoordinationV1().Leases("default").Get(ctxT(t), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	uid := []byte(l.UID)
	// after a Get (the record is the same: the update changes nothing, and
	// the apiserver answers the Lease as it was), after a Watch
	b := kc.Lock(name)
	if _, v, err = b.Get(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if v, err = b.Update(ctxT(t), rec, v); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(p.last(), uid) {
		t.Fatalf("the Update after a Get did not send the uid %s", uid)
	}
	w := kc.Lock(name)
	_, wv, err := w.Watch(ctxT(t), "")
	if err != nil || wv != v {
		t.Fatalf("Watch = %q %v, want %q", wv, err, v)
	}
	rec.Term = 2
	if v, err = w.Update(ctxT(t), rec, wv); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(p.last(), uid) {
		t.Fatalf("the Update of a version the watch reported did not send the uid %s", uid)
	}
	// The apiserver's side of the precondition.
	if l, err = cs.CoordinationV1().Leases("default").Get(ctxT(t), name, metav1.GetOptions{}); err != nil || l.ResourceVersion != string(v) {
		t.Fatal(err, l.ResourceVersion, v)
	}
	if ws := warn.Lines(slog.LevelWarn, wentBack); len(ws) != 0 {
		t.Fatalf("warnings: %q", ws)
	}
	l.UID = types.UID("00000000-0000-0000-0000-000000000001")
	_, err = cs.CoordinationV1().Leases("default").Update(ctxT(t), l, metav1.UpdateOptions{})
	if !apierrors.IsConflict(err) {
		t.Fatalf("an update at the current resourceVersion with another uid: %v, want a Conflict", err)
	}
}

// ownClient is a kube.Client of the apiserver k.
func ownClient(t testing.TB, k *servers.Kube, log *slog.Logger) *kube.Client {
	t.Helper()
	cfg := kube.DefaultConfig()
	cfg.REST = restConfig(t, k.AdminKubeconfig)
	cfg.Logger = log
	kc, err := kube.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kc.Close() })
	return kc
}

// TestStoreReplaced: the apiserver of a Lease is pointed at a fresh etcd,
// whose resourceVersions start over; the Lease is created there again by
// another client and made to land on a resourceVersion a candidate read
// from the old store.
//   - A follower waiting past the old version is handed the present state
//     (the Lease is missing) as soon as the apiserver answers, and the
//     follower's Client logs "went back in time" once.
//   - The candidate's Update with the version it read (same
//     resourceVersion, the old Lease's uid) is refused, where the same
//     update without the uid is accepted: the collision is real.
//   - A Client that only reads (no watch) logs it once, on its first Get.
func TestStoreReplaced(t *testing.T) {
	need(t)
	own, err := servers.StartKube()
	servers.Require(t, err)
	defer own.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rc := restConfig(t, own.AdminKubeconfig)
	rc.QPS, rc.Burst = -1, 0 // no client-side throttling of the filler writes
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	leases := cs.CoordinationV1().Leases("default")
	var warnF, warnG backendtest.Log
	cf := ownClient(t, own, warnF.Logger())                // the follower and the candidates
	cg := ownClient(t, own, warnG.Logger())                // reads only
	cw := ownClient(t, own, slog.New(slog.DiscardHandler)) // the old store's writer
	const name, extra, held = "replaced", 200, 40

	// Writes to another Lease move the store's revision by one each.
	filler := func() int64 {
		l, err := leases.Get(ctx, "filler", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			l, err = leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "filler"}}, metav1.CreateOptions{})
		} else if err == nil {
			l.Spec.LeaseTransitions = ptr(int32(0))
			if l.Spec.HolderIdentity == nil {
				l.Spec.HolderIdentity = ptr("")
			}
			*l.Spec.HolderIdentity += "x"
			if len(*l.Spec.HolderIdentity) > 100 {
				*l.Spec.HolderIdentity = "y"
			}
			l, err = leases.Update(ctx, l, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.ParseInt(l.ResourceVersion, 10, 64)
		return n
	}
	// The old store: well ahead of where a fresh one starts.
	var rv int64
	for range extra {
		rv = filler()
	}
	w := cw.Lock(name)
	rec := func(holder string, term int64) elector.Record {
		now := time.Now()
		return elector.Record{Holder: holder, LeaseDuration: 10 * time.Second, AcquireTime: now, RenewTime: now, Term: term}
	}
	v, err := w.Create(ctx, rec("a", 1))
	if err != nil {
		t.Fatal(err)
	}
	// Candidates of cf, each having read one version of a's Lease.
	read := map[int64]*kube.Backend{}
	for range held {
		if v, err = w.Update(ctx, rec("a", 1), v); err != nil {
			t.Fatal(err)
		}
		b := cf.Lock(name)
		_, got, err := b.Get(ctx)
		if err != nil || got != v {
			t.Fatalf("Get = %q %v, want %q", got, err, v)
		}
		n, _ := strconv.ParseInt(string(got), 10, 64)
		read[n] = b
	}
	g := cg.Lock(name)
	if _, gv, err := g.Get(ctx); err != nil || gv != v {
		t.Fatalf("Get = %q %v, want %q", gv, err, v)
	}
	f := cf.Lock(name)
	if _, fv, err := f.Watch(ctx, ""); err != nil || fv != v {
		t.Fatalf("Watch = %q %v, want %q", fv, err, v)
	}
	type answer struct {
		r   elector.Record
		v   elector.Version
		err error
		at  time.Time
	}
	waited := make(chan answer, 1)
	go func() {
		r, v, err := f.Watch(ctx, v)
		waited <- answer{r, v, err, time.Now()}
	}()
	t.Logf("old store: revision %d after %d filler writes; the Lease read at %d versions up to %s", rv, extra, held, v)

	start := time.Now()
	if err := own.ReplaceEtcd(); err != nil {
		t.Fatal(err)
	}
	ready := time.Now()
	var a answer
	select {
	case a = <-waited:
	case <-time.After(20 * time.Second):
		logs := own.Logs()
		t.Fatalf("the follower waiting past %s was not woken within 20s of the apiserver answering on a fresh etcd\n--- the follower's client logged:\n%s--- the apiserver's last lines:\n%s",
			v, warnF.String(), logs[max(0, len(logs)-8000):])
	}
	if !errors.Is(a.err, elector.ErrNotFound) {
		t.Fatalf("the follower waiting past %s got %+v %q %v, want ErrNotFound (the fresh store has no Lease)", v, a.r, a.v, a.err)
	}
	t.Logf("etcd replaced: the waiting follower got ErrNotFound %v after the replacement began; /readyz answered %v after it",
		a.at.Sub(start).Round(time.Millisecond), ready.Sub(start).Round(time.Millisecond))
	if d := a.at.Sub(ready); d > 5*time.Second {
		t.Errorf("the follower was woken %v after the apiserver answered, want promptly (the watch's backoff is at most 1s)", d)
	}
	if ws := warnF.Lines(slog.LevelWarn, wentBack); len(ws) != 1 || !strings.Contains(ws[0], "kube: the store went back in time: resourceVersion") ||
		!strings.Contains(ws[0], "(etcd restored or replaced?)") || !strings.Contains(ws[0], "lease=default/"+name) {
		t.Fatalf("the follower's client logged %q, want one went-back-in-time warning naming the lease", ws)
	} else {
		t.Log(ws[0])
	}

	// The fresh store: move its revision to just below a version a
	// candidate read, and create the Lease there from another client.
	var versions []int64
	for n := range read {
		versions = append(versions, n)
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
	rv = filler()
	if rv >= versions[len(versions)-1]-1 {
		t.Fatalf("the fresh store is at revision %d, past the versions read (%d..%d): the old store needs more filler writes", rv, versions[0], versions[len(versions)-1])
	}
	var collided int64
	var created *coordinationv1.Lease
	for _, target := range versions {
		if target-1 <= rv {
			continue
		}
		for rv < target-1 {
			rv = filler()
		}
		if rv != target-1 {
			continue // another write came in between
		}
		now := metav1.NewMicroTime(time.Now())
		l, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr("other"), LeaseDurationSeconds: ptr(int32(10)),
				AcquireTime: &now, RenewTime: &now, LeaseTransitions: ptr(int32(1))}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.ParseInt(l.ResourceVersion, 10, 64)
		if read[n] != nil {
			collided, created = n, l
			break
		}
		if err := leases.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		rv = filler()
	}
	if created == nil {
		t.Fatalf("could not make the Lease land on a version read from the old store (%d..%d); the fresh store is at %d", versions[0], versions[len(versions)-1], rv)
	}
	t.Logf("the Lease created again at resourceVersion %d (uid %s), a version a candidate read from the old store", collided, created.UID)

	// The reads-only client sees its Lease's resourceVersion go back.
	r, gv, err := g.Get(ctx)
	if err != nil || r.Holder != "other" || gv != elector.Version(created.ResourceVersion) {
		t.Fatalf("Get on the fresh store = %+v %q %v, want other's Lease at %s", r, gv, err, created.ResourceVersion)
	}
	if _, _, err := g.Get(ctx); err != nil {
		t.Fatal(err)
	}
	if ws := warnG.Lines(slog.LevelWarn, wentBack); len(ws) != 1 {
		t.Fatalf("the reading client logged %q, want one went-back-in-time warning", ws)
	} else {
		t.Log(ws[0])
	}

	// The follower is handed the present Lease by its watch.
	for {
		r, fv, err := f.Watch(ctx, "")
		if err == nil && fv == elector.Version(created.ResourceVersion) && r.Holder == "other" {
			break
		}
		if err != nil && !errors.Is(err, elector.ErrNotFound) {
			t.Fatalf("Watch on the fresh store: %v", err)
		}
		runtime.Gosched() // the watch has not delivered the creation yet
	}

	// The candidate that read this resourceVersion from the old store.
	_, uerr := read[collided].Update(ctx, rec("b", 2), elector.Version(created.ResourceVersion))
	if !errors.Is(uerr, elector.ErrConflict) && !errors.Is(uerr, elector.ErrNotFound) {
		t.Fatalf("the Update with resourceVersion %d read from the old store: %v, want ErrConflict or ErrNotFound", collided, uerr)
	}
	now, err := leases.Get(ctx, name, metav1.GetOptions{})
	if err != nil || now.ResourceVersion != created.ResourceVersion || *now.Spec.HolderIdentity != "other" {
		t.Fatalf("after the refused update the Lease is %+v (%v), want other's at %s", now, err, created.ResourceVersion)
	}
	t.Logf("the Update with the old store's version and uid: %v", uerr)
	if ws := warnF.Lines(slog.LevelWarn, wentBack); len(ws) != 1 {
		t.Fatalf("the follower's client logged %d warnings, want the one: %q", len(ws), ws)
	}

	// Without the uid the same update is accepted: the collision was real.
	bare := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", ResourceVersion: created.ResourceVersion}, Spec: now.Spec}
	bare.Spec.HolderIdentity = ptr("b")
	if _, err := leases.Update(ctx, bare, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("the same update without the uid: %v, want it accepted (else the test proved nothing)", err)
	}
}
