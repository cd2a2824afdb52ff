// Command firstboot is the node-side half of kubebake: it reads the bundle
// it was shipped in and converges the host to the bundle's plan.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/host"
	"github.com/kubebake/kubebake/firstboot/plan"
	"github.com/kubebake/kubebake/firstboot/steps"
)

const usage = `firstboot converges this host to the plan of a kubebake host bundle.

Usage:
  firstboot [flags] run        check every step; apply and verify the ones not
                               converged; record progress in the state file
  firstboot [flags] --dry-run  check every step and print what each would
                               change; changes nothing, writes no state
  firstboot [flags] status     the plan's steps beside the state file's records
  firstboot [flags] plan       print the bundle's plan
  firstboot [flags] network    re-apply the routes and iptables rules, which the
                               kernel forgets at reboot (kubebake-network.service
                               runs this at every boot); reads and writes no state

The plan, in order: bundle integrity (SHA256SUMS), preflight (host identity,
OS/kernel, SELinux, firewalld, swap, time), files, kernel modules, sysctls,
routes, iptables, images, units, health gates, finish.

A re-run starts from the top; finished steps only cost their check. The state
file is ROOT/var/lib/kubebake/state.json; one written for another bundle
(bundle.json's sha256) is set aside and the plan runs afresh.

Logs are plain lines on stderr ("[3/41] sysctl/net.ipv4.ip_forward: started").
On a Debian test bed the OS check passes with a "test bed" warning.

Exit codes:
  0       converged (or the dry run could check every step)
  1       an error not tied to a step (bundle unreadable, state file unwritable)
  2       usage
  10+N    step [N/M] failed (the last line names it and the stage), capped at
          125: 11 is the first step, 125 the 115th or later
  99      stopped by the test hook KUBEBAKE_FIRSTBOOT_STOP_AFTER=N (after N steps)

Flags (before or after the command):
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv, hostEffects)
	stop()
	os.Exit(code)
}

type options struct {
	bundle, root  string
	force, dryRun bool
}

// effectsFunc fills an Env's host interfaces; tests pass fakes. When
// lenient, a host interface that cannot be opened is a warning and left nil
// (the Check of a step that needs it reports the error).
type effectsFunc func(ctx context.Context, env *engine.Env, lenient bool) (closeFn func(), err error)

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string, effects effectsFunc) int {
	var o options
	fs := flag.NewFlagSet("firstboot", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.bundle, "bundle", defaultBundleDir(), "directory holding the unpacked bundle (bundle.json)")
	fs.StringVar(&o.root, "root", "/", "the host's root directory; every path firstboot touches is below it")
	fs.BoolVar(&o.force, "force", false, "install even when no interface holds the bundle's host IP")
	fs.BoolVar(&o.dryRun, "dry-run", false, "check only: print what each step would change")
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return engine.ExitOK
		}
		return engine.ExitUsage
	}
	cmd := fs.Arg(0)
	if fs.NArg() > 1 {
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return engine.ExitUsage
		}
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "firstboot: unexpected arguments %q\n", fs.Args())
			return engine.ExitUsage
		}
	}
	if cmd == "" && o.dryRun {
		cmd = "run"
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "firstboot: %v\n", err)
		return engine.ExitCode(err)
	}
	switch cmd {
	case "plan":
		m, err := load(o.bundle)
		if err != nil {
			return fail(err)
		}
		if err := m.Describe(stdout); err != nil {
			return fail(err)
		}
		return engine.ExitOK
	case "status":
		return status(o, stdout, fail)
	case "run":
		stopAfter, err := engine.StopAfterFromEnv(getenv)
		if err != nil {
			fmt.Fprintf(stderr, "firstboot: %v\n", err)
			return engine.ExitUsage
		}
		m, err := load(o.bundle)
		if err != nil {
			return fail(err)
		}
		plan, err := steps.FromManifest(m)
		if err != nil {
			return fail(err)
		}
		env := &engine.Env{Root: o.root, Bundle: o.bundle, Manifest: m, Force: o.force,
			Log: engine.NewLogger(stderr, slog.LevelInfo), Now: time.Now}
		closeFn, err := effects(ctx, env, o.dryRun)
		if err != nil {
			return fail(err)
		}
		defer closeFn()
		_, err = engine.Run(ctx, env, plan, engine.RunOptions{DryRun: o.dryRun, StopAfter: stopAfter, Log: stderr})
		return runExit(err, stderr)
	case "network":
		m, err := load(o.bundle)
		if err != nil {
			return fail(err)
		}
		plan, err := steps.Network(m)
		if err != nil {
			return fail(err)
		}
		env := &engine.Env{Root: o.root, Bundle: o.bundle, Manifest: m,
			Log: engine.NewLogger(stderr, slog.LevelInfo), Now: time.Now}
		// Routes and iptables need neither systemd nor the state file.
		closeFn, err := effects(ctx, env, true)
		if err != nil {
			return fail(err)
		}
		defer closeFn()
		_, err = engine.Run(ctx, env, plan, engine.RunOptions{DryRun: o.dryRun, Stateless: true, Log: stderr})
		return runExit(err, stderr)
	case "":
		fs.Usage()
		return engine.ExitUsage
	default:
		fmt.Fprintf(stderr, "firstboot: unknown command %q (run, --dry-run, status, plan, network; see --help)\n", cmd)
		return engine.ExitUsage
	}
}

// runExit prints the final line of a run: the failed step by name, or nothing.
func runExit(err error, stderr io.Writer) int {
	if err == nil {
		return engine.ExitOK
	}
	code := engine.ExitCode(err)
	fmt.Fprintf(stderr, "firstboot: %v (exit %d)\n", err, code)
	return code
}

func status(o options, stdout io.Writer, fail func(error) int) int {
	m, err := load(o.bundle)
	if err != nil {
		return fail(err)
	}
	plan, err := steps.FromManifest(m)
	if err != nil {
		return fail(err)
	}
	digest, err := engine.BundleDigest(o.bundle)
	if err != nil {
		return fail(err)
	}
	env := &engine.Env{Root: o.root}
	path, err := env.Path(engine.StatePath)
	if err != nil {
		return fail(err)
	}
	st, err := engine.LoadState(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail(err)
	}
	if err := engine.Summarize(path, digest, st, plan).Write(stdout); err != nil {
		return fail(err)
	}
	return engine.ExitOK
}

// hostEffects wires the real host implementations from firstboot/host. In
// a dry run (lenient) a missing systemd bus or iptables binary is a warning
// (Check of the steps that need them reports the error); in a run it stops
// firstboot before any step.
func hostEffects(ctx context.Context, env *engine.Env, lenient bool) (func(), error) {
	closeFn := func() {}
	sd, err := host.NewSystemd(ctx)
	if err != nil {
		if !lenient {
			return nil, fmt.Errorf("systemd: %w", err)
		}
		env.Log.Warn("systemd: " + err.Error())
		env.Systemd = noSystemd{fmt.Errorf("systemd: %w", err)}
	} else {
		env.Systemd = sd
		if c, ok := sd.(io.Closer); ok {
			closeFn = func() { c.Close() }
		}
	}
	ipt, err := host.NewIPTables()
	if err != nil {
		if !lenient {
			closeFn()
			return nil, fmt.Errorf("iptables: %w", err)
		}
		env.Log.Warn("iptables: " + err.Error())
		env.IPTables = noIPTables{fmt.Errorf("iptables: %w", err)}
	} else {
		env.IPTables = ipt
	}
	env.Modules = host.NewModules(env.Root)
	env.Sysctl = host.NewSysctl(env.Root)
	env.Routes = host.NewRoutes()
	env.Images = host.NewImages("")
	env.Health = host.NewHealth(env.Root)
	env.Probe = host.NewProbe(env.Root, env.Systemd)
	env.Exec = host.NewExec()
	return closeFn, nil
}

// defaultBundleDir is where the bundle was unpacked: beside this binary.
func defaultBundleDir() string {
	exe, err := os.Executable()
	if err != nil {
		return "."
	}
	return filepath.Dir(exe)
}

func load(dir string) (*plan.Manifest, error) {
	f, err := os.Open(filepath.Join(dir, plan.ManifestName))
	if err != nil {
		return nil, fmt.Errorf("%w (is %s an unpacked kubebake bundle? pass --bundle DIR)", err, dir)
	}
	defer f.Close()
	return plan.Decode(f)
}
