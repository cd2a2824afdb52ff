package render

import (
	"errors"
	"fmt"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
)

// ErrSystemd219 means a unit uses something systemd 219 (CentOS 7) does not
// understand. systemd 219 logs "Unknown lvalue" and ignores such a line,
// which silently changes behaviour, so render refuses to produce it.
var ErrSystemd219 = errors.New("not supported by systemd 219")

// directives219 lists, per section, the directives systemd 219 parses.
//
// Source: the systemd v219 man pages (systemd.unit(5), systemd.service(5),
// systemd.exec(5), systemd.kill(5), systemd.resource-control(5)), i.e. what
// CentOS 7 ships, cross-checked against the "Added in version" notes of
// the current pages. Deliberately absent because they came later:
// StartLimitIntervalSec (230; 219 has StartLimitInterval in [Service]),
// StartLimitBurst/StartLimitAction in [Unit] (229), TasksMax and
// TasksAccounting (227/228), AmbientCapabilities (229), MemoryMax/MemoryHigh/
// IOWeight/CPUWeight (231+), DynamicUser, ProtectKernel*, ProtectControlGroups,
// StateDirectory, LogsDirectory, ReadWritePaths (231–235), ExecCondition (243),
// Requisite-like Upholds (249), CollectMode, KeyringMode, LockPersonality.
var directives219 = map[string][]string{
	"Unit": {
		"Description", "Documentation", "Requires", "Requisite", "Wants", "BindsTo",
		"PartOf", "Conflicts", "Before", "After", "OnFailure", "PropagatesReloadTo",
		"ReloadPropagatedFrom", "JoinsNamespaceOf", "RequiresMountsFor",
		"OnFailureJobMode", "IgnoreOnIsolate", "StopWhenUnneeded", "RefuseManualStart",
		"RefuseManualStop", "AllowIsolate", "DefaultDependencies", "JobTimeoutSec",
		"JobTimeoutAction", "JobTimeoutRebootArgument", "SourcePath",
		"ConditionArchitecture", "ConditionVirtualization", "ConditionHost",
		"ConditionKernelCommandLine", "ConditionSecurity", "ConditionCapability",
		"ConditionACPower", "ConditionNeedsUpdate", "ConditionFirstBoot",
		"ConditionPathExists", "ConditionPathExistsGlob", "ConditionPathIsDirectory",
		"ConditionPathIsSymbolicLink", "ConditionPathIsMountPoint",
		"ConditionPathIsReadWrite", "ConditionDirectoryNotEmpty",
		"ConditionFileNotEmpty", "ConditionFileIsExecutable",
		"AssertArchitecture", "AssertVirtualization", "AssertHost",
		"AssertKernelCommandLine", "AssertSecurity", "AssertCapability",
		"AssertACPower", "AssertNeedsUpdate", "AssertFirstBoot", "AssertPathExists",
		"AssertPathExistsGlob", "AssertPathIsDirectory", "AssertPathIsSymbolicLink",
		"AssertPathIsMountPoint", "AssertPathIsReadWrite", "AssertDirectoryNotEmpty",
		"AssertFileNotEmpty", "AssertFileIsExecutable",
	},
	"Service": {
		// systemd.service(5)
		"Type", "RemainAfterExit", "GuessMainPID", "PIDFile", "BusName", "BusPolicy",
		"ExecStart", "ExecStartPre", "ExecStartPost", "ExecReload", "ExecStop",
		"ExecStopPost", "RestartSec", "TimeoutStartSec", "TimeoutStopSec",
		"TimeoutSec", "WatchdogSec", "Restart", "SuccessExitStatus",
		"RestartPreventExitStatus", "RestartForceExitStatus", "PermissionsStartOnly",
		"RootDirectoryStartOnly", "NonBlocking", "NotifyAccess", "Sockets",
		"StartLimitInterval", "StartLimitBurst", "StartLimitAction", "FailureAction",
		"RebootArgument", "FileDescriptorStoreMax",
		// systemd.exec(5)
		"WorkingDirectory", "RootDirectory", "User", "Group", "SupplementaryGroups",
		"Nice", "OOMScoreAdjust", "IOSchedulingClass", "IOSchedulingPriority",
		"CPUSchedulingPolicy", "CPUSchedulingPriority", "CPUSchedulingResetOnFork",
		"CPUAffinity", "UMask", "Environment", "EnvironmentFile", "StandardInput",
		"StandardOutput", "StandardError", "TTYPath", "TTYReset", "TTYVHangup",
		"TTYVTDisallocate", "SyslogIdentifier", "SyslogFacility", "SyslogLevel",
		"SyslogLevelPrefix", "Capabilities", "SecureBits", "CapabilityBoundingSet",
		"TimerSlackNSec", "LimitCPU", "LimitFSIZE", "LimitDATA", "LimitSTACK",
		"LimitCORE", "LimitRSS", "LimitNOFILE", "LimitAS", "LimitNPROC",
		"LimitMEMLOCK", "LimitLOCKS", "LimitSIGPENDING", "LimitMSGQUEUE", "LimitNICE",
		"LimitRTPRIO", "LimitRTTIME", "ReadWriteDirectories", "ReadOnlyDirectories",
		"InaccessibleDirectories", "PrivateTmp", "PrivateDevices", "PrivateNetwork",
		"ProtectSystem", "ProtectHome", "MountFlags", "UtmpIdentifier",
		"IgnoreSIGPIPE", "NoNewPrivileges", "SystemCallFilter",
		"SystemCallErrorNumber", "SystemCallArchitectures", "RestrictAddressFamilies",
		"Personality", "RuntimeDirectory", "RuntimeDirectoryMode", "SELinuxContext",
		"AppArmorProfile", "SmackProcessLabel",
		// systemd.kill(5)
		"KillMode", "KillSignal", "SendSIGKILL", "SendSIGHUP",
		// systemd.resource-control(5)
		"CPUAccounting", "CPUShares", "StartupCPUShares", "CPUQuota",
		"MemoryAccounting", "MemoryLimit", "BlockIOAccounting", "BlockIOWeight",
		"StartupBlockIOWeight", "BlockIODeviceWeight", "BlockIOReadBandwidth",
		"BlockIOWriteBandwidth", "DeviceAllow", "DevicePolicy", "Slice", "Delegate",
	},
	"Install": {"Alias", "WantedBy", "RequiredBy", "Also", "DefaultInstance"},
}

