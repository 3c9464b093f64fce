package consul_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/leasehold-go/leasehold/backend/backendtest"
	"github.com/leasehold-go/leasehold/backend/consul"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
)

// TestFaults runs the fault suite on a -dev agent of its own (one server:
// the member cases are skipped). The record is deleted and tampered with;
// the agent is killed and started again without its data (Wipe), and the
// store is restored from a snapshot taken through the snapshot API, so its
// indexes go back and are handed out again; the leader's client is cut off
// from the agent through a fault proxy (closed, blackholed, delayed,
// reset).
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault suite runs for about a minute and a quarter")
	}
	own, err := servers.StartConsul()
	servers.Require(t, err)
	t.Cleanup(own.Stop)
	const prefix = "faults/"
	raw := apiClient(t, own.Address, "", nil)
	opts := func(t testing.TB) *api.WriteOptions {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		return (&api.WriteOptions{}).WithContext(ctx)
	}
	must := func(t testing.TB, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%v\n%s", err, own.Logs())
		}
	}
	// open is a client of the agent at addr.
	open := func(t testing.TB, lock, addr string) elector.Backend {
		c, err := consul.New(context.Background(), consul.Config{Address: addr, Prefix: prefix,
			RequestTimeout: time.Second, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.Lock(lock)
	}
	backendtest.RunFaults(t, backendtest.FaultHooks{
		New: func(t testing.TB, lock string) elector.Backend { return open(t, lock, own.Address) },
		NewVia: func(t testing.TB, lock string, via func(string) string) elector.Backend {
			return open(t, lock, via(own.Address))
		},
		NewCounted: func(t testing.TB, lock string) (elector.Backend, func() int) {
			cnt := &counter{}
			c := consul.NewFromClient(apiClient(t, own.Address, "", cnt), prefix, time.Second,
				consul.WithLogger(slog.New(slog.DiscardHandler)))
			return c.Lock(lock), cnt.total
		},
		WatchRequests: 1, // a blocking query per wait
		Connect: func(via func(string) string, timeout time.Duration) error {
			c, err := consul.New(context.Background(), consul.Config{Address: via(own.Address), Prefix: prefix,
				RequestTimeout: timeout, Logger: slog.New(slog.DiscardHandler)})
			if err == nil {
				c.Close()
			}
			return err
		},
		DeleteRecord: func(t testing.TB, lock string) {
			_, err := raw.KV().Delete(prefix+lock, opts(t))
			must(t, err)
		},
		TamperRecord: func(t testing.TB, lock string, rec elector.Record) {
			_, err := raw.KV().Put(&api.KVPair{Key: prefix + lock, Value: elector.EncodeRecord(rec)}, opts(t))
			must(t, err)
		},
		Wipe: func(t testing.TB) {
			own.Kill()
			must(t, own.Start())
		},
		Snapshot: func(t testing.TB) func(testing.TB) {
			rc, _, err := raw.Snapshot().Save(nil)
			must(t, err)
			defer rc.Close()
			snap, err := io.ReadAll(rc)
			must(t, err)
			return func(t testing.TB) {
				must(t, raw.Snapshot().Restore(opts(t), bytes.NewReader(snap)))
			}
		},
	})
}
