// Package backendtest is the conformance suite every leasehold backend
// passes, against its real server: compare-and-swap semantics (also across
// a deleted record and with versions the backend never returned), watch
// (also across a deletion), reporting of undecodable records and elections
// with several candidates, a crashed leader replaced only once its lease has
// run out, and the job entries of slot claims (kept exactly, refused out of
// bounds, reported when undecodable, carried by renewals and takeovers, and
// every slot claimed once among concurrent candidates).
//
// A backend's test calls Run with a Harness that opens independent clients
// on named locks of a running server and acts on the store past the
// backend, as an operator or another tool would: deleting a record,
// planting one that does not decode.
package backendtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/elector"
)

// Harness opens a backend under test.
type Harness struct {
	// New returns a new client's Backend for lock. Each call must behave as
	// a separate client (its own connection, where the backend has one).
	New func(t testing.TB, lock string) elector.Backend
	// Corrupt stores, as the record of lock, one the backend cannot decode
	// (bytes that are not a record for a key-value store, a Lease whose
	// fields do not parse for Kubernetes), written past the backend. It
	// returns a check that fails its t unless that record is still there,
	// unchanged. Required.
	Corrupt func(t testing.TB, lock string) (unchanged func(t testing.TB))
	// Delete removes the record of lock past the backend, as an operator
	// deleting the key or object would. Required.
	Delete func(t testing.TB, lock string)
	// CorruptJobs stores, as the record of lock and past the backend, one
	// that would decode but for its job entries (BadJobsRecord for a
	// key-value store; a job annotation that does not parse on a Lease),
	// and returns a check that fails its t unless that record is still
	// there, unchanged. Required.
	CorruptJobs func(t testing.TB, lock string) (unchanged func(t testing.TB))
	// Lease is the timing of the election tests; zero means 2s / 1.5s /
	// 250ms. Keep LeaseDuration a whole number of seconds for stores that
	// keep it in seconds (Kubernetes).
	Lease elector.Config
}

var unsafe = regexp.MustCompile(`[^a-z0-9-]+`)

// lockName returns a lock name unique to this test and this run, valid as a
// Kubernetes object name, an etcd key and a Consul key.
func lockName(t testing.TB) string {
	n := unsafe.ReplaceAllString(strings.ToLower(t.Name()), "-")
	if len(n) > 40 {
		n = n[len(n)-40:]
	}
	return strings.Trim(fmt.Sprintf("%s-%x", n, time.Now().UnixNano()&0xffffffffff), "-")
}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	if h.New == nil || h.Corrupt == nil || h.Delete == nil || h.CorruptJobs == nil {
		t.Fatal("backendtest: the Harness needs New, Corrupt, Delete and CorruptJobs")
	}
	t.Run("GetMissing", func(t *testing.T) { testGetMissing(t, h) })
	t.Run("CreateRace", func(t *testing.T) { testCreateRace(t, h) })
	t.Run("StaleVersion", func(t *testing.T) { testStaleVersion(t, h) })
	t.Run("MalformedVersion", func(t *testing.T) { testMalformedVersion(t, h) })
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, h) })
	t.Run("UpdateAfterDelete", func(t *testing.T) { testUpdateAfterDelete(t, h) })
	t.Run("Watch", func(t *testing.T) { testWatch(t, h) })
	t.Run("WatchDelete", func(t *testing.T) { testWatchDelete(t, h) })
	t.Run("Corrupt", func(t *testing.T) { testCorrupt(t, h) })
	t.Run("Election", func(t *testing.T) { testElection(t, h) })
	t.Run("CrashTakeover", func(t *testing.T) { testCrashTakeover(t, h) })
	t.Run("JobsRoundTrip", func(t *testing.T) { testJobsRoundTrip(t, h) })
	t.Run("JobsOutOfBounds", func(t *testing.T) { testJobsOutOfBounds(t, h) })
	t.Run("CorruptJobs", func(t *testing.T) { testCorruptWith(t, h, h.CorruptJobs, "job") })
	t.Run("JobsCarried", func(t *testing.T) { testJobsCarried(t, h) })
	t.Run("ClaimRace", func(t *testing.T) { testClaimRace(t, h) })
}

