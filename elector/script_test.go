package elector

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of testdata/*.txt scripts")

// TestScripts runs the scripts in testdata: each block is one input to a
// Machine, a "----" line and the Output it must answer with. Run with
// -rewrite to regenerate the expected outputs after a deliberate change.
func TestScripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no scripts in testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runScript(t, f) })
	}
}

func runScript(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	var m *Machine
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		cmd := lines[i]
		if strings.TrimSpace(cmd) == "" || strings.HasPrefix(cmd, "#") {
			out.WriteString(cmd + "\n")
			continue
		}
		n := i + 1
		var expected []string
		if i+1 < len(lines) && lines[i+1] == "----" {
			for i += 2; i < len(lines) && lines[i] != ""; i++ {
				expected = append(expected, lines[i])
			}
		}
		got, err := apply(&m, cmd)
		if err != nil {
			t.Fatalf("%s:%d: %v", path, n, err)
		}
		if !*rewrite && strings.Join(expected, "\n") != got {
			t.Errorf("%s:%d: %s\n got: %s\nwant: %s", path, n, cmd, got, strings.Join(expected, "\n"))
		}
		fmt.Fprintf(&out, "%s\n----\n%s\n\n", cmd, got)
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// apply runs one script command: a verb and key=value arguments.
func apply(mp **Machine, cmd string) (string, error) {
	fields := strings.Fields(cmd)
	args := map[string]string{}
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		args[k] = v
	}
	dur := func(k string) time.Duration {
		d, _ := time.ParseDuration(args[k])
		return d
	}
	now := at(dur("t"))
	rec := Record{Holder: args["holder"], Instance: args["instance"], LeaseDuration: ld, AcquireTime: epoch, RenewTime: epoch}
	if args["ld"] != "" {
		rec.LeaseDuration = dur("ld")
	}
	rec.Term, _ = strconv.ParseInt(args["term"], 10, 64)
	ver := Version(args["ver"])
	var err error
	switch args["err"] {
	case "":
	case "notfound":
		err = ErrNotFound
	case "conflict":
		err = ErrConflict
	default:
		err = errors.New(args["err"])
	}
	if fields[0] == "new" {
		cfg := DefaultConfig(args["id"])
		cfg.Instance = args["instance"]
		cfg.ReleaseOnCancel = args["release"] != "false"
		f, _ := strconv.ParseFloat(args["rand"], 64)
		m, err := NewMachine(cfg, fixedRand(f), args["watch"] == "true")
		if err != nil {
			return "", err
		}
		*mp = m
		return "ok", nil
	}
	m := *mp
	if m == nil {
		return "", errors.New("no machine: start the script with new")
	}
	var o Output
	switch fields[0] {
	case "start":
		o = m.Start(now)
	case "tick":
		o = m.Tick(now)
	case "result":
		o = m.Result(now, rec, ver, err)
	case "watched":
		o = m.Watched(now, rec, ver, err)
	case "stop":
		o = m.Stop(now)
	case "workdone":
		o = m.WorkDone(now)
	default:
		return "", fmt.Errorf("unknown command %q", fields[0])
	}
	return show(o), nil
}
