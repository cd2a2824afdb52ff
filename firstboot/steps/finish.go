package steps

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/kubebake/kubebake/firstboot/engine"
)

// DoneMarkerPath is written when every step before Finish has converged.
// kubebake-firstboot.service has ConditionPathExists=!DoneMarkerPath, so a
// finished host does not run firstboot again at boot.
const DoneMarkerPath = "/var/lib/kubebake/done"

// FirstbootUnit is firstboot's own unit, disabled by Finish.
const FirstbootUnit = "kubebake-firstboot.service"

// Finish makes the last step: write the done marker ("bundle <digest>" and
// "time <RFC 3339>" lines), then disable kubebake-firstboot.service. The
// marker comes first: a crash between the two leaves a host whose unit is
// skipped by its condition, not one that forgets it is done. Converged when
// the marker names this bundle's digest (the time is not compared) and the
// unit is not enabled.
func Finish() engine.Step { return finishStep{} }

type finishStep struct{}

func (finishStep) ID() string { return "finish" }

func (s finishStep) Check(ctx context.Context, env *engine.Env) (engine.Status, error) {
	var diff []string
	ok, err := markerCurrent(env)
	if err != nil {
		return engine.Status{}, err
	}
	if !ok {
		diff = append(diff, "write "+DoneMarkerPath)
	}
	enabled, err := env.Systemd.Enabled(ctx, FirstbootUnit)
	if err != nil {
		return engine.Status{}, err
	}
	if enabled {
		diff = append(diff, "disable "+FirstbootUnit)
	}
	return engine.Status{Converged: len(diff) == 0, Diff: diff}, nil
}

func (s finishStep) Apply(ctx context.Context, env *engine.Env) error {
	ok, err := markerCurrent(env)
	if err != nil {
		return err
	}
	if !ok {
		digest, err := engine.BundleDigest(env.Bundle)
		if err != nil {
			return err
		}
		p, err := env.Path(DoneMarkerPath)
		if err != nil {
			return err
		}
		now := time.Now
		if env.Now != nil {
			now = env.Now
		}
		body := fmt.Sprintf("bundle %s\ntime %s\n", digest, now().UTC().Format(time.RFC3339))
		if err := putFile(p, []byte(body), 0o644); err != nil {
			return fmt.Errorf("%s: %w", DoneMarkerPath, err)
		}
	}
	enabled, err := env.Systemd.Enabled(ctx, FirstbootUnit)
	if err != nil {
		return err
	}
	if enabled {
		return env.Systemd.Disable(ctx, FirstbootUnit)
	}
	return nil
}

func (s finishStep) Verify(ctx context.Context, env *engine.Env) error {
	st, err := s.Check(ctx, env)
	if err != nil {
		return err
	}
	if !st.Converged {
		return errors.New(strings.Join(st.Diff, "; ") + " still needed")
	}
	return nil
}

// markerCurrent reports whether the done marker names this bundle.
func markerCurrent(env *engine.Env) (bool, error) {
	p, err := env.Path(DoneMarkerPath)
	if err != nil {
		return false, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", DoneMarkerPath, err)
	}
	digest, err := engine.BundleDigest(env.Bundle)
	if err != nil {
		return false, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "bundle "); ok {
			return v == digest, nil
		}
	}
	return false, nil
}
