package servers

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Etcd is a single-member etcd on loopback ports: running from StartEtcd,
// down after Kill, up again on the same ports and data after Start, gone
// after Stop. Wipe and Restore make it forget: up again on the same ports
// with no data, or with a snapshot's. Its methods may be called from any
// goroutine.
type Etcd struct {
	Endpoint string // http://127.0.0.1:PORT
	Version  string

	args   []string // the binary and its arguments, the same at every start
	health string   // base URL whose /health says etcd is ready
	dir    string
	data   string // the member's data directory (--data-dir), under dir
	peer   string // its peer URL, which a restored member must be given again
	logs   *lockedBuffer

	mu      sync.Mutex
	cmd     *exec.Cmd  // nil while etcd is down
	exited  chan error // receives cmd's exit status once
	stopped bool
}

// etcdName is the name of the test etcd's only member.
const etcdName = "leasehold-test"

// healthClient checks /health directly (never through a proxy) and gives
// up on a check that hangs, so a starting etcd cannot stall the wait.
var healthClient = &http.Client{
	Timeout:   time.Second,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		l.b.Reset()
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// EtcdTLS makes StartEtcdTLS serve clients over TLS and require a client
// certificate signed by CA.
type EtcdTLS struct {
	CA, Cert, Key string // PEM files: the CA clients must be signed by; the server's pair
}

// StartEtcd starts etcd on free loopback ports with its data in a new
// temporary directory, and waits until it answers its health check.
func StartEtcd() (*Etcd, error) { return StartEtcdTLS(nil) }

// StartEtcdTLS is StartEtcd with TLS and client-certificate auth on the
// client port when t is not nil (health is then checked over TLS).
func StartEtcdTLS(t *EtcdTLS) (*Etcd, error) {
	bin, err := Find("etcd")
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "leasehold-etcd-")
	if err != nil {
		return nil, err
	}
	var e *Etcd
	for attempt := 0; attempt < 3; attempt++ {
		e, err = startEtcd(bin, dir, t)
		if err == nil {
			return e, nil
		}
	}
	os.RemoveAll(dir)
	return nil, err
}

func startEtcd(bin, dir string, t *EtcdTLS) (*Etcd, error) {
	client, err := FreePort()
	if err != nil {
		return nil, err
	}
	peer, err := FreePort()
	if err != nil {
		return nil, err
	}
	metricsPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if t != nil {
		scheme = "https"
	}
	cu := fmt.Sprintf("%s://127.0.0.1:%d", scheme, client)
	pu := fmt.Sprintf("http://127.0.0.1:%d", peer)
	data := filepath.Join(dir, fmt.Sprintf("data-%d", client))
	args := []string{bin,
		"--name", etcdName,
		"--data-dir", data,
		"--listen-client-urls", cu, "--advertise-client-urls", cu,
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
		"--initial-cluster", etcdName + "=" + pu,
		"--log-level", "error",
		"--unsafe-no-fsync",
	}
	health := cu
	if t != nil {
		// Client certificates are required on the client port: check
		// health on a plain metrics port instead.
		health = fmt.Sprintf("http://127.0.0.1:%d", metricsPort)
		args = append(args, "--cert-file", t.Cert, "--key-file", t.Key,
			"--trusted-ca-file", t.CA, "--client-cert-auth",
			"--listen-metrics-urls", health)
	}
	e := &Etcd{Endpoint: cu, args: args, health: health, dir: dir, data: data, peer: pu, logs: &lockedBuffer{}}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.launch(); err != nil {
		return nil, err
	}
	if v, err := healthClient.Get(health + "/version"); err == nil {
		vb := new(bytes.Buffer)
		vb.ReadFrom(v.Body)
		v.Body.Close()
		e.Version = vb.String()
	}
	return e, nil
}

