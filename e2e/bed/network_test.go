package bed

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestNetwork builds a small bed network (its own names, so it never
// touches a running e2e) with two ports and a tap, checks each port's
// address, route and MAC, that the ports reach each other across the
// bridge (TCP, no ping needed), and that Create is idempotent and Destroy
// leaves nothing. Root only; milliseconds.
func TestNetwork(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (ip netns)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip (iproute2)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := os.Getpid() % 100000
	n := Network{NS: fmt.Sprintf("kbt-%d", id), Bridge: "kbtbr0", CIDR: "10.99.7.0/24", Gateway: "10.99.7.254"}
	a := Port{NetNS: fmt.Sprintf("kbt-%d-a", id), Ifname: "eth0", Peer: fmt.Sprintf("vbt%da", id), IP: "10.99.7.11", MAC: "52:54:00:99:07:0b"}
	b := Port{NetNS: fmt.Sprintf("kbt-%d-b", id), Ifname: "eth0", Peer: fmt.Sprintf("vbt%db", id), IP: "10.99.7.12"}
	t.Cleanup(func() {
		for _, ns := range []string{a.NetNS, b.NetNS} {
			_ = DeleteNetNS(context.Background(), ns)
		}
		_ = n.Destroy()
	})
	for i := 0; i < 2; i++ { // the second round: a crashed run's names are reused
		if err := n.Create(ctx); err != nil {
			t.Fatal(err)
		}
		for _, p := range []Port{a, b} {
			if err := n.AddPort(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		if err := n.AddTap(ctx, fmt.Sprintf("tapt%d", id)); err != nil {
			t.Fatal(err)
		}
	}
	out, err := Run(ctx, "ip", "-n", a.NetNS, "-o", "addr", "show", "dev", "eth0")
	if err != nil || !strings.Contains(string(out), "inet 10.99.7.11/24") {
		t.Errorf("port a: %v %s", err, out)
	}
	out, err = Run(ctx, "ip", "-n", a.NetNS, "link", "show", "dev", "eth0")
	if err != nil || !strings.Contains(string(out), "52:54:00:99:07:0b") {
		t.Errorf("port a MAC: %v %s", err, out)
	}
	out, err = Run(ctx, "ip", "-n", b.NetNS, "route", "show", "default")
	if err != nil || !strings.Contains(string(out), "via 10.99.7.254") {
		t.Errorf("port b default route: %v %s", err, out)
	}
	out, err = Run(ctx, "ip", "-n", n.NS, "-o", "link", "show", "master", n.Bridge)
	for _, want := range []string{a.Peer, b.Peer, fmt.Sprintf("tapt%d", id)} {
		if err != nil || !strings.Contains(string(out), want+"@") && !strings.Contains(string(out), want+":") {
			t.Errorf("bridge %s has no %s: %v %s", n.Bridge, want, err, out)
		}
	}
	// b listens, a connects: across veth, bridge, veth.
	srv := exec.CommandContext(ctx, "ip", "netns", "exec", b.NetNS, os.Args[0], "-test.run=^TestHelperListen$")
	srv.Env = append(os.Environ(), "KB_BED_LISTEN=10.99.7.12:7777")
	stdout, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	buf := make([]byte, 6)
	if _, err := stdout.Read(buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("listener: %v %q", err, buf)
	}
	out, err = Run(ctx, "ip", "netns", "exec", a.NetNS, "bash", "-c", "exec 3<>/dev/tcp/10.99.7.12/7777 && head -c 5 <&3")
	if err != nil || string(out) != "hello" {
		t.Errorf("a → b over the bridge: %v %q", err, out)
	}
	out, err = n.Exec(ctx, "bash", "-c", "exec 3<>/dev/tcp/10.99.7.12/7777 && head -c 5 <&3")
	if err != nil || string(out) != "hello" {
		t.Errorf("bridge → b: %v %q", err, out)
	}
	if err := n.Destroy(); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{a.NetNS, b.NetNS} {
		if err := DeleteNetNS(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	if out, _ := Run(ctx, "ip", "netns", "list"); strings.Contains(string(out), fmt.Sprintf("kbt-%d", id)) {
		t.Errorf("namespaces left: %s", out)
	}
}

// TestHelperListen is TestNetwork's listener, run in a port's namespace.
func TestHelperListen(t *testing.T) {
	addr := os.Getenv("KB_BED_LISTEN")
	if addr == "" {
		t.Skip("helper for TestNetwork")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		_, _ = c.Write([]byte("hello"))
		c.Close()
	}
}
