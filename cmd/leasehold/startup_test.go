package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// initOrder runs the binary with args under GODEBUG=inittrace=1 and returns
// the packages its start initialised, in order.
func initOrder(t testing.TB, args ...string) []string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var trace bytes.Buffer
	cmd.Stderr = &trace
	if err := cmd.Run(); err != nil {
		t.Fatalf("leasehold %s: %v\n%s", strings.Join(args, " "), err, trace.String())
	}
	var pkgs []string
	sc := bufio.NewScanner(&trace)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 1 && f[0] == "init" {
			pkgs = append(pkgs, f[1])
		}
	}
	return pkgs
}

// The stop signals are caught as soon as the process can: package
// stopsignal is initialised right after os/signal, before the store
// clients, the CLI library and main (a stop while those start is a clean
// stop, not the signal's default action). Go initialises a ready package
// before the others ready in the order of import paths, so only the
// runtime and the few packages that need nothing beyond it and sort before
// os/signal come first.
func TestStopSignalsCaughtFirst(t *testing.T) {
	if binErr != nil {
		t.Fatal(binErr)
	}
	pkgs := initOrder(t, "version")
	at := slices.Index(pkgs, "github.com/leasehold-go/leasehold/cmd/leasehold/internal/stopsignal")
	if at < 1 {
		t.Fatalf("package stopsignal is not initialised at start; the start initialises:\n%s", strings.Join(pkgs, "\n"))
	}
	if pkgs[at-1] != "os/signal" {
		t.Errorf("stopsignal is initialised after %s, not right after os/signal; before it:\n%s", pkgs[at-1], strings.Join(pkgs[:at], "\n"))
	}
	for _, p := range pkgs[:at] {
		if p == "main" || strings.HasPrefix(p, "github.com/leasehold-go/") || strings.HasPrefix(p, "k8s.io/") ||
			strings.HasPrefix(p, "go.etcd.io/") || strings.HasPrefix(p, "github.com/hashicorp/") {
			t.Errorf("%s is initialised before the stop signals are caught", p)
		}
	}
	t.Logf("stopsignal is package %d of %d initialised", at+1, len(pkgs))
}

// The binary's start does not initialise client-go's clientset, its
// scheme of every API group, the API groups other than coordination, the
// OpenAPI models or encoding/xml: no command uses them (the kube backend
// has its own small scheme; bench backend's comparison with client-go is
// built only with the tag clientgo, benchreal/clientgo_off.go).
func TestStartInitialisesNoClientset(t *testing.T) {
	if binErr != nil {
		t.Fatal(binErr)
	}
	pkgs := initOrder(t, "version")
	for _, p := range pkgs {
		switch {
		case strings.HasPrefix(p, "k8s.io/client-go/kubernetes"),
			strings.HasPrefix(p, "k8s.io/client-go/applyconfigurations"),
			strings.HasPrefix(p, "k8s.io/client-go/tools/leaderelection"),
			strings.HasPrefix(p, "k8s.io/api/") && !strings.HasPrefix(p, "k8s.io/api/coordination/"),
			strings.HasPrefix(p, "github.com/google/gnostic-models"),
			p == "sigs.k8s.io/structured-merge-diff/v6/typed",
			p == "encoding/xml":
			t.Errorf("leasehold's start initialises %s", p)
		}
	}
	t.Logf("%d packages initialised", len(pkgs))
}

// BenchmarkStart measures what starting leasehold costs a script: the time
// from starting the process to its exit, for `leasehold version`, a
// one-shot `leasehold status` on the in-memory store (the start, the
// config and a read, nothing on the network) and on the test's etcd, and,
// in the same run and interleaved with them, a hello-world Go program
// built by the benchmark (what any Go binary costs on this machine).
// ns/op is one round of the four; the metrics are each command's p50 and
// p90 in ms. Run it on a quiet machine:
//
//	go test -run '^$' -bench Start -benchtime 200x ./cmd/leasehold
func BenchmarkStart(b *testing.B) {
	needBinaryAndEtcd(b)
	hello := buildHello(b)
	cfg, _ := writeConfig(b, "")
	cmds := []struct {
		name  string
		path  string
		args  []string
		codes []int // the exit statuses it may end with
	}{
		{"hello", hello, nil, []int{0}},
		{"version", binary, []string{"version"}, []int{0}},
		{"status-memory", binary, []string{"status", "--backend", "memory", "--name", "bench"}, []int{exitNoLeader}},
		{"status-etcd", binary, []string{"status", "--config", cfg}, []int{exitNoLeader}},
	}
	took := make([][]time.Duration, len(cmds))
	b.ResetTimer()
	for range b.N {
		for i, c := range cmds {
			cmd := exec.Command(c.path, c.args...)
			start := time.Now()
			err := cmd.Run()
			d := time.Since(start)
			if code := cmd.ProcessState.ExitCode(); !slices.Contains(c.codes, code) {
				b.Fatalf("%s: %v, want exit status %v", c.name, err, c.codes)
			}
			took[i] = append(took[i], d)
		}
	}
	b.StopTimer()
	for i, c := range cmds {
		ds := took[i]
		slices.Sort(ds)
		q := func(p float64) float64 { return float64(ds[int(p*float64(len(ds)-1))]) / 1e6 }
		b.ReportMetric(q(0.5), c.name+"-p50-ms")
		b.ReportMetric(q(0.9), c.name+"-p90-ms")
	}
}

// buildHello builds a program that prints hello and exits.
func buildHello(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	files := map[string]string{
		"go.mod":  "module hello\n\ngo 1.26\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "hello")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatal(fmt.Errorf("building hello: %v\n%s", err, out))
	}
	return bin
}
