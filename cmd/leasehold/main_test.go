package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestDemo(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"demo", "--lease-duration", "1s", "--renew-deadline", "700ms",
		"--retry-period", "200ms", "--hold", "300ms"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"leads (term 1)", "leads (term 2)", "leads (term 3)", "handoff from",
		"stepped down", "failover from", "two leaders at once: false"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"stauts"}, `unknown command "stauts" (did you mean status?)`},
		{[]string{"demo", "--nodes", "1"}, "--nodes must be at least 2"},
		{[]string{"demo", "--nodes", "x"}, `--nodes: "x" is not a whole number`},
		{[]string{"demo", "--renew-deadline", "5s"}, "LeaseDuration (2s) must be greater than RenewDeadline (5s)"},
		{[]string{"demo", "--lease-duration", "soon"}, `--lease-duration: "soon" is not a duration (write it like 15s`},
		{[]string{"demo", "-nodes", "1"}, "-nodes: write long flags with two dashes: --nodes"},
		{[]string{"demo", "--bogus"}, "unknown flag: --bogus (leasehold demo --help lists the flags)"},
		{[]string{"runn", "--config", "x"}, `unknown command "runn" (did you mean run?)`},
		{[]string{"--bogus"}, "unknown flag: --bogus (leasehold --help lists the flags)"},
		{[]string{"demo", "extra"}, `unexpected argument "extra"`},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), tc.args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", tc.args, code)
		}
		if !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: stderr %q lacks %q", tc.args, errb.String(), tc.want)
		}
	}
}
