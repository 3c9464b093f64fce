package servers

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// EtcdCluster is an etcd cluster of several members on loopback ports,
// all from the etcd binary Find finds, with their data under one temporary
// directory. A member can be killed (SIGKILL) and started again on its
// ports and data, paused (SIGSTOP) and resumed (SIGCONT); the whole
// cluster can be wiped or restored from a snapshot. Its methods may be
// called from any goroutine; they run one at a time.
type EtcdCluster struct {
	Version string // what the first member's /version said at the start

	dir     string
	members []*etcdMember

	mu      sync.Mutex
	token   string // --initial-cluster-token: new at every wipe
	wipes   int
	stopped bool
}

// etcdMember is one member of an EtcdCluster. Its fields other than cmd,
// exited and paused never change.
type etcdMember struct {
	name   string
	client string // http://127.0.0.1:PORT, also where /health and /metrics are
	peer   string
	data   string
	logs   *lockedBuffer
	memberProc
}

// clusterPatience bounds every wait for members to answer their health
// check: generous, for a loaded machine.
const clusterPatience = 30 * time.Second

// StartEtcdCluster starts an etcd cluster of n members (3 makes a cluster
// that survives one member down) on free loopback ports, and returns once
// every member answers its health check (the cluster has a leader). When
// the etcd binary cannot be found the error wraps ErrMissing.
func StartEtcdCluster(n int) (*EtcdCluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("servers: an etcd cluster of %d members", n)
	}
	bin, err := Find("etcd")
	if err != nil {
		return nil, err
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		// New ports and a new directory at every attempt: a port taken
		// between FreePort and etcd's listen makes a member exit.
		dir, err := os.MkdirTemp("", "leasehold-etcd-cluster-")
		if err != nil {
			return nil, err
		}
		c, err := startEtcdCluster(bin, dir, n)
		if err == nil {
			return c, nil
		}
		last = err
		os.RemoveAll(dir)
	}
	return nil, last
}

