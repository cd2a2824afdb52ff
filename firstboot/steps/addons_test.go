package steps

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// exitErr stands in for *exec.ExitError: an exit status and the output.
type exitErr struct {
	code int
	out  string
}

func (e exitErr) Error() string { return fmt.Sprintf("exit status %d: %s", e.code, e.out) }
func (e exitErr) ExitCode() int { return e.code }

// kubectlExec answers each kubectl verb (diff, apply) from a script of
// results, in order; the last result repeats. It records every call.
type kubectlExec struct {
	results map[string][]error
	calls   []string
}

func (k *kubectlExec) Run(_ context.Context, name string, args ...string) error {
	k.calls = append(k.calls, name+" "+strings.Join(args, " "))
	verb := ""
	if len(args) > 2 {
		verb = args[2]
	}
	rs := k.results[verb]
	if len(rs) == 0 {
		return fmt.Errorf("unexpected %s", verb)
	}
	err := rs[0]
	if len(rs) > 1 {
		k.results[verb] = rs[1:]
	}
	// Like host.Exec: a failure wraps the exit error with the command.
	if err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

func addonsPlan() *plan.Addons {
	return &plan.Addons{Dir: "/opt/kubernetes/addons", Kubeconfig: "/opt/kubernetes/conf/kubebake-addons.kubeconfig",
		Kubectl: "/opt/kubernetes/bin/kubectl", Attempts: 3, Interval: "1ms"}
}

// addonsEnv is a root where kubectl is installed (an empty file: the
// fake runner never runs it).
func addonsEnv(t *testing.T, k *kubectlExec) *engine.Env {
	root := t.TempDir()
	bin := filepath.Join(root, "opt/kubernetes/bin/kubectl")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	return &engine.Env{Root: root, Exec: k}
}

// TestAddonsDryRunBeforeFiles: before the files step has installed
// kubectl (firstboot --dry-run on a fresh host), Check reports the change
// and runs nothing.
func TestAddonsDryRunBeforeFiles(t *testing.T) {
	k := &kubectlExec{results: map[string][]error{}}
	st, err := Addons(addonsPlan())[0].Check(context.Background(), &engine.Env{Root: t.TempDir(), Exec: k})
	if err != nil || st.Converged || !strings.Contains(strings.Join(st.Diff, ""), "not installed yet") || len(k.calls) != 0 {
		t.Fatalf("Check: %+v, %v, calls %v", st, err, k.calls)
	}
}

func TestAddonsArgs(t *testing.T) {
	k := &kubectlExec{results: map[string][]error{"diff": {exitErr{1, "diff -u -N /tmp/LIVE /tmp/MERGED\n+  replicas: 2"}, nil}, "apply": {nil}}}
	env := addonsEnv(t, k)
	s := Addons(addonsPlan())[0]
	if s.ID() != "addons/apply" {
		t.Errorf("ID %q", s.ID())
	}
	ctx := context.Background()
	st, err := s.Check(ctx, env)
	if err != nil || st.Converged || !strings.Contains(strings.Join(st.Diff, "\n"), "+  replicas: 2") {
		t.Fatalf("Check: %+v, %v", st, err)
	}
	if err := s.Apply(ctx, env); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, env); err != nil {
		t.Fatal(err)
	}
	r := env.Root
	kc, dir := filepath.Join(r, "opt/kubernetes/conf/kubebake-addons.kubeconfig"), filepath.Join(r, "opt/kubernetes/addons")
	bin := filepath.Join(r, "opt/kubernetes/bin/kubectl")
	want := []string{
		bin + " --kubeconfig " + kc + " diff --server-side --field-manager=kubebake --force-conflicts -f " + dir,
		bin + " --kubeconfig " + kc + " apply --server-side --field-manager=kubebake --force-conflicts -f " + dir,
		bin + " --kubeconfig " + kc + " diff --server-side --field-manager=kubebake --force-conflicts -f " + dir,
	}
	if strings.Join(k.calls, "\n") != strings.Join(want, "\n") {
		t.Errorf("calls:\n%s\nwant:\n%s", strings.Join(k.calls, "\n"), strings.Join(want, "\n"))
	}
}

