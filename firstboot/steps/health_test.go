package steps

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/host"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// healthServer is a TLS server that answers 503 until it has been asked
// `sickFor` times, then "ok"; it counts requests. Its certificate is
// written below root as /etc/kubernetes/pki/ca.pem.
func healthServer(t *testing.T, root string, sickFor int64) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) <= sickFor {
			http.Error(w, "[-]poststarthook/rbac failed: not finished", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(s.Close)
	ca := filepath.Join(root, "etc/kubernetes/pki/ca.pem")
	if err := os.MkdirAll(filepath.Dir(ca), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return s, &n
}

func healthEnv(t *testing.T) *engine.Env {
	root := t.TempDir()
	return &engine.Env{Root: root, Health: host.NewHealth(root)}
}

func TestHealthRetriesUntilHealthy(t *testing.T) {
	env := healthEnv(t)
	srv, n := healthServer(t, env.Root, 3)
	check := plan.HealthCheck{Name: "apiserver", URL: srv.URL + "/readyz", CA: "/etc/kubernetes/pki/ca.pem", Attempts: 10, Interval: "1ms", Expect: "ok"}
	s := Health([]plan.HealthCheck{check})[0]
	if s.ID() != "health/apiserver" {
		t.Errorf("ID %q", s.ID())
	}
	ctx := context.Background()
	st, err := s.Check(ctx, env) // request 1: 503
	if err != nil || st.Converged || !strings.Contains(strings.Join(st.Diff, ""), "503") {
		t.Fatalf("Check: %+v, %v", st, err)
	}
	if err := s.Apply(ctx, env); err != nil { // requests 2, 3 fail; 4 passes
		t.Fatalf("Apply: %v", err)
	}
	if got := n.Load(); got != 4 {
		t.Errorf("%d requests, want 4 (one check, two failed attempts, one good)", got)
	}
	if err := s.Verify(ctx, env); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Check(ctx, env); err != nil || !st.Converged {
		t.Fatalf("Check after Apply: %+v, %v", st, err)
	}
}

func TestHealthGivesUpWithURLAndLastError(t *testing.T) {
	env := healthEnv(t)
	srv, n := healthServer(t, env.Root, 1000)
	check := plan.HealthCheck{Name: "etcd", URL: srv.URL + "/health", CA: "/etc/kubernetes/pki/ca.pem", Attempts: 3, Interval: "1ms"}
	err := Health([]plan.HealthCheck{check})[0].Apply(context.Background(), env)
	if err == nil {
		t.Fatal("Apply succeeded against a sick server")
	}
	if got := n.Load(); got != 3 {
		t.Errorf("%d requests, want Attempts=3", got)
	}
	for _, s := range []string{srv.URL + "/health", "3 attempts", "503", "rbac failed"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error lacks %q: %s", s, err)
		}
	}
	if !errors.Is(err, host.ErrUnhealthy) {
		t.Errorf("error does not wrap host.ErrUnhealthy: %v", err)
	}
}

func TestHealthApplyStopsWithContext(t *testing.T) {
	env := healthEnv(t)
	srv, _ := healthServer(t, env.Root, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	env.Health = probeThen{env.Health, cancel} // cancel after the first probe
	check := plan.HealthCheck{Name: "kubelet", URL: srv.URL, CA: "/etc/kubernetes/pki/ca.pem", Attempts: 1000, Interval: "1h"}
	err := Health([]plan.HealthCheck{check})[0].Apply(ctx, env)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "503") {
		t.Errorf("Apply: %v, want context.Canceled with the last probe error", err)
	}
}

func TestHealthBadInterval(t *testing.T) {
	env := healthEnv(t)
	err := Health([]plan.HealthCheck{{Name: "x", URL: "http://127.0.0.1:1", Interval: "soon"}})[0].Apply(context.Background(), env)
	if err == nil || !strings.Contains(err.Error(), `"soon"`) {
		t.Errorf("Apply: %v", err)
	}
}

// probeThen runs the real probe, then calls after.
type probeThen struct {
	engine.Health
	after func()
}

func (p probeThen) Probe(ctx context.Context, c plan.HealthCheck) error {
	err := p.Health.Probe(ctx, c)
	p.after()
	return err
}
