package etcd_test

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

	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func TestDefaultConfigIsValid(t *testing.T) {
	c := etcd.DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Endpoints) != 1 || c.Prefix != etcd.DefaultPrefix || c.DialTimeout != etcd.DefaultDialTimeout ||
		c.RequestTimeout != etcd.DefaultRequestTimeout {
		t.Fatalf("DefaultConfig() = %+v", c)
	}
	// Zero durations and an empty prefix mean the defaults.
	if err := (etcd.Config{Endpoints: []string{"a:2379"}}).Validate(); err != nil {
		t.Fatalf("a config with only endpoints: %v", err)
	}
}

// Validate's errors are ConfigErrors naming the config file keys.
func TestValidateNamesKeys(t *testing.T) {
	ok := etcd.DefaultConfig
	for _, tc := range []struct {
		cfg    etcd.Config
		fields string
		want   string
	}{
		{etcd.Config{}, "etcd.endpoints", "etcd.endpoints: empty: list at least one endpoint"},
		{etcd.Config{Endpoints: []string{"a:1", " "}}, "etcd.endpoints", "etcd.endpoints: item 2 of 2 is empty"},
		{func() etcd.Config { c := ok(); c.TLS.Cert = "c.pem"; return c }(), "etcd.tls.cert,etcd.tls.key", "etcd.tls.cert and etcd.tls.key go together"},
		{func() etcd.Config { c := ok(); c.DialTimeout = 61 * time.Minute; return c }(), "etcd.dial_timeout", "etcd.dial_timeout (1h1m0s) must be at most 1h0m0s"},
		{func() etcd.Config { c := ok(); c.RequestTimeout = -time.Second; return c }(), "etcd.request_timeout", "etcd.request_timeout (-1s) must not be negative"},
		{func() etcd.Config { c := ok(); c.Password, c.PasswordFile = "p", "/pw"; return c }(), "etcd.password_file", "set it or Config.Password, not both"},
		{func() etcd.Config { c := ok(); c.MaxReconnectDelay = -1; return c }(), "MaxReconnectDelay", "must not be negative"},
	} {
		err := tc.cfg.Validate()
		var ce *elector.ConfigError
		if !errors.As(err, &ce) || strings.Join(ce.Fields, ",") != tc.fields || !strings.Contains(ce.Msg, tc.want) ||
			!errors.Is(err, elector.ErrInvalidConfig) {
			t.Errorf("%+v: err = %v, want a ConfigError on %s containing %q", tc.cfg, err, tc.fields, tc.want)
		}
	}
	c := ok()
	c.DialTimeout, c.RequestTimeout = etcd.MaxTimeout, etcd.MaxTimeout
	if err := c.Validate(); err != nil {
		t.Errorf("the bounds themselves: %v", err)
	}
}

// Files are read, and refused with the key and the path, before anything
// connects: the endpoint here never answers.
func TestOpenReadsFilesBeforeConnecting(t *testing.T) {
	port, err := servers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := etcd.DefaultConfig()
	cfg.Endpoints = []string{fmt.Sprintf("127.0.0.1:%d", port)}
	cfg.DialTimeout = 10 * time.Second
	for _, tc := range []struct {
		set    func(*etcd.Config)
		fields string
		want   string
	}{
		{func(c *etcd.Config) { c.Username, c.PasswordFile = "u", filepath.Join(dir, "missing") }, "etcd.password_file",
			"etcd.password_file " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{func(c *etcd.Config) { c.Username, c.PasswordFile = "u", dir }, "etcd.password_file", "not a regular file (a directory)"},
		{func(c *etcd.Config) { c.TLS.CA = "/dev/zero" }, "etcd.tls.ca", "etcd.tls.ca /dev/zero: not a regular file"},
		{func(c *etcd.Config) { c.TLS.Key = "k.pem" }, "etcd.tls.cert,etcd.tls.key", "go together"},
	} {
		c := cfg
		tc.set(&c)
		t0 := time.Now()
		b, closer, err := etcd.Open(context.Background(), c, "x", slog.New(slog.DiscardHandler))
		var ce *elector.ConfigError
		if b != nil || closer != nil || !errors.As(err, &ce) || strings.Join(ce.Fields, ",") != tc.fields || !strings.Contains(ce.Msg, tc.want) {
			t.Errorf("%+v: Open = %v, %v; want a ConfigError on %s containing %q", c, b, err, tc.fields, tc.want)
		}
		if d := time.Since(t0); d > time.Second {
			t.Errorf("%+v: took %v: it tried to connect first", c, d)
		}
	}
}

// Open returns the lock's Backend on key prefix + name and its closer;
// the password comes from password_file, trimmed.
func TestOpenWithPasswordFile(t *testing.T) {
	own, err := servers.StartEtcd()
	servers.Require(t, err)
	defer own.Stop()
	if err := enableAuth(own.Endpoint); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := etcd.DefaultConfig()
	cfg.Endpoints, cfg.Prefix, cfg.Username, cfg.PasswordFile = []string{own.Endpoint}, "/open/", "root", pw
	b, closer, err := etcd.Open(context.Background(), cfg, "lock-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closer()
	if eb, ok := b.(*etcd.Backend); !ok || eb.Key() != "/open/lock-1" || b.Describe() != "etcd key /open/lock-1" {
		t.Fatalf("Open returned %#v (%s)", b, b.Describe())
	}
	if _, err := b.Create(context.Background(), elector.Record{Holder: "a", LeaseDuration: time.Second, Term: 1}); err != nil {
		t.Fatal(err)
	}
	if err := closer(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Get(context.Background()); err == nil {
		t.Fatal("Get works after the closer closed the connection")
	}
	cfg.PasswordFile = filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(cfg.PasswordFile, []byte("nope"), 0o600)
	if _, _, err := etcd.Open(context.Background(), cfg, "lock-1", nil); err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("wrong password from the file: err = %v", err)
	}
}

// MaxReconnectDelay caps the watch loops' backoff on both paths: New takes
// it from the Config, NewFromClient from WithMaxReconnectDelay.
func TestMaxReconnectDelayBothPaths(t *testing.T) {
	s := need(t)
	c, err := etcd.New(context.Background(), etcd.Config{Endpoints: []string{s.Endpoint}, MaxReconnectDelay: 250 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if d := etcd.MaxDelay(c); d != 250*time.Millisecond {
		t.Errorf("New: watch backoff cap %v, want 250ms", d)
	}
	if c, err := etcd.New(context.Background(), etcd.Config{Endpoints: []string{s.Endpoint}}); err != nil || etcd.MaxDelay(c) != etcd.DefaultMaxReconnectDelay {
		t.Errorf("New without MaxReconnectDelay: %v, %v", c, err)
	} else {
		c.Close()
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if d := etcd.MaxDelay(etcd.NewFromClient(cli, "", 0, etcd.WithMaxReconnectDelay(300*time.Millisecond))); d != 300*time.Millisecond {
		t.Errorf("NewFromClient with WithMaxReconnectDelay: cap %v, want 300ms", d)
	}
	if d := etcd.MaxDelay(etcd.NewFromClient(cli, "", 0)); d != etcd.DefaultMaxReconnectDelay {
		t.Errorf("NewFromClient: cap %v, want the default", d)
	}
	// NewFromClient leaves the client open.
	fc := etcd.NewFromClient(cli, "", 0)
	fc.Close()
	if _, err := cli.Get(context.Background(), "x"); err != nil {
		t.Errorf("the client was closed by Close: %v", err)
	}
}