// launch starts the etcd process and waits until it is healthy; on failure
// etcd is not left running. e.mu is held.
func (e *Etcd) launch() error {
	cmd := exec.Command(e.args[0], e.args[1:]...)
	cmd.Stdout, cmd.Stderr = e.logs, e.logs
	serverProcess(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("servers: start %s: %w", e.args[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	e.cmd, e.exited = cmd, exited
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			e.cmd, e.exited = nil, nil
			return fmt.Errorf("servers: etcd exited during start: %v\n%s", err, e.logs.String())
		default:
		}
		if e.healthy() {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.kill()
	return fmt.Errorf("servers: etcd did not become healthy within 30s\n%s", e.logs.String())
}

// healthy reports whether etcd's /health says it is healthy (it has a
// leader and answers).
func (e *Etcd) healthy() bool {
	resp, err := healthClient.Get(e.health + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body := new(bytes.Buffer)
	body.ReadFrom(resp.Body)
	return resp.StatusCode == http.StatusOK && strings.Contains(body.String(), `"health":"true"`)
}

// kill SIGKILLs the process group and waits for the process to exit. e.mu
// is held.
func (e *Etcd) kill() {
	if e.cmd == nil {
		return
	}
	killServer(e.cmd)
	<-e.exited
	e.cmd, e.exited = nil, nil
}

// Kill SIGKILLs etcd (its whole process group) and waits for it to exit,
// keeping its ports and data directory for Start: an outage or a crash of
// the server. Killing an etcd that is down does nothing.
func (e *Etcd) Kill() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.kill()
}

// Start starts a killed etcd again with the same arguments, so on the same
// ports and data, and returns once it answers its health check (within
// 30s), as a restarted server would come back.
func (e *Etcd) Start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.stopped:
		return fmt.Errorf("servers: etcd %s was stopped: its data is gone", e.Endpoint)
	case e.cmd != nil:
		return fmt.Errorf("servers: etcd %s is already running", e.Endpoint)
	}
	if err := e.launch(); err != nil {
		return fmt.Errorf("servers: restart etcd %s: %w", e.Endpoint, err)
	}
	return nil
}

// Restart kills etcd and starts it again on the same ports and data, as a
// crash and restart of the server would: Kill then Start.
func (e *Etcd) Restart() error {
	e.Kill()
	return e.Start()
}

// Wipe kills etcd, removes its data and starts it again on the same ports
// with none: a new cluster whose revisions start over at 1, as a store
// wiped by an operator (or a lost volume) comes back. It returns once etcd
// answers its health check.
func (e *Etcd) Wipe() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return fmt.Errorf("servers: etcd %s was stopped", e.Endpoint)
	}
	e.kill()
	if err := os.RemoveAll(e.data); err != nil {
		return fmt.Errorf("servers: wipe etcd %s: %w", e.Endpoint, err)
	}
	if err := e.launch(); err != nil {
		return fmt.Errorf("servers: start wiped etcd %s: %w", e.Endpoint, err)
	}
	return nil
}

// Restore kills etcd, replaces its data with the snapshot file (as saved
// by a client's Maintenance.Snapshot or `etcdctl snapshot save`), restored
// by `etcdutl snapshot restore` (found as Find finds servers: an error
// wrapping ErrMissing when it is not), and starts it again on the same
// ports: the store goes back to the snapshot's revision, which later
// writes hand out again. It returns once etcd answers its health check.
// When etcdutl is missing etcd is left running as it was.
func (e *Etcd) Restore(snapshot string) error {
	bin, err := Find("etcdutl")
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return fmt.Errorf("servers: etcd %s was stopped", e.Endpoint)
	}
	e.kill()
	if err := os.RemoveAll(e.data); err != nil {
		return fmt.Errorf("servers: restore etcd %s: %w", e.Endpoint, err)
	}
	restore := exec.Command(bin, "snapshot", "restore", snapshot,
		"--data-dir", e.data,
		"--name", etcdName,
		"--initial-cluster", etcdName+"="+e.peer,
		"--initial-advertise-peer-urls", e.peer)
	if out, err := restore.CombinedOutput(); err != nil {
		return fmt.Errorf("servers: etcdutl snapshot restore %s: %v\n%s", snapshot, err, out)
	}
	if err := e.launch(); err != nil {
		return fmt.Errorf("servers: start restored etcd %s: %w", e.Endpoint, err)
	}
	return nil
}

// Logs returns what etcd printed (errors only).
func (e *Etcd) Logs() string { return e.logs.String() }

// Stop kills etcd and removes its data; Start cannot bring it back.
func (e *Etcd) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return
	}
	e.stopped = true
	e.kill()
	os.RemoveAll(e.dir)
}
