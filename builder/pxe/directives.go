package pxe

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// rhel7 lists the kickstart commands kubebake writes and, for each, the
// options it may use, all as CentOS/RHEL 7's anaconda documents them.
//
// Source: pykickstart's RHEL7Handler (pykickstart/handlers/rhel7.py), which
// maps each command to the class that parses it: text (FC3_DisplayMode),
// skipx (FC3_SkipX), firstboot (FC3_Firstboot), lang (F19_Lang), keyboard
// (F18_Keyboard), timezone (F18_Timezone), url (F18_Url), repo
// (RHEL7_Repo), network (RHEL7_Network), rootpw (F18_RootPw), selinux
// (FC3_SELinux), firewall (F20_Firewall), services (FC6_Services),
// ignoredisk (F14_IgnoreDisk), zerombr (F9_ZeroMbr), clearpart
// (F17_ClearPart), bootloader (RHEL7_Bootloader), part (F20_Partition),
// reboot (F18_Reboot); sections %packages (--nobase), %pre (--erroronfail,
// --interpreter, --log) and %post
// (--nochroot, --erroronfail, --interpreter, --log), as in the RHEL 7
// Installation Guide's kickstart reference. Absent from RHEL 7.0's handler,
// so never written: sshkey, reqpart, autopart's swap-free variants, zipl.
// positional is true for commands that take plain arguments.
var rhel7 = map[string]struct {
	opts       []string
	positional bool
}{
	"text":       {},
	"skipx":      {},
	"firstboot":  {opts: []string{"--disable"}},
	"lang":       {positional: true},
	"keyboard":   {opts: []string{"--vckeymap", "--xlayouts"}},
	"timezone":   {opts: []string{"--utc", "--ntpservers"}, positional: true},
	"url":        {opts: []string{"--url"}},
	"repo":       {opts: []string{"--name", "--baseurl"}},
	"network":    {opts: []string{"--device", "--bootproto", "--ip", "--netmask", "--gateway", "--nameserver", "--hostname", "--onboot", "--activate", "--noipv6"}},
	"rootpw":     {opts: []string{"--iscrypted"}, positional: true},
	"selinux":    {opts: []string{"--disabled", "--enforcing"}},
	"firewall":   {opts: []string{"--disabled", "--enabled", "--ssh"}},
	"services":   {opts: []string{"--enabled"}},
	"ignoredisk": {opts: []string{"--only-use"}},
	"zerombr":    {},
	"clearpart":  {opts: []string{"--all", "--initlabel", "--drives"}},
	"bootloader": {opts: []string{"--location", "--boot-drive"}},
	"part":       {opts: []string{"--fstype", "--size", "--grow", "--ondisk"}, positional: true},
	"reboot":     {},
}

// rhel7Sections are the sections and their allowed options.
var rhel7Sections = map[string][]string{
	"%packages": {"--nobase"},
	"%pre":      {"--erroronfail", "--interpreter", "--log"},
	"%post":     {"--nochroot", "--erroronfail", "--interpreter", "--log"},
}

// CheckKickstart reports the first line of ks that uses a command, section
// or option outside the RHEL 7 allow-list, or a section left open.
func CheckKickstart(ks []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(ks))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	section := ""
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if section != "" {
			if line == "%end" {
				section = ""
				continue
			}
			if strings.HasPrefix(line, "%") && !strings.HasPrefix(line, "%%") && section == "%packages" {
				return fmt.Errorf("line %d: %q inside %s", n, line, section)
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if strings.HasPrefix(f[0], "%") {
			allowed, ok := rhel7Sections[f[0]]
			if !ok {
				return fmt.Errorf("line %d: section %s is not in the RHEL 7 allow-list", n, f[0])
			}
			if err := checkOpts(n, f[0], f[1:], allowed, false); err != nil {
				return err
			}
			section = f[0]
			continue
		}
		c, ok := rhel7[f[0]]
		if !ok {
			return fmt.Errorf("line %d: command %q is not in the RHEL 7 allow-list", n, f[0])
		}
		if err := checkOpts(n, f[0], f[1:], c.opts, c.positional); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if section != "" {
		return fmt.Errorf("section %s has no %%end", section)
	}
	return nil
}

func checkOpts(n int, cmd string, args, allowed []string, positional bool) error {
	for _, a := range args {
		if !strings.HasPrefix(a, "--") {
			if !positional {
				return fmt.Errorf("line %d: %s takes no argument %q", n, cmd, a)
			}
			continue
		}
		name, _, _ := strings.Cut(a, "=")
		ok := false
		for _, o := range allowed {
			ok = ok || o == name
		}
		if !ok {
			return fmt.Errorf("line %d: %s option %s is not in the RHEL 7 allow-list", n, cmd, name)
		}
	}
	return nil
}
