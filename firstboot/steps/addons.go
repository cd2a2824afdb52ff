package steps

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// AddonsFieldManager owns the add-ons' fields in server-side apply.
const AddonsFieldManager = "kubebake"

// addonsDiffLines caps the diff shown in Check's status.
const addonsDiffLines = 40

// Addons is the add-ons step for the first master (none elsewhere), run
// after the health gates. Check runs `kubectl diff --server-side` on the
// manifests: exit 0 is converged, 1 differs. Apply runs `kubectl apply
// --server-side --field-manager=kubebake --force-conflicts`, retried up to
// Attempts times while the apiserver refuses (it has just passed /readyz,
// but RBAC and the API discovery of a fresh cluster can lag). Verify diffs
// again and wants exit 0, retrying the same way while kubectl cannot get a
// diff (a loaded apiserver times out). Everything runs through env.Exec.
func Addons(a *plan.Addons) []engine.Step {
	if a == nil {
		return nil
	}
	return []engine.Step{addonsStep{a: *a}}
}

type addonsStep struct{ a plan.Addons }

func (s addonsStep) ID() string { return "addons/apply" }

// kubectl returns kubectl's path and its leading arguments under env.Root.
func (s addonsStep) kubectl(env *engine.Env, verb string) (string, []string, error) {
	bin, err := env.Path(s.a.Kubectl)
	if err != nil {
		return "", nil, fmt.Errorf("addons: kubectl: %w", err)
	}
	kc, err := env.Path(s.a.Kubeconfig)
	if err != nil {
		return "", nil, fmt.Errorf("addons: kubeconfig: %w", err)
	}
	dir, err := env.Path(s.a.Dir)
	if err != nil {
		return "", nil, fmt.Errorf("addons: dir: %w", err)
	}
	args := []string{"--kubeconfig", kc, verb, "--server-side", "--field-manager=" + AddonsFieldManager, "--force-conflicts", "-f", dir}
	return bin, args, nil
}

// diff runs kubectl diff: converged for exit 0, the diff for exit 1, and
// an error for anything else (exit > 1: kubectl or diff failed).
func (s addonsStep) diff(ctx context.Context, env *engine.Env) (converged bool, diff []string, err error) {
	if env.Exec == nil {
		return false, nil, fmt.Errorf("addons: no command runner")
	}
	bin, args, err := s.kubectl(env, "diff")
	if err != nil {
		return false, nil, err
	}
	err = env.Exec.Run(ctx, bin, args...)
	switch code := exitCode(err); {
	case err == nil:
		return true, nil, nil
	case code == 1:
		return false, diffLines(err.Error()), nil
	default:
		return false, nil, fmt.Errorf("addons: kubectl diff -f %s: %w", s.a.Dir, err)
	}
}

// Check is read-only (a server-side dry run). A failing diff (exit > 1)
// is not a Check error: on a fresh cluster the diff of an object in a
// namespace the same apply creates fails until it is applied, and a dry
// run before the apiserver runs cannot diff at all. It reports
// NeedsChange with the reason; Apply retries and Verify is strict.
func (s addonsStep) Check(ctx context.Context, env *engine.Env) (engine.Status, error) {
	if bin, err := env.Path(s.a.Kubectl); err == nil {
		if _, err := os.Stat(bin); errors.Is(err, fs.ErrNotExist) {
			// A dry run before the files step has installed it.
			return engine.Status{Diff: []string{"apply the add-ons in " + s.a.Dir + " (" + s.a.Kubectl + " is not installed yet)"}}, nil
		}
	}
	ok, diff, err := s.diff(ctx, env)
	if err != nil {
		if exitCode(err) < 0 {
			return engine.Status{}, err // kubectl did not run
		}
		return engine.Status{Diff: []string{"apply the add-ons in " + s.a.Dir + " (cannot diff yet: " + kubectlError(err.Error()) + ")"}}, nil
	}
	if ok {
		return engine.Status{Converged: true}, nil
	}
	return engine.Status{Diff: append([]string{"apply the add-ons in " + s.a.Dir + ":"}, diff...)}, nil
}