// BadJobsRecord is a leasehold.record/v1 document that is right but for
// its job entries (a started slot that is not a time): key-value stores'
// CorruptJobs plants it.
var BadJobsRecord = []byte(`{"format":"leasehold.record/v1","holder":"someone","lease_duration_ms":15000,` +
	`"acquire_time":"2026-12-02T07:00:00Z","renew_time":"2026-12-02T07:00:00Z","term":3,` +
	`"jobs":{"backup":{"started":"not a time","started_term":3}}}`)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func rec(holder string, term int64) elector.Record {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return elector.Record{Holder: holder, LeaseDuration: 15 * time.Second, AcquireTime: now, RenewTime: now, Term: term}
}

func testGetMissing(t *testing.T, h Harness) {
	b := h.New(t, lockName(t))
	if _, _, err := b.Get(ctxT(t)); !errors.Is(err, elector.ErrNotFound) {
		t.Fatalf("Get on a missing lock: err = %v, want ErrNotFound", err)
	}
}

func testCreateRace(t *testing.T, h Harness) {
	lock := lockName(t)
	const n = 8
	clients := make([]elector.Backend, n)
	for i := range clients {
		clients[i] = h.New(t, lock)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i, b := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, errs[i] = b.Create(ctxT(t), rec(fmt.Sprintf("c%d", i), 1))
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("both c%d and c%d created the lock", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, elector.ErrConflict):
			t.Fatalf("losing Create of c%d: err = %v, want ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no Create succeeded")
	}
	got, _, err := clients[0].Get(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("c%d", winner); got.Holder != want {
		t.Fatalf("holder after the race = %q, want the winner %q", got.Holder, want)
	}
}

func testStaleVersion(t *testing.T, h Harness) {
	lock := lockName(t)
	a, b := h.New(t, lock), h.New(t, lock)
	v1, err := a.Create(ctxT(t), rec("a", 1))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := b.Update(ctxT(t), rec("b", 2), v1)
	if err != nil {
		t.Fatalf("Update with the current version: %v", err)
	}
	if v2 == v1 {
		t.Fatalf("Update returned the old version %q", v1)
	}
	if _, err := a.Update(ctxT(t), rec("a", 3), v1); !errors.Is(err, elector.ErrConflict) {
		t.Fatalf("Update with a stale version: err = %v, want ErrConflict", err)
	}
	got, v, err := a.Get(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if got.Holder != "b" || got.Term != 2 || v != v2 {
		t.Fatalf("after the rejected update: holder %q term %d version %q, want b 2 %q", got.Holder, got.Term, v, v2)
	}
}

func testRoundTrip(t *testing.T, h Harness) {
	lock := lockName(t)
	b := h.New(t, lock)
	want := rec("x", 7)
	want.AcquireTime = want.AcquireTime.Add(-time.Hour)
	v, err := b.Create(ctxT(t), want)
	if err != nil {
		t.Fatal(err)
	}
	want.Holder, want.Term, want.RenewTime = "y", 8, want.RenewTime.Add(time.Second)
	v2, err := b.Update(ctxT(t), want, v)
	if err != nil {
		t.Fatal(err)
	}
	got, gv, err := h.New(t, lock).Get(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if gv != v2 {
		t.Errorf("Get version %q, Update returned %q", gv, v2)
	}
	if got.Holder != want.Holder || got.Term != want.Term || got.LeaseDuration != want.LeaseDuration ||
		!got.AcquireTime.Equal(want.AcquireTime) || !got.RenewTime.Equal(want.RenewTime) {
		t.Errorf("Get after Update = %+v, want %+v", got, want)
	}
}

func testWatch(t *testing.T, h Harness) {
	lock := lockName(t)
	b := h.New(t, lock)
	w, ok := b.(elector.Watcher)
	if !ok {
		t.Skipf("%s has no Watcher", b.Describe())
	}
	v, err := b.Create(ctxT(t), rec("a", 1))
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		r   elector.Record
		v   elector.Version
		err error
	}
	got := make(chan result, 1)
	go func() {
		r, v, err := w.Watch(ctxT(t), v)
		got <- result{r, v, err}
	}()
	v2, err := h.New(t, lock).Update(ctxT(t), rec("b", 2), v)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-got:
		if res.err != nil || res.v != v2 || res.r.Holder != "b" || res.r.Term != 2 {
			t.Fatalf("Watch returned %+v %q %v, want holder b term 2 version %q", res.r, res.v, res.err, v2)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not wake on an update within 10s")
	}

	// Watching an old version returns the current record at once.
	if r, v, err := w.Watch(ctxT(t), v); err != nil || v != v2 || r.Holder != "b" {
		t.Fatalf("Watch from an old version = %+v %q %v, want the current record at %q", r, v, err, v2)
	}

	// Cancelling the context ends a watch with the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := w.Watch(ctx, v2)
		errc <- err
	}()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Watch after cancel: err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return within 10s of its context being cancelled")
	}
}

