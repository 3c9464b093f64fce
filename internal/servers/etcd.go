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
	"syscall"
	"time"
)

// Etcd is a running single-member etcd.
type Etcd struct {
	Endpoint string // http://127.0.0.1:PORT
	Version  string

	cmd    *exec.Cmd
	dir    string
	logs   *lockedBuffer
	once   sync.Once
	exited chan error
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
	logs := &lockedBuffer{}
	cmd := exec.Command(bin,
		"--name", "leasehold-test",
		"--data-dir", data,
		"--listen-client-urls", cu, "--advertise-client-urls", cu,
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
		"--initial-cluster", "leasehold-test="+pu,
		"--log-level", "error",
		"--unsafe-no-fsync",
	)
	hc := http.DefaultClient
	if t != nil {
		cmd.Args = append(cmd.Args, "--cert-file", t.Cert, "--key-file", t.Key,
			"--trusted-ca-file", t.CA, "--client-cert-auth",
			"--listen-metrics-urls", fmt.Sprintf("http://127.0.0.1:%d", metricsPort))
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("servers: start %s: %w", bin, err)
	}
	e := &Etcd{Endpoint: cu, cmd: cmd, dir: dir, logs: logs}
	exited := make(chan error, 1)
	e.exited = exited
	go func() { exited <- cmd.Wait() }()
	health := cu
	if t != nil {
		health = fmt.Sprintf("http://127.0.0.1:%d", metricsPort)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("servers: etcd exited during start: %v\n%s", err, logs.String())
		default:
		}
		resp, err := hc.Get(health + "/health")
		if err == nil {
			body := new(bytes.Buffer)
			body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(body.String(), `"health":"true"`) {
				if v, err := hc.Get(health + "/version"); err == nil {
					vb := new(bytes.Buffer)
					vb.ReadFrom(v.Body)
					v.Body.Close()
					e.Version = vb.String()
				}
				return e, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	return nil, fmt.Errorf("servers: etcd did not become healthy within 30s\n%s", logs.String())
}

// Restart kills etcd and starts it again on the same ports and data, as a
// crash and restart of the server would.
func (e *Etcd) Restart() error {
	syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
	<-e.exited
	cmd := exec.Command(e.cmd.Path, e.cmd.Args[1:]...)
	cmd.Stdout, cmd.Stderr = e.logs, e.logs
	cmd.SysProcAttr = e.cmd.SysProcAttr
	if err := cmd.Start(); err != nil {
		return err
	}
	e.cmd = cmd
	e.exited = make(chan error, 1)
	go func(ch chan error) { ch <- cmd.Wait() }(e.exited)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(e.Endpoint + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
	return fmt.Errorf("servers: etcd did not come back within 30s\n%s", e.logs.String())
}

// Logs returns what etcd printed (errors only).
func (e *Etcd) Logs() string { return e.logs.String() }

// Stop kills etcd and removes its data.
func (e *Etcd) Stop() {
	e.once.Do(func() {
		if e.cmd.Process != nil {
			syscall.Kill(-e.cmd.Process.Pid, syscall.SIGKILL)
		}
		os.RemoveAll(e.dir)
	})
}
