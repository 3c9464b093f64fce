//go:build tools

// Package tools makes kube-apiserver a dependency of this module, so that
// `go build k8s.io/kubernetes/cmd/kube-apiserver` builds the pinned one.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
