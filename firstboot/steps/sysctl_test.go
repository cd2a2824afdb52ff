package steps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// sysctlFake is engine.Sysctl over a map; a key absent from the map is a
// missing /proc/sys file.
type sysctlFake struct {
	vals map[string]string
	sets int
}

func (f *sysctlFake) Get(key string) (string, error) {
	v, ok := f.vals[key]
	if !ok {
		return "", fmt.Errorf("sysctl %s: open /proc/sys/...: %w", key, fs.ErrNotExist)
	}
	return v, nil
}

func (f *sysctlFake) Set(key, value string) error {
	if _, ok := f.vals[key]; !ok {
		return fmt.Errorf("sysctl %s: %w", key, fs.ErrNotExist)
	}
	f.sets++
	f.vals[key] = value
	return nil
}

func TestSysctlsConverge(t *testing.T) {
	env, _ := kernelEnv(t)
	fake := &sysctlFake{vals: map[string]string{
		"net.ipv4.ip_forward":                 "0",
		"net.bridge.bridge-nf-call-iptables":  "1",
		"net.ipv4.ip_local_port_range":        "32768\t60999",
		"net.netfilter.nf_conntrack_max":      "65536",
		"net.bridge.bridge-nf-call-ip6tables": "0",
	}}
	env.Sysctl = fake
	want := []plan.Sysctl{
		{Key: "net.ipv4.ip_forward", Value: "1"},
		{Key: "net.bridge.bridge-nf-call-iptables", Value: "1"},
		{Key: "net.bridge.bridge-nf-call-ip6tables", Value: "1"},
		{Key: "net.ipv4.ip_local_port_range", Value: "32768 60999"}, // whitespace differs only
		{Key: "net.netfilter.nf_conntrack_max", Value: "1048576"},
	}
	steps := Sysctls(want)
	if len(steps) != len(want)+1 {
		t.Fatalf("%d steps", len(steps))
	}
	st, err := steps[0].Check(context.Background(), env)
	if err != nil || st.Converged || strings.Join(st.Diff, "|") != "net.ipv4.ip_forward: 0 → 1" {
		t.Fatalf("check = %+v, %v", st, err)
	}
	changed := converge(t, env, steps)
	wantChanged := []string{"sysctl/net.ipv4.ip_forward", "sysctl/net.bridge.bridge-nf-call-ip6tables", "sysctl/net.netfilter.nf_conntrack_max", "sysctl.d/90-kubebake.conf"}
	if strings.Join(changed, ",") != strings.Join(wantChanged, ",") {
		t.Errorf("changed %v, want %v", changed, wantChanged)
	}
	conf := filepath.Join(env.Root, "etc/sysctl.d/90-kubebake.conf")
	first, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	wantConf := "net.ipv4.ip_forward = 1\nnet.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nnet.ipv4.ip_local_port_range = 32768 60999\nnet.netfilter.nf_conntrack_max = 1048576\n"
	if !strings.HasSuffix(string(first), wantConf) {
		t.Errorf("90-kubebake.conf:\n%s", first)
	}
	sets := fake.sets
	if changed := converge(t, env, steps); len(changed) != 0 {
		t.Errorf("second run changed %v", changed)
	}
	for _, s := range steps {
		if err := s.Apply(context.Background(), env); err != nil {
			t.Fatal(err)
		}
	}
	second, _ := os.ReadFile(conf)
	if !bytes.Equal(first, second) {
		t.Errorf("second apply changed the file")
	}
	if fake.sets != sets+len(want) {
		t.Errorf("forced apply: %d sets, want %d (Set is the idempotent write)", fake.sets-sets, len(want))
	}
}

func TestSysctlMissingKey(t *testing.T) {
	for _, tc := range []struct{ key, hint string }{
		{"net.bridge.bridge-nf-call-iptables", "load br_netfilter first"},
		{"net.netfilter.nf_conntrack_max", "load nf_conntrack first"},
		{"vm.nonexistent", "is the module that provides it loaded?"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			env, _ := kernelEnv(t)
			env.Sysctl = &sysctlFake{vals: map[string]string{}}
			s := Sysctls([]plan.Sysctl{{Key: tc.key, Value: "1"}})[0]
			_, cerr := s.Check(context.Background(), env)
			aerr := s.Apply(context.Background(), env)
			for _, err := range []error{cerr, aerr} {
				if !errors.Is(err, ErrSysctlMissing) {
					t.Fatalf("err = %v, want ErrSysctlMissing", err)
				}
				if !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), tc.hint) {
					t.Errorf("err = %q, want the key and %q", err, tc.hint)
				}
			}
		})
	}
}
