package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// StopAfterEnv is the test hook: KUBEBAKE_FIRSTBOOT_STOP_AFTER=N stops a
// run after N steps (main reads it into RunOptions.StopAfter).
const StopAfterEnv = "KUBEBAKE_FIRSTBOOT_STOP_AFTER"

// RunOptions are Run's behaviour; the zero value runs every step and logs
// nothing.
type RunOptions struct {
	// DryRun runs Check only, logs each step's Diff and writes nothing, not
	// even the state file. Default false.
	DryRun bool
	// StopAfter > 0 makes Run return ErrStoppedForTest once that many steps
	// have finished and been recorded. Default 0: never.
	StopAfter int
	// Log receives the numbered progress lines. Default: discarded.
	Log io.Writer
	// Digest is the bundle digest recorded in the state file. Default: "",
	// computed with BundleDigest(env.Bundle).
	Digest string
	// Stateless neither reads nor writes the state file: every step is
	// checked and converged, and the record of the first boot stays as it
	// was. For re-applying what the kernel forgets at reboot (firstboot
	// network). Default false.
	Stateless bool
}

// StopAfterFromEnv reads the KUBEBAKE_FIRSTBOOT_STOP_AFTER hook with
// getenv (os.Getenv in main); unset or empty is 0.
func StopAfterFromEnv(getenv func(string) string) (int, error) {
	v := getenv(StopAfterEnv)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s=%q: want a positive number of steps", StopAfterEnv, v)
	}
	return n, nil
}

// Outcomes of one step in a Result.
const (
	OutcomeConverged   = ResultConverged
	OutcomeChanged     = ResultChanged
	OutcomeFailed      = ResultFailed
	OutcomeWouldChange = "would change" // dry run only
)

// Result is what a run did.
type Result struct {
	Digest    string
	Replanned bool // a state file for another bundle was set aside
	Steps     []StepResult
}

// StepResult is one step's outcome in a run.
type StepResult struct {
	Index    int // 1-based
	ID       string
	Outcome  string
	Diff     []string
	Duration time.Duration
}

// Count returns how many steps had the outcome.
func (r Result) Count(outcome string) int {
	n := 0
	for _, s := range r.Steps {
		if s.Outcome == outcome {
			n++
		}
	}
	return n
}

