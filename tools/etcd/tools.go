//go:build tools

// Package tools pins the etcd server that the etcd backend tests run
// against; scripts/test builds it into .cache/bin/etcd.
package tools

import _ "go.etcd.io/etcd/server/v3"
