package steps

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kubebake/kubebake/firstboot/host"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// iptFake is engine.IPTables over per-chain rule lists, with iptables'
// semantics: -C matches any copy, -D removes the first copy.
type iptFake struct {
	chains map[string][]string // "table/chain" → rules
	calls  []string
}

func (f *iptFake) Exists(table, chain string, rule ...string) (bool, error) {
	return slices.Contains(f.chains[table+"/"+chain], strings.Join(rule, " ")), nil
}

func (f *iptFake) Insert(table, chain string, pos int, rule ...string) error {
	f.calls = append(f.calls, fmt.Sprintf("-t %s -I %s %d", table, chain, pos))
	k := table + "/" + chain
	f.chains[k] = slices.Insert(f.chains[k], pos-1, strings.Join(rule, " "))
	return nil
}

func (f *iptFake) Delete(table, chain string, rule ...string) error {
	f.calls = append(f.calls, fmt.Sprintf("-t %s -D %s", table, chain))
	k := table + "/" + chain
	i := slices.Index(f.chains[k], strings.Join(rule, " "))
	if i < 0 {
		return fmt.Errorf("iptables: Bad rule (does a matching rule exist in that chain?)")
	}
	f.chains[k] = slices.Delete(f.chains[k], i, i+1)
	return nil
}

var (
	masq   = []string{"-s", "172.7.21.0/24", "!", "-d", "172.7.0.0/16", "!", "-o", "cni0", "-j", "MASQUERADE"}
	reject = []string{"-j", "REJECT", "--reject-with", "icmp-host-prohibited"}
)

func seedOps() []plan.IPTablesOp {
	return []plan.IPTablesOp{
		{Table: "nat", Chain: "POSTROUTING", Rule: masq, Why: "masquerade pod traffic only when it leaves the pod network"},
		{Table: "filter", Chain: "INPUT", Rule: reject, Delete: true, Why: "iptables-services' REJECT drops cluster traffic"},
		{Table: "filter", Chain: "FORWARD", Rule: reject, Delete: true, Why: "iptables-services' REJECT drops pod traffic"},
	}
}