// Run walks steps in order: Check; when not converged Apply, then Verify.
// It logs a numbered line per event, records each step's outcome and saves
// the state file (<Root>/var/lib/kubebake/state.json) atomically after every
// step. A re-run starts from the top: Check makes finished steps cheap. A
// state file written for another bundle digest is set aside (logged) and the
// plan starts afresh. The first failing step stops the run with a
// *StepError; in a dry run every step is checked and the first check error
// is returned at the end.
func Run(ctx context.Context, env *Env, steps []Step, opts RunOptions) (Result, error) {
	if env.Log == nil {
		env.Log = discard()
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	out := opts.Log
	if out == nil {
		out = io.Discard
	}
	seen := map[string]int{}
	for i, s := range steps {
		if j, ok := seen[s.ID()]; ok {
			return Result{}, fmt.Errorf("plan: steps %d and %d: %q: %w", j+1, i+1, s.ID(), ErrDuplicateStep)
		}
		seen[s.ID()] = i
	}
	digest := opts.Digest
	if digest == "" {
		d, err := BundleDigest(env.Bundle)
		if err != nil {
			return Result{}, fmt.Errorf("bundle digest: %w", err)
		}
		digest = d
	}
	res := Result{Digest: digest}
	statePath, err := env.Path(StatePath)
	if err != nil {
		return res, err
	}

	st, replanned := &State{Format: StateFormat, BundleDigest: digest}, false
	if !opts.Stateless {
		st, replanned = openState(out, statePath, digest, env)
	}
	res.Replanned = replanned
	st.Started, st.Done, st.Finished = env.Now(), false, nil
	if env.Manifest != nil {
		st.Host = env.Manifest.Host.Name
	}
	mode := "run"
	if opts.DryRun {
		mode = "dry run (check only, nothing changes)"
	}
	fmt.Fprintf(out, "firstboot: %s of %d steps for bundle %s\n", mode, len(steps), digest)

	// ChangedAt reads st as the run records into it, so a unit step sees
	// the file steps of this run; a dry run records nothing, so there a
	// step that would change counts as changed at its check.
	wouldChange := map[string]time.Time{}
	env.ChangedAt = func(id string) (time.Time, bool) {
		if t, ok := wouldChange[id]; ok {
			return t, true
		}
		return st.changedAt(id, digest)
	}

	var firstErr error
	total := len(steps)
	for i, s := range steps {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		n := i + 1
		tag := fmt.Sprintf("[%d/%d] %s", n, total, s.ID())
		start := env.Now()
		sr := StepResult{Index: n, ID: s.ID()}
		fail := func(stage Stage, err error) *StepError {
			sr.Outcome, sr.Duration = OutcomeFailed, env.Now().Sub(start)
			res.Steps = append(res.Steps, sr)
			fmt.Fprintf(out, "%s: failed at %s: %v\n", tag, stage, err)
			return &StepError{Index: n, Total: total, ID: s.ID(), Stage: stage, Err: err}
		}

		if !opts.DryRun {
			fmt.Fprintf(out, "%s: started\n", tag)
		}
		status, err := s.Check(ctx, env)
		if err != nil {
			se := fail(StageCheck, err)
			if opts.DryRun {
				if firstErr == nil {
					firstErr = se
				}
				continue
			}
			return res, saveFailure(statePath, st, se, digest, env, se, opts.Stateless)
		}
		sr.Diff = status.Diff
		if opts.DryRun {
			if status.Converged {
				sr.Outcome = OutcomeConverged
				fmt.Fprintf(out, "%s: already converged\n", tag)
			} else {
				sr.Outcome = OutcomeWouldChange
				wouldChange[s.ID()] = env.Now()
				fmt.Fprintf(out, "%s: would change\n", tag)
				for _, d := range status.Diff {
					fmt.Fprintf(out, "        %s\n", d)
				}
			}
			sr.Duration = env.Now().Sub(start)
			res.Steps = append(res.Steps, sr)
			continue
		}
		if status.Converged {
			sr.Outcome = OutcomeConverged
			fmt.Fprintf(out, "%s: already converged\n", tag)
		} else {
			for _, d := range status.Diff {
				fmt.Fprintf(out, "%s: will change: %s\n", tag, d)
			}
			if err := s.Apply(ctx, env); err != nil {
				se := fail(StageApply, err)
				return res, saveFailure(statePath, st, se, digest, env, se, opts.Stateless)
			}
			if err := s.Verify(ctx, env); err != nil {
				se := fail(StageVerify, err)
				return res, saveFailure(statePath, st, se, digest, env, se, opts.Stateless)
			}
			sr.Outcome = OutcomeChanged
			fmt.Fprintf(out, "%s: finished (changed: %s)\n", tag, diffSummary(status.Diff))
		}
		sr.Duration = env.Now().Sub(start)
		res.Steps = append(res.Steps, sr)
		rec := StepRecord{ID: s.ID(), BundleDigest: digest, Result: sr.Outcome, Time: env.Now()}
		if sr.Outcome == OutcomeChanged {
			rec.Changed = rec.Time
		}
		st.record(rec)
		if n == total {
			now := env.Now()
			st.Done, st.Finished = true, &now
		}
		st.Updated = env.Now()
		if opts.Stateless {
			continue
		}
		if err := SaveState(statePath, st); err != nil {
			return res, err
		}
		if opts.StopAfter > 0 && n == opts.StopAfter && n < total {
			fmt.Fprintf(out, "firstboot: %s=%d: stopping after step %d of %d\n", StopAfterEnv, opts.StopAfter, n, total)
			return res, ErrStoppedForTest
		}
	}
	if firstErr != nil {
		return res, firstErr
	}
	if opts.DryRun {
		fmt.Fprintf(out, "firstboot: dry run: %d of %d steps would change, %d converged\n", res.Count(OutcomeWouldChange), total, res.Count(OutcomeConverged))
	} else {
		fmt.Fprintf(out, "firstboot: done: %d of %d steps changed, %d already converged\n", res.Count(OutcomeChanged), total, res.Count(OutcomeConverged))
	}
	return res, nil
}

// openState loads the state file for digest, or starts a fresh one when it
// is missing, unreadable or for another bundle (replanned).
func openState(out io.Writer, path, digest string, env *Env) (st *State, replanned bool) {
	old, err := LoadState(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(out, "firstboot: no state file at %s: first run\n", path)
	case err != nil:
		env.Log.Warn("state file unreadable, starting afresh", slog.String("error", err.Error()))
	case old.BundleDigest != digest:
		fmt.Fprintf(out, "firstboot: state file is for bundle %s, this bundle is %s: re-planning from the first step\n", old.BundleDigest, digest)
		replanned = true
	default:
		done := 0
		for _, r := range old.Steps {
			if r.Result != ResultFailed {
				done++
			}
		}
		fmt.Fprintf(out, "firstboot: state file records %d steps done for this bundle: checking all from the top\n", done)
		return old, false
	}
	return &State{Format: StateFormat, BundleDigest: digest}, replanned
}

// saveFailure records a failed step and returns ret (or the save error).
func saveFailure(path string, st *State, se *StepError, digest string, env *Env, ret error, stateless bool) error {
	if stateless {
		return ret
	}
	st.record(StepRecord{ID: se.ID, BundleDigest: digest, Result: ResultFailed, Time: env.Now(), Stage: se.Stage, Error: se.Err.Error()})
	st.Updated = env.Now()
	if err := SaveState(path, st); err != nil {
		return errors.Join(ret, err)
	}
	return ret
}

func diffSummary(d []string) string {
	if len(d) == 0 {
		return "no diff given"
	}
	return strings.Join(d, "; ")
}
