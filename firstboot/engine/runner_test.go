package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fileStep converges <Root><path> to content and records its calls.
type fileStep struct {
	path, content string
	calls         *[]string
	failAt        Stage
}

func (s *fileStep) ID() string { return "test-file/" + s.path }

func (s *fileStep) Check(_ context.Context, env *Env) (Status, error) {
	*s.calls = append(*s.calls, "check "+s.path)
	if s.failAt == StageCheck {
		return Status{}, errors.New("boom")
	}
	p, err := env.Path(s.path)
	if err != nil {
		return Status{}, err
	}
	b, err := os.ReadFile(p)
	if err == nil && string(b) == s.content {
		return Status{Converged: true}, nil
	}
	return Status{Diff: []string{fmt.Sprintf("write %s", s.path)}}, nil
}

func (s *fileStep) Apply(_ context.Context, env *Env) error {
	*s.calls = append(*s.calls, "apply "+s.path)
	if s.failAt == StageApply {
		return errors.New("boom")
	}
	p, _ := env.Path(s.path)
	os.MkdirAll(filepath.Dir(p), 0o755)
	return os.WriteFile(p, []byte(s.content), 0o644)
}

func (s *fileStep) Verify(ctx context.Context, env *Env) error {
	*s.calls = append(*s.calls, "verify "+s.path)
	if s.failAt == StageVerify {
		return errors.New("boom")
	}
	st, err := s.Check(ctx, env)
	*s.calls = (*s.calls)[:len(*s.calls)-1]
	if err != nil || !st.Converged {
		return fmt.Errorf("not converged")
	}
	return nil
}

func testEnv(t *testing.T) *Env {
	t.Helper()
	root := t.TempDir()
	clock := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	return &Env{Root: root, Bundle: t.TempDir(), Now: func() time.Time { clock = clock.Add(time.Second); return clock }}
}

func threeSteps(calls *[]string) []Step {
	return []Step{
		&fileStep{path: "/etc/a", content: "a", calls: calls},
		&fileStep{path: "/etc/b", content: "b", calls: calls},
		&fileStep{path: "/etc/c", content: "c", calls: calls},
	}
}