// values219 restricts directives whose accepted values grew after 219.
var values219 = map[string][]string{
	"Type":          {"simple", "forking", "oneshot", "dbus", "notify", "idle"},
	"Restart":       {"no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort", "always"},
	"KillMode":      {"control-group", "process", "mixed", "none"},
	"ProtectSystem": {"yes", "no", "full", "true", "false"},      // "strict" is 232
	"ProtectHome":   {"yes", "no", "read-only", "true", "false"}, // "tmpfs" is 242
	"Delegate":      {"yes", "no", "true", "false"},              // controller lists are 236
}

var allowed219 = func() map[string]bool {
	m := map[string]bool{}
	for sec, names := range directives219 {
		for _, n := range names {
			m[sec+"."+n] = true
		}
	}
	return m
}()

// Allowed219 reports whether systemd 219 understands directive name in
// section (Unit, Service or Install).
func Allowed219(section, name string) bool { return allowed219[section+"."+name] }

// Check219 reports every option systemd 219 would not understand or would
// reject, plus the one combination it refuses to load: Type=oneshot with a
// Restart= other than no.
func Check219(opts []*unit.UnitOption) error {
	var errs []error
	var typ, restart string
	for _, o := range opts {
		if !Allowed219(o.Section, o.Name) {
			errs = append(errs, fmt.Errorf("[%s] %s=: %w", o.Section, o.Name, ErrSystemd219))
			continue
		}
		if vals, ok := values219[o.Name]; ok && o.Section == "Service" {
			if !contains(vals, strings.TrimSpace(o.Value)) {
				errs = append(errs, fmt.Errorf("[%s] %s=%s: value %w", o.Section, o.Name, o.Value, ErrSystemd219))
			}
		}
		switch {
		case o.Section == "Service" && o.Name == "Type":
			typ = o.Value
		case o.Section == "Service" && o.Name == "Restart":
			restart = o.Value
		}
	}
	if typ == "oneshot" && restart != "" && restart != "no" {
		errs = append(errs, fmt.Errorf("Type=oneshot with Restart=%s: %w (Restart= on oneshot services came in 244)", restart, ErrSystemd219))
	}
	return errors.Join(errs...)
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}
