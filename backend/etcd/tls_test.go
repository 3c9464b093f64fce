package etcd_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/etcd"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
)

// pki writes a CA, a server pair for 127.0.0.1 and a client pair into dir.
func pki(t *testing.T, dir string) (ca, srvCert, srvKey, cliCert, cliKey string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "leasehold test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pair := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(k)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kb)
	}
	ca = write("ca.pem", "CERTIFICATE", caDER)
	srvCert, srvKey = pair("server", 2, x509.ExtKeyUsageServerAuth)
	cliCert, cliKey = pair("client", 3, x509.ExtKeyUsageClientAuth)
	return
}

// etcd serving TLS and requiring client certificates: the backend connects
// with CA, cert and key files and works; without a client certificate it
// fails at New, within the dial timeout.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca, sc, sk, cc, ck := pki(t, dir)
	own, err := servers.StartEtcdTLS(&servers.EtcdTLS{CA: ca, Cert: sc, Key: sk})
	servers.Require(t, err)
	defer own.Stop()
	endpoint := strings.TrimPrefix(own.Endpoint, "https://")
	c, err := etcd.New(context.Background(), etcd.Config{Endpoints: []string{endpoint}, TLS: etcd.TLSFiles{CA: ca, Cert: cc, Key: ck},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("TLS with a client certificate: %v", err)
	}
	defer c.Close()
	b := c.Lock("tls")
	ctx := context.Background()
	if _, err := b.Create(ctx, elector.Record{Holder: "a", LeaseDuration: time.Second, Term: 1}); err != nil {
		t.Fatal(err)
	}
	if r, _, err := b.Get(ctx); err != nil || r.Holder != "a" {
		t.Fatalf("Get over TLS = %+v, %v", r, err)
	}

	t0 := time.Now()
	_, err = etcd.New(context.Background(), etcd.Config{Endpoints: []string{endpoint}, TLS: etcd.TLSFiles{CA: ca}, DialTimeout: time.Second})
	if err == nil {
		t.Fatal("connected without a client certificate to an etcd that requires one")
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("gave up after %v with a 1s dial timeout", d)
	}
	if _, err := etcd.New(context.Background(), etcd.Config{Endpoints: []string{endpoint}, TLS: etcd.TLSFiles{Cert: cc}}); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("cert without key: err = %v", err)
	}
}