func testCorrupt(t *testing.T, h Harness) { testCorruptWith(t, h, h.Corrupt, "") }

// testCorruptWith plants a record with corrupt and checks that it is
// reported (naming the lock, and saying what when what is not "") and
// never overwritten.
func testCorruptWith(t *testing.T, h Harness, corrupt func(testing.TB, string) func(testing.TB), what string) {
	lock := lockName(t)
	unchanged := corrupt(t, lock)
	b := h.New(t, lock)
	_, _, err := b.Get(ctxT(t))
	if !errors.Is(err, elector.ErrCorrupt) {
		t.Fatalf("Get of a corrupt record: err = %v, want ErrCorrupt", err)
	}
	if !strings.Contains(err.Error(), lock) {
		t.Fatalf("error %q does not name the lock %q", err, lock)
	}
	if !strings.Contains(err.Error(), what) {
		t.Fatalf("error %q does not say %q", err, what)
	}

	// An elector facing it keeps reporting it and never overwrites it.
	cfg := lease(h)
	cfg.Identity = "c1"
	e, err := elector.New(cfg, b, elector.Callbacks{
		OnStartedLeading: func(context.Context, int64) { t.Error("led on a corrupt record") },
		OnStoppedLeading: func() {},
	}, elector.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*cfg.RetryPeriod)
	defer cancel()
	if err := e.Run(ctx); err != nil {
		t.Fatal(err)
	}
	unchanged(t)
}

// testUpdateAfterDelete: once the record is deleted, an Update with the
// version it had finds no record (ErrNotFound) and writes nothing; a new
// record can be created, and the old version does not fit it (no ABA).
func testUpdateAfterDelete(t *testing.T, h Harness) {
	lock := lockName(t)
	b := h.New(t, lock)
	v1, err := b.Create(ctxT(t), rec("a", 1))
	if err != nil {
		t.Fatal(err)
	}
	h.Delete(t, lock)
	if _, err := b.Update(ctxT(t), rec("a", 1), v1); !errors.Is(err, elector.ErrNotFound) {
		t.Fatalf("Update of a deleted record: err = %v, want ErrNotFound", err)
	}
	if r, v, err := h.New(t, lock).Get(ctxT(t)); !errors.Is(err, elector.ErrNotFound) {
		t.Fatalf("Get after the Update of a deleted record = %+v %q %v, want ErrNotFound (nothing written)", r, v, err)
	}
	v2, err := b.Create(ctxT(t), rec("b", 2))
	if err != nil {
		t.Fatalf("Create after the delete: %v", err)
	}
	if v2 == v1 {
		t.Fatalf("the recreated record has the deleted one's version %q", v1)
	}
	if _, err := b.Update(ctxT(t), rec("a", 3), v1); !errors.Is(err, elector.ErrConflict) {
		t.Fatalf("Update of the recreated record with the deleted one's version: err = %v, want ErrConflict", err)
	}
	if r, v, err := h.New(t, lock).Get(ctxT(t)); err != nil || v != v2 || r.Holder != "b" || r.Term != 2 {
		t.Fatalf("Get = %+v %q %v, want holder b term 2 at %q", r, v, err, v2)
	}
}

