package consul_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/consul"
	"github.com/leasehold-go/leasehold/elector"
)

func TestValidate(t *testing.T) {
	if err := consul.DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	if err := (consul.Config{}).Validate(); err != nil {
		t.Fatalf("zero Config (all defaults): %v", err)
	}
	for _, tc := range []struct {
		mut   func(*consul.Config)
		field string
		want  string
	}{
		{func(c *consul.Config) { c.Address = "http://127.0.0.1:8500" }, "consul.address", "consul.scheme"},
		{func(c *consul.Config) { c.Address = "a b:1" }, "consul.address", "host:port"},
		{func(c *consul.Config) { c.Scheme = "ftp" }, "consul.scheme", "want http or https"},
		{func(c *consul.Config) { c.Scheme = "http"; c.TLS.CA = "ca.pem" }, "consul.scheme", "use https"},
		{func(c *consul.Config) { c.Prefix = "/leasehold/" }, "consul.prefix", "must not start with /"},
		{func(c *consul.Config) { c.TLS.Cert = "c.pem" }, "consul.tls.cert", "go together"},
		{func(c *consul.Config) { c.RequestTimeout = -time.Second }, "consul.request_timeout", "negative"},
		{func(c *consul.Config) { c.RequestTimeout = 2 * time.Hour }, "consul.request_timeout", "at most 1h"},
		{func(c *consul.Config) { c.Token = "t"; c.TokenFile = "f" }, "consul.token_file", "not both"},
	} {
		c := consul.DefaultConfig()
		tc.mut(&c)
		err := c.Validate()
		var ce *elector.ConfigError
		if !errors.As(err, &ce) || !slices.Contains(ce.Fields, tc.field) || !strings.Contains(err.Error(), tc.want) ||
			!errors.Is(err, elector.ErrInvalidConfig) {
			t.Errorf("%+v: err = %v, want a ConfigError on %s containing %q", c, err, tc.field, tc.want)
		}
	}
}

// File errors are ConfigErrors naming the key, found before connecting.
func TestOpenFileErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg   consul.Config
		field string
		want  string
	}{
		{consul.Config{TokenFile: filepath.Join(dir, "missing")}, "consul.token_file", "missing"},
		{consul.Config{TokenFile: dir}, "consul.token_file", "not a regular file"},
		{consul.Config{TokenFile: empty}, "consul.token_file", "empty"},
		{consul.Config{TLS: consul.TLSFiles{CA: filepath.Join(dir, "ca.pem")}}, "consul.tls.ca", "ca.pem"},
	} {
		_, _, err := consul.Open(context.Background(), tc.cfg, "x", nil)
		var ce *elector.ConfigError
		if !errors.As(err, &ce) || !slices.Contains(ce.Fields, tc.field) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want a ConfigError on %s containing %q", tc.cfg, err, tc.field, tc.want)
		}
	}
}
