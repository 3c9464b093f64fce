package kube_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/leasehold-go/leasehold/backend/kube"
	"github.com/leasehold-go/leasehold/elector"
	"github.com/leasehold-go/leasehold/internal/servers"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// documentedRoles returns the Roles of docs/deploy/kubernetes.yaml.
func documentedRoles(t *testing.T) []rbacv1.Role {
	t.Helper()
	data, err := os.ReadFile("../../docs/deploy/kubernetes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var roles []rbacv1.Role
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var r rbacv1.Role
		if err := yaml.Unmarshal([]byte(doc), &r); err != nil {
			t.Fatal(err)
		}
		if r.Kind == "Role" {
			roles = append(roles, r)
		}
	}
	if len(roles) == 0 {
		t.Fatal("no Role in docs/deploy/kubernetes.yaml")
	}
	return roles
}

// bind creates role and binds it to the limited user.
func bind(t *testing.T, role rbacv1.Role) {
	t.Helper()
	cs := admin(t)
	role.ResourceVersion, role.Namespace = "", "default"
	if _, err := cs.RbacV1().Roles("default").Create(ctxT(t), &role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: "default"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: servers.LimitedUser}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
	}
	if _, err := cs.RbacV1().RoleBindings("default").Create(ctxT(t), rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		cs.RbacV1().RoleBindings("default").Delete(ctx, role.Name, metav1.DeleteOptions{})
		cs.RbacV1().Roles("default").Delete(ctx, role.Name, metav1.DeleteOptions{})
	})
}

// limitedClient is a kube.Client of the limited user.
func limitedClient(t *testing.T) *kube.Client {
	t.Helper()
	cfg := kube.DefaultConfig()
	cfg.Kubeconfig = need(t).UserKubeconfig
	cfg.Logger = slog.New(slog.DiscardHandler)
	c, err := kube.New(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// eventually retries f for a few seconds: RBAC changes reach the
// authorizer's cache shortly after they are written.
func eventually(t *testing.T, f func() error) error {
	t.Helper()
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = f(); err == nil {
			return nil
		}
	}
	return err
}

// TestRBACWithoutUpdate: a Role without update on leases gives a plain
// permission error naming the verb, the resource and the namespace.
func TestRBACWithoutUpdate(t *testing.T) {
	need(t)
	const lock = "rbac-no-update"
	bind(t, rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "no-update"}, Rules: []rbacv1.PolicyRule{{
		APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"},
		Verbs: []string{"get", "list", "watch", "create"},
	}}})
	b := limitedClient(t).Lock(lock)
	var v elector.Version
	if err := eventually(t, func() (err error) {
		v, err = b.Create(ctxT(t), elector.Record{Holder: "a", LeaseDuration: 2 * time.Second, Term: 1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_, err := b.Update(ctxT(t), elector.Record{Holder: "a", LeaseDuration: 2 * time.Second, Term: 1}, v)
	if err == nil || errors.Is(err, elector.ErrConflict) ||
		!strings.Contains(err.Error(), "permission denied: cannot update lease "+lock) || !strings.Contains(err.Error(), "namespace default") {
		t.Fatalf("Update without the update verb: %v; want a permission error naming update, the lease and the namespace", err)
	}
	t.Log(err)
}

// TestDocumentedRole: with the Role of docs/deploy/kubernetes.yaml the
// limited user leads its Lease (create, get, update, watch), and may touch
// no other Lease.
func TestDocumentedRole(t *testing.T) {
	need(t)
	var role rbacv1.Role
	for _, r := range documentedRoles(t) {
		if r.Name == "web-lease" {
			role = r
		}
	}
	if role.Name == "" {
		t.Fatal("docs/deploy/kubernetes.yaml has no Role web-lease")
	}
	bind(t, role)
	c := limitedClient(t)
	b := c.Lock("web-leader")
	var v elector.Version
	if err := eventually(t, func() (err error) {
		v, err = b.Create(ctxT(t), elector.Record{Holder: "a", LeaseDuration: 2 * time.Second, Term: 1})
		return err
	}); err != nil {
		t.Fatalf("create with the documented Role: %v", err)
	}
	v2, err := b.Update(ctxT(t), elector.Record{Holder: "a", LeaseDuration: 2 * time.Second, Term: 1, RenewTime: time.Now()}, v)
	if err != nil {
		t.Fatalf("update with the documented Role: %v", err)
	}
	if _, gv, err := b.Get(ctxT(t)); err != nil || gv != v2 {
		t.Fatalf("get with the documented Role: %q %v", gv, err)
	}
	wctx, cancel := context.WithTimeout(ctxT(t), 5*time.Second)
	defer cancel()
	if _, wv, err := b.Watch(wctx, v); err != nil || wv != v2 {
		t.Fatalf("watch with the documented Role: %q %v", wv, err)
	}
	// A full elector: it leads and renews.
	admin(t).CoordinationV1().Leases("default").Delete(ctxT(t), "web-leader", metav1.DeleteOptions{})
	started := make(chan int64, 1)
	e, err := elector.New(elector.Config{Identity: "web-0", LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 250 * time.Millisecond},
		b, elector.Callbacks{OnStartedLeading: func(_ context.Context, term int64) { started <- term }, OnStoppedLeading: func() {}},
		elector.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	defer func() { stop(); <-done }()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the elector did not lead within 10s with the documented Role")
	}
	time.Sleep(time.Second) // renewals
	if !e.IsLeader() {
		t.Fatal("the elector stopped leading: renewals failed with the documented Role")
	}
	// Another Lease is off limits (except create, which RBAC cannot limit
	// by name).
	if _, _, err := c.Lock("someone-else").Get(ctxT(t)); err == nil || !strings.Contains(err.Error(), "permission denied: cannot get lease someone-else") {
		t.Fatalf("get of another Lease: %v, want permission denied", err)
	}
}

// TestUnauthorized: credentials the apiserver rejects give a plain error
// naming the server, the verb, the Lease and the namespace — never a
// conflict or a missing record that would make a candidate write.
func TestUnauthorized(t *testing.T) {
	k := need(t)
	b, err := os.ReadFile(k.UserKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.ReplaceAll(string(b), k.UserToken, "not-a-token")
	if bad == string(b) {
		t.Fatal("the user's token is not in its kubeconfig")
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := kube.DefaultConfig()
	cfg.Kubeconfig = path
	cfg.Logger = slog.New(slog.DiscardHandler)
	c, err := kube.New(ctxT(t), cfg)
	if err == nil {
		defer c.Close()
		_, _, err = c.Lock("unauthorized").Get(ctxT(t))
	}
	if err == nil || errors.Is(err, elector.ErrNotFound) || errors.Is(err, elector.ErrConflict) ||
		!strings.Contains(err.Error(), "unauthorized") || strings.Contains(err.Error(), "no answer") {
		t.Fatalf("with a rejected token: %v; want an unauthorized error", err)
	}
	t.Log(err)
}
