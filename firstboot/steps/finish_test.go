package steps

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubebake/kubebake/firstboot/engine"
)

func TestFinishWritesMarkerAndDisables(t *testing.T) {
	sd := newSDFake()
	sd.enabled[FirstbootUnit] = true
	env := sdEnv(t, sd)
	env.Now = func() time.Time { return time.Date(2026, 11, 29, 7, 0, 0, 0, time.UTC) }
	s := Finish()

	st, err := s.Check(context.Background(), env)
	if err != nil || st.Converged || len(st.Diff) != 2 {
		t.Fatalf("Check: %+v, %v", st, err)
	}
	if got := sdRun(t, env, []engine.Step{s}); len(got) != 1 {
		t.Fatalf("applied %q", got)
	}
	digest, err := engine.BundleDigest(env.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	marker, err := os.ReadFile(filepath.Join(env.Root, DoneMarkerPath))
	if err != nil {
		t.Fatal(err)
	}
	if want := "bundle " + digest + "\ntime 2026-11-29T07:00:00Z\n"; string(marker) != want {
		t.Errorf("marker %q, want %q", marker, want)
	}
	if want := []string{"disable " + FirstbootUnit}; !reflect.DeepEqual(sd.calls, want) {
		t.Errorf("calls %q, want %q", sd.calls, want)
	}

	// Second run: converged, marker untouched (its time stays the first run's).
	sd.calls = nil
	env.Now = func() time.Time { return time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC) }
	if got := sdRun(t, env, []engine.Step{s}); len(got) != 0 || len(sd.calls) != 0 {
		t.Errorf("second run applied %q, calls %q", got, sd.calls)
	}
	if again, _ := os.ReadFile(filepath.Join(env.Root, DoneMarkerPath)); string(again) != string(marker) {
		t.Errorf("marker rewritten: %q", again)
	}

	// A new bundle: the marker is stale and is rewritten; the unit stays disabled.
	if err := os.WriteFile(filepath.Join(env.Bundle, "bundle.json"), []byte(`{"format":"next"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err = s.Check(context.Background(), env)
	if err != nil || st.Converged || !strings.Contains(strings.Join(st.Diff, ""), DoneMarkerPath) {
		t.Fatalf("Check with a new bundle: %+v, %v", st, err)
	}
	if got := sdRun(t, env, []engine.Step{s}); len(got) != 1 || len(sd.calls) != 0 {
		t.Errorf("new bundle: applied %q, calls %q", got, sd.calls)
	}
}

func TestFinishNotInstalledUnit(t *testing.T) {
	// Run by hand on a host without the unit: only the marker is written.
	sd := newSDFake()
	env := sdEnv(t, sd)
	if got := sdRun(t, env, []engine.Step{Finish()}); len(got) != 1 || len(sd.calls) != 0 {
		t.Errorf("applied %q, calls %q", got, sd.calls)
	}
}
