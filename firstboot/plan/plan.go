// Package plan is the contract between the kubebake builder and firstboot:
// the layout of a host bundle and the manifest (bundle.json) that describes
// it. firstboot defines what it accepts; the builder imports this package to
// produce it. Standard library only, so the static firstboot stays small.
package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path"
	"strings"
	"time"
)

// Format is the manifest format this firstboot reads and the builder writes.
// Bump it on any change a reader of the previous format would misread.
const Format = "kubebake.io/bundle/v1"

// Paths inside a bundle (a gzip'd tar).
const (
	ManifestName  = "bundle.json" // this manifest
	SumsName      = "SHA256SUMS"  // sha256sum(1) lines for every other regular file
	FirstbootName = "firstboot"   // the static node-side binary
	RootfsDir     = "rootfs"      // files at their destination paths below it
	ImagesDir     = "images"      // an OCI image layout (issue: artifacts)
)

// Roles a host may hold.
const (
	RoleEtcd   = "etcd"
	RoleMaster = "master"
	RoleNode   = "node"
	RoleLB     = "lb"
	RoleDNS    = "dns"
	RoleOps    = "ops"
)

// RoleCommon marks a file every host gets, whatever its roles. It is a
// File.Role only, never a host's role.
const RoleCommon = "common"

// Roles lists every known role in a stable order.
var Roles = []string{RoleDNS, RoleLB, RoleEtcd, RoleMaster, RoleNode, RoleOps}

// Manifest is bundle.json.
type Manifest struct {
	Format   string            `json:"format"`
	Cluster  Cluster           `json:"cluster"`
	Host     Host              `json:"host"`
	Versions map[string]string `json:"versions"` // component → version
	Files    []File            `json:"files"`    // sorted by Path
	Images   []Image           `json:"images,omitempty"`
	Plan     Plan              `json:"plan"`
	Build    Build             `json:"build"`
}

// Cluster is what every host of a cluster shares.
type Cluster struct {
	Name           string `json:"name"`
	HostDomain     string `json:"hostDomain"`
	ServiceDomain  string `json:"serviceDomain"`
	ClusterDomain  string `json:"clusterDomain"`
	NodeNetwork    string `json:"nodeNetwork"`
	PodNetwork     string `json:"podNetwork"`
	ServiceNetwork string `json:"serviceNetwork"`
	VIP            string `json:"vip,omitempty"`
	APIServer      string `json:"apiServer"` // URL node components use
}

// Host is the machine this bundle is for.
type Host struct {
	Name      string   `json:"name"`
	FQDN      string   `json:"fqdn"`
	IP        string   `json:"ip"`
	Roles     []string `json:"roles"`
	PodSubnet string   `json:"podSubnet,omitempty"`
}

