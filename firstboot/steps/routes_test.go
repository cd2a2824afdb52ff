package steps

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/host"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// routeFake is engine.Routes over a slice; Replace keys on Dst like the
// kernel's main table.
type routeFake struct {
	routes   []engine.Route
	replaces int
}

func (f *routeFake) List() ([]engine.Route, error) {
	return append([]engine.Route(nil), f.routes...), nil
}

func (f *routeFake) Replace(r engine.Route) error {
	f.replaces++
	for i := range f.routes {
		if f.routes[i].Dst == r.Dst {
			f.routes[i] = r
			return nil
		}
	}
	f.routes = append(f.routes, r)
	return nil
}

func TestRoutesConverge(t *testing.T) {
	env, _ := kernelEnv(t)
	fake := &routeFake{routes: []engine.Route{
		{Dst: "0.0.0.0/0", Via: "10.4.7.254"},
		{Dst: "172.7.23.0/24", Via: "10.4.7.9"}, // wrong gateway
	}}
	env.Routes = fake
	steps := Routes([]plan.Route{
		{Dst: "172.7.22.0/24", Via: "10.4.7.22"},
		{Dst: "172.7.23.0/24", Via: "10.4.7.23"},
		{Dst: "0.0.0.0/0", Via: "10.4.7.254"}, // already there
	})
	if steps[0].ID() != "route/172.7.22.0/24" {
		t.Errorf("ID = %q", steps[0].ID())
	}
	ctx := context.Background()
	for i, want := range []string{"add 172.7.22.0/24 via 10.4.7.22", "172.7.23.0/24: via 10.4.7.9 → via 10.4.7.23"} {
		st, err := steps[i].Check(ctx, env)
		if err != nil || st.Converged || strings.Join(st.Diff, "|") != want {
			t.Errorf("check %s = %+v, %v; want diff %q", steps[i].ID(), st, err, want)
		}
	}
	changed := converge(t, env, steps)
	if strings.Join(changed, ",") != "route/172.7.22.0/24,route/172.7.23.0/24" {
		t.Errorf("changed %v", changed)
	}
	if changed := converge(t, env, steps); len(changed) != 0 || fake.replaces != 2 {
		t.Errorf("second run changed %v (%d replaces)", changed, fake.replaces)
	}
}

func TestRoutesCanonicalCompare(t *testing.T) {
	env, _ := kernelEnv(t)
	env.Routes = &routeFake{routes: []engine.Route{{Dst: "172.7.22.0/24", Via: "10.4.7.22"}}}
	st, err := Routes([]plan.Route{{Dst: "172.7.22.1/24", Via: "10.4.7.22"}})[0].Check(context.Background(), env)
	if err != nil || !st.Converged {
		t.Errorf("check = %+v, %v; want converged (same network)", st, err)
	}
}

func TestRoutesVerifyFails(t *testing.T) {
	env, _ := kernelEnv(t)
	env.Routes = &routeFake{}
	if err := Routes([]plan.Route{{Dst: "172.7.22.0/24", Via: "10.4.7.22"}})[0].Verify(context.Background(), env); err == nil || !strings.Contains(err.Error(), "172.7.22.0/24 via 10.4.7.22") {
		t.Errorf("verify = %v", err)
	}
}

// The tests below use real netlink and real iptables inside fresh network
// namespaces. They need root and skip without it; CI runs as root, so they
// run there. The host's own namespace is never entered: every namespace
// switch happens on a locked OS thread that is restored (or, if restoring
// fails, left locked so the runtime discards it).

// needNetRoot skips a test that needs root, and needs the tools it execs:
// missing tools skip locally but fail under CI=true, like .ci/run's policy.
func needNetRoot(t *testing.T, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and veth links (CI runs as root)")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (CI=true: install it, e.g. apt-get install iproute2 iptables)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
}

// onThread runs fn on a fresh goroutine locked to its OS thread and puts
// the thread back into its original network namespace afterwards.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err // stays locked: the thread dies with the goroutine
			return
		}
		defer orig.Close()
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("restore netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// inNetns runs fn inside ns on a locked thread (see onThread).
func inNetns(ns netns.NsHandle, fn func() error) error {
	return onThread(func() error {
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("enter netns: %w", err)
		}
		return fn()
	})
}

// testNetns is a named namespace (/run/netns/<name>, so `ip -n` and
// `ip netns exec` reach it), removed in t.Cleanup.
type testNetns struct {
	name string
	h    netns.NsHandle
}

func newTestNetns(t *testing.T, role string) testNetns {
	t.Helper()
	n := testNetns{name: fmt.Sprintf("kbt-%s-%d-%d", role, os.Getpid(), rand.IntN(1e6))}
	err := onThread(func() error {
		var err error
		n.h, err = netns.NewNamed(n.name) // moves this thread in; onThread moves it back
		return err
	})
	if err != nil {
		t.Fatalf("netns %s: %v", n.name, err)
	}
	t.Cleanup(func() {
		n.h.Close()
		if err := netns.DeleteNamed(n.name); err != nil {
			t.Errorf("delete netns %s: %v", n.name, err)
		}
	})
	return n
}