func TestAddonsExitCodes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		diff      error
		converged bool
		checkErr  bool
		diffHas   string
	}{
		{name: "0 converged", diff: nil, converged: true},
		{name: "1 differs", diff: exitErr{1, "-  replicas: 1\n+  replicas: 2"}, diffHas: "+  replicas: 2"},
		{name: "2 cannot diff yet", diff: exitErr{2, `Error from server (NotFound): namespaces "kubernetes-dashboard" not found`}, diffHas: "cannot diff yet"},
		{name: "kubectl missing", diff: errors.New("fork/exec kubectl: no such file or directory"), checkErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &kubectlExec{results: map[string][]error{"diff": {tc.diff}}}
			s := Addons(addonsPlan())[0]
			st, err := s.Check(ctx, addonsEnv(t, k))
			if (err != nil) != tc.checkErr {
				t.Fatalf("Check error %v, want error %t", err, tc.checkErr)
			}
			if st.Converged != tc.converged || !strings.Contains(strings.Join(st.Diff, "\n"), tc.diffHas) {
				t.Errorf("Check: %+v", st)
			}
			// Verify is strict: only exit 0 passes.
			k.results["diff"] = []error{tc.diff}
			if err := s.Verify(ctx, addonsEnv(t, k)); (err == nil) != (tc.diff == nil) {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestAddonsApplyRetries(t *testing.T) {
	ctx := context.Background()
	refused := exitErr{1, "The connection to the server 127.0.0.1:6443 was refused"}
	t.Run("until the apiserver answers", func(t *testing.T) {
		k := &kubectlExec{results: map[string][]error{"apply": {refused, refused, nil}, "diff": {nil}}}
		env := addonsEnv(t, k)
		s := Addons(addonsPlan())[0]
		if err := s.Apply(ctx, env); err != nil {
			t.Fatal(err)
		}
		if len(k.calls) != 3 {
			t.Errorf("%d calls, want 3", len(k.calls))
		}
	})
	t.Run("gives up after attempts", func(t *testing.T) {
		k := &kubectlExec{results: map[string][]error{"apply": {refused}}}
		s := Addons(addonsPlan())[0]
		err := s.Apply(ctx, addonsEnv(t, k))
		if err == nil || !strings.Contains(err.Error(), "after 3 attempts") || !strings.Contains(err.Error(), "refused") {
			t.Fatalf("Apply: %v", err)
		}
		if len(k.calls) != 3 {
			t.Errorf("%d calls, want 3", len(k.calls))
		}
	})
	t.Run("no retry when kubectl cannot run", func(t *testing.T) {
		k := &kubectlExec{results: map[string][]error{"apply": {errors.New("fork/exec: no such file")}}}
		s := Addons(addonsPlan())[0]
		if err := s.Apply(ctx, addonsEnv(t, k)); err == nil {
			t.Fatal("Apply passed")
		}
		if len(k.calls) != 1 {
			t.Errorf("%d calls, want 1", len(k.calls))
		}
	})
	t.Run("stops with the context", func(t *testing.T) {
		k := &kubectlExec{results: map[string][]error{"apply": {refused}}}
		p := addonsPlan()
		p.Attempts, p.Interval = 100, "1h"
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := Addons(p)[0].Apply(cctx, addonsEnv(t, k))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Apply: %v", err)
		}
	})
}

// TestAddonsRepeat: Check, Apply, Verify, then Check reports converged.
func TestAddonsRepeat(t *testing.T) {
	ctx := context.Background()
	k := &kubectlExec{results: map[string][]error{"diff": {exitErr{1, "+x"}, nil}, "apply": {nil}}}
	env := addonsEnv(t, k)
	s := Addons(addonsPlan())[0]
	if st, err := s.Check(ctx, env); err != nil || st.Converged {
		t.Fatalf("Check: %+v %v", st, err)
	}
	if err := s.Apply(ctx, env); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, env); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Check(ctx, env); err != nil || !st.Converged {
		t.Fatalf("Check after Apply: %+v %v", st, err)
	}
}

func TestAddonsInPlan(t *testing.T) {
	m := &plan.Manifest{Format: plan.Format, Host: plan.Host{Name: "hdss7-21", IP: "10.4.7.21"},
		Plan: plan.Plan{Health: []plan.HealthCheck{{Name: "kube-apiserver", URL: "https://127.0.0.1:6443/readyz", Attempts: 1}}, Addons: addonsPlan()}}
	out, err := FromManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range out {
		ids = append(ids, s.ID())
	}
	got := strings.Join(ids[len(ids)-3:], " ")
	if got != "health/kube-apiserver addons/apply finish" {
		t.Errorf("last steps %s", got)
	}
	m.Plan.Addons = nil
	if out2, _ := FromManifest(m); len(out2) != len(out)-1 {
		t.Error("addons step without plan.addons")
	}
}

func TestDiffLinesCapped(t *testing.T) {
	var b strings.Builder
	for i := range 100 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	got := diffLines(b.String())
	if len(got) != addonsDiffLines+1 || !strings.Contains(got[len(got)-1], "60 more lines") {
		t.Errorf("%d lines, last %q", len(got), got[len(got)-1])
	}
}

// A failed apply's log line names kubectl's error, not the first object
// it applied.
func TestKubectlError(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"kubectl apply: exit status 1: namespace/kube-system serverside-applied\nnamespace/kubernetes-dashboard serverside-applied\nError from server (NotFound): namespaces \"kubernetes-dashboard\" not found",
			`Error from server (NotFound): namespaces "kubernetes-dashboard" not found`},
		{"kubectl apply: exit status 1: error: unable to recognize \"30-traefik.yaml\": no matches for kind \"IngressClass\"",
			`error: unable to recognize "30-traefik.yaml": no matches for kind "IngressClass"`},
		{"kubectl apply: exit status 1: a\nError from server: 1\nError from server: 2\nerror: 3\nError: 4", "Error from server: 1; Error from server: 2; error: 3; … 1 more"},
		{"kubectl apply: signal: killed\nsomething", "kubectl apply: signal: killed …"},
		{"one line", "one line"},
	} {
		if got := kubectlError(tc.in); got != tc.want {
			t.Errorf("kubectlError(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

// Verify retries a diff the apiserver could not answer (exit 2: a timeout
// on a loaded control plane) and fails at once on a real difference.
func TestAddonsVerifyRetries(t *testing.T) {
	ctx := context.Background()
	timeout := exitErr{2, "Error from server (Timeout): Timeout: request did not complete within requested timeout"}
	t.Run("a timeout, then converged", func(t *testing.T) {
		k := &kubectlExec{results: map[string][]error{"diff": {timeout, timeout, nil}}}
		if err := Addons(addonsPlan())[0].Verify(ctx, addonsEnv(t, k)); err != nil {
			t.Fatal(err)
		}
		if len(k.calls) != 3 {
			t.Errorf("%d calls, want 3", len(k.calls))
		}
	})
	t.Run("still differs", func(t *testing.T) {
		k := &kubectlExec{results: map[string][]error{"diff": {exitErr{1, "+  replicas: 2"}}}}
		err := Addons(addonsPlan())[0].Verify(ctx, addonsEnv(t, k))
		if err == nil || !strings.Contains(err.Error(), "still differs") || !strings.Contains(err.Error(), "replicas: 2") {
			t.Fatalf("Verify: %v", err)
		}
		if len(k.calls) != 1 {
			t.Errorf("%d calls, want 1: a difference is not retried", len(k.calls))
		}
	})
	t.Run("gives up after attempts", func(t *testing.T) {
		k := &kubectlExec{results: map[string][]error{"diff": {timeout}}}
		err := Addons(addonsPlan())[0].Verify(ctx, addonsEnv(t, k))
		if err == nil || !strings.Contains(err.Error(), "diff") || !strings.Contains(err.Error(), "after 3 attempts") {
			t.Fatalf("Verify: %v", err)
		}
	})
}
