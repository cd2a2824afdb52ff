package steps

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// maxRuleDeletes bounds the delete loop: iptables -D removes one matching
// rule per call, and a buggy backend that never reports the rule gone must
// not spin forever.
const maxRuleDeletes = 64

// IPTables returns one step per rule operation, in order
// ("iptables/<table>/<chain>/ensure|delete/<rule>").
//
// Ensure: converged when `iptables -C` finds the rule; Apply inserts it at
// position 1 (the seed uses -I, so it lands before the distribution's
// rules). Delete: converged when the rule is absent; Apply deletes it until
// -C no longer finds it (iptables-services may have saved duplicates). The
// diff shows the iptables command that Apply runs, and Apply logs the op's
// Why.
func IPTables(ops []plan.IPTablesOp) []engine.Step {
	out := make([]engine.Step, 0, len(ops))
	for _, op := range ops {
		out = append(out, iptablesStep{op: op})
	}
	return out
}

type iptablesStep struct{ op plan.IPTablesOp }

func (s iptablesStep) verb() string {
	if s.op.Delete {
		return "delete"
	}
	return "ensure"
}

func (s iptablesStep) ID() string {
	return "iptables/" + s.op.Table + "/" + s.op.Chain + "/" + s.verb() + "/" + strings.Join(s.op.Rule, " ")
}

// command renders the iptables command line Apply runs, quoting arguments
// that hold spaces (comments).
func (s iptablesStep) command() string {
	args := []string{"iptables", "-t", s.op.Table}
	if s.op.Delete {
		args = append(args, "-D", s.op.Chain)
	} else {
		args = append(args, "-I", s.op.Chain, "1")
	}
	for _, a := range s.op.Rule {
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			a = strconv.Quote(a)
		}
		args = append(args, a)
	}
	return strings.Join(args, " ")
}

func (s iptablesStep) exists(env *engine.Env) (bool, error) {
	ok, err := env.IPTables.Exists(s.op.Table, s.op.Chain, s.op.Rule...)
	if err != nil {
		return false, fmt.Errorf("%s: %w", s.ID(), err)
	}
	return ok, nil
}

func (s iptablesStep) Check(ctx context.Context, env *engine.Env) (engine.Status, error) {
	ok, err := s.exists(env)
	if err != nil {
		return engine.Status{}, err
	}
	if ok != s.op.Delete {
		return engine.Status{Converged: true}, nil
	}
	return engine.Status{Diff: []string{s.command()}}, nil
}

func (s iptablesStep) Apply(ctx context.Context, env *engine.Env) error {
	log := kernelLog(env)
	if !s.op.Delete {
		ok, err := s.exists(env)
		if err != nil || ok {
			return err
		}
		log.Info("iptables insert", "table", s.op.Table, "chain", s.op.Chain, "rule", strings.Join(s.op.Rule, " "), "why", s.op.Why)
		if err := env.IPTables.Insert(s.op.Table, s.op.Chain, 1, s.op.Rule...); err != nil {
			return fmt.Errorf("%s: %w", s.ID(), err)
		}
		return nil
	}
	for n := 0; ; n++ {
		ok, err := s.exists(env)
		if err != nil || !ok {
			return err
		}
		if n == maxRuleDeletes {
			return fmt.Errorf("%s: still present after %d deletes", s.ID(), n)
		}
		log.Info("iptables delete", "table", s.op.Table, "chain", s.op.Chain, "rule", strings.Join(s.op.Rule, " "), "why", s.op.Why)
		if err := env.IPTables.Delete(s.op.Table, s.op.Chain, s.op.Rule...); err != nil {
			return fmt.Errorf("%s: %w", s.ID(), err)
		}
	}
}

func (s iptablesStep) Verify(ctx context.Context, env *engine.Env) error {
	ok, err := s.exists(env)
	if err != nil {
		return err
	}
	if ok == s.op.Delete {
		if s.op.Delete {
			return fmt.Errorf("%s: rule still present", s.ID())
		}
		return fmt.Errorf("%s: rule missing after insert", s.ID())
	}
	return nil
}
