package elector_test

import (
	"context"
	"fmt"
	"log/slog"

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