// testMalformedVersion: a version the backend never returned (garbage,
// empty, a number spelled differently) is a conflict: no panic, no write.
func testMalformedVersion(t *testing.T, h Harness) {
	lock := lockName(t)
	b := h.New(t, lock)
	update := func(v elector.Version) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		_, err = b.Update(ctxT(t), rec("x", 9), v)
		return err
	}
	// On a lock without a record: a conflict or "not found", never a write.
	for _, v := range []elector.Version{"not-a-number", ""} {
		if err := update(v); !errors.Is(err, elector.ErrConflict) && !errors.Is(err, elector.ErrNotFound) {
			t.Errorf("Update of a missing record with version %q: err = %v, want ErrConflict or ErrNotFound", v, err)
		}
	}
	if r, v, err := b.Get(ctxT(t)); !errors.Is(err, elector.ErrNotFound) {
		t.Fatalf("after the Updates of a missing record: Get = %+v %q %v, want ErrNotFound", r, v, err)
	}

	v1, err := b.Create(ctxT(t), rec("a", 1))
	if err != nil {
		t.Fatal(err)
	}
	s := string(v1)
	for _, v := range []string{"not-a-number", "", " ", "-1", "0", "1e3", "0x1", "99999999999999999999999",
		s + "x", " " + s, s + " ", "+" + s, "0" + s, s + "\x00", "\xff"} {
		if err := update(elector.Version(v)); !errors.Is(err, elector.ErrConflict) {
			t.Errorf("Update with the malformed version %q (current %q): err = %v, want ErrConflict", v, v1, err)
		}
	}
	if r, v, err := h.New(t, lock).Get(ctxT(t)); err != nil || v != v1 || r.Holder != "a" || r.Term != 1 {
		t.Fatalf("after the refused Updates: Get = %+v %q %v, want holder a term 1 at %q (nothing written)", r, v, err, v1)
	}
}

// testWatchDelete: a watch waiting past a version wakes on the record's
// deletion with ErrNotFound (or a newer state), within its context and
// never with an older state.
func testWatchDelete(t *testing.T, h Harness) {
	lock := lockName(t)
	b := h.New(t, lock)
	w, ok := b.(elector.Watcher)
	if !ok {
		t.Skipf("%s has no Watcher", b.Describe())
	}
	v1, err := b.Create(ctxT(t), rec("a", 1))
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		r   elector.Record
		v   elector.Version
		err error
	}
	const patience = 10 * time.Second
	watch := func(v elector.Version) <-chan result {
		got := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), patience)
			defer cancel()
			r, v, err := w.Watch(ctx, v)
			got <- result{r, v, err}
		}()
		return got
	}
	wait := func(what string, got <-chan result) result {
		t.Helper()
		select {
		case res := <-got:
			if errors.Is(res.err, context.DeadlineExceeded) {
				t.Fatalf("%s: the watch did not wake within %v: %v", what, patience, res.err)
			}
			return res
		case <-time.After(patience + 5*time.Second):
			t.Fatalf("%s: the watch hung past its context (%v)", what, patience)
		}
		return result{}
	}
	notFound := func(what string, res result) {
		t.Helper()
		if !errors.Is(res.err, elector.ErrNotFound) {
			t.Fatalf("%s: Watch = %+v %q %v, want ErrNotFound", what, res.r, res.v, res.err)
		}
	}

	// Waiting past v1 when the record is deleted.
	got := watch(v1)
	time.Sleep(100 * time.Millisecond) // let it wait
	h.Delete(t, lock)
	notFound("a watch waiting past the deleted version", wait("delete", got))
	// Watching past the deleted version afterwards: at once.
	notFound("a watch past the deleted version", wait("after the delete", watch(v1)))

	// Recreated: the deletion or the new record, never the old one.
	v2, err := b.Create(ctxT(t), rec("c", 5))
	if err != nil {
		t.Fatal(err)
	}
	res := wait("after the record was recreated", watch(v1))
	switch {
	case errors.Is(res.err, elector.ErrNotFound):
	case res.err != nil:
		t.Fatalf("a watch past the deleted version, the record recreated: err = %v, want ErrNotFound or the new record", res.err)
	case res.v != v2 || res.r.Holder != "c" || res.r.Term != 5:
		t.Fatalf("a watch past the deleted version, the record recreated: %+v at %q, want the new record (holder c term 5 at %q)", res.r, res.v, v2)
	}
	// Past the new record's version nothing is newer: the context ends it.
	ctx, cancel := context.WithTimeout(ctxT(t), 300*time.Millisecond)
	defer cancel()
	if r, v, err := w.Watch(ctx, v2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a watch past the current version = %+v %q %v, want its context's deadline", r, v, err)
	}
}

