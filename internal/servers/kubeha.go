package servers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// KubeHA is a Kubernetes control plane shaped as production runs it:
// several kube-apiservers on one 3-member etcd cluster, all on loopback
// ports, with their files under one temporary directory. Each apiserver
// has its own watch cache of etcd, so a client of one and a client of
// another see the same Lease through different caches.
//
// The apiservers share their credentials: one token file (the admin and
// LimitedUser, as for Kube), one service-account key pair and one
// self-signed serving certificate, so a token works on every apiserver and
// every kubeconfig file trusts every apiserver. API(i) is apiserver i, a
// *Kube whose Kill and Start are an outage of that apiserver alone; Etcd
// is the cluster, whose members can be killed, paused and restarted under
// the running apiservers. Restore and Wipe act on the whole control plane.
// Its methods may be called from any goroutine.
type KubeHA struct {
	// Etcd is the etcd cluster the apiservers store in (3 members).
	Etcd *EtcdCluster

	apis []*Kube
	dir  string

	mu      sync.Mutex // Restore, Wipe and Stop run one at a time
	stopped bool
}

// kubeHAMembers is the size of a KubeHA's etcd cluster: one member down
// leaves a quorum.
const kubeHAMembers = 3

// StartKubeHA starts a 3-member etcd cluster (StartEtcdCluster) and n
// kube-apiservers on it, each given every member's endpoint, and returns
// once every apiserver's /readyz answers ok. When a server binary cannot
// be found the error wraps ErrMissing.
func StartKubeHA(n int) (*KubeHA, error) {
	if n < 1 {
		return nil, fmt.Errorf("servers: a control plane of %d apiservers", n)
	}
	bin, err := Find("kube-apiserver")
	if err != nil {
		return nil, err
	}
	cl, err := StartEtcdCluster(kubeHAMembers)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "leasehold-kubeha-")
	if err != nil {
		cl.Stop()
		return nil, err
	}
	h := &KubeHA{Etcd: cl, dir: dir, apis: make([]*Kube, n)}
	fail := func(err error) (*KubeHA, error) {
		h.Stop()
		return nil, err
	}
	files, err := newKubeFiles(dir, true)
	if err != nil {
		return fail(err)
	}
	// All at once: each apiserver's start is seconds of CPU, and they
	// bootstrap the same objects (the losers of those creates carry on).
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		sub := filepath.Join(dir, fmt.Sprintf("apiserver%d", i))
		if err := os.Mkdir(sub, 0o700); err != nil {
			return fail(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.apis[i], errs[i] = newKube(bin, sub, cl.Endpoints(), files, nil)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fail(fmt.Errorf("servers: start the apiservers of the control plane: %w", err))
	}
	return h, nil
}

// Size is the number of apiservers.
func (h *KubeHA) Size() int { return len(h.apis) }

// API is apiserver i: its URL and kubeconfig files, Kill and Start of it
// alone, Ready and Logs. Do not Stop it (Stop the KubeHA) nor ReplaceEtcd
// it (it has no etcd of its own).
func (h *KubeHA) API(i int) *Kube { return h.apis[i] }

// WaitReady waits, for at most limit, until every apiserver that runs
// answers /readyz (which checks its etcd).
func (h *KubeHA) WaitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for i, k := range h.apis {
		for {
			k.mu.Lock()
			down := k.cmd == nil
			k.mu.Unlock()
			if down || k.Ready() {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("servers: apiserver %d (%s) not ready within %v", i, k.URL, limit)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// Restore brings the whole control plane back to the etcd snapshot file
// (EtcdCluster.Snapshot, or `etcdctl snapshot save`), as an operator's
// restore from a backup does it: every apiserver is killed, every member of
// the cluster is restored from the snapshot (EtcdCluster.Restore: a new
// cluster on the same ports, revisions handed out again), and the
// apiservers are started again on it, with empty watch caches. It returns
// once every apiserver's /readyz answers.
func (h *KubeHA) Restore(snapshot string) error {
	return h.underStopped("restore", func() error { return h.Etcd.Restore(snapshot) })
}

// Wipe is Restore from nothing: every apiserver killed, every member's data
// removed (EtcdCluster.Wipe), the apiservers started again on the empty
// cluster.
func (h *KubeHA) Wipe() error {
	return h.underStopped("wipe", h.Etcd.Wipe)
}

// underStopped kills every apiserver, runs change on the etcd cluster, and
// starts them all again.
func (h *KubeHA) underStopped(what string, change func() error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return errors.New("servers: the control plane was stopped")
	}
	for _, k := range h.apis {
		k.Kill()
	}
	if err := change(); err != nil {
		return fmt.Errorf("servers: %s the control plane's etcd: %w", what, err)
	}
	errs := make([]error, len(h.apis))
	var wg sync.WaitGroup
	for i, k := range h.apis {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := k.Start(); err != nil {
				errs[i] = fmt.Errorf("apiserver %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("servers: start the apiservers after the %s: %w", what, err)
	}
	return nil
}

// Logs returns the apiservers' last lines and the etcd members' logs.
func (h *KubeHA) Logs() string {
	var b strings.Builder
	for i, k := range h.apis {
		if k == nil {
			continue
		}
		l := k.Logs()
		fmt.Fprintf(&b, "--- apiserver %d (%s), last lines\n%s\n", i, k.URL, l[max(0, len(l)-4000):])
	}
	b.WriteString(h.Etcd.Logs())
	return b.String()
}

// Stop kills every apiserver and the etcd cluster and removes their files.
func (h *KubeHA) Stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return
	}
	h.stopped = true
	for _, k := range h.apis {
		if k != nil {
			k.Stop()
		}
	}
	h.Etcd.Stop()
	os.RemoveAll(h.dir)
}

// writeServingCert writes a new self-signed certificate for 127.0.0.1 and
// localhost (PEM, to cert) and its private key (PEM, to key): one serving
// certificate for several apiservers, which a client trusts by trusting it.
func writeServingCert(cert, key string) error {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "leasehold test apiserver"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return err
	}
	pk, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		return err
	}
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: pk}), 0o600)
}
