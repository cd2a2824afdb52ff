// Package bed is the end-to-end test bed's common ground: one private
// network (a network namespace holding a bridge on the node network, with
// no uplink, so nothing leaves it) and the Host every booted machine is,
// whether a systemd-nspawn container (e2e/nspawnhost) or a QEMU guest
// (e2e/qemuhost).
//
// A Host receives only its own bundle, unpacks it as kickstart's %post
// would (/opt/kubebake, kubebake-firstboot.service enabled) and boots;
// firstboot does the rest. The test reads hosts through Exec and Logs and
// never changes a host by hand.
package bed

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Network is the private node network every host joins.
type Network struct {
	// NS is the network namespace (ip netns) holding the bridge:
	// /run/netns/<NS>.
	NS string
	// Bridge is the bridge's name inside NS.
	Bridge string
	// CIDR is the node network (10.4.7.0/24); the bridge itself holds
	// Gateway within it.
	CIDR    string
	Gateway string // 10.4.7.254: the spec's gateway, answered by the bridge
}

// Host is one booted machine of the test bed.
type Host interface {
	// Name is the spec's host name (hdss7-21).
	Name() string
	// IP is its address on the node network.
	IP() string
	// Boot starts the machine with bundle (the host's own
	// <host>.tar.gz) installed as %post would, and returns once it runs
	// (not once firstboot is done: see WaitFirstboot).
	Boot(ctx context.Context, bundle string) error
	// WaitFirstboot waits until kubebake-firstboot.service has finished
	// (the done marker or a failed unit) and returns its result:
	// nil when firstboot converged.
	WaitFirstboot(ctx context.Context, timeout time.Duration) error
	// Exec runs a command inside the host (as root, in the host's
	// namespaces) and returns its combined output.
	Exec(ctx context.Context, argv ...string) ([]byte, error)
	// Reboot restarts the machine with the same disk (a second boot).
	Reboot(ctx context.Context) error
	// Logs copies what a human needs after a failure (firstboot's
	// journal, failed units' journals, the serial console) into dir.
	Logs(ctx context.Context, dir string) error
	// Stop stops the machine and everything it started; safe to call
	// twice.
	Stop() error
}

// Execer runs a command inside a host: the part of Host ShowUnit needs.
type Execer interface {
	Exec(ctx context.Context, argv ...string) ([]byte, error)
}

// ShowUnit reads a unit's properties with systemctl show, through Exec:
// the same for every kind of host.
func ShowUnit(ctx context.Context, h Execer, unit string, props ...string) (map[string]string, error) {
	args := []string{"systemctl", "show", unit}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	out, err := h.Exec(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	u := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			u[k] = v
		}
	}
	return u, nil
}
