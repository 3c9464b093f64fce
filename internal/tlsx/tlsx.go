// Package tlsx is the one place where backends turn a config file's `tls:`
// block (ca, cert, key: file paths) into a client *tls.Config. Every error
// is an *elector.ConfigError naming the key (for example etcd.tls.ca) and
// the path, so the CLI can point at the line of the file.
package tlsx

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"

	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/smallfile"
)

// Files names the PEM files of a TLS client configuration, as a config
// file's `tls:` block gives them. All three empty means plain TCP.
type Files struct {
	// CA is the bundle the server's certificate is verified with; empty:
	// the system's roots.
	CA string `yaml:"ca"`
	// Cert is the client certificate; it goes with Key.
	Cert string `yaml:"cert"`
	// Key is the client certificate's private key.
	Key string `yaml:"key"`
}

// IsZero reports whether no file is named: plain TCP.
func (f Files) IsZero() bool { return f == Files{} }

// Validate checks what can be checked without reading: cert and key go
// together. key is the block's dotted key (etcd.tls), used in the error.
func (f Files) Validate(key string) error {
	if (f.Cert == "") != (f.Key == "") {
		return &elector.ConfigError{Fields: []string{key + ".cert", key + ".key"},
			Msg: fmt.Sprintf("%s.cert and %s.key go together: set both or neither", key, key)}
	}
	return nil
}

// Load validates f, reads the files (regular files of at most 1 MiB, so a
// FIFO or a device cannot hang or exhaust the reader) and returns a client
// configuration requiring TLS 1.2 or later; nil, nil when f is zero. key is
// the block's dotted key (etcd.tls): errors name key.ca, key.cert or key.key
// and the path.
func (f Files) Load(key string) (*tls.Config, error) {
	if f.IsZero() {
		return nil, nil
	}
	if err := f.Validate(key); err != nil {
		return nil, err
	}
	bad := func(field, path, format string, args ...any) error {
		return &elector.ConfigError{Fields: []string{key + "." + field},
			Msg: fmt.Sprintf("%s.%s %s: %s", key, field, path, fmt.Sprintf(format, args...))}
	}
	read := func(field, path string) ([]byte, error) {
		b, err := smallfile.Read(path)
		if err != nil {
			return nil, bad(field, path, "%v", err)
		}
		return b, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pem, err := read("ca", f.CA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, bad("ca", f.CA, "no PEM certificate in it")
		}
		t.RootCAs = pool
	}
	if f.Cert != "" {
		cert, err := read("cert", f.Cert)
		if err != nil {
			return nil, err
		}
		k, err := read("key", f.Key)
		if err != nil {
			return nil, err
		}
		pair, err := tls.X509KeyPair(cert, k)
		if err != nil {
			return nil, &elector.ConfigError{Fields: []string{key + ".cert", key + ".key"},
				Msg: fmt.Sprintf("%s.cert %s and %s.key %s: %v", key, f.Cert, key, f.Key, err)}
		}
		t.Certificates = []tls.Certificate{pair}
	}
	return t, nil
}