// HasRole reports whether the host holds role r.
func (h Host) HasRole(r string) bool {
	for _, x := range h.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// File is one file firstboot installs.
type File struct {
	Path   string `json:"path"`   // absolute destination on the host
	Source string `json:"source"` // path inside the bundle (rootfs/…)
	Mode   string `json:"mode"`   // octal, e.g. "0644"
	Owner  string `json:"owner"`  // "root:root"
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Secret bool   `json:"secret,omitempty"` // private key or credential: 0600, never logged
	Role   string `json:"role,omitempty"`   // the role that needs it, or RoleCommon; "" when unknown
}

// Image is one container image shipped in images/ (filled by the artifacts issue).
type Image struct {
	Ref    string `json:"ref"`    // the name nodes pull (Harbor)
	Source string `json:"source"` // upstream reference
	Digest string `json:"digest"` // sha256:… of the manifest or index
}

// Plan is the ordered, declarative node plan firstboot converges.
type Plan struct {
	Preflight Preflight     `json:"preflight"`
	Modules   []string      `json:"modules"`
	Sysctls   []Sysctl      `json:"sysctls"`
	Routes    []Route       `json:"routes,omitempty"`
	IPTables  []IPTablesOp  `json:"iptables,omitempty"`
	Units     []Unit        `json:"units"` // in start order
	Health    []HealthCheck `json:"health,omitempty"`
	// Addons, on the first master only, applies the cluster add-ons after
	// the health gates. Added within format v1: omitted when nil, so every
	// manifest without it reads as before.
	Addons *Addons `json:"addons,omitempty"`
}

// Addons is the cluster add-ons step: every manifest (*.yaml) in Dir, in
// name order, applied with kubectl server-side apply as the admin of
// Kubeconfig once the apiserver answers. Dir's manifests, Kubeconfig and
// Kubectl are files of the bundle.
type Addons struct {
	Dir        string `json:"dir"`        // host directory of the manifests
	Kubeconfig string `json:"kubeconfig"` // admin credentials (a secret file)
	Kubectl    string `json:"kubectl"`    // host path of kubectl
	Attempts   int    `json:"attempts"`   // applies tried while the apiserver refuses; at least 1
	Interval   string `json:"interval"`   // Go duration between attempts
}

// Preflight says what firstboot checks, and may change, before anything else.
type Preflight struct {
	OS               string `json:"os"`        // "centos7"
	MinKernel        string `json:"minKernel"` // "3.10"
	Cgroup           string `json:"cgroup"`    // "v1" or "v2"
	DisableSELinux   bool   `json:"disableSELinux"`
	DisableFirewalld bool   `json:"disableFirewalld"`
	DisableSwap      bool   `json:"disableSwap"`
}

// Sysctl is one kernel parameter, applied and persisted in /etc/sysctl.d.
type Sysctl struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Route is a static route, added with netlink (replace, not add).
type Route struct {
	Dst string `json:"dst"` // CIDR
	Via string `json:"via"` // gateway IP
}

// IPTablesOp ensures a rule is present (Ensure) or absent (Delete).
type IPTablesOp struct {
	Table  string   `json:"table"`
	Chain  string   `json:"chain"`
	Rule   []string `json:"rule"`
	Delete bool     `json:"delete,omitempty"`
	Why    string   `json:"why,omitempty"`
}

// Unit is a systemd unit firstboot enables and starts, in plan order.
type Unit struct {
	Name  string `json:"name"`
	Start bool   `json:"start"`
	// Watch lists host paths of files of the bundle (the unit file, the
	// binary, configs, certificates) whose change means a running unit must
	// restart to use them: when a file step of this bundle rewrote one after
	// the unit last became active, firstboot restarts it. Sorted. Added
	// within format v1: omitted when empty, so a manifest without it reads
	// as before (its running units are left running).
	Watch []string `json:"watch,omitempty"`
	// StartTimeout (a Go duration) bounds how long firstboot waits for
	// the unit's start job; empty means firstboot's default (5m). etcd
	// needs longer: it reports ready only once a quorum of members, booted
	// on other hosts at their own pace, has formed. Added within format v1.
	StartTimeout string `json:"startTimeout,omitempty"`
}

// HealthCheck is a readiness probe run after units start.
type HealthCheck struct {
	Name     string `json:"name"`
	URL      string `json:"url"`              // https://…/healthz
	CA       string `json:"ca,omitempty"`     // host path
	Cert     string `json:"cert,omitempty"`   // client cert, host path
	Key      string `json:"key,omitempty"`    // client key, host path
	Attempts int    `json:"attempts"`         // at least 1
	Interval string `json:"interval"`         // Go duration
	Expect   string `json:"expect,omitempty"` // body substring, e.g. "ok"
}

// Build records how the bundle was made.
type Build struct {
	SpecDigest      string `json:"specDigest"`
	LockDigest      string `json:"lockDigest,omitempty"`
	BuilderVersion  string `json:"builderVersion"`
	SourceDateEpoch int64  `json:"sourceDateEpoch"`
}

// Encode writes m as indented JSON with a trailing newline. encoding/json
// sorts map keys, so the bytes depend only on m.
func Encode(m *Manifest) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Decode reads a manifest strictly (unknown fields are an error) and
// validates it.
func Decode(r io.Reader) (*Manifest, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s: %w", ManifestName, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// ErrFormat means the manifest was written for another format version.
var ErrFormat = errors.New("unsupported bundle format")

// Validate checks what firstboot relies on before it touches the host.
func (m *Manifest) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if m.Format != Format {
		errs = append(errs, fmt.Errorf("%s: format %q: %w (this firstboot reads %q)", ManifestName, m.Format, ErrFormat, Format))
	}
	if m.Host.Name == "" {
		bad("host.name is empty")
	}
	if _, err := netip.ParseAddr(m.Host.IP); err != nil {
		bad("host.ip %q: %v", m.Host.IP, err)
	}
	seen := map[string]bool{}
	for i, f := range m.Files {
		if err := checkDest(f.Path); err != nil {
			bad("files[%d].path: %v", i, err)
		}
		if err := checkSource(f.Source); err != nil {
			bad("files[%d].source: %v", i, err)
		}
		if seen[f.Path] {
			bad("files[%d].path %s: listed twice", i, f.Path)
		}
		seen[f.Path] = true
		if _, err := ParseMode(f.Mode); err != nil {
			bad("files[%d].mode: %v", i, err)
		}
		if len(f.SHA256) != 64 {
			bad("files[%d].sha256 %q: not a sha256 hex digest", i, f.SHA256)
		}
		if f.Secret {
			if mode, _ := ParseMode(f.Mode); mode&0o077 != 0 {
				bad("files[%d] %s: secret with mode %s (want 0600 or tighter)", i, f.Path, f.Mode)
			}
		}
	}
	for i, r := range m.Plan.Routes {
		if _, err := netip.ParsePrefix(r.Dst); err != nil {
			bad("plan.routes[%d].dst: %v", i, err)
		}
		if _, err := netip.ParseAddr(r.Via); err != nil {
			bad("plan.routes[%d].via: %v", i, err)
		}
	}
	for i, u := range m.Plan.Units {
		if !strings.Contains(u.Name, ".") {
			bad("plan.units[%d].name %q: not a unit name", i, u.Name)
		}
		for j, w := range u.Watch {
			switch err := checkDest(w); {
			case err != nil:
				bad("plan.units[%d].watch[%d]: %v", i, j, err)
			// A manifest that lists files is complete: a watched path must
			// be one of them, or no file step could ever report it changed.
			// A plan validated before its files are listed gets the path
			// check only (as plan.addons).
			case len(m.Files) > 0 && !seen[w]:
				bad("plan.units[%d].watch[%d] %s: not a file of the bundle", i, j, w)
			}
		}
		if u.StartTimeout != "" {
			if d, err := time.ParseDuration(u.StartTimeout); err != nil || d <= 0 {
				bad("plan.units[%d].startTimeout %q: want a positive Go duration (90s, 1h)", i, u.StartTimeout)
			}
		}
	}
	if a := m.Plan.Addons; a != nil {
		errs = append(errs, a.validate()...)
	}
	return errors.Join(errs...)
}

// validate checks the add-ons step: clean absolute paths, at least one
// attempt, a duration. (That kubectl, the kubeconfig and the manifests are
// files of the bundle is the builder's to test; a manifest may be
// validated before its files are listed.)
func (a *Addons) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("plan.addons."+format, args...)) }
	for _, p := range []struct{ field, val string }{{"dir", a.Dir}, {"kubeconfig", a.Kubeconfig}, {"kubectl", a.Kubectl}} {
		if err := checkDest(p.val); err != nil {
			bad("%s: %v", p.field, err)
		}
	}
	if a.Attempts < 1 {
		bad("attempts %d: want at least 1", a.Attempts)
	}
	if d, err := time.ParseDuration(a.Interval); err != nil || d < 0 {
		bad("interval %q: want a Go duration like 5s", a.Interval)
	}
	return errs
}

// ParseMode parses an octal mode string such as "0644".
func ParseMode(s string) (uint32, error) {
	var m uint32
	if len(s) < 3 || len(s) > 4 {
		return 0, fmt.Errorf("mode %q: want octal like 0644", s)
	}
	for _, c := range s {
		if c < '0' || c > '7' {
			return 0, fmt.Errorf("mode %q: want octal like 0644", s)
		}
		m = m<<3 | uint32(c-'0')
	}
	return m, nil
}

// FormatMode renders a permission mode as a 4-digit octal string.
func FormatMode(m uint32) string { return fmt.Sprintf("%04o", m&0o7777) }

// checkDest accepts clean absolute paths only: no "..", no trailing slash.
func checkDest(p string) error {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("%q: want a clean absolute path", p)
	}
	return nil
}

// checkSource accepts clean relative paths under rootfs/.
func checkSource(p string) error {
	if path.Clean(p) != p || !strings.HasPrefix(p, RootfsDir+"/") || strings.Contains(p, "/../") {
		return fmt.Errorf("%q: want a clean path under %s/", p, RootfsDir)
	}
	return nil
}

// SourceFor is where a destination path lives inside the bundle.
func SourceFor(dest string) string { return RootfsDir + dest }