func (s addonsStep) Apply(ctx context.Context, env *engine.Env) error {
	if env.Exec == nil {
		return fmt.Errorf("addons: no command runner")
	}
	bin, args, err := s.kubectl(env, "apply")
	if err != nil {
		return err
	}
	return s.retry(ctx, env, "apply", func() (bool, error) {
		err := env.Exec.Run(ctx, bin, args...)
		return exitCode(err) >= 0, err
	})
}

// Verify diffs again and wants no difference. A diff that cannot be had
// (exit > 1: a timeout of a loaded apiserver, a dropped connection) is
// retried as Apply is; a difference (exit 1) fails at once.
func (s addonsStep) Verify(ctx context.Context, env *engine.Env) error {
	return s.retry(ctx, env, "diff", func() (bool, error) {
		ok, diff, err := s.diff(ctx, env)
		switch {
		case err != nil:
			return exitCode(err) >= 0, err
		case !ok:
			return false, fmt.Errorf("addons: %s still differs from the cluster after apply:\n%s", s.a.Dir, strings.Join(diff, "\n"))
		}
		return false, nil
	})
}

// retry runs try up to Attempts times, Interval apart, while it fails and
// says a retry may help (kubectl ran but the apiserver refused, timed out
// or lagged).
func (s addonsStep) retry(ctx context.Context, env *engine.Env, verb string, try func() (again bool, err error)) error {
	interval := DefaultHealthInterval
	if s.a.Interval != "" {
		d, err := time.ParseDuration(s.a.Interval)
		if err != nil || d < 0 {
			return fmt.Errorf("addons: interval %q: want a Go duration like 5s", s.a.Interval)
		}
		interval = d
	}
	attempts := max(s.a.Attempts, 1)
	var last error
	for i := 1; i <= attempts; i++ {
		again, err := try()
		if err == nil {
			return nil
		}
		last = err
		if !again {
			return err
		}
		if env.Log != nil {
			env.Log.Info("kubectl "+verb+" failed", "step", s.ID(), "attempt", i, "of", attempts, "err", kubectlError(err.Error()))
		}
		if i < attempts {
			if err := sleepCtx(ctx, interval); err != nil {
				return fmt.Errorf("addons: kubectl %s -f %s: gave up after %d of %d attempts: %w (last: %v)", verb, s.a.Dir, i, attempts, err, last)
			}
		}
	}
	return fmt.Errorf("addons: kubectl %s -f %s: failed after %d attempts %s apart: %w", verb, s.a.Dir, attempts, interval, last)
}

// exitCode is the exit status carried by err (an *exec.ExitError, or a
// test's stand-in with the same method): 0 for nil, -1 when err carries
// none (the command did not run).
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// diffLines keeps the first addonsDiffLines lines of kubectl diff's
// output. kubectl masks Secret data in diffs, so the pull Secret's login
// does not show.
func diffLines(out string) []string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) > addonsDiffLines {
		n := len(lines) - addonsDiffLines
		lines = append(lines[:addonsDiffLines], fmt.Sprintf("… %d more lines", n))
	}
	return lines
}

// kubectlError is the part of a failed kubectl's output worth a log line:
// the lines kubectl itself marks as errors ("Error from server …",
// "error: …"), at most kubectlErrorLines of them, else the first line. Its
// output starts with what did apply (namespace/x serverside-applied), so
// the first line alone would hide why it failed.
func kubectlError(s string) string {
	var errs []string
	for _, l := range strings.Split(s, "\n") {
		for _, mark := range []string{"Error from server", "error:", "Error:"} {
			if i := strings.Index(l, mark); i >= 0 {
				errs = append(errs, strings.TrimSpace(l[i:]))
				break
			}
		}
	}
	switch {
	case len(errs) > kubectlErrorLines:
		return strings.Join(errs[:kubectlErrorLines], "; ") + fmt.Sprintf("; … %d more", len(errs)-kubectlErrorLines)
	case len(errs) > 0:
		return strings.Join(errs, "; ")
	}
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// kubectlErrorLines caps the error lines in one log line.
const kubectlErrorLines = 3
