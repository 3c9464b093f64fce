package consul_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/leasehold-go/leasehold/backend/consul"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
)

// On an agent with ACLs on and default deny: a token with key write on the
// prefix works; no token or a read-only token gives a clear permission
// error naming the operation and the key, never a conflict, and the elector
// does not storm the agent with retries.
func TestACL(t *testing.T) {
	own, err := servers.StartConsulWith(servers.ConsulOptions{ACL: true})
	servers.Require(t, err)
	defer own.Stop()
	const prefix = "leasehold-acl/"
	mgmt := apiClient(t, own.Address, own.ManagementToken, nil)
	token := func(name, rules string) string {
		p, _, err := mgmt.ACL().PolicyCreate(&api.ACLPolicy{Name: name, Rules: rules}, nil)
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := mgmt.ACL().TokenCreate(&api.ACLToken{Policies: []*api.ACLTokenPolicyLink{{ID: p.ID}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(f, []byte(tok.SecretID+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	writer := token("writer", fmt.Sprintf(`key_prefix %q { policy = "write" }`, prefix))
	reader := token("reader", fmt.Sprintf(`key_prefix %q { policy = "read" }`, prefix))
	open := func(tokenFile, lock string) (elector.Backend, func() error, error) {
		return consul.Open(context.Background(), consul.Config{Address: own.Address, Prefix: prefix, TokenFile: tokenFile,
			RequestTimeout: time.Second}, lock, slog.New(slog.DiscardHandler))
	}
	isPermission := func(t *testing.T, what string, err error, op, key string) {
		t.Helper()
		if !errors.Is(err, consul.ErrPermission) || errors.Is(err, elector.ErrConflict) || errors.Is(err, elector.ErrNotFound) ||
			!strings.Contains(err.Error(), op+" "+key) {
			t.Fatalf("%s: err = %v, want a permission error naming %q", what, err, op+" "+key)
		}
		t.Logf("%s: %v", what, err)
	}

	t.Run("write token", func(t *testing.T) {
		b, closeFn, err := open(writer, "w")
		if err != nil {
			t.Fatal(err)
		}
		defer closeFn()
		led := make(chan struct{})
		renewed := make(chan struct{}, 16)
		cfg := lease("w")
		e, err := elector.New(cfg, b, elector.Callbacks{
			OnStartedLeading: func(ctx context.Context, _ int64) { close(led); <-ctx.Done() },
			OnStoppedLeading: func() {},
			OnRenewed: func(int64, time.Time) {
				select {
				case renewed <- struct{}{}:
				default:
				}
			},
		}, elector.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); e.Run(ctx) }()
		defer func() { cancel(); <-done }()
		// Bounds on a hang, not timings: a loaded machine is slow.
		select {
		case <-led:
		case <-time.After(time.Minute):
			t.Fatal("the write token did not lead within a minute")
		}
		for n := 0; n < 3; n++ { // renewals: the token may write
			select {
			case <-renewed:
			case <-time.After(time.Minute):
				t.Fatalf("%d renewals with the write token in a minute, want 3", n)
			}
		}
	})

	t.Run("no token", func(t *testing.T) {
		_, _, err := open("", "n")
		isPermission(t, "Open without a token", err, "get", prefix+"n")
	})

	t.Run("read-only token", func(t *testing.T) {
		// Something to read, written with the write token.
		wb, closeW, err := open(writer, "r")
		if err != nil {
			t.Fatal(err)
		}
		defer closeW()
		now := time.Now()
		v, err := wb.Create(context.Background(), elector.Record{Holder: "w", LeaseDuration: time.Second, AcquireTime: now, RenewTime: now, Term: 1})
		if err != nil {
			t.Fatal(err)
		}
		b, closeR, err := open(reader, "r")
		if err != nil {
			t.Fatalf("Open with a read-only token: %v", err)
		}
		defer closeR()
		if r, gv, err := b.Get(context.Background()); err != nil || gv != v || r.Holder != "w" {
			t.Fatalf("Get with a read-only token = %+v %q %v", r, gv, err)
		}
		_, err = b.Update(context.Background(), elector.Record{Holder: "r", LeaseDuration: time.Second, Term: 2}, v)
		isPermission(t, "Update with a read-only token", err, "update", prefix+"r")
		_, err = b.Create(context.Background(), elector.Record{Holder: "r", LeaseDuration: time.Second, Term: 1})
		isPermission(t, "Create with a read-only token", err, "create", prefix+"r")
	})

	t.Run("no retry storm", func(t *testing.T) {
		// An elector with a read-only token on a free lock: each attempt
		// is a read and a refused create, one per RetryPeriod, no more.
		cnt := &counter{}
		tok, err := os.ReadFile(reader)
		if err != nil {
			t.Fatal(err)
		}
		c := consul.NewFromClient(apiClient(t, own.Address, strings.TrimSpace(string(tok)), cnt), prefix, time.Second)
		cfg := lease("ro")
		e, err := elector.New(cfg, c.Lock("storm"), elector.Callbacks{
			OnStartedLeading: func(context.Context, int64) { t.Error("led with a read-only token") },
			OnStoppedLeading: func() {},
		}, elector.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		const window = 2 * time.Second
		ctx, cancel := context.WithTimeout(context.Background(), window)
		defer cancel()
		e.Run(ctx)
		// At most one read and one write per RetryPeriod, and a couple more.
		if n, most := cnt.total(), int(2*window/cfg.RetryPeriod)+4; n > most {
			t.Fatalf("%d requests in %v with a read-only token (RetryPeriod %v), more than %d: %v", n, window, cfg.RetryPeriod, most, cnt)
		}
		t.Logf("%d requests in %v: %v", cnt.total(), window, cnt)
	})
}
