package elector_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/leasehold-go/leasehold/backend/memory"
	"github.com/leasehold-go/leasehold/elector"
)

// A single candidate leads at once, does its work with the term as fencing
// token, and releases the lock when its context is cancelled.
func Example() {
	store := memory.New()
	ctx, cancel := context.WithCancel(context.Background())
	e, err := elector.New(elector.DefaultConfig("worker-1"), store.Backend("my-job", "worker-1"), elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, term int64) {
			fmt.Println("leading with term", term)
			cancel() // the work is done; stop campaigning
			<-ctx.Done()
		},
		OnStoppedLeading: func() { fmt.Println("stopped leading") },
		OnNewLeader: func(id string) {
			if id != "worker-1" {
				fmt.Printf("leader is %q\n", id)
			}
		},
	}, elector.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	if err := e.Run(ctx); err != nil {
		panic(err)
	}
	rec, _, _ := store.Backend("my-job", "reader").Get(context.Background())
	fmt.Printf("after release: holder %q, term %d\n", rec.Holder, rec.Term)
	// Output:
	// leader is ""
	// leading with term 1
	// stopped leading
	// leader is ""
	// after release: holder "", term 1
}

// Example_gettingStarted is the program of docs/library.md: a unique
// identity, a lock, the default durations, the three callbacks, and a
// context that SIGTERM cancels. A controller's work runs until SIGTERM;
// this example's work ends the example once it has made its writes.
func Example_gettingStarted() {
	host, err := os.Hostname()
	if err != nil {
		fmt.Println("identity:", err)
		return
	}
	id := host + "_" + rand.Text()[:8]                   // unique per process, even for two on one host
	backend := memory.New().Backend("my-controller", id) // the lock; etcd, Consul, Kubernetes: their ExampleOpen

	// SIGTERM (a rolling update) or Ctrl-C cancels ctx: Run stops the work,
	// releases the lock so that another replica takes over at once, and returns.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx, done := context.WithCancel(ctx) // this example's own end: its work calls done

	cfg := elector.DefaultConfig(id) // 15s / 10s / 2s, ReleaseOnCancel: true
	e, err := elector.New(cfg, backend, elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, term int64) {
			reconcile(ctx, term) // returns when ctx is cancelled; stamps every write with term
			done()
		},
		OnStoppedLeading: func() { fmt.Println("no longer leading") },
		OnNewLeader: func(leader string) {
			if leader != id { // this process's own start is OnStartedLeading
				fmt.Printf("leader: %q\n", leader)
			}
		},
	})
	if err != nil {
		fmt.Println(err) // names the bad field: "RenewDeadline (2s) must be greater than 1.2 × RetryPeriod (2s) = 2.4s"
		return
	}
	if err := e.Run(ctx); err != nil { // returns after ctx is cancelled and the lock is released
		fmt.Println(err)
	}
	// Output:
	// leader: ""
	// write 1 with term 1
	// write 2 with term 1
	// write 3 with term 1
	// no longer leading
	// leader: ""
}

// reconcile is the leader's work. Every write carries the term, so that the
// resource written to can refuse the late writes of a deposed leader (one
// that was paused past its lease). It returns as soon as ctx is cancelled;
// this one also returns after three writes.
func reconcile(ctx context.Context, term int64) {
	for n := 1; n <= 3 && ctx.Err() == nil; n++ {
		fmt.Printf("write %d with term %d\n", n, term)
	}
}

// Example_healthCheck is the liveness check of docs/library.md: a
// follower passes it, and so does a leader that renews on time; a leader
// stuck past RenewDeadline + maxTolerableExpiry would fail it.
func Example_healthCheck() {
	store := memory.New()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mux := http.NewServeMux()
	probe := func() {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		fmt.Printf("GET /healthz: %d %s", rec.Code, rec.Body)
	}
	cfg := elector.DefaultConfig("worker-1")
	var e *elector.Elector
	e, err := elector.New(cfg, store.Backend("my-job", "worker-1"), elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, term int64) {
			fmt.Println("leading, Check:", e.Check(cfg.RetryPeriod))
			probe()
			cancel()
			<-ctx.Done()
		},
		OnStoppedLeading: func() {},
	}, elector.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		fmt.Println(err)
		return
	}

	// nil unless e believes it leads and its last renewal (e.LastRenewal())
	// is older than RenewDeadline + maxTolerableExpiry on e's clock.
	problem := e.Check(cfg.RetryPeriod)

	// The same for a probe: 200 "ok", or 500 with the reason.
	mux.Handle("/healthz", elector.HealthHandler(e, cfg.RetryPeriod))

	fmt.Println("not leading yet, Check:", problem)
	probe()
	if err := e.Run(ctx); err != nil {
		fmt.Println(err)
	}
	// Output:
	// not leading yet, Check: <nil>
	// GET /healthz: 200 ok
	// leading, Check: <nil>
	// GET /healthz: 200 ok
}

// ExampleElector_Claim runs a scheduled job's slots on the leader only:
// each slot is claimed in the lock's record before its run, so that no
// slot runs twice, whichever replica leads, and marked done afterwards.
// A new leader reads Jobs to find the slots its predecessors left.
func ExampleElector_Claim() {
	store := memory.New()
	ctx, cancel := context.WithCancel(context.Background())
	at := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	slots := []time.Time{at, at, at.Add(5 * time.Minute)} // from the schedule
	var e *elector.Elector
	e, err := elector.New(elector.DefaultConfig("worker-1"), store.Backend("cron", "worker-1"), elector.Callbacks{
		OnStartedLeading: func(ctx context.Context, term int64) {
			defer cancel()
			// Catch up from what earlier leaders claimed and finished.
			last := e.Jobs()["backup"]
			fmt.Println("last claimed:", last.Started.IsZero(), "last done:", last.Done.IsZero())
			for _, slot := range slots {
				term, err := e.Claim(ctx, "backup", slot)
				if errors.Is(err, elector.ErrAlreadyClaimed) {
					continue // claimed before, here or by another leader: never again
				}
				if err != nil {
					return // not leading, or the claim failed: the slot must not run here
				}
				fmt.Println("run", slot.Format(time.TimeOnly), "with term", term)
				if err := e.Done(ctx, "backup", slot); err != nil {
					fmt.Println("done:", err)
				}
			}
		},
		OnStoppedLeading: func() {},
	}, elector.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		panic(err)
	}
	if err := e.Run(ctx); err != nil {
		panic(err)
	}
	raw, _ := store.Raw("cron")
	var stored struct{ Jobs map[string]map[string]any }
	json.Unmarshal(raw, &stored)
	fmt.Println("stored:", stored.Jobs["backup"])
	// Output:
	// last claimed: true last done: true
	// run 07:00:00 with term 1
	// run 07:05:00 with term 1
	// stored: map[done:2026-12-02T07:05:00Z started:2026-12-02T07:05:00Z started_term:1]
}
