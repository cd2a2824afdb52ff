package steps

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubebake/kubebake/firstboot/engine"
)

// modFake is engine.Modules over a set of names: loadable ones appear in
// loaded after Load.
type modFake struct {
	loaded    map[string]bool
	loadable  map[string]bool
	available *bool // nil: no Available method (see modFakeAv)
	loads     []string
}

func (m *modFake) Loaded(name string) (bool, error) { return m.loaded[name], nil }

func (m *modFake) Load(ctx context.Context, name string) error {
	m.loads = append(m.loads, name)
	if !m.loadable[name] {
		return fmt.Errorf("modprobe: FATAL: Module %s not found", name)
	}
	m.loaded[name] = true
	return nil
}

// modFakeAv adds ModuleAvailability.
type modFakeAv struct{ *modFake }

func (m modFakeAv) Available(name string) (bool, error) { return m.loadable[name], nil }

// kernelEnv is an Env rooted in a temp dir that logs into buf.
func kernelEnv(t *testing.T) (*engine.Env, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	return &engine.Env{Root: t.TempDir(), Log: slog.New(slog.NewTextHandler(&buf, nil))}, &buf
}

// converge runs steps like the runner does (Check, Apply when needed,
// Verify, then Check again, which must be converged) and returns the IDs
// that needed a change.
func converge(t *testing.T, env *engine.Env, steps []engine.Step) []string {
	t.Helper()
	changed, err := convergeSteps(context.Background(), env, steps)
	if err != nil {
		t.Fatal(err)
	}
	return changed
}

// convergeSteps is converge for goroutines other than the test's (the netns
// tests run steps on a locked OS thread).
func convergeSteps(ctx context.Context, env *engine.Env, steps []engine.Step) ([]string, error) {
	var changed []string
	for _, s := range steps {
		st, err := s.Check(ctx, env)
		if err != nil {
			return changed, fmt.Errorf("%s: check: %w", s.ID(), err)
		}
		if !st.Converged {
			if len(st.Diff) == 0 {
				return changed, fmt.Errorf("%s: needs change but no diff", s.ID())
			}
			changed = append(changed, s.ID())
			if err := s.Apply(ctx, env); err != nil {
				return changed, fmt.Errorf("%s: apply: %w", s.ID(), err)
			}
		}
		if err := s.Verify(ctx, env); err != nil {
			return changed, fmt.Errorf("%s: verify: %w", s.ID(), err)
		}
		if st, err := s.Check(ctx, env); err != nil || !st.Converged {
			return changed, fmt.Errorf("%s: check after apply: %+v, %v", s.ID(), st, err)
		}
	}
	return changed, nil
}

func TestModulesConverge(t *testing.T) {
	env, _ := kernelEnv(t)
	fake := &modFake{
		loaded:   map[string]bool{"br_netfilter": true}, // built in
		loadable: map[string]bool{"ip_vs": true, "ip_vs_rr": true, "overlay": true},
	}
	env.Modules = fake
	steps := Modules([]string{"ip_vs", "ip_vs_rr", "br_netfilter", "overlay"})
	if len(steps) != 5 {
		t.Fatalf("%d steps, want 4 modules + persistence", len(steps))
	}
	st, err := steps[0].Check(context.Background(), env)
	if err != nil || st.Converged || len(st.Diff) != 1 || st.Diff[0] != "load ip_vs" {
		t.Fatalf("check ip_vs = %+v, %v; want diff [load ip_vs]", st, err)
	}
	changed := converge(t, env, steps)
	want := []string{"module/ip_vs", "module/ip_vs_rr", "module/overlay", "modules-load.d/kubebake.conf"}
	if strings.Join(changed, ",") != strings.Join(want, ",") {
		t.Errorf("changed %v, want %v", changed, want)
	}
	if strings.Join(fake.loads, ",") != "ip_vs,ip_vs_rr,overlay" {
		t.Errorf("modprobe calls %v", fake.loads)
	}
	conf := filepath.Join(env.Root, "etc/modules-load.d/kubebake.conf")
	first, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(first), "\nip_vs\nip_vs_rr\nbr_netfilter\noverlay\n") {
		t.Errorf("kubebake.conf:\n%s", first)
	}
	// Second run: nothing to do, same bytes; Apply forced again keeps them.
	if changed := converge(t, env, steps); len(changed) != 0 {
		t.Errorf("second run changed %v", changed)
	}
	if err := steps[4].Apply(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(conf)
	if !bytes.Equal(first, second) {
		t.Errorf("second apply changed the file:\n%s\n---\n%s", first, second)
	}
	if len(fake.loads) != 3 {
		t.Errorf("second run called modprobe: %v", fake.loads)
	}
}

