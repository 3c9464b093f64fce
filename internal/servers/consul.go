package servers

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Consul is a single dev-mode Consul agent (a server, its data in memory)
// on loopback ports: running from StartConsul, down after Kill, up again on
// the same ports after Start (with -dev its data is gone: every key is),
// gone after Stop. Its methods may be called from any goroutine.
type Consul struct {
	Address string // 127.0.0.1:PORT, the HTTP API
	// ManagementToken is the initial management token when ACLs are on
	// (ConsulOptions.ACL); empty otherwise.
	ManagementToken string

	args []string // the binary and its arguments, the same at every start
	dir  string
	logs *lockedBuffer

	mu      sync.Mutex
	cmd     *exec.Cmd  // nil while the agent is down
	exited  chan error // receives cmd's exit status once
	stopped bool
}

// ConsulOptions adjusts StartConsulWith.
type ConsulOptions struct {
	// ACL turns ACLs on with default_policy deny and an initial management
	// token (Consul.ManagementToken).
	ACL bool
}

// StartConsul starts `consul agent -dev` bound to 127.0.0.1 on free ports
// (HTTP, serf LAN/WAN, server RPC; DNS, gRPC and gRPC-TLS disabled) in a
// new temporary directory, with session_ttl_min 1s, and waits until it has
// a leader.
func StartConsul() (*Consul, error) { return StartConsulWith(ConsulOptions{}) }

// StartConsulWith is StartConsul with options.
func StartConsulWith(o ConsulOptions) (*Consul, error) {
	bin, err := Find("consul")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "leasehold-consul-")
	if err != nil {
		return nil, err
	}
	var c *Consul
	for attempt := 0; attempt < 3; attempt++ {
		c, err = startConsul(bin, dir, o)
		if err == nil {
			return c, nil
		}
	}
	os.RemoveAll(dir)
	return nil, err
}

func startConsul(bin, dir string, o ConsulOptions) (*Consul, error) {
	var ports [4]int
	for i := range ports {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	hcl := fmt.Sprintf(`session_ttl_min = "1s"
disable_update_check = true
ports { http = %d, https = -1, dns = -1, grpc = -1, grpc_tls = -1, serf_lan = %d, serf_wan = %d, server = %d }`,
		ports[0], ports[1], ports[2], ports[3])
	c := &Consul{Address: fmt.Sprintf("127.0.0.1:%d", ports[0]), dir: dir, logs: &lockedBuffer{}}
	if o.ACL {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		h := hex.EncodeToString(b)
		c.ManagementToken = h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
		hcl += fmt.Sprintf(`
acl { enabled = true, default_policy = "deny", enable_token_persistence = false, tokens { initial_management = %q } }`, c.ManagementToken)
	}
	c.args = []string{bin, "agent", "-dev",
		"-bind", "127.0.0.1", "-client", "127.0.0.1", "-advertise", "127.0.0.1",
		"-node", fmt.Sprintf("leasehold-test-%d", ports[0]),
		"-log-level", "error",
		"-hcl", hcl,
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.launch(); err != nil {
		return nil, err
	}
	return c, nil
}

// launch starts the agent and waits until it has a leader (and, with ACLs,
// until the management token works); on failure the agent is not left
// running. c.mu is held.
func (c *Consul) launch() error {
	cmd := exec.Command(c.args[0], c.args[1:]...)
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = c.logs, c.logs
	serverProcess(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("servers: start %s: %w", c.args[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c.cmd, c.exited = cmd, exited
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			c.cmd, c.exited = nil, nil
			return fmt.Errorf("servers: consul exited during start: %v\n%s", err, c.logs.String())
		default:
		}
		if c.ready() {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.kill()
	return fmt.Errorf("servers: consul did not elect a leader within 30s\n%s", c.logs.String())
}

// ready reports whether /v1/status/leader names a leader and, with ACLs,
// the management token is accepted.
func (c *Consul) ready() bool {
	body, code := c.get("/v1/status/leader", "")
	if code != http.StatusOK || strings.Trim(strings.TrimSpace(body), `"`) == "" {
		return false
	}
	if c.ManagementToken != "" {
		if _, code := c.get("/v1/acl/token/self", c.ManagementToken); code != http.StatusOK {
			return false
		}
	}
	return true
}

func (c *Consul) get(path, token string) (string, int) {
	req, err := http.NewRequest("GET", "http://"+c.Address+path, nil)
	if err != nil {
		return "", 0
	}
	if token != "" {
		req.Header.Set("X-Consul-Token", token)
	}
	resp, err := healthClient.Do(req)
	if err != nil {
		return "", 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return string(b), resp.StatusCode
}

// kill SIGKILLs the process group and waits for the agent to exit. c.mu is
// held.
func (c *Consul) kill() {
	if c.cmd == nil {
		return
	}
	killServer(c.cmd)
	<-c.exited
	c.cmd, c.exited = nil, nil
}

// Kill SIGKILLs the agent (its whole process group) and waits for it to
// exit, keeping its ports for Start: an outage or a crash of the agent.
// Killing an agent that is down does nothing.
func (c *Consul) Kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kill()
}

// Start starts a killed agent again with the same arguments, so on the same
// ports, and returns once it has a leader (within 30s). In -dev mode the
// data lives in memory: the restarted agent has no keys.
func (c *Consul) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.stopped:
		return fmt.Errorf("servers: consul %s was stopped", c.Address)
	case c.cmd != nil:
		return fmt.Errorf("servers: consul %s is already running", c.Address)
	}
	if err := c.launch(); err != nil {
		return fmt.Errorf("servers: restart consul %s: %w", c.Address, err)
	}
	return nil
}

// Logs returns what the agent printed (errors only).
func (c *Consul) Logs() string { return c.logs.String() }

// Stop kills the agent and removes its directory; Start cannot bring it
// back.
func (c *Consul) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	c.kill()
	os.RemoveAll(c.dir)
}
