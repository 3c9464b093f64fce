package kube

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// initTrace builds a program that imports only this package and returns
// the packages its start initialises, in order (GODEBUG=inittrace=1). The
// program's one file is an overlay, so nothing is written into the tree.
func initTrace(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	prog := "package main\n\nimport _ \"github.com/leasehold-go/leasehold/backend/kube\"\n\nfunc main() {}\n"
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	overlay, err := json.Marshal(map[string]map[string]string{
		"Replace": {filepath.Join(wd, "initprobe", "main.go"): src}})
	if err != nil {
		t.Fatal(err)
	}
	ov := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(ov, overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "probe")
	if out, err := exec.Command("go", "build", "-overlay", ov, "-o", bin, "./initprobe").CombinedOutput(); err != nil {
		t.Fatalf("building a program that imports the kube backend: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var trace bytes.Buffer
	cmd.Stderr = &trace
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, trace.String())
	}
	var pkgs []string
	sc := bufio.NewScanner(&trace)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 1 && f[0] == "init" {
			pkgs = append(pkgs, f[1])
		}
	}
	if len(pkgs) == 0 {
		t.Fatalf("no init trace:\n%s", trace.String())
	}
	return pkgs
}

// A program that uses the kube backend does not pay, when it starts, for
// client-go's clientset: its scheme of every API group and the API groups
// themselves. Only coordination.k8s.io is linked.
func TestStartInitialisesLeasesOnly(t *testing.T) {
	pkgs := initTrace(t)
	for _, p := range pkgs {
		switch {
		case strings.HasPrefix(p, "k8s.io/client-go/kubernetes"),
			strings.HasPrefix(p, "k8s.io/client-go/applyconfigurations"),
			strings.HasPrefix(p, "k8s.io/api/") && !strings.HasPrefix(p, "k8s.io/api/coordination/"),
			strings.HasPrefix(p, "github.com/google/gnostic-models"),
			p == "sigs.k8s.io/structured-merge-diff/v6/typed", // schemas parsed at start
			p == "encoding/xml":
			t.Errorf("the start of a program importing the kube backend initialises %s", p)
		}
	}
	t.Logf("%d packages initialised", len(pkgs))
}
