package bed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Seed is the node network of the seed's cluster (bundle-spec.yaml:
// cluster.nodeNetwork and cluster.gateway) in the namespace kb-e2e, bridge
// kbbr0.
func Seed() Network {
	return Network{NS: "kb-e2e", Bridge: "kbbr0", CIDR: "10.4.7.0/24", Gateway: "10.4.7.254"}
}

// prefixLen is the length of CIDR's prefix (24).
func (n Network) prefixLen() (int, error) {
	p, err := netip.ParsePrefix(n.CIDR)
	if err != nil {
		return 0, fmt.Errorf("network %s: CIDR %q: %w", n.NS, n.CIDR, err)
	}
	return p.Bits(), nil
}

// Create makes the namespace with the bridge holding Gateway/<prefix>, up,
// and loopback up. There is no uplink: nothing on the bridge reaches this
// machine's own network. A namespace of the same name left by a crashed run
// is deleted first (with everything in it), so Create is idempotent.
func (n Network) Create(ctx context.Context) error {
	bits, err := n.prefixLen()
	if err != nil {
		return err
	}
	if _, err := netip.ParseAddr(n.Gateway); err != nil {
		return fmt.Errorf("network %s: gateway %q: %w", n.NS, n.Gateway, err)
	}
	if err := DeleteNetNS(ctx, n.NS); err != nil {
		return err
	}
	if _, err := Run(ctx, "ip", "netns", "add", n.NS); err != nil {
		return err
	}
	for _, argv := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", n.Bridge, "type", "bridge"},
		{"addr", "add", fmt.Sprintf("%s/%d", n.Gateway, bits), "dev", n.Bridge},
		{"link", "set", n.Bridge, "up"},
	} {
		if _, err := Run(ctx, append([]string{"ip", "-n", n.NS}, argv...)...); err != nil {
			_ = n.Destroy()
			return err
		}
	}
	return nil
}

// Destroy deletes the namespace: the bridge, every tap and every veth end
// in it (a veth's peer in a host's namespace goes with it). A process
// still running in it (a QEMU) keeps the stack alive until it exits.
// Idempotent.
func (n Network) Destroy() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return DeleteNetNS(ctx, n.NS)
}

// AddTap creates a tap device named tap on the bridge, up, for a QEMU
// guest started in the namespace (ip netns exec <NS> qemu-system-x86_64
// … -netdev tap,id=n0,ifname=<tap>,script=no,downscript=no). A tap of
// that name left over is replaced. Names are at most 15 bytes.
func (n Network) AddTap(ctx context.Context, tap string) error {
	if err := checkIfName(tap); err != nil {
		return err
	}
	_, _ = Run(ctx, "ip", "-n", n.NS, "link", "del", tap) // left over: replace
	for _, argv := range [][]string{
		{"tuntap", "add", "dev", tap, "mode", "tap"},
		{"link", "set", tap, "master", n.Bridge},
		{"link", "set", tap, "up"},
	} {
		if _, err := Run(ctx, append([]string{"ip", "-n", n.NS}, argv...)...); err != nil {
			return err
		}
	}
	return nil
}

// Port is one host's own network stack joined to the bridge by a veth
// pair: the namespace NetNS (/run/netns/<NetNS>) holds Ifname with IP on
// the node network, MAC when set, and a default route via the gateway;
// Peer is the other end, on the bridge.
type Port struct {
	NetNS  string // kb-hdss7-11
	Ifname string // eth0 (the spec's cluster.vipInterface)
	Peer   string // vb-hdss7-11, at most 15 bytes
	IP     string // 10.4.7.11
	MAC    string // optional: 52:54:00:04:07:0b
}

// AddPort creates p.NetNS (replacing one left over) and wires it to the
// bridge. A systemd-nspawn container joins it with
// --network-namespace-path=/run/netns/<NetNS>: each host keeps its own
// stack and address, and the namespace, with its address and routes,
// outlives the container's reboots.
func (n Network) AddPort(ctx context.Context, p Port) error {
	bits, err := n.prefixLen()
	if err != nil {
		return err
	}
	if err := checkIfName(p.Peer); err != nil {
		return err
	}
	if err := checkIfName(p.Ifname); err != nil {
		return err
	}
	if err := DeleteNetNS(ctx, p.NetNS); err != nil {
		return err
	}
	_, _ = Run(ctx, "ip", "-n", n.NS, "link", "del", p.Peer) // left over: replace
	if _, err := Run(ctx, "ip", "netns", "add", p.NetNS); err != nil {
		return err
	}
	// Both ends are made in the bridge's namespace under names unique on
	// it; the inner one then moves and takes its final name.
	tmp := "t" + p.Peer
	if len(tmp) > 15 {
		tmp = tmp[:15]
	}
	steps := [][]string{
		{"ip", "-n", n.NS, "link", "add", p.Peer, "type", "veth", "peer", "name", tmp},
		{"ip", "-n", n.NS, "link", "set", tmp, "netns", p.NetNS},
		{"ip", "-n", p.NetNS, "link", "set", tmp, "name", p.Ifname},
	}
	if p.MAC != "" {
		steps = append(steps, []string{"ip", "-n", p.NetNS, "link", "set", p.Ifname, "address", p.MAC})
	}
	steps = append(steps,
		[]string{"ip", "-n", p.NetNS, "addr", "add", fmt.Sprintf("%s/%d", p.IP, bits), "dev", p.Ifname},
		[]string{"ip", "-n", p.NetNS, "link", "set", "lo", "up"},
		[]string{"ip", "-n", p.NetNS, "link", "set", p.Ifname, "up"},
		[]string{"ip", "-n", p.NetNS, "route", "add", "default", "via", n.Gateway},
		[]string{"ip", "-n", n.NS, "link", "set", p.Peer, "master", n.Bridge},
		[]string{"ip", "-n", n.NS, "link", "set", p.Peer, "up"},
	)
	for _, argv := range steps {
		if _, err := Run(ctx, argv...); err != nil {
			_ = DeleteNetNS(context.Background(), p.NetNS)
			return err
		}
	}
	return nil
}

// Exec runs argv inside the network namespace (ip netns exec) and returns
// its combined output: the view from the bridge, e.g. curl to a host.
func (n Network) Exec(ctx context.Context, argv ...string) ([]byte, error) {
	return Run(ctx, append([]string{"ip", "netns", "exec", n.NS}, argv...)...)
}

// DeleteNetNS deletes /run/netns/<name> when it exists (ip netns del).
func DeleteNetNS(ctx context.Context, name string) error {
	if name == "" || strings.ContainsAny(name, "/") {
		return fmt.Errorf("network namespace %q: bad name", name)
	}
	if _, err := os.Stat("/run/netns/" + name); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_, err := Run(ctx, "ip", "netns", "del", name)
	return err
}

func checkIfName(s string) error {
	if s == "" || len(s) > 15 || strings.ContainsAny(s, "/ \t") {
		return fmt.Errorf("interface name %q: want 1–15 bytes, no slash or space", s)
	}
	return nil
}

// Run runs argv and returns its combined output; an error names the
// command and carries the output.
func Run(ctx context.Context, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	if err != nil {
		return b.Bytes(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(b.String()))
	}
	return b.Bytes(), nil
}
