package engine

import (
	"errors"
	"fmt"
)

// ErrStoppedForTest is returned by Run when RunOptions.StopAfter steps have
// finished (the KUBEBAKE_FIRSTBOOT_STOP_AFTER test hook). The state file is
// saved; main exits with ExitStoppedForTest so a test can prove the next run
// converges.
var ErrStoppedForTest = errors.New("stopped for test after the requested number of steps")

// ErrDuplicateStep means two steps of a plan share an ID.
var ErrDuplicateStep = errors.New("duplicate step ID")

// Stage is the part of a step that failed.
type Stage string

// The stages of a step, in the order Run calls them.
const (
	StageCheck  Stage = "check"
	StageApply  Stage = "apply"
	StageVerify Stage = "verify"
)

// Exit codes of firstboot (main maps errors with ExitCode).
const (
	ExitOK             = 0   // converged (or a dry run that could check every step)
	ExitError          = 1   // anything not tied to a step: bundle unreadable, state file unwritable
	ExitUsage          = 2   // bad flags or command
	ExitStepBase       = 10  // step [N/M] failed: exit 10+N, capped at ExitStepMax
	ExitStepMax        = 125 // step 115 or later failed
	ExitStoppedForTest = 99  // KUBEBAKE_FIRSTBOOT_STOP_AFTER stopped the run
)

// StepError says which step failed, at which stage. Index is 1-based, as in
// the log lines ("[3/41]").
type StepError struct {
	Index int
	Total int
	ID    string
	Stage Stage
	Err   error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("step [%d/%d] %s: %s: %v", e.Index, e.Total, e.ID, e.Stage, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// ExitCode is 10+Index, capped at 125.
func (e *StepError) ExitCode() int {
	if c := ExitStepBase + e.Index; c < ExitStepMax {
		return c
	}
	return ExitStepMax
}

// ExitCode maps an error from Run to firstboot's exit status.
func ExitCode(err error) int {
	var se *StepError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrStoppedForTest):
		return ExitStoppedForTest
	case errors.As(err, &se):
		return se.ExitCode()
	default:
		return ExitError
	}
}
