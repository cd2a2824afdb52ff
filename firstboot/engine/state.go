package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// StatePath is where firstboot keeps its state file, below Env.Root.
const StatePath = "/var/lib/kubebake/state.json"

// StateFormat is the state file's format version.
const StateFormat = "kubebake.io/firstboot-state/v1"

// Results a step record may hold.
const (
	ResultConverged = "converged" // Check found nothing to do
	ResultChanged   = "changed"   // Apply ran and Verify passed
	ResultFailed    = "failed"    // Check, Apply or Verify returned an error
)

// State is the state file: what the last runs did for one bundle.
type State struct {
	Format       string       `json:"format"`
	BundleDigest string       `json:"bundleDigest"` // sha256:… of bundle.json
	Host         string       `json:"host,omitempty"`
	Started      time.Time    `json:"started"`            // start of the last run
	Updated      time.Time    `json:"updated"`            // last save
	Done         bool         `json:"done"`               // the last run converged every step
	Finished     *time.Time   `json:"finished,omitempty"` // when Done became true
	Steps        []StepRecord `json:"steps"`              // in plan order
}

// StepRecord is one step's latest outcome.
type StepRecord struct {
	ID           string    `json:"id"`
	BundleDigest string    `json:"bundleDigest"`
	Result       string    `json:"result"`
	Time         time.Time `json:"time"`
	Stage        Stage     `json:"stage,omitempty"` // where it failed
	Error        string    `json:"error,omitempty"`
	// Changed is when the step last changed the host for BundleDigest
	// (Apply ran, Verify passed): kept when a later run of the same bundle
	// records the step converged or failed, so Env.ChangedAt still knows a
	// file was rewritten after a crash. Zero when it never changed.
	Changed time.Time `json:"changed,omitzero"`
}

// changedAt is when the step last changed the host for r.BundleDigest. A
// record written before the Changed field existed has only its result.
func (r StepRecord) changedAt() time.Time {
	if r.Changed.IsZero() && r.Result == ResultChanged {
		return r.Time
	}
	return r.Changed
}

// record replaces the record for r.ID or appends it. The time the step
// last changed the host carries over from the record it replaces, when
// both are for the same bundle and r does not set its own.
func (s *State) record(r StepRecord) {
	for i := range s.Steps {
		if s.Steps[i].ID == r.ID {
			if old := s.Steps[i]; r.Changed.IsZero() && old.BundleDigest == r.BundleDigest {
				r.Changed = old.changedAt()
			}
			s.Steps[i] = r
			return
		}
	}
	s.Steps = append(s.Steps, r)
}

// changedAt is Env.ChangedAt over s for the bundle digest.
func (s *State) changedAt(id, digest string) (time.Time, bool) {
	r, ok := s.Lookup(id)
	if !ok || r.BundleDigest != digest {
		return time.Time{}, false
	}
	t := r.changedAt()
	return t, !t.IsZero()
}

// Lookup returns the record for a step ID.
func (s *State) Lookup(id string) (StepRecord, bool) {
	for _, r := range s.Steps {
		if r.ID == id {
			return r, true
		}
	}
	return StepRecord{}, false
}

// BundleDigest is "sha256:" and the hex sha256 of <dir>/bundle.json's bytes.
func BundleDigest(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, plan.ManifestName))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// LoadState reads a state file. A missing file is an error that matches
// fs.ErrNotExist.
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	if s.Format != StateFormat {
		return nil, fmt.Errorf("state file %s: format %q, want %q", path, s.Format, StateFormat)
	}
	return &s, nil
}

// SaveState writes s to path atomically: a temp file in the same
// directory, fsync, rename, fsync of the directory. A crash leaves either
// the old file or the new one, never a torn one.
func SaveState(path string, s *State) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	b = append(b, '\n')
	tmp, err := os.CreateTemp(dir, ".state-*.json")
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(b); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// Report is `firstboot status`: the plan's steps beside what the state file
// recorded for them.
type Report struct {
	StateFile    string
	BundleDigest string // of the bundle on disk
	State        *State // nil when there is none yet
	Stale        bool   // State was written for another bundle: the next run re-plans
	Steps        []ReportLine
}

// ReportLine is one planned step and its record ("pending" when none).
type ReportLine struct {
	ID     string
	Result string
	Time   time.Time
	Error  string
}

// Summarize builds the report for a plan.
func Summarize(stateFile, digest string, st *State, steps []Step) Report {
	r := Report{StateFile: stateFile, BundleDigest: digest, State: st}
	r.Stale = st != nil && st.BundleDigest != digest
	for _, s := range steps {
		l := ReportLine{ID: s.ID(), Result: "pending"}
		if st != nil && !r.Stale {
			if rec, ok := st.Lookup(s.ID()); ok {
				l.Result, l.Time, l.Error = rec.Result, rec.Time, rec.Error
			}
		}
		r.Steps = append(r.Steps, l)
	}
	return r
}

// Write prints the report as plain lines.
func (r Report) Write(w io.Writer) error {
	ew := &errWriter{w: w}
	ew.printf("bundle     %s\n", r.BundleDigest)
	ew.printf("state file %s\n", r.StateFile)
	switch {
	case r.State == nil:
		ew.printf("state      none: firstboot has not run for this root\n")
	case r.Stale:
		ew.printf("state      written for another bundle (%s): the next run re-plans\n", r.State.BundleDigest)
	case r.State.Done && r.State.Finished != nil:
		ew.printf("state      done at %s (last run started %s)\n", r.State.Finished.UTC().Format(time.RFC3339), r.State.Started.UTC().Format(time.RFC3339))
	default:
		ew.printf("state      not done (last run started %s)\n", r.State.Started.UTC().Format(time.RFC3339))
	}
	done := 0
	for i, l := range r.Steps {
		at := ""
		if !l.Time.IsZero() {
			at = " " + l.Time.UTC().Format(time.RFC3339)
			if l.Result != ResultFailed {
				done++
			}
		}
		ew.printf("[%d/%d] %s: %s%s\n", i+1, len(r.Steps), l.ID, l.Result, at)
		if l.Error != "" {
			ew.printf("        %s\n", l.Error)
		}
	}
	ew.printf("%d of %d steps done\n", done, len(r.Steps))
	return ew.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, a ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, a...)
	}
}
