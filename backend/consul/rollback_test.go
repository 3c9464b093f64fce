package consul_test

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/leasehold-go/leasehold/backend/backendtest"
	"github.com/leasehold-go/leasehold/backend/consul"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
)

// wentBack is what a Client's warning that the store went back in time says.
const wentBack = "went back in time"

// TestAgentForgets: the agent (-dev) is killed and started again, its KV
// gone, so its indexes start over; the record is created again by another
// client and made to land on a ModifyIndex a candidate read before.
//   - A follower waiting past the old version returns when the agent dies;
//     once it answers again a Watch from that version answers the present
//     state at once: not found, then the new record.
//   - A follower that sent nothing during the restart, waiting past an
//     index the fresh store has not reached, is answered within the
//     WaitTime of its blocking query (shorter than the lease it saw; here
//     at once, as Consul lowers the index of a blocking query on a missing
//     key that stays missing).
//   - The candidate's Update with the index it read before (the same
//     ModifyIndex as the new record) is refused, where a CAS with that
//     index from another client succeeds: the collision is real.
//   - "went back in time" is logged once by each Client.
func TestAgentForgets(t *testing.T) {
	need(t)
	own, err := servers.StartConsul()
	servers.Require(t, err)
	defer own.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var warnF, warnQ backendtest.Log
	newClient := func(log *slog.Logger) *consul.Client {
		c, err := consul.New(ctx, consul.Config{Address: own.Address, Prefix: testPrefix, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	cf := newClient(warnF.Logger())           // the follower and the candidates
	cq := newClient(warnQ.Logger())           // a follower that sends nothing during the restart
	raw := apiClient(t, own.Address, "", nil) // another client
	w := consul.NewFromClient(raw, testPrefix, 0, consul.WithLogger(slog.New(slog.DiscardHandler))).Lock("forgets")
	const extra, held = 200, 40

	// Each filler write moves the store's index by one (a write of an
	// unchanged value would not move the key's ModifyIndex).
	fills := 0
	filler := func() uint64 {
		fills++
		ok, resp, _, err := raw.Txn().Txn(api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVSet, Key: testPrefix + "filler", Value: []byte(strconv.Itoa(fills))}}}, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil || !ok || len(resp.Results) != 1 {
			t.Fatalf("filler write: %v %v %+v", ok, err, resp)
		}
		return resp.Results[0].KV.ModifyIndex
	}
	var index uint64
	for range extra {
		index = filler()
	}
	rec := func(holder string, term int64) elector.Record {
		now := time.Now()
		return elector.Record{Holder: holder, LeaseDuration: 10 * time.Second, AcquireTime: now, RenewTime: now, Term: term}
	}
	v, err := w.Create(ctx, rec("a", 1))
	if err != nil {
		t.Fatal(err)
	}
	read := map[uint64]*consul.Backend{}
	for range held {
		if v, err = w.Update(ctx, rec("a", 1), v); err != nil {
			t.Fatal(err)
		}
		b := cf.Lock("forgets")
		_, got, err := b.Get(ctx)
		if err != nil || got != v {
			t.Fatalf("Get = %q %v, want %q", got, err, v)
		}
		read[parse(t, got)] = b
	}
	q := cq.Lock("forgets")
	if _, qv, err := q.Get(ctx); err != nil || qv != v {
		t.Fatalf("Get = %q %v, want %q", qv, err, v)
	}
	f := cf.Lock("forgets")
	waited := make(chan error, 1)
	go func() {
		_, _, err := f.Watch(ctx, v)
		waited <- err
	}()
	t.Logf("old store: index %d after %d filler writes; the record read at %d versions up to %s", index, extra, held, v)

	own.Kill()
	select {
	case err := <-waited:
		if err == nil || errors.Is(err, elector.ErrNotFound) {
			t.Fatalf("the watch in flight when the agent died: %v, want a request error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch in flight when the agent died did not return within 10s")
	}
	if err := own.Start(); err != nil {
		t.Fatal(err)
	}
	ready := time.Now()
	if _, got, err := f.Watch(ctx, v); !errors.Is(err, elector.ErrNotFound) {
		t.Fatalf("Watch past %s after the restart = %q %v, want ErrNotFound", v, got, err)
	}
	t.Logf("Watch past %s: ErrNotFound %v after the agent answered again", v, time.Since(ready).Round(time.Millisecond))
	if ws := warnF.Lines(slog.LevelWarn, wentBack); len(ws) != 1 || !strings.Contains(ws[0], "consul: the store went back in time: index ") ||
		!strings.Contains(ws[0], "(agent restarted without its data?)") || !strings.Contains(ws[0], "key="+testPrefix+"forgets") {
		t.Fatalf("the follower's client logged %q, want one went-back-in-time warning naming the key", ws)
	} else {
		t.Log(ws[0])
	}

	// The quiet follower waits past its version; the record is then
	// created again on a ModifyIndex a candidate of cf read before.
	quiet := make(chan error, 1)
	var quietRec elector.Record
	var quietV elector.Version
	quietStart := time.Now()
	var quietTook time.Duration
	go func() {
		r, v, err := q.Watch(ctx, v)
		quietRec, quietV, quietTook = r, v, time.Since(quietStart)
		quiet <- err
	}()
	var versions []uint64
	for n := range read {
		versions = append(versions, n)
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
	index = filler()
	if index >= versions[len(versions)-1]-1 {
		t.Fatalf("the fresh store is at index %d, past the versions read (%d..%d): the old store needs more filler writes", index, versions[0], versions[len(versions)-1])
	}
	other, err := elector.MarshalRecord(rec("other", 1))
	if err != nil {
		t.Fatal(err)
	}
	var collided uint64
	for _, target := range versions {
		if target-1 <= index {
			continue
		}
		for index < target-1 {
			index = filler()
		}
		if index != target-1 {
			continue // another write came in between
		}
		ok, resp, _, err := raw.Txn().Txn(api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: testPrefix + "forgets", Value: other, Index: 0}}}, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil || !ok {
			t.Fatalf("create: %v %v", ok, err)
		}
		if n := resp.Results[0].KV.ModifyIndex; read[n] != nil {
			collided = n
			break
		}
		if _, err := raw.KV().Delete(testPrefix+"forgets", nil); err != nil {
			t.Fatal(err)
		}
		index = filler()
	}
	if collided == 0 {
		t.Fatalf("could not make the record land on an index read before the restart (%d..%d); the store is at %d", versions[0], versions[len(versions)-1], index)
	}
	t.Logf("the record created again at ModifyIndex %d, an index a candidate read before the restart", collided)

	select {
	case err := <-quiet:
		// ErrNotFound (it looked before the record was created again) or
		// the new record.
		if err != nil && !errors.Is(err, elector.ErrNotFound) {
			t.Fatalf("the quiet follower's watch: %v", err)
		}
		t.Logf("the quiet follower's watch past %s: %q %q %v after %v", v, quietRec.Holder, quietV, err, quietTook.Round(time.Millisecond))
	case <-time.After(10*time.Second + 5*time.Second):
		// A blocking query past an index the store has not reached again
		// waits at most its WaitTime, shorter than the lease left.
		t.Fatalf("the quiet follower's watch past %s did not return within the lease it saw (10s) and 5s", v)
	}

	// A watch from the old version answers the new record at once.
	r, got, err := f.Watch(ctx, v)
	if err != nil || r.Holder != "other" || parse(t, got) != collided {
		t.Fatalf("Watch past %s = %+v %q %v, want other's record at %d", v, r, got, err, collided)
	}

	// The candidate that read this index before the restart.
	_, uerr := read[collided].Update(ctx, rec("b", 2), got)
	if !errors.Is(uerr, elector.ErrConflict) && !errors.Is(uerr, elector.ErrNotFound) {
		t.Fatalf("the Update with index %d read before the restart: %v, want ErrConflict or ErrNotFound", collided, uerr)
	}
	p, _, err := raw.KV().Get(testPrefix+"forgets", &api.QueryOptions{RequireConsistent: true})
	if err != nil || p == nil || p.ModifyIndex != collided || string(p.Value) != string(other) {
		t.Fatalf("after the refused update the key is %+v (%v), want other's record at %d", p, err, collided)
	}
	t.Logf("the Update with the index read before the restart: %v", uerr)
	if ws := warnF.Lines(slog.LevelWarn, wentBack); len(ws) != 1 {
		t.Fatalf("the follower's client logged %d warnings, want the one: %q", len(ws), ws)
	}
	if ws := warnQ.Lines(slog.LevelWarn, wentBack); len(ws) != 1 {
		t.Fatalf("the quiet follower's client logged %d warnings, want one: %q", len(ws), ws)
	}

	// The same CAS from a client that read nothing succeeds: the
	// collision was real.
	ok, _, _, err := raw.Txn().Txn(api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVCAS, Key: testPrefix + "forgets", Value: other, Index: collided}}}, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil || !ok {
		t.Fatalf("a CAS at index %d: %v %v, want it to succeed (else the test proved nothing)", collided, ok, err)
	}
}

func parse(t *testing.T, v elector.Version) uint64 {
	t.Helper()
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			t.Fatalf("version %q is not a number", v)
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// An Update that writes the record as it is stored leaves the key (and its
// ModifyIndex) as it was: a success at the same version, not the store
// going back in time.
func TestUnchangedUpdate(t *testing.T) {
	var warn backendtest.Log
	c, err := consul.New(context.Background(), consul.Config{Address: need(t).Address, Prefix: testPrefix, Logger: warn.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := c.Lock(lockName(t))
	r := elector.Record{Holder: "a", LeaseDuration: 10 * time.Second, Term: 1}
	v, err := b.Create(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := b.Update(context.Background(), r, v)
	if err != nil {
		t.Fatal(err)
	}
	v3, err := b.Update(context.Background(), r, v2)
	if err != nil || v3 != v2 {
		t.Fatalf("an Update that changes nothing = %q %v, want %q", v3, err, v2)
	}
	if _, v4, err := b.Get(context.Background()); err != nil || v4 != v3 {
		t.Fatalf("Get = %q %v, want %q", v4, err, v3)
	}
	if ws := warn.Lines(slog.LevelWarn, wentBack); len(ws) != 0 {
		t.Fatalf("warnings: %q", ws)
	}
}
