package host

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/kubebake/kubebake/firstboot/engine"
)

// Routes manages static IPv4 routes in the main table through netlink, in
// the network namespace of the calling thread. It implements engine.Routes.
//
// Kernel 3.10 (CentOS 7): only RTM_GETROUTE dumps and RTM_NEWROUTE with
// NLM_F_CREATE|NLM_F_REPLACE are used, with RTA_DST, RTA_GATEWAY and RTA_OIF;
// no nexthop objects, no strict-check dump filters, no RTA_TABLE for the
// main table.
type Routes struct{}

var _ engine.Routes = (*Routes)(nil)

// NewRoutes returns the netlink route manager for the current network
// namespace.
func NewRoutes() engine.Routes { return &Routes{} }

// List returns the main table's IPv4 unicast routes that have a gateway, as
// {Dst: "172.7.22.0/24", Via: "10.4.7.22"} (a default route has Dst
// "0.0.0.0/0"). Multipath routes list one entry per gateway.
func (Routes) List() ([]engine.Route, error) {
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_V4,
		&netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	var out []engine.Route
	for _, r := range rs {
		if r.Type != unix.RTN_UNICAST {
			continue
		}
		dst := "0.0.0.0/0"
		if r.Dst != nil {
			dst = r.Dst.String()
		}
		if r.Gw != nil {
			out = append(out, engine.Route{Dst: dst, Via: r.Gw.String()})
		}
		for _, nh := range r.MultiPath {
			if nh.Gw != nil {
				out = append(out, engine.Route{Dst: dst, Via: nh.Gw.String()})
			}
		}
	}
	return out, nil
}

// Replace adds the route or changes the existing route for r.Dst to go via
// r.Via (RTM_NEWROUTE with NLM_F_REPLACE: repeating it changes nothing). The
// outgoing link is the one the kernel uses to reach the gateway (RouteGet);
// when the gateway is itself behind a gateway, the kernel is left to choose
// and refuses with "network is unreachable".
func (Routes) Replace(r engine.Route) error {
	route, err := netlinkRoute(r)
	if err != nil {
		return err
	}
	if via, err := netlink.RouteGet(route.Gw); err == nil && len(via) > 0 && via[0].Gw == nil && via[0].LinkIndex > 0 {
		route.LinkIndex = via[0].LinkIndex
	}
	if err := netlink.RouteReplace(route); err != nil {
		return fmt.Errorf("route %s via %s: %w", r.Dst, r.Via, err)
	}
	return nil
}

// netlinkRoute parses r into a main-table, proto static, universe-scope
// unicast route.
func netlinkRoute(r engine.Route) (*netlink.Route, error) {
	pfx, err := netip.ParsePrefix(r.Dst)
	if err != nil || !pfx.Addr().Is4() {
		return nil, fmt.Errorf("route %s via %s: destination is not an IPv4 CIDR", r.Dst, r.Via)
	}
	gw, err := netip.ParseAddr(r.Via)
	if err != nil || !gw.Is4() {
		return nil, fmt.Errorf("route %s via %s: gateway is not an IPv4 address", r.Dst, r.Via)
	}
	pfx = pfx.Masked()
	return &netlink.Route{
		Dst:      &net.IPNet{IP: net.IP(pfx.Addr().AsSlice()), Mask: net.CIDRMask(pfx.Bits(), 32)},
		Gw:       net.IP(gw.AsSlice()),
		Table:    unix.RT_TABLE_MAIN,
		Protocol: unix.RTPROT_STATIC,
		Scope:    netlink.SCOPE_UNIVERSE,
		Type:     unix.RTN_UNICAST,
	}, nil
}
