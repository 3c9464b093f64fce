package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func loadWith(t *testing.T, file string, env map[string]string, args ...string) (config, error) {
	t.Helper()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o := addConfigFlags(fs)
	if file != "" {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(file), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", p}, args...)
	}
	if err := parseFlags(fs, args); err != nil {
		return config{}, err
	}
	return o.load(func(k string) string { return env[k] })
}

func TestFlagValueErrorsDoNotBlameTheFile(t *testing.T) {
	_, err := loadWith(t, "backend: etcd\nname: x\n", nil, "--backend", "nope")
	if err == nil || strings.Contains(err.Error(), "line 1") {
		t.Fatalf("err = %v: a flag's value was blamed on the file", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		file string
		env  map[string]string
		args []string
		want string
	}{
		{file: "backend: etcd\nname: x\nbogus: 1\n", want: "line 3: bogus: unknown key"},
		{file: "backend: zookeeper\nname: x\n", want: `line 1: backend: unknown backend "zookeeper"`},
		{file: "name: x\nlease:\n  duration: 5s\n  renew_deadline: 6s\n", want: "line 3: lease.duration (5s) must be greater than lease.renew_deadline (6s)"},
		{file: "backend: etcd\nname: Bad_Name\n", want: `line 2: name: "Bad_Name" is not a valid`},
		{file: "name: x\nlease: {duration: soon}\n", want: `line 2: lease.duration: "soon" is not a duration`},
		{file: "name: x\nlease: {duration: 5s, renew_deadline: 5s}\n", want: "line 2: lease.duration (5s) must be greater than lease.renew_deadline (5s)"},
		{file: "name: x\nlease: {retry_period: 9s}\n", want: "must be greater than 1.2 × lease.retry_period (9s)"},
		{file: "backend: etcd\n", want: "name: missing"},
		{file: "name: Not_Valid\n", want: `name: "Not_Valid" is not a valid lock name`},
		{file: "name: x\netcd: {password: hunter2}\n", want: "line 2: etcd.password: secrets are read from files"},
		{file: "name: x\netcd: {endpoints: []}\n", want: "etcd.endpoints: empty"},
		{file: "name: x\netcd: {tls: {cert: c.pem}}\n", want: "etcd.tls.cert and etcd.tls.key go together"},
		{file: "name: x\nkube: {namespace: a, colour: b}\n", want: "line 2: kube.colour: unknown key"},
		{file: "name: x\nconsul: {token: t}\n", want: "consul.token: secrets are read from files"},
		{file: "name: x\nlease: {release_on_cancel: maybe}\n", want: "lease.release_on_cancel: want true or false"},
		{file: "[1, 2]\n", want: "must be a mapping"},
		{env: map[string]string{"LEASEHOLD_NAME": "x", "LEASEHOLD_LEASE_DURATION": "long"}, want: `LEASEHOLD_LEASE_DURATION: "long" is not a duration`},
		{file: "backend: etcd\nname: x\n", args: []string{"--backend", "nope"}, want: `unknown backend "nope"`},
		{file: "name: x\n", args: []string{"--lease-duration", "5"}, want: `not a duration (write it like 15s`},
	} {
		_, err := loadWith(t, tc.file, tc.env, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !isUsage(err) {
			t.Errorf("file %q env %v args %v: err = %v, want a usage error containing %q", tc.file, tc.env, tc.args, err, tc.want)
		}
	}
}

// Defaults < LEASEHOLD_* < file < flags.
func TestConfigPrecedence(t *testing.T) {
	env := map[string]string{"LEASEHOLD_NAME": "from-env", "LEASEHOLD_RETRY_PERIOD": "1s", "LEASEHOLD_ETCD_ENDPOINTS": "e1:2379,e2:2379"}
	cfg, err := loadWith(t, "name: from-file\nlease: {duration: 20s}\n", env, "--renew-deadline", "12s", "--id", "me")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "from-file" || cfg.Lease.RetryPeriod != time.Second || cfg.Lease.LeaseDuration != 20*time.Second ||
		cfg.Lease.RenewDeadline != 12*time.Second || cfg.Lease.Identity != "me" || len(cfg.Etcd.Endpoints) != 2 ||
		!cfg.Lease.ReleaseOnCancel {
		t.Fatalf("config %+v", cfg)
	}
	cfg, err = loadWith(t, "", env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "from-env" || !strings.Contains(cfg.Identity, "_") {
		t.Fatalf("name %q identity %q: want the env's name and a hostname_suffix identity", cfg.Name, cfg.Identity)
	}
}

func TestBackendsNotYetAvailable(t *testing.T) {
	for _, b := range []string{"kube", "consul"} {
		cfg, err := loadWith(t, "backend: "+b+"\nname: x\n", nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = cfg.openBackend(t.Context(), nil)
		if err == nil || !strings.Contains(err.Error(), "not available yet") || !isUsage(err) {
			t.Errorf("%s: err = %v", b, err)
		}
	}
}

func TestRunBadInput(t *testing.T) {
	cfgPath := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(cfgPath, []byte("backend: memory\nname: x\n"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--config", cfgPath}, "name the command to run after --"},
		{[]string{"run", "--config", cfgPath, "--grace", "6s", "--", "true"}, "--grace (6s) must be shorter than lease.duration - lease.renew_deadline (5s)"},
		{[]string{"run", "--config", cfgPath, "--lease-duration", "30s", "--renew-deadline", "4s", "--grace", "5s", "--", "true"}, "--grace (5s) must be shorter than lease.renew_deadline (4s)"},
		{[]string{"run", "--config", cfgPath, "--log-format", "xml", "--", "true"}, `--log-format: "xml"`},
		{[]string{"sidecar", "--config", cfgPath, "extra"}, `unexpected argument "extra"`},
		{[]string{"status", "--config", "/nonexistent.yaml"}, "--config /nonexistent.yaml: no such file or directory"},
	} {
		var out, errb strings.Builder
		if code := run(t.Context(), tc.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
}

// The documented example configs parse and validate.
func TestExampleConfigs(t *testing.T) {
	files, _ := filepath.Glob("../../docs/config/*.yaml")
	if len(files) < 4 {
		t.Fatalf("found %d example configs", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		cfg := defaultConfig()
		if err := cfg.parse(data); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if cfg.Identity == "" {
			cfg.Identity = "example" // as load fills in the default before validating
		}
		if err := cfg.validate(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