func lease(h Harness) elector.Config {
	cfg := h.Lease
	if cfg.LeaseDuration == 0 {
		cfg = elector.Config{LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 250 * time.Millisecond}
	}
	cfg.ReleaseOnCancel = true
	return cfg
}

// testElection runs 5 electors on one lock: never two leaders at once; each
// cancelled leader hands over to another; terms only go up.
func testElection(t *testing.T, h Harness) {
	lock := lockName(t)
	const n = 5
	var (
		leaders atomic.Int32
		mu      sync.Mutex
		terms   []int64
		who     = make(chan int, 16)
	)
	cancels := make([]context.CancelFunc, n)
	var wg sync.WaitGroup
	for i := range n {
		cfg := lease(h)
		cfg.Identity = fmt.Sprintf("e%d", i)
		e, err := elector.New(cfg, h.New(t, lock), elector.Callbacks{
			OnStartedLeading: func(ctx context.Context, term int64) {
				if l := leaders.Add(1); l > 1 {
					t.Errorf("e%d started leading (term %d) while %d others lead", i, term, l-1)
				}
				mu.Lock()
				terms = append(terms, term)
				mu.Unlock()
				who <- i
				<-ctx.Done()
				leaders.Add(-1)
			},
			OnStoppedLeading: func() {},
		}, elector.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i] = cancel
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.Run(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	defer func() {
		for _, c := range cancels {
			c()
		}
		wg.Wait()
	}()

	cfg := lease(h)
	bound := 3*cfg.LeaseDuration + 10*time.Second
	for round := range 3 {
		select {
		case i := <-who:
			cancels[i]()
		case <-time.After(bound):
			t.Fatalf("round %d: no leader within %v", round, bound)
		}
	}
	select {
	case <-who:
	case <-time.After(bound):
		t.Fatalf("no leader after the third handover within %v", bound)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := 1; i < len(terms); i++ {
		if terms[i] <= terms[i-1] {
			t.Fatalf("terms went backwards: %v", terms)
		}
	}
}

// testCrashTakeover: a leader that stops renewing without releasing (a
// crash) is replaced only once its lease has run out, as the follower
// measures it from the last renewal it observed.
func testCrashTakeover(t *testing.T, h Harness) {
	lock := lockName(t)
	started := make(chan string, 4)
	run := func(id string, release bool) (cancel context.CancelFunc, done chan struct{}) {
		cfg := lease(h)
		cfg.Identity, cfg.ReleaseOnCancel = id, release
		e, err := elector.New(cfg, h.New(t, lock), elector.Callbacks{
			OnStartedLeading: func(ctx context.Context, term int64) { started <- id; <-ctx.Done() },
			OnStoppedLeading: func() {},
		}, elector.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done = make(chan struct{})
		go func() { defer close(done); e.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return cancel, done
	}
	cfg := lease(h)
	wait := func(want string, limit time.Duration) {
		t.Helper()
		select {
		case id := <-started:
			if id != want {
				t.Fatalf("%s started leading, want %s", id, want)
			}
		case <-time.After(limit):
			t.Fatalf("%s did not lead within %v", want, limit)
		}
	}
	stopA, doneA := run("a", false)
	wait("a", 3*cfg.LeaseDuration+10*time.Second)
	run("b", true)
	time.Sleep(2 * cfg.RetryPeriod) // b observes a few renewals
	stopA()                         // stops renewing, no release
	<-doneA
	t0 := time.Now()
	wait("b", 3*cfg.LeaseDuration)
	took := time.Since(t0)
	// b observed a's last renewal at most RetryPeriod before a stopped.
	if took < cfg.LeaseDuration-cfg.RetryPeriod-100*time.Millisecond {
		t.Fatalf("b took over %v after a stopped renewing, before the lease (%v) ran out", took, cfg.LeaseDuration)
	}
	t.Logf("takeover %v after the last renewal (lease %v)", took, cfg.LeaseDuration)
}

// PollOnly hides a backend's Watcher, so electors on it poll: tests compare
// the two modes with it.
func PollOnly(b elector.Backend) elector.Backend { return pollOnly{b} }

type pollOnly struct{ b elector.Backend }

func (p pollOnly) Get(ctx context.Context) (elector.Record, elector.Version, error) {
	return p.b.Get(ctx)
}
func (p pollOnly) Create(ctx context.Context, r elector.Record) (elector.Version, error) {
	return p.b.Create(ctx, r)
}
func (p pollOnly) Update(ctx context.Context, r elector.Record, v elector.Version) (elector.Version, error) {
	return p.b.Update(ctx, r, v)
}
func (p pollOnly) Describe() string { return p.b.Describe() }

// NeverForgets passes the wrapped backend's answer on (elector.Remembering):
// only the watch is hidden.
func (p pollOnly) NeverForgets() bool {
	r, ok := p.b.(elector.Remembering)
	return ok && r.NeverForgets()
}

// jobsOf returns job entries for the tests: slots with nanoseconds, one
// job done, one not.
func jobsOf(term int64) map[string]elector.JobState {
	slot := time.Date(2026, 12, 2, 7, 5, 0, 123456789, time.UTC)
	return map[string]elector.JobState{
		"backup":           {Started: slot, StartedTerm: term, Done: slot.Add(-5 * time.Minute)},
		"nightly.report-2": {Started: slot.Add(-time.Hour), StartedTerm: 1},
	}
}

func sameJobs(a, b map[string]elector.JobState) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || !x.Started.Equal(y.Started) || x.StartedTerm != y.StartedTerm || !x.Done.Equal(y.Done) {
			return false
		}
	}
	return true
}

// testJobsRoundTrip: job entries come back exactly (to the nanosecond),
// through Create, Update and Watch; a record without them has none.
func testJobsRoundTrip(t *testing.T, h Harness) {
	lock := lockName(t)
	b := h.New(t, lock)
	r := rec("a", 3)
	r.Jobs = jobsOf(3)
	v, err := b.Create(ctxT(t), r)
	if err != nil {
		t.Fatal(err)
	}
	got, gv, err := h.New(t, lock).Get(ctxT(t))
	if err != nil || gv != v || !sameJobs(got.Jobs, r.Jobs) {
		t.Fatalf("Get after Create = %+v %q %v, want the jobs %+v at %q", got.Jobs, gv, err, r.Jobs, v)
	}
	// Fewer jobs: the one left out is gone.
	r.Jobs = map[string]elector.JobState{"backup": r.Jobs["backup"]}
	v2, err := b.Update(ctxT(t), r, v)
	if err != nil {
		t.Fatal(err)
	}
	if w, ok := h.New(t, lock).(elector.Watcher); ok {
		wr, wv, err := w.Watch(ctxT(t), v)
		if err != nil || wv != v2 || !sameJobs(wr.Jobs, r.Jobs) {
			t.Fatalf("Watch after Update = %+v %q %v, want the jobs %+v at %q", wr.Jobs, wv, err, r.Jobs, v2)
		}
	}
	got, _, err = h.New(t, lock).Get(ctxT(t))
	if err != nil || !sameJobs(got.Jobs, r.Jobs) {
		t.Fatalf("Get after Update = %+v %v, want the jobs %+v", got.Jobs, err, r.Jobs)
	}
	// None: none.
	r.Jobs = nil
	v3, err := b.Update(ctxT(t), r, v2)
	if err != nil {
		t.Fatal(err)
	}
	got, gv, err = h.New(t, lock).Get(ctxT(t))
	if err != nil || gv != v3 || len(got.Jobs) != 0 {
		t.Fatalf("Get after an Update without jobs = %+v %q %v, want no jobs at %q", got.Jobs, gv, err, v3)
	}
}

// testJobsOutOfBounds: a write with job entries out of bounds is refused,
// naming the job, and writes nothing.
func testJobsOutOfBounds(t *testing.T, h Harness) {
	lock := lockName(t)
	b := h.New(t, lock)
	r := rec("a", 1)
	v, err := b.Create(ctxT(t), r)
	if err != nil {
		t.Fatal(err)
	}
	slot := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	many := map[string]elector.JobState{}
	for i := range elector.MaxJobs + 1 {
		many[fmt.Sprintf("job-%02d", i)] = elector.JobState{Started: slot, StartedTerm: 1}
	}
	for _, tc := range []struct {
		jobs map[string]elector.JobState
		want string
	}{
		{many, "job-32"},
		{map[string]elector.JobState{"Not_A_Job": {Started: slot, StartedTerm: 1}}, "Not_A_Job"},
		{map[string]elector.JobState{"backup": {Started: slot}}, `"backup"`},
		{map[string]elector.JobState{"backup": {Started: slot, StartedTerm: 1, Done: slot.Add(time.Second)}}, `"backup"`},
	} {
		bad := r
		bad.Jobs = tc.jobs
		_, err := b.Update(ctxT(t), bad, v)
		if err == nil || errors.Is(err, elector.ErrConflict) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Update with bad jobs: err = %v, want a refusal naming %s", err, tc.want)
		}
		if _, err := h.New(t, lock+"-new").Create(ctxT(t), bad); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Create with bad jobs: err = %v, want a refusal naming %s", err, tc.want)
		}
	}
	if got, gv, err := h.New(t, lock).Get(ctxT(t)); err != nil || gv != v || len(got.Jobs) != 0 {
		t.Fatalf("after the refused writes: Get = %+v %q %v, want the record at %q", got, gv, err, v)
	}
	if _, _, err := h.New(t, lock+"-new").Get(ctxT(t)); !errors.Is(err, elector.ErrNotFound) {
		t.Fatalf("after the refused creates: Get = %v, want ErrNotFound", err)
	}
}

// candidate is an elector of the job tests.
type candidate struct {
	e      *elector.Elector
	cancel context.CancelFunc
	done   chan struct{}
}

func startCandidate(t *testing.T, h Harness, lock, id string, started chan<- *candidate) *candidate {
	cfg := lease(h)
	cfg.Identity = id
	c := &candidate{done: make(chan struct{})}
	e, err := elector.New(cfg, h.New(t, lock), elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, term int64) {
			if started != nil {
				started <- c
			}
			<-ctx.Done()
		},
		OnStoppedLeading: func() {},
	}, elector.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.e, c.cancel = e, cancel
	go func() {
		defer close(c.done)
		if err := e.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { cancel(); <-c.done })
	return c
}

