package tlsx

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/elector"
)

// files writes a self-signed certificate, its key and a second key into dir.
func files(t *testing.T) (cert, key, otherKey string) {
	t.Helper()
	dir := t.TempDir()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tlsx test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	kb2, _ := x509.MarshalECPrivateKey(k2)
	return write("cert.pem", "CERTIFICATE", der), write("key.pem", "EC PRIVATE KEY", kb), write("other-key.pem", "EC PRIVATE KEY", kb2)
}

func TestLoad(t *testing.T) {
	cert, key, _ := files(t)
	if c, err := (Files{}).Load("etcd.tls"); c != nil || err != nil {
		t.Fatalf("zero Files: %v, %v; want nil, nil", c, err)
	}
	c, err := Files{CA: cert, Cert: cert, Key: key}.Load("etcd.tls")
	if err != nil {
		t.Fatal(err)
	}
	if c.RootCAs == nil || len(c.Certificates) != 1 || c.MinVersion != 0x0303 {
		t.Fatalf("config %+v: want roots, one certificate, TLS 1.2", c)
	}
}

// Every error is a *elector.ConfigError naming the key and the path.
func TestLoadErrors(t *testing.T) {
	cert, key, otherKey := files(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	for _, tc := range []struct {
		f      Files
		fields []string
		want   string
	}{
		{Files{Cert: cert}, []string{"consul.tls.cert", "consul.tls.key"}, "consul.tls.cert and consul.tls.key go together"},
		{Files{Key: key}, []string{"consul.tls.cert", "consul.tls.key"}, "go together"},
		{Files{CA: "/nonexistent.pem"}, []string{"consul.tls.ca"}, "consul.tls.ca /nonexistent.pem: no such file or directory"},
		{Files{CA: fifo}, []string{"consul.tls.ca"}, "consul.tls.ca " + fifo + ": not a regular file (a FIFO)"},
		{Files{CA: dir}, []string{"consul.tls.ca"}, "consul.tls.ca " + dir + ": not a regular file (a directory)"},
		{Files{CA: notPEM}, []string{"consul.tls.ca"}, "consul.tls.ca " + notPEM + ": no PEM certificate in it"},
		{Files{Cert: cert, Key: fifo}, []string{"consul.tls.key"}, "consul.tls.key " + fifo + ": not a regular file"},
		{Files{Cert: "/dev/zero", Key: key}, []string{"consul.tls.cert"}, "consul.tls.cert /dev/zero: not a regular file (a character device)"},
		{Files{Cert: cert, Key: otherKey}, []string{"consul.tls.cert", "consul.tls.key"}, "consul.tls.cert " + cert + " and consul.tls.key " + otherKey + ": "},
		{Files{Cert: notPEM, Key: key}, []string{"consul.tls.cert", "consul.tls.key"}, "consul.tls.cert " + notPEM},
	} {
		_, err := tc.f.Load("consul.tls")
		var ce *elector.ConfigError
		if !errors.As(err, &ce) || !strings.Contains(ce.Msg, tc.want) || strings.Join(ce.Fields, ",") != strings.Join(tc.fields, ",") {
			t.Errorf("%+v: err = %#v, want a ConfigError on %v containing %q", tc.f, err, tc.fields, tc.want)
		}
	}
	if err := (Files{CA: cert}).Validate("etcd.tls"); err != nil {
		t.Errorf("Validate with a CA only: %v", err)
	}
}
