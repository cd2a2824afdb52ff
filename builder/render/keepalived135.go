package render

import (
	"errors"
	"fmt"
	"strings"
)

// ErrKeepalived135 means a keepalived.conf uses a keyword keepalived 1.3.5
// (CentOS 7) does not know. 1.3.5 logs "Unknown keyword" and goes on without
// the line, which silently changes behaviour, so render refuses it.
var ErrKeepalived135 = errors.New("not supported by keepalived 1.3.5")

// keywords135 lists, per block, the keywords keepalived 1.3.5 parses that
// kubebake may use. Source: keepalived's doc/keepalived.conf.SYNOPSIS and
// ChangeLog up to 1.3.5 (2017-03); script_user and enable_script_security
// came with 1.3.0 ("Make running scripts more secure", after 1.2.24).
// Deliberately absent because they are keepalived 2.x keywords:
// vrrp_track_process and track_process, track_file, max_auto_priority,
// vrrp_startup_delay.
var keywords135 = map[string][]string{
	"": {"global_defs", "vrrp_script", "vrrp_instance", "vrrp_sync_group", "static_ipaddress", "static_routes"},
	"global_defs": {
		"router_id", "script_user", "enable_script_security", "notification_email",
		"notification_email_from", "smtp_server", "smtp_connect_timeout", "smtp_alert",
		"vrrp_mcast_group4", "vrrp_garp_master_delay", "vrrp_garp_master_repeat",
		"vrrp_garp_master_refresh", "vrrp_version", "vrrp_skip_check_adv_addr",
		"vrrp_strict", "vrrp_iptables", "vrrp_check_unicast_src",
	},
	"vrrp_script": {"script", "interval", "timeout", "weight", "fall", "rise", "user"},
	"vrrp_instance": {
		"state", "interface", "virtual_router_id", "priority", "advert_int",
		"mcast_src_ip", "unicast_src_ip", "unicast_peer", "nopreempt", "preempt_delay",
		"authentication", "track_script", "track_interface", "virtual_ipaddress",
		"virtual_ipaddress_excluded", "virtual_routes", "garp_master_delay",
		"garp_master_refresh", "dont_track_primary", "use_vmac", "vmac_xmit_base",
		"native_ipv6", "notify_master", "notify_backup", "notify_fault", "notify_stop",
		"notify", "smtp_alert", "accept", "no_accept", "strict_mode", "version",
	},
	"vrrp_sync_group": {"group", "notify_master", "notify_backup", "notify_fault", "notify", "smtp_alert"},
	"authentication":  {"auth_type", "auth_pass"},
}

// freeForm135 blocks hold values (addresses, script or interface names),
// not keywords.
var freeForm135 = map[string]bool{
	"track_script": true, "track_interface": true, "virtual_ipaddress": true,
	"virtual_ipaddress_excluded": true, "virtual_routes": true, "unicast_peer": true,
	"notification_email": true, "group": true, "static_ipaddress": true, "static_routes": true,
}

// CheckKeepalived135 checks every keyword of a keepalived.conf against the
// keepalived 1.3.5 list, block by block, and that braces balance.
func CheckKeepalived135(conf []byte) error {
	var stack []string
	var errs []error
	for i, raw := range strings.Split(string(conf), "\n") {
		f := strings.Fields(keepalivedStripComment(raw))
		if len(f) == 0 {
			continue
		}
		if f[0] == "}" {
			if len(stack) == 0 {
				errs = append(errs, fmt.Errorf("line %d: unbalanced }", i+1))
				continue
			}
			stack = stack[:len(stack)-1]
			continue
		}
		ctx := ""
		if len(stack) > 0 {
			ctx = stack[len(stack)-1]
		}
		opens := f[len(f)-1] == "{"
		if !freeForm135[ctx] && !knows135(ctx, f[0]) {
			where := "at top level"
			if ctx != "" {
				where = "in " + ctx
			}
			errs = append(errs, fmt.Errorf("line %d: %s %s: %w", i+1, f[0], where, ErrKeepalived135))
		}
		if opens {
			stack = append(stack, f[0])
		}
	}
	if len(stack) > 0 {
		errs = append(errs, fmt.Errorf("unclosed block %s", stack[len(stack)-1]))
	}
	return errors.Join(errs...)
}

func knows135(block, kw string) bool {
	for _, k := range keywords135[block] {
		if k == kw {
			return true
		}
	}
	return false
}

// keepalivedStripComment cuts a '!' or '#' comment outside double quotes.
func keepalivedStripComment(s string) string {
	quoted := false
	for i, c := range s {
		switch {
		case c == '"':
			quoted = !quoted
		case !quoted && (c == '!' || c == '#'):
			return s[:i]
		}
	}
	return s
}