func loadState(t *testing.T, env *Env) *State {
	t.Helper()
	p, _ := env.Path(StatePath)
	st, err := LoadState(p)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestRunOrderAndRerun(t *testing.T) {
	env := testEnv(t)
	var calls []string
	steps := threeSteps(&calls)
	var log bytes.Buffer
	res, err := Run(context.Background(), env, steps, RunOptions{Digest: "sha256:one", Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	want := "check /etc/a,apply /etc/a,verify /etc/a,check /etc/b,apply /etc/b,verify /etc/b,check /etc/c,apply /etc/c,verify /etc/c"
	if got := strings.Join(calls, ","); got != want {
		t.Errorf("calls:\n got %s\nwant %s", got, want)
	}
	if res.Count(OutcomeChanged) != 3 {
		t.Errorf("changed = %d, want 3", res.Count(OutcomeChanged))
	}
	for _, line := range []string{
		"[1/3] test-file//etc/a: started\n",
		"[1/3] test-file//etc/a: will change: write /etc/a\n",
		"[1/3] test-file//etc/a: finished (changed: write /etc/a)\n",
		"[3/3] test-file//etc/c: finished (changed: write /etc/c)\n",
	} {
		if !strings.Contains(log.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, log.String())
		}
	}
	st := loadState(t, env)
	if !st.Done || st.Finished == nil || len(st.Steps) != 3 || st.Steps[1].ID != "test-file//etc/b" || st.Steps[1].Result != ResultChanged || st.Steps[1].BundleDigest != "sha256:one" {
		t.Errorf("state after first run: %+v", st)
	}

	calls = nil
	log.Reset()
	res, err = Run(context.Background(), env, steps, RunOptions{Digest: "sha256:one", Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count(OutcomeConverged) != 3 || res.Replanned {
		t.Errorf("re-run: %+v", res)
	}
	if got := strings.Join(calls, ","); got != "check /etc/a,check /etc/b,check /etc/c" {
		t.Errorf("re-run calls: %s", got)
	}
	if !strings.Contains(log.String(), "[2/3] test-file//etc/b: already converged\n") {
		t.Errorf("re-run log:\n%s", log.String())
	}
	if st := loadState(t, env); st.Steps[0].Result != ResultConverged || !st.Done {
		t.Errorf("state after re-run: %+v", st)
	}
}

func TestStateFileAtomicAndReplan(t *testing.T) {
	env := testEnv(t)
	var calls []string
	if _, err := Run(context.Background(), env, threeSteps(&calls), RunOptions{Digest: "sha256:one"}); err != nil {
		t.Fatal(err)
	}
	p, _ := env.Path(StatePath)
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 || ents[0].Name() != "state.json" {
		t.Errorf("state dir holds %v, want only state.json (no temp files left)", ents)
	}
	b, _ := os.ReadFile(p)
	if !json.Valid(b) {
		t.Errorf("state file is not JSON: %s", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o644 {
		t.Errorf("state file mode %v", fi.Mode())
	}

	// Another bundle: the old records are set aside; only the new plan's remain.
	var log bytes.Buffer
	steps := []Step{&fileStep{path: "/etc/a", content: "a", calls: &calls}, &fileStep{path: "/etc/d", content: "d", calls: &calls}}
	res, err := Run(context.Background(), env, steps, RunOptions{Digest: "sha256:two", Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Replanned || !strings.Contains(log.String(), "state file is for bundle sha256:one, this bundle is sha256:two: re-planning from the first step") {
		t.Errorf("no re-plan logged:\n%s", log.String())
	}
	st := loadState(t, env)
	if st.BundleDigest != "sha256:two" || len(st.Steps) != 2 || st.Steps[1].ID != "test-file//etc/d" {
		t.Errorf("state after re-plan: %+v", st)
	}
}

func TestRunComputesBundleDigest(t *testing.T) {
	env := testEnv(t)
	os.WriteFile(filepath.Join(env.Bundle, "bundle.json"), []byte("{}\n"), 0o644)
	var calls []string
	res, err := Run(context.Background(), env, threeSteps(&calls)[:1], RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// sha256 of "{}\n"
	if want := "sha256:ca3d163bab055381827226140568f3bef7eaac187cebd76878e0b63e9e442356"; res.Digest != want {
		t.Errorf("digest %s, want %s", res.Digest, want)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	env := testEnv(t)
	var calls []string
	var log bytes.Buffer
	res, err := Run(context.Background(), env, threeSteps(&calls), RunOptions{Digest: "sha256:one", DryRun: true, Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(calls, ","); got != "check /etc/a,check /etc/b,check /etc/c" {
		t.Errorf("dry run calls: %s", got)
	}
	if res.Count(OutcomeWouldChange) != 3 {
		t.Errorf("dry run: %+v", res)
	}
	if !strings.Contains(log.String(), "[2/3] test-file//etc/b: would change\n        write /etc/b\n") {
		t.Errorf("dry run log:\n%s", log.String())
	}
	ents, _ := os.ReadDir(env.Root)
	if len(ents) != 0 {
		t.Errorf("dry run wrote into root: %v", ents)
	}
}

func TestStepErrorNamesStep(t *testing.T) {
	for _, stage := range []Stage{StageCheck, StageApply, StageVerify} {
		t.Run(string(stage), func(t *testing.T) {
			env := testEnv(t)
			var calls []string
			steps := threeSteps(&calls)
			steps[1].(*fileStep).failAt = stage
			var log bytes.Buffer
			_, err := Run(context.Background(), env, steps, RunOptions{Digest: "sha256:one", Log: &log})
			var se *StepError
			if !errors.As(err, &se) {
				t.Fatalf("err %v, want *StepError", err)
			}
			if se.Index != 2 || se.ID != "test-file//etc/b" || se.Stage != stage || se.Total != 3 {
				t.Errorf("StepError %+v", se)
			}
			if want := "step [2/3] test-file//etc/b: " + string(stage) + ": boom"; err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
			if ExitCode(err) != 12 {
				t.Errorf("exit code %d, want 12", ExitCode(err))
			}
			if !strings.Contains(log.String(), "[2/3] test-file//etc/b: failed at "+string(stage)+": boom\n") {
				t.Errorf("log:\n%s", log.String())
			}
			for _, c := range calls {
				if strings.HasSuffix(c, "/etc/c") {
					t.Errorf("step 3 ran after step 2 failed: %v", calls)
				}
			}
			st := loadState(t, env)
			if rec, _ := st.Lookup("test-file//etc/b"); rec.Result != ResultFailed || rec.Stage != stage || st.Done {
				t.Errorf("state %+v", st)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want int
	}{
		{"ok", nil, 0},
		{"other", errors.New("x"), 1},
		{"stopped", ErrStoppedForTest, 99},
		{"first step", &StepError{Index: 1, Err: errors.New("x")}, 11},
		{"capped", &StepError{Index: 400, Err: errors.New("x")}, 125},
		{"wrapped", fmt.Errorf("run: %w", &StepError{Index: 7, Err: errors.New("x")}), 17},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExitCode(tc.err); got != tc.want {
				t.Errorf("ExitCode = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestStopAfterHook(t *testing.T) {
	env := testEnv(t)
	var calls []string
	n, err := StopAfterFromEnv(func(k string) string { return map[string]string{StopAfterEnv: "2"}[k] })
	if err != nil || n != 2 {
		t.Fatalf("StopAfterFromEnv = %d, %v", n, err)
	}
	if _, err := StopAfterFromEnv(func(string) string { return "x" }); err == nil {
		t.Error("StopAfterFromEnv accepted x")
	}
	_, err = Run(context.Background(), env, threeSteps(&calls), RunOptions{Digest: "sha256:one", StopAfter: n})
	if !errors.Is(err, ErrStoppedForTest) || ExitCode(err) != ExitStoppedForTest {
		t.Fatalf("err %v", err)
	}
	if c, _ := env.Path("/etc/c"); fileExists(c) {
		t.Error("step 3 ran")
	}
	st := loadState(t, env)
	if len(st.Steps) != 2 || st.Done {
		t.Errorf("state after stop: %+v", st)
	}
	calls = nil
	res, err := Run(context.Background(), env, threeSteps(&calls), RunOptions{Digest: "sha256:one"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count(OutcomeConverged) != 2 || res.Count(OutcomeChanged) != 1 || !loadState(t, env).Done {
		t.Errorf("next run: %+v", res)
	}
}

func TestDuplicateIDs(t *testing.T) {
	env := testEnv(t)
	var calls []string
	steps := append(threeSteps(&calls), &fileStep{path: "/etc/a", calls: &calls})
	if _, err := Run(context.Background(), env, steps, RunOptions{Digest: "x"}); !errors.Is(err, ErrDuplicateStep) {
		t.Errorf("err %v", err)
	}
	if len(calls) != 0 {
		t.Errorf("steps ran: %v", calls)
	}
}

func TestReport(t *testing.T) {
	env := testEnv(t)
	var calls []string
	steps := threeSteps(&calls)
	Run(context.Background(), env, steps, RunOptions{Digest: "sha256:one", StopAfter: 1})
	p, _ := env.Path(StatePath)
	st, _ := LoadState(p)
	var b bytes.Buffer
	Summarize(p, "sha256:one", st, steps).Write(&b)
	for _, want := range []string{"[1/3] test-file//etc/a: changed 2025-", "[2/3] test-file//etc/b: pending\n", "1 of 3 steps done\n", "state      not done"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	Summarize(p, "sha256:two", st, steps).Write(&b)
	if !strings.Contains(b.String(), "written for another bundle (sha256:one)") || !strings.Contains(b.String(), "0 of 3 steps done") {
		t.Errorf("stale report:\n%s", b.String())
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// A stateless run (firstboot network at every boot) converges every step
// and leaves the first boot's state file exactly as it was, also when a
// step fails.
func TestStatelessRunKeepsState(t *testing.T) {
	env := testEnv(t)
	var calls []string
	if _, err := Run(context.Background(), env, threeSteps(&calls), RunOptions{Digest: "sha256:one"}); err != nil {
		t.Fatal(err)
	}
	p, _ := env.Path(StatePath)
	before, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel forgot /etc/b (a route, an iptables rule) at reboot.
	b, _ := env.Path("/etc/b")
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	calls = nil
	res, err := Run(context.Background(), env, threeSteps(&calls), RunOptions{Digest: "sha256:one", Stateless: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count(OutcomeChanged) != 1 || res.Count(OutcomeConverged) != 2 {
		t.Errorf("stateless run: %+v", res)
	}
	if got, err := os.ReadFile(b); err != nil || string(got) != "b" {
		t.Errorf("/etc/b after stateless run: %q, %v", got, err)
	}
	failing := []Step{&fileStep{path: "/etc/d", content: "d", calls: &calls, failAt: StageApply}}
	if _, err := Run(context.Background(), env, failing, RunOptions{Digest: "sha256:one", Stateless: true}); ExitCode(err) != 11 {
		t.Errorf("failing stateless run: %v (exit %d), want step 1's exit 11", err, ExitCode(err))
	}
	after, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("state file changed by stateless runs:\n%s\n→\n%s", before, after)
	}
}

// changeProbe is a converged step that records what Env.ChangedAt says
// about id when checked, as the units step asks about file steps.
type changeProbe struct {
	id  string
	at  time.Time
	ok  bool
	ran bool
}

func (p *changeProbe) ID() string { return "probe" }
func (p *changeProbe) Check(_ context.Context, env *Env) (Status, error) {
	p.at, p.ok = env.ChangedAt(p.id)
	p.ran = true
	return Status{Converged: true}, nil
}
func (p *changeProbe) Apply(context.Context, *Env) error  { return nil }
func (p *changeProbe) Verify(context.Context, *Env) error { return nil }

func TestChangedAtHook(t *testing.T) {
	env := testEnv(t)
	var calls []string
	ctx := context.Background()
	const id = "test-file//etc/a"
	run := func(t *testing.T, digest, content string, opts RunOptions) *changeProbe {
		t.Helper()
		p := &changeProbe{id: id}
		opts.Digest = digest
		if _, err := Run(ctx, env, []Step{&fileStep{path: "/etc/a", content: content, calls: &calls}, p}, opts); err != nil {
			t.Fatal(err)
		}
		if !p.ran {
			t.Fatal("probe not checked")
		}
		return p
	}
	record := func(t *testing.T) StepRecord {
		t.Helper()
		r, ok := loadState(t, env).Lookup(id)
		if !ok {
			t.Fatalf("no record for %s", id)
		}
		return r
	}

	var first time.Time
	t.Run("changed in this run", func(t *testing.T) {
		p := run(t, "sha256:one", "a", RunOptions{})
		r := record(t)
		if !p.ok || !p.at.Equal(r.Time) || !r.Changed.Equal(r.Time) {
			t.Fatalf("ChangedAt = %v, %v; record %+v", p.at, p.ok, r)
		}
		first = p.at
	})
	t.Run("converged in a re-run of the same bundle keeps the time", func(t *testing.T) {
		p := run(t, "sha256:one", "a", RunOptions{})
		r := record(t)
		if !p.ok || !p.at.Equal(first) || r.Result != ResultConverged || !r.Changed.Equal(first) {
			t.Fatalf("ChangedAt = %v, %v, want %v; record %+v", p.at, p.ok, first, r)
		}
	})
	t.Run("a crash after the file step: the next run still sees it", func(t *testing.T) {
		_, err := Run(ctx, env, []Step{&fileStep{path: "/etc/a", content: "a2", calls: &calls}, &changeProbe{id: id}},
			RunOptions{Digest: "sha256:two", StopAfter: 1})
		if !errors.Is(err, ErrStoppedForTest) {
			t.Fatal(err)
		}
		changed := record(t).Time
		p := run(t, "sha256:two", "a2", RunOptions{})
		if !p.ok || !p.at.Equal(changed) {
			t.Fatalf("ChangedAt = %v, %v, want %v", p.at, p.ok, changed)
		}
	})
	t.Run("another bundle's change does not count", func(t *testing.T) {
		// The file is already as bundle three wants it: bundle two changed it.
		if p := run(t, "sha256:three", "a2", RunOptions{}); p.ok {
			t.Fatalf("ChangedAt = %v, true: bundle two's record counted for bundle three", p.at)
		}
	})
	t.Run("a record of another digest inside this bundle's state file", func(t *testing.T) {
		sp, _ := env.Path(StatePath)
		at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		st := &State{Format: StateFormat, BundleDigest: "sha256:four", Steps: []StepRecord{
			{ID: id, BundleDigest: "sha256:three", Result: ResultChanged, Time: at, Changed: at},
		}}
		if err := SaveState(sp, st); err != nil {
			t.Fatal(err)
		}
		if p := run(t, "sha256:four", "a2", RunOptions{}); p.ok {
			t.Fatalf("ChangedAt = %v, true from a record of sha256:three", p.at)
		}
		if r := record(t); !r.Changed.IsZero() {
			t.Errorf("record %+v carried another digest's change time", r)
		}
	})
	t.Run("a state file from before the changed field", func(t *testing.T) {
		sp, _ := env.Path(StatePath)
		at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		st := &State{Format: StateFormat, BundleDigest: "sha256:five", Steps: []StepRecord{
			{ID: id, BundleDigest: "sha256:five", Result: ResultChanged, Time: at},
		}}
		if err := SaveState(sp, st); err != nil {
			t.Fatal(err)
		}
		if p := run(t, "sha256:five", "a2", RunOptions{}); !p.ok || !p.at.Equal(at) {
			t.Fatalf("ChangedAt = %v, %v, want %v", p.at, p.ok, at)
		}
	})
	t.Run("dry run: a step that would change counts", func(t *testing.T) {
		if p := run(t, "sha256:six", "a3", RunOptions{DryRun: true}); !p.ok || p.at.IsZero() {
			t.Fatalf("ChangedAt = %v, %v in a dry run where the file would change", p.at, p.ok)
		}
		if p := run(t, "sha256:six", "a2", RunOptions{DryRun: true}); p.ok {
			t.Fatalf("ChangedAt = %v, true in a dry run where the file is converged", p.at)
		}
	})
}
