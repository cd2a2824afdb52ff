package main

import (
	"context"
	"time"

	"github.com/kubebake/kubebake/firstboot/engine"
)

// When a dry run or firstboot network cannot open systemd's bus or find
// iptables, these stand in and return the reason from every call, so the
// Check of a step that needs them fails with that reason instead of a nil
// interface panicking.

type noSystemd struct{ err error }

func (n noSystemd) Reload(context.Context) error                  { return n.err }
func (n noSystemd) Enabled(context.Context, string) (bool, error) { return false, n.err }
func (n noSystemd) Enable(context.Context, ...string) error       { return n.err }
func (n noSystemd) Disable(context.Context, ...string) error      { return n.err }
func (n noSystemd) Active(context.Context, string) (bool, error)  { return false, n.err }
func (n noSystemd) Start(context.Context, string) error           { return n.err }
func (n noSystemd) Restart(context.Context, string) error         { return n.err }
func (n noSystemd) ActiveSince(context.Context, string) (time.Time, error) {
	return time.Time{}, n.err
}
func (n noSystemd) JournalTail(context.Context, string, int) (string, error) {
	return "", n.err
}

type noIPTables struct{ err error }

func (n noIPTables) Exists(string, string, ...string) (bool, error) { return false, n.err }
func (n noIPTables) Insert(string, string, int, ...string) error    { return n.err }
func (n noIPTables) Delete(string, string, ...string) error         { return n.err }

var (
	_ engine.Systemd  = noSystemd{}
	_ engine.IPTables = noIPTables{}
)