// newTestNet builds the two-host network of the seed: node ns with lo up and
// kbv0 10.4.7.21/24, its veth peer kbv1 10.4.7.22/24 in a second ns. It
// returns the node namespace.
func newTestNet(t *testing.T) testNetns {
	t.Helper()
	node, peer := newTestNetns(t, "node"), newTestNetns(t, "peer")
	nh, err := netlink.NewHandleAt(node.h)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	ph, err := netlink.NewHandleAt(peer.h)
	if err != nil {
		t.Fatal(err)
	}
	defer ph.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "kbv0"}, PeerName: "kbv1", PeerNamespace: netlink.NsFd(peer.h)}
	if err := nh.LinkAdd(veth); err != nil {
		t.Fatalf("veth: %v", err)
	}
	for _, side := range []struct {
		h          *netlink.Handle
		link, addr string
	}{{nh, "kbv0", "10.4.7.21/24"}, {ph, "kbv1", "10.4.7.22/24"}, {nh, "lo", ""}, {ph, "lo", ""}} {
		l, err := side.h.LinkByName(side.link)
		if err != nil {
			t.Fatalf("%s: %v", side.link, err)
		}
		if side.addr != "" {
			a, _ := netlink.ParseAddr(side.addr)
			if err := side.h.AddrAdd(l, a); err != nil {
				t.Fatalf("%s %s: %v", side.link, side.addr, err)
			}
		}
		if err := side.h.LinkSetUp(l); err != nil {
			t.Fatalf("%s up: %v", side.link, err)
		}
	}
	return node
}

// netCmd runs a command and returns its output, failing the test on error.
func netCmd(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestRoutesNetns(t *testing.T) {
	needNetRoot(t, "ip")
	hostBefore := netCmd(t, "ip", "-4", "route", "show", "table", "all")
	node := newTestNet(t)
	// A stale route to replace: same destination, another gateway.
	netCmd(t, "ip", "-n", node.name, "route", "add", "172.7.23.0/24", "via", "10.4.7.23")

	env, _ := kernelEnv(t)
	env.Routes = host.NewRoutes()
	steps := Routes([]plan.Route{{Dst: "172.7.22.0/24", Via: "10.4.7.22"}, {Dst: "172.7.23.0/24", Via: "10.4.7.22"}})
	ctx := context.Background()
	var changed []string
	if err := inNetns(node.h, func() (err error) {
		changed, err = convergeSteps(ctx, env, steps)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(changed, ",") != "route/172.7.22.0/24,route/172.7.23.0/24" {
		t.Errorf("first run changed %v", changed)
	}
	first := netCmd(t, "ip", "-n", node.name, "-4", "route", "show")
	for _, want := range []string{"172.7.22.0/24 via 10.4.7.22 dev kbv0 proto static", "172.7.23.0/24 via 10.4.7.22 dev kbv0 proto static"} {
		if !strings.Contains(first, want) {
			t.Errorf("ip route in %s lacks %q:\n%s", node.name, want, first)
		}
	}
	if strings.Contains(first, "10.4.7.23") {
		t.Errorf("stale route kept:\n%s", first)
	}

	// Second run: every step converged at Check, nothing changed.
	if err := inNetns(node.h, func() error {
		for _, s := range steps {
			st, err := s.Check(ctx, env)
			if err != nil {
				return err
			}
			if !st.Converged {
				return fmt.Errorf("%s: second run not converged: %v", s.ID(), st.Diff)
			}
		}
		changed, err := convergeSteps(ctx, env, steps)
		if len(changed) > 0 {
			return fmt.Errorf("second run changed %v", changed)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if second := netCmd(t, "ip", "-n", node.name, "-4", "route", "show"); second != first {
		t.Errorf("routes changed on the second run:\n%s\n---\n%s", first, second)
	}
	// Forced Apply (RouteReplace again) is idempotent too.
	if err := inNetns(node.h, func() error { return steps[0].Apply(ctx, env) }); err != nil {
		t.Fatal(err)
	}
	if again := netCmd(t, "ip", "-n", node.name, "-4", "route", "show"); again != first {
		t.Errorf("routes changed on a repeated replace:\n%s\n---\n%s", first, again)
	}
	if hostAfter := netCmd(t, "ip", "-4", "route", "show", "table", "all"); hostAfter != hostBefore {
		t.Errorf("the host's own routes changed:\n%s\n---\n%s", hostBefore, hostAfter)
	}
}

func TestRoutesNetnsUnreachableGateway(t *testing.T) {
	needNetRoot(t, "ip")
	node := newTestNet(t)
	env, _ := kernelEnv(t)
	env.Routes = host.NewRoutes()
	s := Routes([]plan.Route{{Dst: "172.7.22.0/24", Via: "192.0.2.1"}})[0]
	err := inNetns(node.h, func() error { return s.Apply(context.Background(), env) })
	if err == nil || !strings.Contains(err.Error(), "route 172.7.22.0/24 via 192.0.2.1") {
		t.Fatalf("apply via an off-link gateway = %v, want an error naming the route", err)
	}
}
