package steps

import (
	"context"
	"fmt"
	"time"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// DefaultHealthInterval is the wait between probes when a check's Interval
// is empty.
const DefaultHealthInterval = 2 * time.Second

// Health makes one step per readiness check, in plan order. Check probes
// once (converged if it passes); Apply probes up to Attempts times (at least
// once) with Interval between; Verify probes once.
func Health(checks []plan.HealthCheck) []engine.Step {
	out := make([]engine.Step, 0, len(checks))
	for _, c := range checks {
		out = append(out, healthStep{c: c})
	}
	return out
}

type healthStep struct{ c plan.HealthCheck }

func (s healthStep) ID() string { return "health/" + s.c.Name }

func (s healthStep) Check(ctx context.Context, env *engine.Env) (engine.Status, error) {
	if err := env.Health.Probe(ctx, s.c); err != nil {
		return engine.Status{Diff: []string{fmt.Sprintf("wait for %s (%s): %v", s.c.Name, s.c.URL, err)}}, nil
	}
	return engine.Status{Converged: true}, nil
}

func (s healthStep) Apply(ctx context.Context, env *engine.Env) error {
	interval := DefaultHealthInterval
	if s.c.Interval != "" {
		d, err := time.ParseDuration(s.c.Interval)
		if err != nil || d < 0 {
			return fmt.Errorf("health %s: interval %q: want a Go duration like 2s", s.c.Name, s.c.Interval)
		}
		interval = d
	}
	attempts := max(s.c.Attempts, 1)
	var last error
	for i := 1; i <= attempts; i++ {
		if last = env.Health.Probe(ctx, s.c); last == nil {
			return nil
		}
		if env.Log != nil {
			env.Log.Info("health probe failed", "check", s.c.Name, "attempt", i, "of", attempts, "err", last)
		}
		if i < attempts {
			if err := sleepCtx(ctx, interval); err != nil {
				return fmt.Errorf("health %s: %s: gave up after %d of %d attempts: %w (last: %v)", s.c.Name, s.c.URL, i, attempts, err, last)
			}
		}
	}
	return fmt.Errorf("health %s: %s: not healthy after %d attempts %s apart: %w", s.c.Name, s.c.URL, attempts, interval, last)
}

func (s healthStep) Verify(ctx context.Context, env *engine.Env) error {
	if err := env.Health.Probe(ctx, s.c); err != nil {
		return fmt.Errorf("health %s: %s: %w", s.c.Name, s.c.URL, err)
	}
	return nil
}
