package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/renameio/v2"

	"github.com/kubebake/kubebake/firstboot/engine"
)

// ModulesLoadFile persists the plan's modules for systemd-modules-load.
const ModulesLoadFile = "/etc/modules-load.d/kubebake.conf"

// ModuleAvailability is implemented by an engine.Modules that can tell,
// without loading anything, whether the running kernel has a module
// (host.Modules reads modules.dep and modules.builtin). Modules uses it,
// when present, to let Check accept a conntrack stand-in; see Modules.
type ModuleAvailability interface {
	Available(name string) (bool, error)
}

// conntrackStandIn maps a conntrack module name of old kernels to the module
// that took over its job: IPv4/IPv6 connection tracking was merged into
// nf_conntrack in Linux 4.19, so nf_conntrack_ipv4 (which the plan carries
// for CentOS 7's 3.10) does not exist on newer kernels.
var conntrackStandIn = map[string]string{
	"nf_conntrack_ipv4": "nf_conntrack",
	"nf_conntrack_ipv6": "nf_conntrack",
}

// Modules returns one step per kernel module, in order, then one step that
// writes the list to /etc/modules-load.d/kubebake.conf so the modules load
// again at boot. It returns nil for an empty list.
//
// A module step (ID "module/<name>") is converged when /sys/module/<name>
// exists (loaded or built in) and loads it with env.Modules.Load (kmod's
// modprobe) otherwise.
//
// Conntrack names: when nf_conntrack_ipv4 (or _ipv6) is neither loaded nor
// loadable and /sys/module/nf_conntrack exists, the kernel is ≥ 4.19, where
// nf_conntrack does that job: the step accepts it and logs a line saying so.
// Apply accepts it after modprobe fails; Check accepts it without modprobe
// when env.Modules implements ModuleAvailability and reports the module
// absent, so a re-run on such a kernel is converged.
func Modules(names []string) []engine.Step {
	if len(names) == 0 {
		return nil
	}
	out := make([]engine.Step, 0, len(names)+1)
	var conf strings.Builder
	conf.WriteString("# Written by kubebake firstboot; changes are overwritten on its next run.\n")
	for _, n := range names {
		out = append(out, moduleStep{name: n})
		conf.WriteString(n + "\n")
	}
	out = append(out, confFileStep{id: "modules-load.d/kubebake.conf", path: ModulesLoadFile, content: []byte(conf.String())})
	return out
}

type moduleStep struct{ name string }

func (s moduleStep) ID() string { return "module/" + s.name }

func (s moduleStep) Check(ctx context.Context, env *engine.Env) (engine.Status, error) {
	ok, err := env.Modules.Loaded(s.name)
	if err != nil {
		return engine.Status{}, fmt.Errorf("module %s: %w", s.name, err)
	}
	if ok {
		return engine.Status{Converged: true}, nil
	}
	if alt, ok := s.standIn(env); ok {
		if av, isAv := env.Modules.(ModuleAvailability); isAv {
			have, err := av.Available(s.name)
			if err != nil {
				return engine.Status{}, fmt.Errorf("module %s: %w", s.name, err)
			}
			if !have {
				kernelLog(env).Info("module not in this kernel; accepting its stand-in", "module", s.name, "loaded", alt, "reason", "IPv4/IPv6 conntrack merged into nf_conntrack in Linux 4.19")
				return engine.Status{Converged: true}, nil
			}
		}
	}
	return engine.Status{Diff: []string{"load " + s.name}}, nil
}

// standIn reports the conntrack stand-in for s.name when the kernel has it
// loaded.
func (s moduleStep) standIn(env *engine.Env) (string, bool) {
	alt, ok := conntrackStandIn[s.name]
	if !ok {
		return "", false
	}
	loaded, err := env.Modules.Loaded(alt)
	return alt, err == nil && loaded
}

func (s moduleStep) Apply(ctx context.Context, env *engine.Env) error {
	if ok, err := env.Modules.Loaded(s.name); err == nil && ok {
		return nil
	}
	err := env.Modules.Load(ctx, s.name)
	if err == nil {
		return nil
	}
	if alt, ok := s.standIn(env); ok {
		kernelLog(env).Warn("module could not be loaded; accepting its stand-in", "module", s.name, "loaded", alt, "reason", "IPv4/IPv6 conntrack merged into nf_conntrack in Linux 4.19", "modprobe", err.Error())
		return nil
	}
	return fmt.Errorf("load module %s: %w", s.name, err)
}

func (s moduleStep) Verify(ctx context.Context, env *engine.Env) error {
	ok, err := env.Modules.Loaded(s.name)
	if err != nil {
		return fmt.Errorf("module %s: %w", s.name, err)
	}
	if ok {
		return nil
	}
	if _, ok := s.standIn(env); ok {
		return nil
	}
	return fmt.Errorf("module %s: /sys/module/%s missing after load", s.name, s.name)
}

// confFileStep keeps one whole file under env.Root with exact content,
// written atomically (temp file in the same directory, fsync, rename) and
// compared by content: an existing file is not an error, a differing one is
// replaced. Used for modules-load.d and sysctl.d.
type confFileStep struct {
	id      string
	path    string // absolute host path
	content []byte
}

func (s confFileStep) ID() string { return s.id }

func (s confFileStep) Check(ctx context.Context, env *engine.Env) (engine.Status, error) {
	p, err := env.Path(s.path)
	if err != nil {
		return engine.Status{}, err
	}
	have, err := os.ReadFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return engine.Status{Diff: []string{"write " + s.path}}, nil
	case err != nil:
		return engine.Status{}, fmt.Errorf("%s: %w", s.path, err)
	case bytes.Equal(have, s.content):
		return engine.Status{Converged: true}, nil
	default:
		return engine.Status{Diff: []string{"rewrite " + s.path + " (content differs)"}}, nil
	}
}

func (s confFileStep) Apply(ctx context.Context, env *engine.Env) error {
	p, err := env.Path(s.path)
	if err != nil {
		return err
	}
	if have, err := os.ReadFile(p); err == nil && bytes.Equal(have, s.content) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	if err := renameio.WriteFile(p, s.content, 0o644); err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	return nil
}

func (s confFileStep) Verify(ctx context.Context, env *engine.Env) error {
	st, err := s.Check(ctx, env)
	if err != nil {
		return err
	}
	if !st.Converged {
		return fmt.Errorf("%s: content differs after write", s.path)
	}
	return nil
}

// kernelLog is env.Log, or a logger that discards.
func kernelLog(env *engine.Env) *slog.Logger {
	if env.Log != nil {
		return env.Log
	}
	return slog.New(slog.DiscardHandler)
}
