package servers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// consulClusterSize is the number of servers of a ConsulCluster: the
// smallest cluster that survives one server down.
const consulClusterSize = 3

// ConsulCluster is a cluster of three Consul servers on loopback ports, all
// from the consul binary Find finds, each with its own data directory under
// one temporary directory (a server keeps its data across Kill and Start).
// A server can be killed (SIGKILL) and started again on its ports and data,
// paused (SIGSTOP) and resumed (SIGCONT). Autopilot does not remove a dead
// server, so the cluster keeps three voters whatever happens to one: a
// server down is a server the cluster waits for, not one it forgets. Its
// methods may be called from any goroutine; the ones that change a server
// run one at a time.
type ConsulCluster struct {
	dir     string
	members []*consulMember

	mu      sync.Mutex
	stopped bool
}

// consulMember is one server of a ConsulCluster. Its fields other than
// cmd, exited and paused never change.
type consulMember struct {
	name   string
	http   string // 127.0.0.1:PORT, the HTTP API
	server string // 127.0.0.1:PORT, the RPC and raft address /v1/status/leader names
	config string // its configuration file
	logs   *lockedBuffer
	memberProc
}

// consulProbeKey is the key readiness checks write: outside every prefix
// the tests use.
const consulProbeKey = "leasehold-servers/probe"

// StartConsulCluster starts three `consul agent -server
// -bootstrap-expect=3` on 127.0.0.1 (free ports for HTTP, server RPC, serf
// LAN and WAN; DNS, HTTPS and gRPC disabled), each joining the others, with
// the shortest raft timings Consul allows (raft_multiplier 1: a leader lost
// is replaced after about a second) and session_ttl_min 1s. It returns once
// the servers elected a leader and every one of them takes a KV write. When
// the consul binary cannot be found the error wraps ErrMissing.
func StartConsulCluster() (*ConsulCluster, error) {
	bin, err := Find("consul")
	if err != nil {
		return nil, err
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		// New ports and a new directory at every attempt: a port taken
		// between FreePort and consul's listen makes a server exit.
		dir, err := os.MkdirTemp("", "leasehold-consul-cluster-")
		if err != nil {
			return nil, err
		}
		c, err := startConsulCluster(bin, dir)
		if err == nil {
			return c, nil
		}
		last = err
		os.RemoveAll(dir)
	}
	return nil, last
}