// testJobsCarried: a leader's claims survive its renewals, its release and
// the takeover by the next leader, which finds them with Jobs, cannot
// claim those slots again, and claims later ones with its own term.
func testJobsCarried(t *testing.T, h Harness) {
	lock := lockName(t)
	cfg := lease(h)
	started := make(chan *candidate, 4)
	a := startCandidate(t, h, lock, "a", started)
	bound := 3*cfg.LeaseDuration + 10*time.Second
	select {
	case <-started:
	case <-time.After(bound):
		t.Fatalf("a did not lead within %v", bound)
	}
	ctx := ctxT(t)
	slot := time.Date(2026, 12, 2, 7, 5, 0, 123456789, time.UTC)
	termA, err := a.e.Claim(ctx, "backup", slot)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.e.Done(ctx, "backup", slot); err != nil {
		t.Fatal(err)
	}
	next := slot.Add(5 * time.Minute)
	if _, err := a.e.Claim(ctx, "backup", next); err != nil {
		t.Fatal(err)
	}
	want := elector.JobState{Started: next, StartedTerm: termA, Done: slot}
	b := startCandidate(t, h, lock, "b", started)
	time.Sleep(3 * cfg.RetryPeriod) // a renews a few times
	r, _, err := h.New(t, lock).Get(ctx)
	if err != nil || r.Holder != "a" || !sameJobs(r.Jobs, map[string]elector.JobState{"backup": want}) {
		t.Fatalf("after renewals: %+v %v, want holder a with backup %+v", r, err, want)
	}
	a.cancel() // releases
	<-a.done
	select {
	case c := <-started:
		if c != b {
			t.Fatal("a led again")
		}
	case <-time.After(bound):
		t.Fatalf("b did not lead within %v", bound)
	}
	if got := b.e.Jobs(); !sameJobs(got, map[string]elector.JobState{"backup": want}) {
		t.Fatalf("the new leader's Jobs = %+v, want backup %+v", got, want)
	}
	r, _, err = h.New(t, lock).Get(ctx)
	if err != nil || r.Holder != "b" || r.Term <= termA || !sameJobs(r.Jobs, map[string]elector.JobState{"backup": want}) {
		t.Fatalf("after the takeover: %+v %v, want holder b, a term above %d, backup %+v", r, err, termA, want)
	}
	if _, err := b.e.Claim(ctx, "backup", next); !errors.Is(err, elector.ErrAlreadyClaimed) {
		t.Fatalf("the new leader claims the old leader's slot: %v, want ErrAlreadyClaimed", err)
	}
	termB, err := b.e.Claim(ctx, "backup", next.Add(5*time.Minute))
	if err != nil || termB != r.Term {
		t.Fatalf("the new leader's claim: term %d, %v; want term %d", termB, err, r.Term)
	}
}

