package main

import (
	"fmt"
	"github.com/leasehold-go/leasehold/backend/kube"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/yamlx"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

func loadWith(t *testing.T, file string, env map[string]string, args ...string) (config, error) {
	t.Helper()
	cmd := &cobra.Command{Use: "t"}
	o := addConfigFlags(cmd.Flags(), candidate)
	if file != "" {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte(file), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", p}, args...)
	}
	if err := cmd.Flags().Parse(args); err != nil {
		return config{}, flagError(cmd, err)
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
		{file: "name: x\netcd: {colour: b}\n", want: "line 2: etcd.colour: unknown key"},
		{file: "name: x\netcd:\n  prefix: /a/\n  prefix: /b/\n", want: "line 4: etcd.prefix: given twice"},
		{file: "name: x\netcd: {dial_timeout: 5}\n", want: `line 2: etcd.dial_timeout: "5" is not a duration (write it like 15s, 500ms or 2m)`},
		{file: "name: x\netcd: {endpoints: {a: b}}\n", want: "line 2: etcd.endpoints: want a list of values"},
		{file: "name: x\netcd:\n  tls:\n    ca: [a.pem]\n", want: "line 4: etcd.tls.ca: want a single value"},
		{file: "name: x\netcd:\n  tls: {cert: c.pem, colour: b}\n", want: "line 3: etcd.tls.colour: unknown key"},
		{file: "name: x\netcd: {dial_timeout: -1s}\n", want: "line 2: etcd.dial_timeout (-1s) must not be negative"},
		{file: "name: x\netcd: [a]\n", want: "line 2: etcd: want a mapping of keys"},
		{file: "backend: memory\nname: x\nmemory: {size: 1}\n", want: "line 3: memory.size: unknown key"},
		{file: "name: x\nlease: {duration: 15s, duration: 16s}\n", want: "line 2: lease.duration: given twice"},
		{file: "name: x\nidentity: [a]\n", want: "line 2: identity: want a single value"},
		{env: map[string]string{"LEASEHOLD_NAME": "x", "LEASEHOLD_RELEASE_ON_CANCEL": "maybe"}, want: `LEASEHOLD_RELEASE_ON_CANCEL: want true or false, got "maybe"`},
		{file: "name: x\n", args: []string{"--etcd-endpoints", ""}, want: "--etcd-endpoints: empty"},
		{file: "name: x\n", args: []string{"--etcd-endpoints", " , "}, want: `--etcd-endpoints: " , " lists nothing`},
		{file: "name: x\n", env: map[string]string{"LEASEHOLD_ETCD_ENDPOINTS": ","}, want: `LEASEHOLD_ETCD_ENDPOINTS: "," lists nothing`},
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

// Defaults < file < LEASEHOLD_* < flags, and an empty value in the file or
// the environment counts as unset.
func TestConfigPrecedence(t *testing.T) {
	env := map[string]string{"LEASEHOLD_NAME": "from-env", "LEASEHOLD_RETRY_PERIOD": "1s", "LEASEHOLD_ETCD_ENDPOINTS": "e1:2379, e2:2379",
		"LEASEHOLD_IDENTITY": "env-id", "LEASEHOLD_ETCD_PREFIX": ""}
	file := "name: from-file\nidentity: file-id\nlease: {duration: 20s, retry_period: 3s}\netcd: {endpoints: [f:2379], prefix: /file/, username: \"\"}\n"
	cfg, err := loadWith(t, file, env, "--renew-deadline", "12s", "--id", "me")
	if err != nil {
		t.Fatal(err)
	}
	ec := cfg.backendConfigs["etcd"].(*etcd.Config)
	if cfg.Name != "from-env" || cfg.Lease.RetryPeriod != time.Second || cfg.Lease.LeaseDuration != 20*time.Second ||
		cfg.Lease.RenewDeadline != 12*time.Second || cfg.Lease.Identity != "me" || !cfg.Lease.ReleaseOnCancel ||
		strings.Join(ec.Endpoints, ",") != "e1:2379,e2:2379" || ec.Prefix != "/file/" || ec.Username != "" {
		t.Fatalf("config %+v, etcd %+v", cfg, ec)
	}
	// Without the flags, the environment wins over the file.
	cfg, err = loadWith(t, file, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Identity != "env-id" {
		t.Fatalf("identity %q, want the environment's", cfg.Identity)
	}
	// A flag wins over the environment for backend keys too.
	cfg, err = loadWith(t, file, env, "--etcd-endpoints", "flag:2379")
	if err != nil {
		t.Fatal(err)
	}
	if ec := cfg.backendConfigs["etcd"].(*etcd.Config); strings.Join(ec.Endpoints, ",") != "flag:2379" {
		t.Fatalf("endpoints %v, want the flag's", ec.Endpoints)
	}
	// Empty values in the file are unset: the defaults (or the environment) stay.
	cfg, err = loadWith(t, "name: x\nbackend: \"\"\nidentity: ''\nlease: {duration: , retry_period: ~}\netcd: {prefix: \"\", endpoints: \"\"}\n",
		map[string]string{"LEASEHOLD_IDENTITY": "pod-7"})
	if err != nil {
		t.Fatal(err)
	}
	ec = cfg.backendConfigs["etcd"].(*etcd.Config)
	d := elector.DefaultConfig("")
	if cfg.Backend != "etcd" || cfg.Identity != "pod-7" || cfg.Lease.LeaseDuration != d.LeaseDuration || cfg.Lease.RetryPeriod != d.RetryPeriod ||
		ec.Prefix != etcd.DefaultPrefix || strings.Join(ec.Endpoints, ",") != etcd.DefaultEndpoint {
		t.Fatalf("config %+v, etcd %+v: empty values were not unset", cfg, ec)
	}
	cfg, err = loadWith(t, "", env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "from-env" {
		t.Fatalf("name %q: want the env's", cfg.Name)
	}
}

// Messages about a value name the variable or flag that set it, and give
// no line of the file for it.
func TestMessagesNameTheSource(t *testing.T) {
	for _, tc := range []struct {
		file string
		env  map[string]string
		args []string
		want string
	}{
		{file: "name: x\nlease: {duration: 15s}\n", env: map[string]string{"LEASEHOLD_LEASE_DURATION": "5s"},
			want: "LEASEHOLD_LEASE_DURATION (5s) must be greater than lease.renew_deadline (10s)"},
		{file: "name: x\nbackend: memory\n", env: map[string]string{"LEASEHOLD_BACKEND": "zookeeper"},
			want: `LEASEHOLD_BACKEND: unknown backend "zookeeper" (want ` + backendNames() + `)`},
		{file: "name: x\n", env: map[string]string{"LEASEHOLD_ETCD_ENDPOINTS": "a:1"}, args: []string{"--etcd-endpoints", "b:1"}},
	} {
		_, err := loadWith(t, tc.file, tc.env, tc.args...)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q %v %v: %v", tc.file, tc.env, tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || regexp.MustCompile(`line \d+:`).MatchString(err.Error())):
			t.Errorf("%q %v %v: err = %v, want %q and no line", tc.file, tc.env, tc.args, err, tc.want)
		}
	}
}

// A backend's file errors (found when it opens) name the key and its line,
// or the variable that set it; they are bad input, found before connecting.
func TestBackendFileErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		file string
		env  map[string]string
		want string
	}{
		{file: "name: x\netcd:\n  password_file: " + missing + "\n", want: "line 3: etcd.password_file " + missing + ": no such file or directory"},
		{file: "name: x\netcd:\n  tls:\n    ca: " + missing + "\n", want: "line 4: etcd.tls.ca " + missing + ": no such file or directory"},
		{file: "name: x\netcd: {password_file: /etc/file-pw}\n", env: map[string]string{"LEASEHOLD_ETCD_PASSWORD_FILE": missing},
			want: "LEASEHOLD_ETCD_PASSWORD_FILE " + missing + ": no such file or directory"},
	} {
		cfg, err := loadWith(t, tc.file, tc.env)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = cfg.openBackend(t.Context(), slog.New(slog.DiscardHandler))
		if err == nil || !isUsage(err) || !strings.Contains(err.Error(), tc.want) || (tc.env != nil && regexp.MustCompile(`line \d+:`).MatchString(err.Error())) {
			t.Errorf("%q %v: err = %v, want a usage error containing %q", tc.file, tc.env, err, tc.want)
		}
	}
}

// There is no block, backend name, flag or variable for a backend that does
// not exist yet: kube and consul are unknown backends.
func TestNoBlockForMissingBackends(t *testing.T) {
	want := `unknown backend "%s" (want ` + backendNames() + `)`
	for _, b := range []string{"kube", "consul"} {
		if backendNamed(b) != nil {
			continue // it has landed
		}
		for _, tc := range []struct {
			file string
			env  map[string]string
			args []string
			want string
		}{
			{file: "backend: " + b + "\nname: x\n", want: "line 1: backend: " + fmt.Sprintf(want, b)},
			{file: "name: x\n" + b + ": {namespace: default}\n", want: "line 2: " + b + ": " + fmt.Sprintf(want, b)},
			{file: "name: x\n" + b + ":\n  address: a\n", want: "line 2: " + b + ": " + fmt.Sprintf(want, b)},
			{file: "name: x\n", env: map[string]string{"LEASEHOLD_BACKEND": b}, want: "LEASEHOLD_BACKEND: " + fmt.Sprintf(want, b)},
			{file: "name: x\n", args: []string{"--backend", b}, want: "--backend: " + fmt.Sprintf(want, b)},
		} {
			_, err := loadWith(t, tc.file, tc.env, tc.args...)
			if err == nil || !isUsage(err) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%q %v %v: err = %v, want a usage error containing %q", tc.file, tc.env, tc.args, err, tc.want)
			}
		}
	}
	if backendNamed("kube") != nil {
		return // --namespace is its flag now
	}
	if _, err := loadWith(t, "name: x\n", nil, "--namespace", "default"); err == nil || !isUsage(err) {
		t.Errorf("--namespace (the kube backend's flag): err = %v, want a usage error", err)
	}
}

// Every key of the backends table is a key of its backend's Config, and
// every variable and flag is used once.
func TestBackendTable(t *testing.T) {
	seen := map[string]bool{}
	for _, ev := range envVars() {
		if seen[ev] || !strings.HasPrefix(ev, "LEASEHOLD_") {
			t.Errorf("variable %s: given twice or not LEASEHOLD_*", ev)
		}
		seen[ev] = true
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	addConfigFlags(fs, candidate) // panics on a flag defined twice
	for _, b := range backends {
		if b.name == "" || backendNamed(b.name) == nil {
			t.Errorf("backend %q", b.name)
		}
		cfg := b.newConfig()
		if err := b.validate(cfg); err != nil {
			t.Errorf("%s: the default config is invalid: %v", b.name, err)
		}
		for _, k := range b.keys {
			if err := yamlx.SetText(cfg, k.key, ""); err != nil {
				t.Errorf("%s: table key %q: %v", b.name, k.key, err)
			}
			if k.env != "LEASEHOLD_"+strings.ToUpper(strings.ReplaceAll(b.name+"_"+k.key, ".", "_")) {
				t.Errorf("%s.%s: variable %s does not follow LEASEHOLD_<BACKEND>_<KEY>", b.name, k.key, k.env)
			}
			if k.flag != "" && fs.Lookup(k.flag) == nil {
				t.Errorf("%s.%s: flag --%s not defined", b.name, k.key, k.flag)
			}
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

// envSamples are values for every LEASEHOLD_* variable, with the value
// the key then has ("" means the value itself), for the example tests.
var envSamples = map[string][2]string{
	"LEASEHOLD_NAME":               {"from-env", ""},
	"LEASEHOLD_IDENTITY":           {"pod-7", ""},
	"LEASEHOLD_LEASE_DURATION":     {"20s", ""},
	"LEASEHOLD_RENEW_DEADLINE":     {"11s", ""},
	"LEASEHOLD_RETRY_PERIOD":       {"1s", ""},
	"LEASEHOLD_RELEASE_ON_CANCEL":  {"false", ""},
	"LEASEHOLD_ETCD_ENDPOINTS":     {"e1:2379, e2:2379", "e1:2379,e2:2379"},
	"LEASEHOLD_ETCD_PREFIX":        {"/env/", ""},
	"LEASEHOLD_ETCD_USERNAME":      {"env-user", ""},
	"LEASEHOLD_ETCD_PASSWORD_FILE": {"/run/secrets/etcd-password", ""},
	"LEASEHOLD_CONSUL_ADDRESS":     {"consul.internal:8501", ""},
	"LEASEHOLD_CONSUL_TOKEN_FILE":  {"/run/secrets/consul-token", ""},
	"LEASEHOLD_KUBE_KUBECONFIG":    {"/etc/kube/config", ""},
	"LEASEHOLD_KUBE_CONTEXT":       {"prod", ""},
	"LEASEHOLD_KUBE_NAMESPACE":     {"jobs", ""},
	// LEASEHOLD_BACKEND: the other backend than the file's (below).
}

// envKey is the key a LEASEHOLD_* variable sets.
func envKey(ev string) string {
	for _, ek := range envKeys {
		if ek.env == ev {
			return ek.key
		}
	}
	for _, b := range backends {
		for _, k := range b.keys {
			if k.env == ev {
				return b.name + "." + k.key
			}
		}
	}
	return ""
}

// keyValue is the value of key in cfg, as text.
func keyValue(t *testing.T, cfg config, key string) string {
	t.Helper()
	switch key {
	case "backend":
		return cfg.Backend
	case "name":
		return cfg.Name
	case "identity":
		return cfg.Identity
	case "lease.duration":
		return cfg.Lease.LeaseDuration.String()
	case "lease.renew_deadline":
		return cfg.Lease.RenewDeadline.String()
	case "lease.retry_period":
		return cfg.Lease.RetryPeriod.String()
	case "lease.release_on_cancel":
		return fmt.Sprint(cfg.Lease.ReleaseOnCancel)
	}
	name, rest, _ := strings.Cut(key, ".")
	v := reflect.ValueOf(cfg.backendConfigs[name])
	if !v.IsValid() {
		t.Fatalf("no backend %q for key %s", name, key)
	}
	v = v.Elem()
	for _, part := range strings.Split(rest, ".") {
		found := false
		for i := range v.NumField() {
			if tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); tag == part {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			t.Fatalf("key %s: no field %q", key, part)
		}
	}
	if s, ok := v.Interface().([]string); ok {
		return strings.Join(s, ",")
	}
	return fmt.Sprint(v.Interface())
}

// The documented example configs load as they are, and every LEASEHOLD_*
// variable wins over them — LEASEHOLD_IDENTITY over identity: "" too —
// while an empty variable leaves the file's value alone.
func TestExampleConfigs(t *testing.T) {
	files, _ := filepath.Glob("../../docs/config/*.yaml")
	if len(files) < 2 {
		t.Fatalf("found %d example configs", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			base, err := loadWith(t, string(data), nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimSuffix(filepath.Base(f), ".yaml"); base.Backend != want {
				t.Errorf("backend %q, want %q (the file's name)", base.Backend, want)
			}
			all := map[string]string{}
			for _, ev := range envVars() {
				key := envKey(ev)
				sample, ok := envSamples[ev]
				if ev == "LEASEHOLD_BACKEND" {
					sample, ok = [2]string{"memory", ""}, true
					if base.Backend == "memory" {
						sample[0] = "etcd"
					}
				}
				if !ok {
					t.Fatalf("no sample value for %s: add one to envSamples", ev)
				}
				want := sample[1]
				if want == "" {
					want = sample[0]
				}
				all[ev] = sample[0]
				cfg, err := loadWith(t, string(data), map[string]string{ev: sample[0]})
				if err != nil {
					t.Errorf("%s=%s: %v", ev, sample[0], err)
					continue
				}
				if got := keyValue(t, cfg, key); got != want || cfg.name(key) != ev {
					t.Errorf("%s=%s: %s is %q (named %s), want %q: the variable does not win over the file", ev, sample[0], key, got, cfg.name(key), want)
				}
				cfg, err = loadWith(t, string(data), map[string]string{ev: ""})
				if err != nil {
					t.Fatal(err)
				}
				if key != "identity" && keyValue(t, cfg, key) != keyValue(t, base, key) {
					t.Errorf("%s empty: %s is %q, want the file's %q", ev, key, keyValue(t, cfg, key), keyValue(t, base, key))
				}
			}
			cfg, err := loadWith(t, string(data), all)
			if err != nil {
				t.Fatalf("every variable at once: %v", err)
			}
			if cfg.Identity != "pod-7" || cfg.Lease.Identity != "pod-7" {
				t.Errorf("every variable at once: identity %q", cfg.Lease.Identity)
			}
			// A flag still wins over the variable.
			cfg, err = loadWith(t, string(data), all, "--id", "from-flag")
			if err != nil || cfg.Lease.Identity != "from-flag" {
				t.Errorf("--id over LEASEHOLD_IDENTITY: %q, %v", cfg.Lease.Identity, err)
			}
		})
	}
}

// docs/config.md's table of variables lists exactly the ones the CLI reads.
func TestDocumentedVariables(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "| `LEASEHOLD_") {
			cell, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
			for _, v := range regexp.MustCompile(`LEASEHOLD_[A-Z_]+`).FindAllString(cell, -1) {
				documented[v] = true
			}
		}
	}
	for _, ev := range envVars() {
		if !documented[ev] {
			t.Errorf("%s is not in docs/config.md's table", ev)
		}
		delete(documented, ev)
	}
	for ev := range documented {
		t.Errorf("docs/config.md documents %s, which leasehold does not read", ev)
	}
}

// docs/deploy/kubernetes.yaml works as its header says: its configs load
// with the kube backend, with the pod's name as identity. (Its Roles are
// applied to a real apiserver by backend/kube's TestDocumentedRole.)
func TestKubernetesManifest(t *testing.T) {
	data, err := os.ReadFile("../../docs/deploy/kubernetes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kube backend", "resourceNames", "client-go"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("the header does not say %q", want)
		}
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	configs := map[string]string{}
	var args [][]string
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct {
							Command []string `yaml:"command"`
							Ports   []struct {
								Name string `yaml:"name"`
								Port int    `yaml:"containerPort"`
							} `yaml:"ports"`
							LivenessProbe struct {
								HTTPGet struct {
									Port string `yaml:"port"`
								} `yaml:"httpGet"`
							} `yaml:"livenessProbe"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&doc); err != nil {
			if err == io.EOF {
				break
			}
			t.Fatal(err)
		}
		if doc.Kind == "ConfigMap" {
			for k, v := range doc.Data {
				configs[k] = v
			}
		}
		for _, c := range doc.Spec.Template.Spec.Containers {
			if len(c.Command) > 1 && strings.HasSuffix(c.Command[0], "/leasehold") {
				args = append(args, c.Command[1:])
				// The kubelet probes the pod's IP: the probe address is
				// there, the leader API (if any) on localhost only.
				probePort := 0
				for _, p := range c.Ports {
					if p.Name == c.LivenessProbe.HTTPGet.Port {
						probePort = p.Port
					}
				}
				want := fmt.Sprintf("--probe-http=$(POD_IP):%d", probePort)
				if !slices.Contains(c.Command, want) {
					t.Errorf("%v: the liveness probe's port %q (%d) is not served by %s", c.Command, c.LivenessProbe.HTTPGet.Port, probePort, want)
				}
				for _, a := range c.Command {
					if strings.HasPrefix(a, "--http=") && !strings.HasPrefix(a, "--http=127.0.0.1:") {
						t.Errorf("%v: %s: the leader API should stay on localhost", c.Command, a)
					}
				}
			}
		}
	}
	if len(configs) < 2 || len(args) < 2 {
		t.Fatalf("found %d configs and %d leasehold commands", len(configs), len(args))
	}
	for _, a := range args {
		var file string
		var flags []string
		for _, arg := range a {
			if arg == "--" { // the command leasehold runs
				break
			}
			switch {
			case strings.HasPrefix(arg, "--config=/etc/leasehold/"):
				file = configs[strings.TrimPrefix(arg, "--config=/etc/leasehold/")]
			case strings.HasPrefix(arg, "--id="):
				flags = append(flags, strings.ReplaceAll(arg, "$(POD_NAME)", "web-7f9c"))
			}
		}
		if file == "" {
			t.Fatalf("%v: its --config is not in the ConfigMap", a)
		}
		cfg, err := loadWith(t, file, nil, flags...)
		if err != nil || cfg.Backend != "kube" || cfg.Lease.Identity != "web-7f9c" {
			t.Errorf("%v: backend %q identity %q, %v; want kube, web-7f9c", a, cfg.Backend, cfg.Lease.Identity, err)
		}
	}
}

// kubectl users type -n for the namespace: it is --namespace.
func TestNamespaceShorthand(t *testing.T) {
	cfg, err := loadWith(t, "backend: kube\nname: x\n", nil, "-n", "prod")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.backendConfigs["kube"].(*kube.Config).Namespace; got != "prod" {
		t.Errorf("-n prod: namespace %q", got)
	}
}
