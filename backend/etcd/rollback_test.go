package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/backendtest"
	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// The store going back in time: an etcd restored from an older snapshot or
// wiped hands out revisions it handed out before, for other writes. Each
// test has an etcd of its own, since it is restored or wiped.

// ownEtcd starts an etcd of the test's own.
func ownEtcd(t *testing.T) *servers.Etcd {
	t.Helper()
	own, err := servers.StartEtcd()
	servers.Require(t, err)
	t.Cleanup(own.Stop)
	return own
}

// forgetful starts an etcd of the test's own that can be restored from a
// snapshot: etcd and etcdutl must both be there (in CI a missing one fails
// the test).
func forgetful(t *testing.T) *servers.Etcd {
	t.Helper()
	_, err := servers.Find("etcdutl")
	servers.Require(t, err)
	return ownEtcd(t)
}

// rawOf is a plain etcd client of s, the "other tool" that writes past the
// backend.
func rawOf(t *testing.T, s *servers.Etcd) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// clientOf is a backend client of s (one connection) logging to log, which
// reconnects within 100ms of s answering again.
func clientOf(t *testing.T, s *servers.Etcd, log *slog.Logger) *etcd.Client {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c, err := etcd.New(context.Background(), etcd.Config{Endpoints: []string{s.Endpoint}, Prefix: "/rollback/",
		MaxReconnectDelay: 100 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// saveSnapshot saves s's data as a snapshot file, as `etcdctl snapshot
// save` does, and returns its path and the store's revision at that point
// (nothing else writes meanwhile).
func saveSnapshot(t *testing.T, raw *clientv3.Client) (string, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before, err := raw.Get(ctx, "/snapshot-probe")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := raw.Maintenance.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	path := filepath.Join(t.TempDir(), "snapshot.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, before.Header.Revision
}

// fillTo writes other keys until the store's revision is rev.
func fillTo(t *testing.T, raw *clientv3.Client, rev int64) {
	t.Helper()
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := raw.Get(ctx, "/filler")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case resp.Header.Revision == rev:
			return
		case resp.Header.Revision > rev:
			t.Fatalf("the store is at revision %d, past %d", resp.Header.Revision, rev)
		case i > 1000:
			t.Fatalf("still at revision %d after %d writes", resp.Header.Revision, i)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
		_, err = raw.Put(ctx, "/filler", fmt.Sprint(i))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func held(holder string, term int64) elector.Record {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return elector.Record{Holder: holder, LeaseDuration: time.Minute, AcquireTime: now, RenewTime: now, Term: term}
}

// A follower read leader a's record at revision N. The store is restored
// from a snapshot taken before it, and another client's record b reaches
// revision N there. The follower's takeover with version N must not
// overwrite b: the revision is the same, the record is not the one it read.
// (With a compare on ModRevision alone it did.) The same for a follower
// that saw a's record at N only on its watch.
func TestUpdateAfterRestoreIsNoABA(t *testing.T) {
	own := forgetful(t)
	raw := rawOf(t, own)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader := clientOf(t, own, nil).Lock("aba")
	follower := clientOf(t, own, nil).Lock("aba")
	other := clientOf(t, own, nil).Lock("aba")
	watcher := clientOf(t, own, nil).Lock("aba")

	snap, s := saveSnapshot(t, raw)
	fillTo(t, raw, s+3)
	vA, err := leader.Create(ctx, held("a", 1))
	if err != nil {
		t.Fatal(err)
	}
	a, vN, err := follower.Get(ctx)
	if err != nil || vN != vA || a.Holder != "a" {
		t.Fatalf("the follower read %+v at %q (%v), want a's record at %q", a, vN, err, vA)
	}
	if got := await(t, watchAsync(ctx, watcher, "0"), 10*time.Second, "watching a's record"); got.err != nil || got.ver != vN {
		t.Fatalf("the watcher saw %+v at %q (%v), want a's record at %q", got.rec, got.ver, got.err, vN)
	}
	// The store moves on: renewals and other writes.
	v := vA
	for i := 0; i < 3; i++ {
		if v, err = leader.Update(ctx, held("a", 1), v); err != nil {
			t.Fatal(err)
		}
	}
	ctx2, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	_, err = raw.Put(ctx2, "/elsewhere", "x")
	cancel2()
	if err != nil {
		t.Fatal(err)
	}

	if err := own.Restore(snap); err != nil {
		t.Fatal(err)
	}
	// Another client's record reaches revision N in the restored store.
	var n int64
	fmt.Sscan(string(vN), &n)
	fillTo(t, raw, n-1)
	vB, err := other.Create(ctx, held("b", 1))
	if err != nil {
		t.Fatal(err)
	}
	if vB != vN {
		t.Fatalf("b's record is at %q, want the reused revision %q", vB, vN)
	}

	// The follower, holding version N as a's record, takes over.
	_, refused := follower.Update(ctx, held("follower", 2), vN)
	if !errors.Is(refused, elector.ErrConflict) {
		t.Fatalf("the takeover with version %s read as a's record, now b's: %v, want ErrConflict", vN, refused)
	}
	if _, err := watcher.Update(ctx, held("watcher", 2), vN); !errors.Is(err, elector.ErrConflict) {
		t.Fatalf("the takeover with version %s watched as a's record, now b's: %v, want ErrConflict", vN, err)
	}
	got, v, err := other.Get(ctx)
	if err != nil || got.Holder != "b" || v != vB {
		t.Fatalf("after the refused takeover the record is %+v at %q (%v), want b's at %q", got, v, err, vB)
	}
	t.Logf("revision %s: read as a's record before the restore, b's after; the takeover: %v", vN, refused)
}

// wentBack is what a Client's warning that the store went back in time says.
const wentBack = "went back in time"

// watched is what a Watch returned.
type watched struct {
	rec elector.Record
	ver elector.Version
	err error
	at  time.Time
}

// watchAsync starts b.Watch(ctx, v) and returns where its answer arrives.
func watchAsync(ctx context.Context, b *etcd.Backend, v elector.Version) <-chan watched {
	ch := make(chan watched, 1)
	go func() {
		r, ver, err := b.Watch(ctx, v)
		ch <- watched{r, ver, err, time.Now()}
	}()
	return ch
}

// await returns the Watch's answer, failing t after limit.
func await(t *testing.T, ch <-chan watched, limit time.Duration, what string) watched {
	t.Helper()
	select {
	case w := <-ch:
		return w
	case <-time.After(limit):
		t.Fatalf("%s: the Watch did not return within %v", what, limit)
		return watched{}
	}
}

// forgotten is what the wipe and restore tests share. Follower w waits on
// the watch, holding the latest version of writer's record, when the
// store forgets: forget is given a snapshot saved right after the record's
// first version v1 and makes the store forget, reporting whether the
// record should then be missing (wiped) or be the first one, at v1
// (restored). The waiting Watch is handed that present state promptly;
// the client logs the rollback once, however many requests see it after;
// and later writes are delivered to a waiting Watch as before.
func forgotten(t *testing.T, own *servers.Etcd, forget func(snapshot string) (missing bool)) {
	raw := rawOf(t, own)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	warn := &backendtest.Log{}
	wc := clientOf(t, own, warn.Logger())
	w, other := wc.Lock("w"), wc.Lock("w") // two Backends of the key on one client
	writer := clientOf(t, own, nil).Lock("w")

	v1, err := writer.Create(ctx, held("a", 1))
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := saveSnapshot(t, raw)
	latest, err := writer.Update(ctx, held("a", 2), v1)
	if err == nil {
		latest, err = writer.Update(ctx, held("a", 3), latest)
	}
	if err != nil {
		t.Fatal(err)
	}
	// Once a Watch has returned the latest version, the watch loop has
	// published it: the store forgets what the loop has seen.
	for v := v1; v != latest; {
		got := await(t, watchAsync(ctx, w, v), 10*time.Second, "before the store forgets")
		if got.err != nil {
			t.Fatal(got.err)
		}
		v = got.ver
	}
	waiting := watchAsync(ctx, w, latest)

	missing := forget(snap)
	back := time.Now()
	got := await(t, waiting, 10*time.Second, "after the store forgot")
	switch {
	case missing && !errors.Is(got.err, elector.ErrNotFound):
		t.Fatalf("the waiting Watch returned %+v at %q (%v), want ErrNotFound: the store was wiped", got.rec, got.ver, got.err)
	case !missing && (got.err != nil || got.ver != v1 || got.rec.Holder != "a" || got.rec.Term != 1):
		t.Fatalf("the waiting Watch returned %+v at %q (%v), want the restored record (a, term 1) at %q", got.rec, got.ver, got.err, v1)
	}
	t.Logf("the Watch holding version %s returned %v after the wipe or restore returned (etcd answering again)", latest, got.at.Sub(back).Round(time.Millisecond))
	if n := len(warn.Lines(slog.LevelWarn, wentBack)); n != 1 {
		t.Fatalf("%d warnings that the store went back in time, want 1: %q", n, warn.Lines(slog.LevelWarn, wentBack))
	}
	t.Log(warn.Lines(slog.LevelWarn, wentBack)[0])
	if !strings.Contains(warn.Lines(slog.LevelWarn, wentBack)[0], fmt.Sprintf("after %s", latest)) || !strings.Contains(warn.Lines(slog.LevelWarn, wentBack)[0], "key=/rollback/w") {
		t.Errorf("the warning does not name revision %s and the key: %s", latest, warn.Lines(slog.LevelWarn, wentBack)[0])
	}

	// More requests of the client see the store where it is now: no new
	// warning.
	for i := 0; i < 3; i++ {
		if _, _, err := other.Get(ctx); err != nil && !errors.Is(err, elector.ErrNotFound) {
			t.Fatal(err)
		}
	}
	if _, err := other.Update(ctx, held("other", 9), latest); !errors.Is(err, elector.ErrConflict) && !errors.Is(err, elector.ErrNotFound) {
		t.Fatalf("an update with the forgotten version %s: %v, want a conflict", latest, err)
	}

	// Later writes, past the revisions the store forgot, reach a waiting
	// Watch.
	var n int64
	fmt.Sscan(string(latest), &n)
	fillTo(t, raw, n+1)
	var vb elector.Version
	if missing {
		vb, err = writer.Create(ctx, held("b", 4))
	} else {
		// The store holds the very record writer wrote at v1.
		vb, err = writer.Update(ctx, held("b", 4), v1)
	}
	if err != nil {
		t.Fatal(err)
	}
	waiting = watchAsync(ctx, w, vb)
	vc, err := writer.Update(ctx, held("c", 5), vb)
	if err != nil {
		t.Fatal(err)
	}
	if got := await(t, waiting, 10*time.Second, "a write after the store forgot"); got.err != nil || got.ver != vc || got.rec.Holder != "c" {
		t.Fatalf("the Watch holding %q returned %+v at %q (%v), want c's record at %q", vb, got.rec, got.ver, got.err, vc)
	}
	if n := len(warn.Lines(slog.LevelWarn, wentBack)); n != 1 {
		t.Fatalf("%d warnings that the store went back in time, want 1: %q", n, warn.Lines(slog.LevelWarn, wentBack))
	}
}

// A follower waiting on the watch when etcd is wiped (restarted with no
// data on the same port) is told the record is gone, without anyone
// writing; the etcd client alone would have resumed the watch at a
// revision the new store reaches only after as many unrelated writes.
func TestWatchAfterWipe(t *testing.T) {
	own := ownEtcd(t)
	forgotten(t, own, func(string) bool {
		if err := own.Wipe(); err != nil {
			t.Fatal(err)
		}
		return true
	})
}

// A follower waiting on the watch when etcd is restored from a snapshot
// taken at the record's first version is handed that record again.
func TestWatchAfterRestore(t *testing.T) {
	own := forgetful(t)
	forgotten(t, own, func(snap string) bool {
		if err := own.Restore(snap); err != nil {
			t.Fatal(err)
		}
		return false
	})
}

// Without a watch, a read is what finds the store back in time: one
// warning per time it went back, naming both revisions and the key.
func TestRollbackFoundByARead(t *testing.T) {
	own := forgetful(t)
	raw := rawOf(t, own)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	warn := &backendtest.Log{}
	b := clientOf(t, own, warn.Logger()).Lock("r")
	v1, err := b.Create(ctx, held("a", 1))
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := saveSnapshot(t, raw)
	v := v1
	for i := 0; i < 2; i++ {
		if v, err = b.Update(ctx, held("a", 1), v); err != nil {
			t.Fatal(err)
		}
	}
	if err := own.Restore(snap); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		r, got, err := b.Get(ctx)
		if err != nil || got != v1 || r.Holder != "a" {
			t.Fatalf("read after the restore: %+v at %q (%v), want a's record at %q", r, got, err, v1)
		}
	}
	wantFirst := fmt.Sprintf("etcd: the store went back in time: revision %s after %s (restored from a snapshot or wiped?) key=/rollback/r", v1, v)
	if got := warn.Lines(slog.LevelWarn, wentBack); len(got) != 1 || got[0] != wantFirst {
		t.Fatalf("warnings after the restore: %q, want [%q]", got, wantFirst)
	}
	if err := own.Wipe(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, _, err := b.Get(ctx); !errors.Is(err, elector.ErrNotFound) {
			t.Fatalf("read after the wipe: %v, want ErrNotFound", err)
		}
	}
	got := warn.Lines(slog.LevelWarn, wentBack)
	if len(got) != 2 || !strings.Contains(got[1], fmt.Sprintf("after %s", v1)) {
		t.Fatalf("warnings after the restore and the wipe: %q, want a second one, after revision %s", got, v1)
	}
	t.Log(got[1])
}
