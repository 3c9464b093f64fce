package consul_test

import (
	"context"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/storeprofile"
	"github.com/leasehold-go/leasehold/sim"
)

// TestProfile checks sim.Profiles["consul"] against the real Consul agent
// (within a factor of 3) with internal/storeprofile, which backend/etcd's
// and backend/kube's TestProfile share; the profile's work start and stop
// are the etcd module's to measure. Print the figures with
//
//	cd backend/consul && go test -run TestProfile -v .
func TestProfile(t *testing.T) {
	status := apiClient(t, need(t).Address, "", nil).Status() // the ping: the agent's Raft leader
	c, w := client(t, nil), client(t, nil)                    // the follower watches on a client of its own
	storeprofile.Test(t, storeprofile.Store{
		Name: "consul", Table: sim.Profiles["consul"], N: 80, Gap: 25 * time.Millisecond,
		NewLock: func(name string) elector.Backend { return c.Lock(name) },
		Watcher: func(name string) elector.Watcher { return w.Lock(name) },
		Ping: func(context.Context) error {
			_, err := status.Leader()
			return err
		},
	})
}