func TestIPTablesConverge(t *testing.T) {
	env, _ := kernelEnv(t)
	var logs bytes.Buffer
	env.Log = slog.New(slog.NewTextHandler(&logs, nil))
	r := strings.Join(reject, " ")
	fake := &iptFake{chains: map[string][]string{
		"nat/POSTROUTING": {"-s 172.7.21.0/24 ! -o docker0 -j MASQUERADE"},
		"filter/INPUT":    {"-i lo -j ACCEPT", r, "-p tcp -j ACCEPT", r}, // a duplicate, as iptables-services leaves
	}}
	env.IPTables = fake
	steps := IPTables(seedOps())
	ctx := context.Background()
	st, err := steps[0].Check(ctx, env)
	wantDiff := "iptables -t nat -I POSTROUTING 1 -s 172.7.21.0/24 ! -d 172.7.0.0/16 ! -o cni0 -j MASQUERADE"
	if err != nil || st.Converged || strings.Join(st.Diff, "|") != wantDiff {
		t.Fatalf("check ensure = %+v, %v; want diff %q", st, err, wantDiff)
	}
	st, err = steps[1].Check(ctx, env)
	if err != nil || st.Converged || strings.Join(st.Diff, "|") != "iptables -t filter -D INPUT -j REJECT --reject-with icmp-host-prohibited" {
		t.Fatalf("check delete = %+v, %v", st, err)
	}
	changed := converge(t, env, steps)
	if strings.Join(changed, "\n") != steps[0].ID()+"\n"+steps[1].ID() {
		t.Errorf("changed %v", changed)
	}
	if got := fake.chains["nat/POSTROUTING"]; len(got) != 2 || got[0] != strings.Join(masq, " ") {
		t.Errorf("POSTROUTING = %q, want the masquerade rule first", got)
	}
	if got := fake.chains["filter/INPUT"]; strings.Join(got, "|") != "-i lo -j ACCEPT|-p tcp -j ACCEPT" {
		t.Errorf("INPUT = %q, want both REJECT copies gone", got)
	}
	if want := []string{"-t nat -I POSTROUTING 1", "-t filter -D INPUT", "-t filter -D INPUT"}; !slices.Equal(fake.calls, want) {
		t.Errorf("calls %q, want %q", fake.calls, want)
	}
	if !strings.Contains(logs.String(), "why=\"iptables-services' REJECT drops cluster traffic\"") {
		t.Errorf("Why not logged:\n%s", logs.String())
	}
	if changed := converge(t, env, steps); len(changed) != 0 {
		t.Errorf("second run changed %v", changed)
	}
	// Forced Apply on a converged host changes nothing either.
	for _, s := range steps {
		if err := s.Apply(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	if len(fake.calls) != 3 {
		t.Errorf("repeat apply ran %q", fake.calls[3:])
	}
}

// iptStuck never forgets a rule: Delete "succeeds" but the rule stays.
type iptStuck struct{ iptFake }

func (f *iptStuck) Delete(table, chain string, rule ...string) error { return nil }

func TestIPTablesDeleteIsBounded(t *testing.T) {
	env, _ := kernelEnv(t)
	env.IPTables = &iptStuck{iptFake{chains: map[string][]string{"filter/INPUT": {strings.Join(reject, " ")}}}}
	err := IPTables(seedOps())[1].Apply(context.Background(), env)
	if err == nil || !strings.Contains(err.Error(), "still present") {
		t.Fatalf("apply = %v", err)
	}
}

// TestIPTablesNetns runs the seed's rule ops through host.NewIPTables in a
// fresh namespace, once per iptables backend: legacy is what CentOS 7 has,
// nf_tables what newer distributions default to. Each backend is put first
// in PATH as "iptables", the name go-iptables looks up.
func TestIPTablesNetns(t *testing.T) {
	needNetRoot(t, "ip", "iptables")
	for _, backend := range []string{"iptables-legacy", "iptables-nft"} {
		t.Run(backend, func(t *testing.T) {
			bin, err := exec.LookPath(backend)
			if err != nil {
				t.Skipf("%s not installed", backend)
			}
			dir := t.TempDir()
			if err := os.Symlink(bin, filepath.Join(dir, "iptables")); err != nil {
				t.Fatal(err)
			}
			t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
			testIPTablesNetns(t, backend)
		})
	}
}

func testIPTablesNetns(t *testing.T, iptables string) {
	node := newTestNet(t)
	hostBefore := netCmd(t, iptables, "-t", "nat", "-S", "POSTROUTING")
	// What iptables-services leaves on CentOS 7, twice in INPUT.
	for _, chain := range []string{"INPUT", "INPUT", "FORWARD"} {
		netCmd(t, "ip", "netns", "exec", node.name, iptables, "-I", chain, "-j", "REJECT", "--reject-with", "icmp-host-prohibited")
	}
	ipt, err := host.NewIPTables()
	if err != nil {
		t.Fatal(err)
	}
	env, logs := kernelEnv(t)
	env.IPTables = ipt
	steps := IPTables(seedOps())
	ctx := context.Background()
	var changed []string
	if err := inNetns(node.h, func() (err error) {
		changed, err = convergeSteps(ctx, env, steps)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(changed) != 3 {
		t.Errorf("first run changed %v, want all three", changed)
	}
	if !strings.Contains(logs.String(), "why=") {
		t.Errorf("Why not logged:\n%s", logs)
	}
	nat := netCmd(t, "ip", "netns", "exec", node.name, iptables, "-t", "nat", "-S", "POSTROUTING")
	if !strings.Contains(nat, "-A POSTROUTING -s 172.7.21.0/24 ! -d 172.7.0.0/16 ! -o cni0 -j MASQUERADE") {
		t.Errorf("masquerade rule missing in %s:\n%s", node.name, nat)
	}
	filter := netCmd(t, "ip", "netns", "exec", node.name, iptables, "-S")
	if strings.Contains(filter, "REJECT") {
		t.Errorf("REJECT rules left in %s:\n%s", node.name, filter)
	}

	// Second run: converged at Check, rules unchanged.
	if err := inNetns(node.h, func() error {
		for _, s := range steps {
			if st, err := s.Check(ctx, env); err != nil || !st.Converged {
				return fmt.Errorf("%s: second run: %+v, %v", s.ID(), st, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if again := netCmd(t, "ip", "netns", "exec", node.name, iptables, "-t", "nat", "-S", "POSTROUTING"); again != nat {
		t.Errorf("nat POSTROUTING changed on the second run:\n%s\n---\n%s", nat, again)
	}
	if hostAfter := netCmd(t, iptables, "-t", "nat", "-S", "POSTROUTING"); hostAfter != hostBefore {
		t.Errorf("the host's own nat table changed:\n%s\n---\n%s", hostBefore, hostAfter)
	}
}
