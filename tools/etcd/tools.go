//go:build tools

// Package tools pins the etcd server that the etcd backend tests run
// against, and etcdutl of the same release (snapshot restore);
// scripts/test builds them into .cache/bin/etcd and .cache/bin/etcdutl.
package tools

import (
	_ "go.etcd.io/etcd/etcdutl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
