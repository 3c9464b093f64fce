//go:build tools

// Package tools makes the consul agent a dependency of this module, so that
// `go build github.com/hashicorp/consul` builds the pinned one.
package tools

import _ "github.com/hashicorp/consul"
