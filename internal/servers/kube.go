package servers

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Kube is a kube-apiserver on a loopback port with its own etcd (or one of
// a KubeHA's apiservers, on the KubeHA's etcd cluster): running
// from StartKube, down after Kill, up again on the same port and data after
// Start, gone after Stop. Its methods may be called from any goroutine.
//
// TLS: the apiserver serves the self-signed certificate it generates in its
// cert directory (a KubeHA's apiservers all serve one the KubeHA made);
// the kubeconfig files trust exactly that certificate (CAFile), so clients
// verify the server as they would in a cluster.
//
// Authentication is by bearer token (--token-auth-file): AdminKubeconfig is
// a user in group system:masters, UserKubeconfig the user LimitedUser with
// no permission at all until a test binds a Role to it. Authorization is
// RBAC.
type Kube struct {
	URL             string // https://127.0.0.1:PORT
	CAFile          string // PEM of the serving certificate, to trust
	AdminToken      string
	UserToken       string
	AdminKubeconfig string // kubeconfig file of the admin, context "admin"
	UserKubeconfig  string // kubeconfig file of LimitedUser, context "user"

	etcd *Etcd // its own etcd, which Stop stops; nil on a KubeHA's cluster
	args []string
	dir  string
	logs *lockedBuffer

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan error
	stopped bool
}

// LimitedUser is the name of the user of Kube.UserKubeconfig.
const LimitedUser = "limited"

// StartKube starts an etcd (StartEtcd) and a kube-apiserver on it, on free
// loopback ports, and waits until the apiserver's /readyz answers ok.
func StartKube() (*Kube, error) {
	bin, err := Find("kube-apiserver")
	if err != nil {
		return nil, err
	}
	e, err := StartEtcd()
	if err != nil {
		return nil, err
	}
	k, err := startKube(bin, e)
	if err != nil {
		e.Stop()
		return nil, err
	}
	return k, nil
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func startKube(bin string, e *Etcd) (*Kube, error) {
	dir, err := os.MkdirTemp("", "leasehold-kube-")
	if err != nil {
		return nil, err
	}
	files, err := newKubeFiles(dir, false)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	k, err := newKube(bin, dir, []string{e.Endpoint}, files, e)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return k, nil
}

// kubeFiles are the credentials of a Kubernetes cluster, which every
// apiserver of it is given: the service-account key pair, the token file
// (the admin's and LimitedUser's tokens), and optionally a serving
// certificate, so that a client of one apiserver is accepted by, and
// trusts, every other.
type kubeFiles struct {
	saKey, saPub, tokens    string // files
	adminToken, userToken   string
	servingCert, servingKey string // PEM files; "" when each apiserver makes its own
}

// newKubeFiles writes new credentials into dir; with serving, a
// self-signed serving certificate for 127.0.0.1 too.
func newKubeFiles(dir string, serving bool) (*kubeFiles, error) {
	f := &kubeFiles{saKey: filepath.Join(dir, "sa.key"), saPub: filepath.Join(dir, "sa.pub"), tokens: filepath.Join(dir, "tokens.csv")}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return nil, err
	}
	if f.adminToken, err = randomToken(); err != nil {
		return nil, err
	}
	if f.userToken, err = randomToken(); err != nil {
		return nil, err
	}
	tokens := fmt.Sprintf("%s,admin,admin-uid,\"system:masters\"\n%s,%s,limited-uid\n", f.adminToken, f.userToken, LimitedUser)
	if err := os.WriteFile(f.tokens, []byte(tokens), 0o600); err != nil {
		return nil, err
	}
	if serving {
		f.servingCert, f.servingKey = filepath.Join(dir, "serving.crt"), filepath.Join(dir, "serving.key")
		if err := writeServingCert(f.servingCert, f.servingKey); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// newKube starts a kube-apiserver with its files in dir on the etcd
// endpoints etcd (e, when not nil, is that etcd, which Stop stops) and the
// credentials files, on a free loopback port, and writes its kubeconfig
// files; it returns once /readyz answers.
func newKube(bin, dir string, etcd []string, files *kubeFiles, e *Etcd) (*Kube, error) {
	k := &Kube{etcd: e, dir: dir, logs: &lockedBuffer{}, AdminToken: files.adminToken, UserToken: files.userToken}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	k.URL = fmt.Sprintf("https://127.0.0.1:%d", port)
	certs := filepath.Join(dir, "certs")
	k.CAFile = filepath.Join(certs, "apiserver.crt")
	if files.servingCert != "" {
		k.CAFile = files.servingCert
	}
	k.args = []string{bin,
		"--etcd-servers=" + strings.Join(etcd, ","),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none",
		fmt.Sprintf("--secure-port=%d", port),
		"--cert-dir=" + certs,
		"--token-auth-file=" + files.tokens,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + files.saPub,
		"--service-account-signing-key-file=" + files.saKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--disable-admission-plugins=ServiceAccount",
		"-v=0",
	}
	if files.servingCert != "" {
		k.args = append(k.args, "--tls-cert-file="+files.servingCert, "--tls-private-key-file="+files.servingKey)
	}
	k.mu.Lock()
	err = k.launch()
	k.mu.Unlock()
	if err != nil {
		return nil, err
	}
	k.AdminKubeconfig = filepath.Join(dir, "admin.kubeconfig")
	k.UserKubeconfig = filepath.Join(dir, "user.kubeconfig")
	for _, f := range []struct{ path, name, token string }{
		{k.AdminKubeconfig, "admin", k.AdminToken},
		{k.UserKubeconfig, "user", k.UserToken},
	} {
		if err := os.WriteFile(f.path, []byte(kubeconfig(k.URL, k.CAFile, f.name, f.token)), 0o600); err != nil {
			k.Kill()
			return nil, err
		}
	}
	return k, nil
}

// kubeconfig is a kubeconfig file with one cluster, user and context.
func kubeconfig(url, ca, name, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: %s
  context:
    cluster: test
    user: %s
    namespace: default
current-context: %s
`, url, ca, name, token, name, name, name)
}

// launch starts kube-apiserver and waits for /readyz; k.mu is held.
func (k *Kube) launch() error {
	cmd := exec.Command(k.args[0], k.args[1:]...)
	cmd.Stdout, cmd.Stderr = k.logs, k.logs
	serverProcess(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("servers: start %s: %w", k.args[0], err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	k.cmd, k.exited = cmd, exited
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			k.cmd, k.exited = nil, nil
			return fmt.Errorf("servers: kube-apiserver exited during start: %v\n%s", err, k.logs.String())
		default:
		}
		if k.Ready() {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	k.kill()
	return fmt.Errorf("servers: kube-apiserver not ready within 60s\n%s", k.logs.String())
}

// readyClient asks /readyz over TLS without verifying (the serving
// certificate may not exist yet), never through a proxy.
var readyClient = &http.Client{
	Timeout: time.Second,
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
}

// Ready reports whether the apiserver's /readyz answers 200 (anonymous
// requests may read it).
func (k *Kube) Ready() bool {
	resp, err := readyClient.Get(k.URL + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (k *Kube) kill() {
	if k.cmd == nil {
		return
	}
	killServer(k.cmd)
	<-k.exited
	k.cmd, k.exited = nil, nil
}

// Kill SIGKILLs the apiserver (its etcd keeps running), keeping its port
// and configuration for Start: an apiserver outage.
func (k *Kube) Kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.kill()
}

// Start starts a killed apiserver again on the same port and etcd, and
// returns once /readyz answers.
func (k *Kube) Start() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case k.stopped:
		return fmt.Errorf("servers: kube-apiserver %s was stopped", k.URL)
	case k.cmd != nil:
		return fmt.Errorf("servers: kube-apiserver %s is already running", k.URL)
	}
	return k.launch()
}

// ReplaceEtcd points the apiserver at a new, empty etcd: it kills the
// apiserver, starts a fresh etcd (StartEtcd), starts the apiserver again on
// it (same port, certificates and tokens) and stops the old etcd. The store
// forgot everything, as when a cluster's etcd is replaced or restored from
// nothing: revisions start over, and resourceVersions the old store handed
// out are handed out again. It returns once /readyz answers.
func (k *Kube) ReplaceEtcd() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return fmt.Errorf("servers: kube-apiserver %s was stopped", k.URL)
	}
	if k.etcd == nil {
		return fmt.Errorf("servers: kube-apiserver %s runs on an etcd cluster it does not own", k.URL)
	}
	k.kill()
	e, err := StartEtcd()
	if err != nil {
		return err
	}
	old := k.etcd
	k.etcd = e
	for i, a := range k.args {
		if strings.HasPrefix(a, "--etcd-servers=") {
			k.args[i] = "--etcd-servers=" + e.Endpoint
		}
	}
	old.Stop()
	return k.launch()
}

// Logs returns what the apiserver printed (the last MiB).
func (k *Kube) Logs() string { return k.logs.String() }

// Stop kills the apiserver and its own etcd (not a KubeHA's) and removes
// their files.
func (k *Kube) Stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped {
		return
	}
	k.stopped = true
	k.kill()
	if k.etcd != nil {
		k.etcd.Stop()
	}
	os.RemoveAll(k.dir)
}
