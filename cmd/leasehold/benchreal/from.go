package benchreal

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/consul/api"
	"github.com/leasehold-go/leasehold/internal/smallfile"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdBase is the native client configuration: Options.Etcd, else the
// one FromEtcd describes (endpoints, TLS, credentials), then
// EtcdEndpoints over it.
func (o Options) etcdBase() (clientv3.Config, error) {
	var base clientv3.Config
	switch {
	case o.Etcd != nil:
		base = *o.Etcd
	case o.FromEtcd != nil:
		c := *o.FromEtcd
		base.Endpoints = slices.Clone(c.Endpoints)
		base.DialTimeout = c.DialTimeout
		base.Username, base.Password = c.Username, c.Password
		if c.PasswordFile != "" {
			b, err := smallfile.Read(c.PasswordFile)
			if err != nil {
				return base, fmt.Errorf("bench backend: etcd.password_file %s: %w", c.PasswordFile, err)
			}
			base.Password = strings.TrimSpace(string(b))
		}
		t, err := c.TLS.Load("etcd.tls")
		if err != nil {
			return base, fmt.Errorf("bench backend: %w", err)
		}
		base.TLS = t
	}
	if len(o.EtcdEndpoints) > 0 {
		base.Endpoints = slices.Clone(o.EtcdEndpoints)
	}
	return base, nil
}

// consulBase is the native client configuration: Options.Consul, else
// the one FromConsul describes (address, scheme, datacenter, token, TLS),
// else the client library's default; then ConsulAddress and ConsulToken
// over it.
func (o Options) consulBase() (api.Config, error) {
	var base api.Config
	switch {
	case o.Consul != nil:
		base = *o.Consul
	default:
		base = *api.DefaultNonPooledConfig()
		if o.FromConsul == nil {
			break
		}
		c := *o.FromConsul
		if c.Address != "" {
			base.Address = c.Address
		}
		if c.Scheme != "" {
			base.Scheme = c.Scheme
		} else if !c.TLS.IsZero() {
			base.Scheme = "https"
		}
		if c.Datacenter != "" {
			base.Datacenter = c.Datacenter
		}
		if c.Token != "" {
			base.Token = c.Token
		}
		if c.TokenFile != "" {
			b, err := smallfile.Read(c.TokenFile)
			if err != nil {
				return base, fmt.Errorf("bench backend: consul.token_file %s: %w", c.TokenFile, err)
			}
			base.Token = strings.TrimSpace(string(b))
		}
		if !c.TLS.IsZero() {
			base.TLSConfig.CAFile, base.TLSConfig.CertFile, base.TLSConfig.KeyFile = c.TLS.CA, c.TLS.Cert, c.TLS.Key
		}
	}
	if o.ConsulAddress != "" {
		base.Address = o.ConsulAddress
	}
	if o.ConsulToken != "" {
		base.Token = o.ConsulToken
	}
	base.HttpClient, base.Transport = nil, nil
	return base, nil
}

// kubeFrom fills the kubeconfig, context and namespace from FromKube where
// the Options leave them empty.
func (o Options) kubeFrom() Options {
	if k := o.FromKube; k != nil {
		if o.KubeREST == nil {
			o.KubeREST = k.REST
		}
		if o.KubeConfig == "" {
			o.KubeConfig = k.Kubeconfig
		}
		if o.KubeContext == "" {
			o.KubeContext = k.Context
		}
		if o.KubeNamespace == "" {
			o.KubeNamespace = k.Namespace
		}
	}
	return o
}