func startConsulCluster(bin, dir string) (*ConsulCluster, error) {
	type ports struct{ http, server, lan, wan int }
	ps := make([]ports, consulClusterSize)
	for i := range ps {
		var ns [4]int
		for j := range ns {
			p, err := FreePort()
			if err != nil {
				return nil, err
			}
			ns[j] = p
		}
		ps[i] = ports{http: ns[0], server: ns[1], lan: ns[2], wan: ns[3]}
	}
	c := &ConsulCluster{dir: dir}
	for i, p := range ps {
		var join []string
		for j, q := range ps {
			if j != i {
				join = append(join, fmt.Sprintf("%q", fmt.Sprintf("127.0.0.1:%d", q.lan)))
			}
		}
		name := fmt.Sprintf("s%d", i)
		data := filepath.Join(dir, name)
		if err := os.MkdirAll(data, 0o700); err != nil {
			return nil, err
		}
		hcl := fmt.Sprintf(`server = true
bootstrap_expect = %d
node_name = "leasehold-test-%s-%d"
data_dir = %q
bind_addr = "127.0.0.1"
client_addr = "127.0.0.1"
advertise_addr = "127.0.0.1"
advertise_addr_wan = "127.0.0.1"
retry_join = [%s]
retry_interval = "200ms"
ports { http = %d, https = -1, dns = -1, grpc = -1, grpc_tls = -1, serf_lan = %d, serf_wan = %d, server = %d }
performance { raft_multiplier = 1 }
autopilot { cleanup_dead_servers = false }
session_ttl_min = "1s"
disable_update_check = true
log_level = "warn"
`, consulClusterSize, name, p.http, data, strings.Join(join, ", "), p.http, p.lan, p.wan, p.server)
		config := filepath.Join(dir, name+".hcl")
		if err := os.WriteFile(config, []byte(hcl), 0o600); err != nil {
			return nil, err
		}
		c.members = append(c.members, &consulMember{
			name:   name,
			http:   fmt.Sprintf("127.0.0.1:%d", p.http),
			server: fmt.Sprintf("127.0.0.1:%d", p.server),
			config: config,
			logs:   &lockedBuffer{},
		})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.launch(bin, c.members...); err != nil {
		return nil, err
	}
	return c, nil
}

// launch starts the servers ms (all at once: none has a leader before a
// quorum runs) and waits until each is ready (see ready); on failure the
// servers ms are not left running. c.mu is held.
func (c *ConsulCluster) launch(bin string, ms ...*consulMember) error {
	for _, m := range ms {
		if m.cmd != nil {
			continue
		}
		cmd := exec.Command(bin, "agent", "-config-file", m.config)
		cmd.Dir = c.dir
		cmd.Stdout, cmd.Stderr = m.logs, m.logs
		serverProcess(cmd)
		if err := cmd.Start(); err != nil {
			c.kill(ms...)
			return fmt.Errorf("servers: start consul server %s: %w", m.name, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		m.cmd, m.exited, m.paused = cmd, exited, false
	}
	if err := c.waitReady(ms...); err != nil {
		c.kill(ms...)
		return err
	}
	return nil
}

// waitReady waits, for at most clusterPatience, until every server of ms is
// ready; it fails at once when one exits. c.mu is held.
func (c *ConsulCluster) waitReady(ms ...*consulMember) error {
	deadline := time.Now().Add(clusterPatience)
	for {
		ready := true
		for _, m := range ms {
			if m.cmd == nil {
				return fmt.Errorf("servers: consul server %s is down", m.name)
			}
			select {
			case err := <-m.exited:
				m.cmd, m.exited, m.paused = nil, nil, false
				return fmt.Errorf("servers: consul server %s exited: %v\n%s", m.name, err, m.logs.String())
			default:
			}
			if ready && !c.ready(m) {
				ready = false
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			var logs []string
			for _, m := range ms {
				logs = append(logs, m.name+": "+m.logs.String())
			}
			return fmt.Errorf("servers: consul servers not ready within %v\n%s", clusterPatience, strings.Join(logs, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ready reports whether server m knows a leader, takes a KV write (which
// goes through the leader and a quorum) and is, as autopilot reports it, a
// healthy voter: alive, in contact with the leader and caught up with its
// log. A server that answers so far may still be behind; one autopilot
// calls healthy can go down next without costing the cluster its quorum.
func (c *ConsulCluster) ready(m *consulMember) bool {
	if leader, ok := consulLeader(m.http); !ok || leader == "" {
		return false
	}
	if body, code := consulDo(m.http, "PUT", "/v1/kv/"+consulProbeKey, m.name); code != http.StatusOK || strings.TrimSpace(body) != "true" {
		return false
	}
	body, code := consulDo(m.http, "GET", "/v1/operator/autopilot/health", "")
	if code != http.StatusOK && code != http.StatusTooManyRequests { // 429: some server is unhealthy
		return false
	}
	var health struct {
		Servers []struct {
			Address string
			Healthy bool
			Voter   bool
		}
	}
	if json.Unmarshal([]byte(body), &health) != nil {
		return false
	}
	for _, s := range health.Servers {
		if s.Address == m.server {
			return s.Healthy && s.Voter
		}
	}
	return false
}

// consulLeader returns what the server whose HTTP API is at addr answers
// on /v1/status/leader: the leader's server address, "" while there is
// none; ok is false when it does not answer.
func consulLeader(addr string) (leader string, ok bool) {
	body, code := consulDo(addr, "GET", "/v1/status/leader", "")
	if code != http.StatusOK {
		return "", false
	}
	return strings.Trim(strings.TrimSpace(body), `"`), true
}

// consulDo sends one request to the HTTP API at addr and returns the body
// (at most 64 KiB) and the status code, 0 when there was no answer.
func consulDo(addr, method, path, body string) (string, int) {
	req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		return "", 0
	}
	resp, err := healthClient.Do(req)
	if err != nil {
		return "", 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return string(b), resp.StatusCode
}

// kill SIGKILLs the servers ms (paused ones too) and waits for them to
// exit. c.mu is held.
func (c *ConsulCluster) kill(ms ...*consulMember) {
	for _, m := range ms {
		m.kill()
	}
}

// member returns server i, or an error when there is none or the cluster
// was stopped. c.mu is held.
func (c *ConsulCluster) member(i int) (*consulMember, error) {
	if c.stopped {
		return nil, errors.New("servers: the consul cluster was stopped")
	}
	if i < 0 || i >= len(c.members) {
		return nil, fmt.Errorf("servers: no consul server %d (of %d)", i, len(c.members))
	}
	return c.members[i], nil
}

// Size is the number of servers.
func (c *ConsulCluster) Size() int { return len(c.members) }

// Addresses are the servers' HTTP API addresses (127.0.0.1:PORT), in
// server order. A Consul client talks to one of them.
func (c *ConsulCluster) Addresses() []string {
	out := make([]string, len(c.members))
	for i, m := range c.members {
		out[i] = m.http
	}
	return out
}

// Address is server i's HTTP API address.
func (c *ConsulCluster) Address(i int) string { return c.members[i].http }

// Name is server i's name in the logs and messages (s0, s1, s2).
func (c *ConsulCluster) Name(i int) string { return c.members[i].name }

// LeaderMember returns the index of the server the running, unpaused
// servers name as the cluster's leader (/v1/status/leader), asking them
// in order; -1 when none names one of the servers.
func (c *ConsulCluster) LeaderMember() int {
	c.mu.Lock()
	var up []*consulMember
	for _, m := range c.members {
		if m.cmd != nil && !m.paused {
			up = append(up, m)
		}
	}
	c.mu.Unlock()
	for _, m := range up {
		leader, ok := consulLeader(m.http)
		if !ok || leader == "" {
			continue
		}
		for i, l := range c.members {
			if l.server == leader {
				return i
			}
		}
	}
	return -1
}

// WaitLeader waits, for at most limit, until the servers name a running,
// unpaused leader other than server except (-1 for none) and that leader
// takes a KV write, and returns its index. After a leader is killed or
// paused the others keep naming it until they notice (about a second):
// this waits past that.
func (c *ConsulCluster) WaitLeader(except int, limit time.Duration) (int, error) {
	deadline := time.Now().Add(limit)
	for {
		if l := c.LeaderMember(); l >= 0 && l != except && c.takesWrites(l) {
			return l, nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("servers: no consul server (other than %d) leads within %v", except, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// takesWrites reports whether server i runs, is not paused and takes a KV
// write.
func (c *ConsulCluster) takesWrites(i int) bool {
	c.mu.Lock()
	m := c.members[i]
	up := m.cmd != nil && !m.paused
	c.mu.Unlock()
	if !up {
		return false
	}
	body, code := consulDo(m.http, "PUT", "/v1/kv/"+consulProbeKey, m.name)
	return code == http.StatusOK && strings.TrimSpace(body) == "true"
}

// Kill SIGKILLs server i and waits for it to exit, keeping its ports and
// data for Start: a crash of that server. Killing a server that is down
// does nothing.
func (c *ConsulCluster) Kill(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.member(i)
	if err != nil {
		return err
	}
	c.kill(m)
	return nil
}

// Start starts killed server i again on its ports and data, and returns
// once it is ready: it knows a leader, takes a KV write, and autopilot
// calls it a healthy voter (caught up).
func (c *ConsulCluster) Start(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.member(i)
	if err != nil {
		return err
	}
	if m.cmd != nil {
		return fmt.Errorf("servers: consul server %s is already running", m.name)
	}
	bin, err := Find("consul")
	if err != nil {
		return err
	}
	if err := c.launch(bin, m); err != nil {
		return fmt.Errorf("servers: restart consul server %s: %w", m.name, err)
	}
	return nil
}

// Restart kills server i and starts it again on its ports and data, as a
// crash and restart of that server: Kill then Start.
func (c *ConsulCluster) Restart(i int) error {
	if err := c.Kill(i); err != nil {
		return err
	}
	return c.Start(i)
}

// Pause stops server i with SIGSTOP: it keeps its connections open and
// answers nothing (a process stalled, a VM frozen) until Resume.
func (c *ConsulCluster) Pause(i int) error { return c.signal(i, true) }

// Resume continues paused server i with SIGCONT and returns once it is
// ready again, as Start does.
func (c *ConsulCluster) Resume(i int) error {
	if err := c.signal(i, false); err != nil {
		return err
	}
	return c.WaitReady(i)
}

func (c *ConsulCluster) signal(i int, pause bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.member(i)
	if err != nil {
		return err
	}
	return m.pause(pause, "consul server "+m.name)
}

// WaitReady waits, for at most clusterPatience, until server i is ready:
// it knows a leader, takes a KV write, and autopilot calls it a healthy
// voter.
func (c *ConsulCluster) WaitReady(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.member(i)
	if err != nil {
		return err
	}
	if m.paused {
		return fmt.Errorf("servers: consul server %s is paused", m.name)
	}
	return c.waitReady(m)
}

// Logs returns what the servers printed (warnings and errors), server by
// server.
func (c *ConsulCluster) Logs() string {
	var b strings.Builder
	for _, m := range c.members {
		fmt.Fprintf(&b, "--- %s (http %s, server %s)\n%s", m.name, m.http, m.server, m.logs.String())
	}
	return b.String()
}

// Stop kills every server (paused ones too) and removes their data; the
// cluster cannot be started again.
func (c *ConsulCluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	c.kill(c.members...)
	os.RemoveAll(c.dir)
}
