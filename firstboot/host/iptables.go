package host

import (
	"fmt"
	"strings"

	"github.com/coreos/go-iptables/iptables"

	"github.com/kubebake/kubebake/firstboot/engine"
)

// IPTables changes IPv4 rules one at a time with the iptables binary found
// in PATH (github.com/coreos/go-iptables), so it uses whichever backend the
// host has installed: legacy on CentOS 7 (iptables 1.4.21, which has -C and
// -w), nf_tables or legacy on newer systems. Commands run in the network
// namespace of the calling thread. It implements engine.IPTables.
type IPTables struct {
	ipt *iptables.IPTables
}

var _ engine.IPTables = (*IPTables)(nil)

// NewIPTables finds iptables and reads its version (and so whether it has
// -C and --wait). It fails when no iptables binary is installed.
func NewIPTables() (engine.IPTables, error) {
	ipt, err := iptables.NewWithProtocol(iptables.ProtocolIPv4)
	if err != nil {
		return nil, fmt.Errorf("iptables: %w", err)
	}
	return &IPTables{ipt: ipt}, nil
}

// Exists runs `iptables -t table -C chain rule…`.
func (t *IPTables) Exists(table, chain string, rule ...string) (bool, error) {
	ok, err := t.ipt.Exists(table, chain, rule...)
	if err != nil {
		return false, fmt.Errorf("iptables -t %s -C %s %s: %w", table, chain, strings.Join(rule, " "), err)
	}
	return ok, nil
}

// Insert runs `iptables -t table -I chain pos rule…`.
func (t *IPTables) Insert(table, chain string, pos int, rule ...string) error {
	if err := t.ipt.Insert(table, chain, pos, rule...); err != nil {
		return fmt.Errorf("iptables -t %s -I %s %d %s: %w", table, chain, pos, strings.Join(rule, " "), err)
	}
	return nil
}

// Delete runs `iptables -t table -D chain rule…`, which removes the first
// matching rule only.
func (t *IPTables) Delete(table, chain string, rule ...string) error {
	if err := t.ipt.Delete(table, chain, rule...); err != nil {
		return fmt.Errorf("iptables -t %s -D %s %s: %w", table, chain, strings.Join(rule, " "), err)
	}
	return nil
}