func TestModulesPersistenceRewritesDifferingFile(t *testing.T) {
	env, _ := kernelEnv(t)
	env.Modules = &modFake{loaded: map[string]bool{"overlay": true}}
	conf := filepath.Join(env.Root, "etc/modules-load.d/kubebake.conf")
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := Modules([]string{"overlay"})
	st, err := steps[1].Check(context.Background(), env)
	if err != nil || st.Converged {
		t.Fatalf("check = %+v, %v; want a diff, not an error, for an existing file", st, err)
	}
	converge(t, env, steps)
	if b, _ := os.ReadFile(conf); !strings.HasSuffix(string(b), "\noverlay\n") {
		t.Errorf("kubebake.conf:\n%s", b)
	}
}

func TestModulesLoadError(t *testing.T) {
	env, _ := kernelEnv(t)
	env.Modules = &modFake{loaded: map[string]bool{}, loadable: map[string]bool{}}
	err := Modules([]string{"ip_vs"})[0].Apply(context.Background(), env)
	if err == nil || !strings.Contains(err.Error(), "load module ip_vs") || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("err = %v", err)
	}
}

func TestModulesConntrackStandIn(t *testing.T) {
	for _, tc := range []struct {
		name           string
		availability   bool
		rerunConverged bool
	}{
		{"modprobe only", false, false},
		{"with availability", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, logs := kernelEnv(t)
			fake := &modFake{loaded: map[string]bool{"nf_conntrack": true}, loadable: map[string]bool{}}
			env.Modules = fake
			if tc.availability {
				env.Modules = modFakeAv{fake}
			}
			steps := Modules([]string{"nf_conntrack_ipv4"})[:1]
			ctx := context.Background()
			st, err := steps[0].Check(ctx, env)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Converged {
				if err := steps[0].Apply(ctx, env); err != nil {
					t.Fatalf("apply: %v", err)
				}
			}
			if err := steps[0].Verify(ctx, env); err != nil {
				t.Fatalf("verify: %v", err)
			}
			if !strings.Contains(logs.String(), "stand-in") || !strings.Contains(logs.String(), "loaded=nf_conntrack") {
				t.Errorf("no log line about the stand-in:\n%s", logs)
			}
			// On the re-run, Check can only skip modprobe when it can ask
			// whether the kernel has the module at all.
			st, _ = steps[0].Check(ctx, env)
			if st.Converged != tc.rerunConverged {
				t.Errorf("re-run check converged=%v, want %v", st.Converged, tc.rerunConverged)
			}
		})
	}
	t.Run("no stand-in loaded", func(t *testing.T) {
		env, _ := kernelEnv(t)
		env.Modules = modFakeAv{&modFake{loaded: map[string]bool{}, loadable: map[string]bool{}}}
		s := Modules([]string{"nf_conntrack_ipv4"})[0]
		if st, err := s.Check(context.Background(), env); err != nil || st.Converged {
			t.Fatalf("check = %+v, %v", st, err)
		}
		if err := s.Apply(context.Background(), env); err == nil {
			t.Fatal("apply succeeded without nf_conntrack_ipv4 or nf_conntrack")
		}
		if err := s.Verify(context.Background(), env); err == nil {
			t.Fatal("verify succeeded")
		}
	})
}

func TestModulesEmpty(t *testing.T) {
	if s := Modules(nil); s != nil {
		t.Errorf("Modules(nil) = %v", s)
	}
}
