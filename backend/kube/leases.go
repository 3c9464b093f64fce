package kube

import (
	"context"
	"fmt"
	"sync"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

// The backend talks to one resource, coordination.k8s.io/v1 Leases, so it
// builds its own scheme of the Lease types and the meta types the API
// answers with (Status, WatchEvent, the request options), and a REST client
// of that group, instead of client-go's typed clientset. The clientset's
// package k8s.io/client-go/kubernetes/scheme registers every API group of
// Kubernetes when the program starts, whether or not it is used: the
// largest package initialisation of a program linking it (about half of
// the allocations of leasehold's start, with its typed clients and their
// apply configurations). This scheme is built on the first New, not at
// start.
type leaseCodecs struct {
	params     runtime.ParameterCodec
	serializer runtime.NegotiatedSerializer
}

var leaseScheme = sync.OnceValues(func() (leaseCodecs, error) {
	s := runtime.NewScheme()
	if err := coordinationv1.AddToScheme(s); err != nil {
		return leaseCodecs{}, fmt.Errorf("kube: scheme of %s: %w", coordinationv1.SchemeGroupVersion, err)
	}
	// The API answers errors with a v1 Status, as client-go's scheme
	// registers them.
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	codecs := serializer.NewCodecFactory(s)
	return leaseCodecs{
		params:     runtime.NewParameterCodec(s),
		serializer: rest.CodecFactoryForGeneratedClient(s, codecs).WithoutConversion(),
	}, nil
})

// leaseRESTClient is the REST client of coordination.k8s.io/v1 for rc,
// configured as client-go's typed client of that group configures its own,
// and the codec of the request options.
func leaseRESTClient(rc *rest.Config) (rest.Interface, runtime.ParameterCodec, error) {
	lc, err := leaseScheme()
	if err != nil {
		return nil, nil, err
	}
	cfg := rest.CopyConfig(rc)
	gv := coordinationv1.SchemeGroupVersion
	cfg.GroupVersion = &gv
	cfg.APIPath = "/apis"
	cfg.NegotiatedSerializer = lc.serializer
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	c, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, nil, err
	}
	return c, lc.params, nil
}

// leaseClient reads and writes the Leases of one namespace: the requests
// client-go's typed Lease client sends (protobuf preferred when the
// config's content type allows it), and only the ones this backend uses.
type leaseClient struct {
	rest      rest.Interface
	params    runtime.ParameterCodec
	namespace string
}

// Get reads the Lease named name.
func (c leaseClient) Get(ctx context.Context, name string, opts metav1.GetOptions) (*coordinationv1.Lease, error) {
	out := &coordinationv1.Lease{}
	err := c.rest.Get().
		UseProtobufAsDefaultIfPreferred(true).
		Namespace(c.namespace).
		Resource("leases").
		Name(name).
		VersionedParams(&opts, c.params).
		Do(ctx).
		Into(out)
	return out, err
}

// List lists the Leases opts selects.
func (c leaseClient) List(ctx context.Context, opts metav1.ListOptions) (*coordinationv1.LeaseList, error) {
	out := &coordinationv1.LeaseList{}
	err := c.rest.Get().
		UseProtobufAsDefaultIfPreferred(true).
		Namespace(c.namespace).
		Resource("leases").
		VersionedParams(&opts, c.params).
		Do(ctx).
		Into(out)
	return out, err
}

// Create creates l.
func (c leaseClient) Create(ctx context.Context, l *coordinationv1.Lease, opts metav1.CreateOptions) (*coordinationv1.Lease, error) {
	out := &coordinationv1.Lease{}
	err := c.rest.Post().
		UseProtobufAsDefaultIfPreferred(true).
		Namespace(c.namespace).
		Resource("leases").
		VersionedParams(&opts, c.params).
		Body(l).
		Do(ctx).
		Into(out)
	return out, err
}

// Update replaces the Lease named as l is, with l's resourceVersion (and
// uid, when set) as preconditions.
func (c leaseClient) Update(ctx context.Context, l *coordinationv1.Lease, opts metav1.UpdateOptions) (*coordinationv1.Lease, error) {
	out := &coordinationv1.Lease{}
	err := c.rest.Put().
		UseProtobufAsDefaultIfPreferred(true).
		Namespace(c.namespace).
		Resource("leases").
		Name(l.Name).
		VersionedParams(&opts, c.params).
		Body(l).
		Do(ctx).
		Into(out)
	return out, err
}
