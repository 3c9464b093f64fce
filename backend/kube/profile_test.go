package kube_test

import (
	"context"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/kube"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/storeprofile"
	"github.com/leasehold-go/leasehold/sim"
)

// TestProfile measures the figures of the simulator's kube profile
// (sim.Profiles["kube"]) on the real kube-apiserver and checks that the
// table still describes it, within a factor of 3. Print them with
//
//	cd backend/kube && go test -run TestProfile -v .
//
// The measuring is internal/storeprofile's, as for etcd and consul.
func TestProfile(t *testing.T) {
	c, w := client(t, nil), client(t, nil) // the follower watches on a client of its own
	rc := admin(t).Discovery().RESTClient()
	// A client of its own for each saturating writer: one client is held
	// to kube.QPS.
	var clients []*kube.Client
	for range 8 {
		clients = append(clients, client(t, nil))
	}
	next := 0
	lock := func(name string) elector.Backend {
		if next == 0 {
			next++
			return c.Lock(name)
		}
		next++
		return clients[(next-2)%len(clients)].Lock(name)
	}
	storeprofile.Test(t, storeprofile.Store{
		Name: "kube", Table: sim.Profiles["kube"], N: 80, Gap: 25 * time.Millisecond,
		NewLock: lock,
		Watcher: func(name string) elector.Watcher { return w.Lock(name) },
		Ping: func(ctx context.Context) error {
			return rc.Get().AbsPath("/healthz").Do(ctx).Error()
		},
	})
}
