package steps

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// SysctlFile persists the plan's sysctls; sysctl --system and
// systemd-sysctl apply it at boot.
const SysctlFile = "/etc/sysctl.d/90-kubebake.conf"

// ErrSysctlMissing means the kernel has no /proc/sys file for a key, usually
// because the module that provides it is not loaded yet.
var ErrSysctlMissing = errors.New("kernel has no such sysctl")

// sysctlProviders names the module whose loading creates a key prefix.
var sysctlProviders = []struct{ prefix, module string }{
	{"net.bridge.", "br_netfilter"},
	{"net.netfilter.nf_conntrack", "nf_conntrack"},
	{"net.nf_conntrack", "nf_conntrack"},
	{"net.ipv4.vs.", "ip_vs"},
}

// Sysctls returns one step per key ("sysctl/<key>"), in order, then one step
// that writes them all to /etc/sysctl.d/90-kubebake.conf. It returns nil
// for an empty list.
//
// Check compares the current value with the wanted one after collapsing
// whitespace ("1024\t65000" equals "1024 65000"); its diff reads
// "net.ipv4.ip_forward: 0 → 1". A key the kernel does not have is an error
// wrapping ErrSysctlMissing that names the key and the module to load
// ("load br_netfilter first" for net.bridge.*): the plan loads modules
// before it sets sysctls.
func Sysctls(s []plan.Sysctl) []engine.Step {
	if len(s) == 0 {
		return nil
	}
	out := make([]engine.Step, 0, len(s)+1)
	var conf strings.Builder
	conf.WriteString("# Written by kubebake firstboot; changes are overwritten on its next run.\n")
	for _, kv := range s {
		out = append(out, sysctlStep{key: kv.Key, value: kv.Value})
		fmt.Fprintf(&conf, "%s = %s\n", kv.Key, normSysctl(kv.Value))
	}
	out = append(out, confFileStep{id: "sysctl.d/90-kubebake.conf", path: SysctlFile, content: []byte(conf.String())})
	return out
}

type sysctlStep struct{ key, value string }

func (s sysctlStep) ID() string { return "sysctl/" + s.key }

func normSysctl(v string) string { return strings.Join(strings.Fields(v), " ") }

func (s sysctlStep) get(env *engine.Env) (string, error) {
	v, err := env.Sysctl.Get(s.key)
	if err == nil {
		return v, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		hint := "is the module that provides it loaded?"
		for _, p := range sysctlProviders {
			if strings.HasPrefix(s.key, p.prefix) {
				hint = "load " + p.module + " first"
				break
			}
		}
		return "", fmt.Errorf("sysctl %s: %w (/proc/sys/%s missing): %s", s.key, ErrSysctlMissing, strings.ReplaceAll(s.key, ".", "/"), hint)
	}
	return "", fmt.Errorf("sysctl %s: %w", s.key, err)
}

func (s sysctlStep) Check(ctx context.Context, env *engine.Env) (engine.Status, error) {
	have, err := s.get(env)
	if err != nil {
		return engine.Status{}, err
	}
	if normSysctl(have) == normSysctl(s.value) {
		return engine.Status{Converged: true}, nil
	}
	return engine.Status{Diff: []string{fmt.Sprintf("%s: %s → %s", s.key, normSysctl(have), normSysctl(s.value))}}, nil
}

func (s sysctlStep) Apply(ctx context.Context, env *engine.Env) error {
	if _, err := s.get(env); err != nil {
		return err
	}
	if err := env.Sysctl.Set(s.key, s.value); err != nil {
		return fmt.Errorf("sysctl %s = %s: %w", s.key, s.value, err)
	}
	return nil
}

func (s sysctlStep) Verify(ctx context.Context, env *engine.Env) error {
	have, err := s.get(env)
	if err != nil {
		return err
	}
	if normSysctl(have) != normSysctl(s.value) {
		return fmt.Errorf("sysctl %s: is %q after setting %q", s.key, have, s.value)
	}
	return nil
}