func startEtcdCluster(bin, dir string, n int) (*EtcdCluster, error) {
	c := &EtcdCluster{dir: dir, token: fmt.Sprintf("leasehold-%d-%d", os.Getpid(), time.Now().UnixNano())}
	for i := range n {
		client, err := FreePort()
		if err != nil {
			return nil, err
		}
		peer, err := FreePort()
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("m%d", i)
		c.members = append(c.members, &etcdMember{
			name:   name,
			client: fmt.Sprintf("http://127.0.0.1:%d", client),
			peer:   fmt.Sprintf("http://127.0.0.1:%d", peer),
			data:   filepath.Join(dir, name),
			logs:   &lockedBuffer{},
		})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.launch(bin, c.members...); err != nil {
		return nil, err
	}
	if v, err := healthClient.Get(c.members[0].client + "/version"); err == nil {
		vb := new(bytes.Buffer)
		vb.ReadFrom(v.Body)
		v.Body.Close()
		c.Version = vb.String()
	}
	return c, nil
}

// initialCluster is the --initial-cluster value: every member's name and
// peer URL.
func (c *EtcdCluster) initialCluster() string {
	var parts []string
	for _, m := range c.members {
		parts = append(parts, m.name+"="+m.peer)
	}
	return strings.Join(parts, ",")
}

// args are m's command line. A member started again on its data ignores
// the --initial-* flags: its data says which cluster it belongs to.
func (c *EtcdCluster) args(bin string, m *etcdMember) []string {
	return []string{bin,
		"--name", m.name,
		"--data-dir", m.data,
		"--listen-client-urls", m.client, "--advertise-client-urls", m.client,
		"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
		"--initial-cluster", c.initialCluster(),
		"--initial-cluster-state", "new",
		"--initial-cluster-token", c.token,
		"--log-level", "error",
		"--unsafe-no-fsync",
	}
}

// launch starts the members ms (all at once: a member of a cluster is
// healthy only once a quorum runs) and waits until each answers its health
// check; on failure the members ms are not left running. c.mu is held.
func (c *EtcdCluster) launch(bin string, ms ...*etcdMember) error {
	for _, m := range ms {
		if m.cmd != nil {
			continue
		}
		args := c.args(bin, m)
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdout, cmd.Stderr = m.logs, m.logs
		serverProcess(cmd)
		if err := cmd.Start(); err != nil {
			c.kill(ms...)
			return fmt.Errorf("servers: start etcd member %s: %w", m.name, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		m.cmd, m.exited, m.paused = cmd, exited, false
	}
	deadline := time.Now().Add(clusterPatience)
	for {
		ready := true
		for _, m := range ms {
			select {
			case err := <-m.exited:
				m.cmd, m.exited = nil, nil
				c.kill(ms...)
				return fmt.Errorf("servers: etcd member %s exited during start: %v\n%s", m.name, err, m.logs.String())
			default:
			}
			if !memberHealthy(m.client) {
				ready = false
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			c.kill(ms...)
			var logs []string
			for _, m := range ms {
				logs = append(logs, m.name+": "+m.logs.String())
			}
			return fmt.Errorf("servers: etcd members did not become healthy within %v\n%s", clusterPatience, strings.Join(logs, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// memberHealthy reports whether the member at client says it is healthy
// (it has a leader and answers).
func memberHealthy(client string) bool {
	resp, err := healthClient.Get(client + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body := new(bytes.Buffer)
	body.ReadFrom(resp.Body)
	return resp.StatusCode == http.StatusOK && strings.Contains(body.String(), `"health":"true"`)
}

// kill SIGKILLs the members ms (paused ones too) and waits for them to
// exit. c.mu is held.
func (c *EtcdCluster) kill(ms ...*etcdMember) {
	for _, m := range ms {
		m.kill()
	}
}

// member returns member i, or an error when there is none or the cluster
// was stopped. c.mu is held.
func (c *EtcdCluster) member(i int) (*etcdMember, error) {
	if c.stopped {
		return nil, errors.New("servers: the etcd cluster was stopped")
	}
	if i < 0 || i >= len(c.members) {
		return nil, fmt.Errorf("servers: no etcd member %d (of %d)", i, len(c.members))
	}
	return c.members[i], nil
}

// Size is the number of members.
func (c *EtcdCluster) Size() int { return len(c.members) }

// Endpoints are the members' client URLs, in member order: give a client
// all of them.
func (c *EtcdCluster) Endpoints() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.client
	}
	return out
}

// Endpoint is member i's client URL.
func (c *EtcdCluster) Endpoint(i int) string { return c.members[i].client }

// Leader returns the index of the member that says it leads the cluster
// (etcd_server_is_leader on its /metrics), asking the running members
// that are not paused; -1 when none says so.
func (c *EtcdCluster) Leader() int {
	c.mu.Lock()
	var up []int
	for i, m := range c.members {
		if m.cmd != nil && !m.paused {
			up = append(up, i)
		}
	}
	c.mu.Unlock()
	for _, i := range up {
		if isLeader(c.members[i].client) {
			return i
		}
	}
	return -1
}

// WaitLeader waits, for at most limit, until a running member other than
// except (-1 for none) says it leads and answers its health check, and
// returns its index.
func (c *EtcdCluster) WaitLeader(except int, limit time.Duration) (int, error) {
	deadline := time.Now().Add(limit)
	for {
		if l := c.Leader(); l >= 0 && l != except && memberHealthy(c.members[l].client) {
			return l, nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("servers: no etcd member (other than %d) leads within %v", except, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitHealthy waits, for at most limit, until member i answers its
// health check (it runs, is not paused, and the cluster has a leader).
func (c *EtcdCluster) WaitHealthy(i int, limit time.Duration) error {
	if i < 0 || i >= len(c.members) {
		return fmt.Errorf("servers: no etcd member %d (of %d)", i, len(c.members))
	}
	deadline := time.Now().Add(limit)
	for !memberHealthy(c.members[i].client) {
		if time.Now().After(deadline) {
			return fmt.Errorf("servers: etcd member %s not healthy within %v", c.members[i].name, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// isLeader reports whether the member at client says it leads.
func isLeader(client string) bool {
	resp, err := healthClient.Get(client + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "etcd_server_is_leader ") {
			return strings.TrimSpace(strings.TrimPrefix(line, "etcd_server_is_leader ")) == "1"
		}
	}
	return false
}

// Kill SIGKILLs member i and waits for it to exit, keeping its ports and
// data for Start: a crash of that member. Killing a member that is down
// does nothing.
func (c *EtcdCluster) Kill(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.member(i)
	if err != nil {
		return err
	}
	c.kill(m)
	return nil
}

// Start starts killed member i again on its ports and data, and returns
// once it answers its health check (it rejoined a cluster with a leader).
func (c *EtcdCluster) Start(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.member(i)
	if err != nil {
		return err
	}
	if m.cmd != nil {
		return fmt.Errorf("servers: etcd member %s is already running", m.name)
	}
	bin, err := Find("etcd")
	if err != nil {
		return err
	}
	return c.launch(bin, m)
}

// Restart kills member i and starts it again on its ports and data, as a
// crash and restart of that member: Kill then Start.
func (c *EtcdCluster) Restart(i int) error {
	if err := c.Kill(i); err != nil {
		return err
	}
	return c.Start(i)
}

// Pause stops member i with SIGSTOP: it keeps its connections open and
// answers nothing (a process stalled, a VM frozen) until Resume.
func (c *EtcdCluster) Pause(i int) error {
	return c.signal(i, true)
}

// Resume continues paused member i with SIGCONT.
func (c *EtcdCluster) Resume(i int) error {
	return c.signal(i, false)
}

func (c *EtcdCluster) signal(i int, pause bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.member(i)
	if err != nil {
		return err
	}
	return m.pause(pause, "etcd member "+m.name)
}

// Wipe kills every member, removes all their data and starts them again on
// the same ports as a new cluster (a new cluster token): revisions start
// over at 1, as a store whose volumes were lost comes back. It returns once
// every member answers its health check.
func (c *EtcdCluster) Wipe() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errors.New("servers: the etcd cluster was stopped")
	}
	bin, err := Find("etcd")
	if err != nil {
		return err
	}
	c.kill(c.members...)
	for _, m := range c.members {
		if err := os.RemoveAll(m.data); err != nil {
			return fmt.Errorf("servers: wipe etcd member %s: %w", m.name, err)
		}
	}
	c.wipes++
	c.token = fmt.Sprintf("%s-w%d", c.token, c.wipes)
	if err := c.launch(bin, c.members...); err != nil {
		return fmt.Errorf("servers: start the wiped etcd cluster: %w", err)
	}
	return nil
}

// Restore kills every member, replaces each one's data with the snapshot
// file (as saved by a client's Maintenance.Snapshot or `etcdctl snapshot
// save`), restored by `etcdutl snapshot restore` (found as Find finds
// servers: an error wrapping ErrMissing when it is not, and the cluster
// is left as it was), and starts them again on the same ports as a new
// cluster: the store goes back to the snapshot's revision, which later
// writes hand out again. It returns once every member answers its health
// check.
func (c *EtcdCluster) Restore(snapshot string) error {
	utl, err := Find("etcdutl")
	if err != nil {
		return err
	}
	bin, err := Find("etcd")
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return errors.New("servers: the etcd cluster was stopped")
	}
	c.kill(c.members...)
	c.wipes++
	c.token = fmt.Sprintf("%s-r%d", c.token, c.wipes)
	for _, m := range c.members {
		if err := os.RemoveAll(m.data); err != nil {
			return fmt.Errorf("servers: restore etcd member %s: %w", m.name, err)
		}
		restore := exec.Command(utl, "snapshot", "restore", snapshot,
			"--data-dir", m.data,
			"--name", m.name,
			"--initial-cluster", c.initialCluster(),
			"--initial-cluster-token", c.token,
			"--initial-advertise-peer-urls", m.peer)
		if out, err := restore.CombinedOutput(); err != nil {
			return fmt.Errorf("servers: etcdutl snapshot restore %s for member %s: %v\n%s", snapshot, m.name, err, out)
		}
	}
	if err := c.launch(bin, c.members...); err != nil {
		return fmt.Errorf("servers: start the restored etcd cluster: %w", err)
	}
	return nil
}

// Logs returns what the members printed (errors only), member by member.
func (c *EtcdCluster) Logs() string {
	var b strings.Builder
	for _, m := range c.members {
		fmt.Fprintf(&b, "--- %s (%s)\n%s", m.name, m.client, m.logs.String())
	}
	return b.String()
}

// Stop kills every member (paused ones too) and removes their data; the
// cluster cannot be started again.
func (c *EtcdCluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	c.kill(c.members...)
	os.RemoveAll(c.dir)
}
