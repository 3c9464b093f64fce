package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

// TestBadCommandLines: a bad command line is a usage error (exit status 2)
// that says what is wrong, and nothing is opened.
func TestBadCommandLines(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-backend", "zookeeper"}, `-backend "zookeeper": want memory, etcd, consul or kube`},
		{[]string{"-etcd-endpoints", "10.0.0.1:2379"}, "-etcd-endpoints is a flag of -backend etcd, not of -backend memory"},
		{[]string{"-backend", "etcd", "-kubeconfig", "x"}, "-kubeconfig is a flag of -backend kube, not of -backend etcd"},
		{[]string{"-backend", "kube", "-consul-address", "x:1"}, "-consul-address is a flag of -backend consul, not of -backend kube"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"-no-such-flag"}, "flag provided but not defined: -no-such-flag"},
	} {
		err := run(context.Background(), c.args, io.Discard)
		var usage usageError
		if !errors.As(err, &usage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("run %q: err = %v, want a usage error saying %q", c.args, err, c.want)
		}
	}
	if err := run(context.Background(), []string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("run -h: err = %v, want flag.ErrHelp (exit status 0)", err)
	}
}

// TestUnreachableStore: a store that does not answer is an error naming
// the backend and the lock, not a retry loop; a stop while connecting is a
// clean stop.
func TestUnreachableStore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := run(ctx, []string{"-backend", "etcd", "-etcd-endpoints", "127.0.0.1:1"}, io.Discard); err != nil {
		t.Errorf("stopped while connecting: err = %v, want nil", err)
	}
	err := run(context.Background(), []string{"-backend", "consul", "-consul-address", "127.0.0.1:1"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `opening lock "example-controller" on the consul backend`) {
		t.Errorf("no agent at 127.0.0.1:1: err = %v", err)
	}
}
