package steps

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// Routes returns one step per static route ("route/<dst>"), in order.
//
// Check lists the routes (env.Routes.List) and is converged on an exact
// destination + gateway match (compared as parsed addresses, so
// "172.7.22.1/24" equals "172.7.22.0/24"); its diff reads "add 172.7.22.0/24
// via 10.4.7.22" or "172.7.22.0/24: via 10.4.7.9 → via 10.4.7.22". Apply
// calls env.Routes.Replace (netlink RTM_NEWROUTE with NLM_F_REPLACE:
// idempotent), Verify lists again.
func Routes(r []plan.Route) []engine.Step {
	out := make([]engine.Step, 0, len(r))
	for _, x := range r {
		out = append(out, routeStep{dst: x.Dst, via: x.Via})
	}
	return out
}

type routeStep struct{ dst, via string }

func (s routeStep) ID() string { return "route/" + s.dst }

func (s routeStep) String() string { return s.dst + " via " + s.via }

// canonRoute normalises a destination and gateway for comparison; strings
// that do not parse compare as written.
func canonRoute(dst, via string) (string, string) {
	if p, err := netip.ParsePrefix(dst); err == nil {
		dst = p.Masked().String()
	}
	if a, err := netip.ParseAddr(via); err == nil {
		via = a.Unmap().String()
	}
	return dst, via
}

// find reports whether the exact route exists and which gateways the
// destination has now.
func (s routeStep) find(env *engine.Env) (bool, []string, error) {
	rs, err := env.Routes.List()
	if err != nil {
		return false, nil, fmt.Errorf("route %s: %w", s, err)
	}
	wantDst, wantVia := canonRoute(s.dst, s.via)
	var others []string
	for _, r := range rs {
		dst, via := canonRoute(r.Dst, r.Via)
		if dst != wantDst {
			continue
		}
		if via == wantVia {
			return true, nil, nil
		}
		others = append(others, "via "+via)
	}
	return false, others, nil
}

func (s routeStep) Check(ctx context.Context, env *engine.Env) (engine.Status, error) {
	ok, others, err := s.find(env)
	if err != nil {
		return engine.Status{}, err
	}
	if ok {
		return engine.Status{Converged: true}, nil
	}
	if len(others) > 0 {
		return engine.Status{Diff: []string{fmt.Sprintf("%s: %s → via %s", s.dst, strings.Join(others, ", "), s.via)}}, nil
	}
	return engine.Status{Diff: []string{"add " + s.String()}}, nil
}

func (s routeStep) Apply(ctx context.Context, env *engine.Env) error {
	if err := env.Routes.Replace(engine.Route{Dst: s.dst, Via: s.via}); err != nil {
		return fmt.Errorf("route %s: %w", s, err)
	}
	return nil
}

func (s routeStep) Verify(ctx context.Context, env *engine.Env) error {
	ok, others, err := s.find(env)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("route %s: not listed after replace (have %v)", s, others)
	}
	return nil
}