// testClaimRace: three candidates claim every slot at the same time, the
// leader changing between slots: each slot is acknowledged once, and only
// to a leader; the stored entry names the term of that acknowledgement.
// And two clients writing a claim with the same version: one wins.
func testClaimRace(t *testing.T, h Harness) {
	lock := lockName(t)
	cfg := lease(h)
	var cands []*candidate
	for i := range 3 {
		cands = append(cands, startCandidate(t, h, lock, fmt.Sprintf("c%d", i), nil))
	}
	slot := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	bound := 3*cfg.LeaseDuration + 10*time.Second
	for round := range 4 {
		slot = slot.Add(time.Minute)
		var (
			mu    sync.Mutex
			acks  []int64
			wg    sync.WaitGroup
			start = make(chan struct{})
			until = time.Now().Add(bound)
		)
		for _, c := range cands {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for time.Now().Before(until) {
					mu.Lock()
					n := len(acks)
					mu.Unlock()
					if n > 0 {
						return // the others' claims are checked below
					}
					term, err := c.e.Claim(ctxT(t), "race", slot)
					switch {
					case err == nil:
						mu.Lock()
						acks = append(acks, term)
						mu.Unlock()
						return
					case errors.Is(err, elector.ErrAlreadyClaimed):
						return
					case errors.Is(err, elector.ErrNotLeader), errors.Is(err, elector.ErrClaimFailed):
						time.Sleep(cfg.RetryPeriod / 5)
					default:
						t.Errorf("claim: %v", err)
						return
					}
				}
			}()
		}
		close(start)
		wg.Wait()
		if len(acks) != 1 {
			t.Fatalf("round %d: %d acknowledgements of slot %v (terms %v), want 1", round, len(acks), slot, acks)
		}
		r, _, err := h.New(t, lock).Get(ctxT(t))
		if err != nil || !r.Jobs["race"].Started.Equal(slot) || r.Jobs["race"].StartedTerm != acks[0] {
			t.Fatalf("round %d: stored %+v %v, want slot %v claimed with term %d", round, r.Jobs, err, slot, acks[0])
		}
		for _, c := range cands {
			if _, err := c.e.Claim(ctxT(t), "race", slot); !errors.Is(err, elector.ErrAlreadyClaimed) && !errors.Is(err, elector.ErrNotLeader) {
				t.Fatalf("round %d: claiming the slot again: %v, want ErrAlreadyClaimed or ErrNotLeader", round, err)
			}
		}
		// The leader goes (releasing); the next round races the handover.
		for i, c := range cands {
			if c.e.IsLeader() {
				c.cancel()
				<-c.done
				cands[i] = startCandidate(t, h, lock, fmt.Sprintf("c%d-%d", i, round), nil)
				break
			}
		}
	}

	// Two clients, one version, the same claim: one write wins.
	b1, b2 := h.New(t, lock+"-cas"), h.New(t, lock+"-cas")
	v, err := b1.Create(ctxT(t), rec("x", 1))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, b := range []elector.Backend{b1, b2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rec("x", 1)
			r.Jobs = map[string]elector.JobState{"race": {Started: slot, StartedTerm: 1}}
			_, errs[i] = b.Update(ctxT(t), r, v)
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs[0], errs[1]), elector.ErrConflict) {
		t.Fatalf("two claims at one version: %v, %v; want one success and one ErrConflict", errs[0], errs[1])
	}
}
