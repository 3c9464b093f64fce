//go:build !clientgo

package benchreal

import "errors"

// The comparison with client-go's leaderelection (bench backend on
// Kubernetes) is built only with the build tag clientgo (go build -tags
// clientgo ./cmd/leasehold). client-go's leaderelection reaches its typed
// clients (resourcelock), which import k8s.io/client-go/kubernetes/scheme:
// linked, that registers every Kubernetes API group when the program
// starts, with the API types, their apply configurations and the OpenAPI
// models. No clientset can avoid it while the comparison uses client-go's
// own elector, and every leasehold command would pay for it at start, for
// a benchmark few people run: measured on this 2-core machine, the
// leasehold binary is 79 MB with it and 35 MB without, 21.8k against 10.4k
// allocations and 336 against 248 package initialisations at start, and
// `leasehold version` p50 60 ms against 45 ms in one interleaved run
// (docs/cli.md, Start-up, has the figures of the whole change). Without the
// tag, bench backend on Kubernetes measures leasehold alone only with
// --no-native and otherwise says how to build the comparison.

// clientGoImpl is ImplClientGo when this build has the client-go
// comparison, else "".
const clientGoImpl = ""

func newClientGoKind(o Options, run string) (kind, cleaner, error) {
	return nil, nil, errors.New("bench backend: the comparison with client-go is not in this build of leasehold: build it with `go build -tags clientgo ./cmd/leasehold`, or measure leasehold alone with --no-native")
}
