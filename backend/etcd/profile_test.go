package etcd_test

import (
	"context"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/memory"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/storeprofile"
	"github.com/leasehold-go/leasehold/sim"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The measuring and checking are internal/storeprofile's, shared with the
// consul and kube modules' TestProfile; this module's also measure
// `leasehold run`'s work's start and stop (the other stores' profiles take
// them from etcd's).

// TestProfile measures the figures of the simulator's etcd profile
// (sim.Profiles["etcd"]) on the real etcd, and the work's start and stop,
// and checks that the table still describes them, within a factor of 3
// (a shared machine moves figures by tens of percent). Print them with
//
//	cd backend/etcd && go test -run TestProfile -v .
func TestProfile(t *testing.T) {
	c, raw := client(t), rawClient(t)
	w := client(t) // the follower watches on a client of its own
	storeprofile.Test(t, storeprofile.Store{
		Name: "etcd", Table: sim.Profiles["etcd"], N: 80, Gap: 25 * time.Millisecond, Work: true,
		NewLock: func(name string) elector.Backend { return c.Lock(name) },
		Watcher: func(name string) elector.Watcher { return w.Lock(name) },
		Ping: func(ctx context.Context) error {
			_, err := raw.Get(ctx, "/leasehold-profile-ping", clientv3.WithSerializable())
			return err
		},
	})
}

// TestProfileMemory measures the memory profile (sim.Profiles["memory"]):
// the in-process store of `leasehold run --backend memory`, no network.
//
//	cd backend/etcd && go test -run TestProfileMemory -v .
func TestProfileMemory(t *testing.T) {
	st := memory.New()
	storeprofile.Test(t, storeprofile.Store{
		Name: "memory", Table: sim.Profiles["memory"], N: 200, Gap: 200 * time.Microsecond, Work: true,
		NewLock: func(name string) elector.Backend { return st.Backend(name, "writer") },
		Watcher: func(name string) elector.Watcher { return st.Backend(name, "watcher") },
		Ping:    func(context.Context) error { return nil },
	})
}
