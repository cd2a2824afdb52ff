// Package verify checks a host bundle (out/<host>.tar.gz) before it is
// delivered, and lists what it holds: the library behind `kubebake verify`
// and `kubebake inspect`.
//
// Verify reads a bundle in one streaming pass, hashing every member as it
// goes and keeping only small files (bundle.json, SHA256SUMS, certificates,
// keys, kubeconfigs) in memory; binaries and images are never buffered.
// Every finding is a Problem naming the bundle path and what to do about it.
// Problems never quote key material.
package verify

import (
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// Options tunes Verify.
type Options struct {
	// CA is PEM holding the trusted CA certificate(s), e.g. state/'s ca.pem
	// and, optionally, front-proxy-ca.pem. Default (nil): the bundle's own
	// ca.pem files, which checks the bundle is consistent with itself but
	// not that it belongs to your cluster.
	CA []byte
	// Now is when certificates must be valid. Default (zero): time.Now().
	Now time.Time
}

// Problem is one finding: a bundle path ("" for the archive as a whole,
// "SHA256SUMS:3" for a line) and what is wrong, with the fix.
type Problem struct {
	Path string
	Msg  string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Msg
	}
	return p.Path + ": " + p.Msg
}

// Report is the outcome of Verify.
type Report struct {
	Host     string    // bundle.json's host name, else the bundle's file name
	Files    int       // regular files in the archive
	Certs    int       // certificates parsed and checked, including kubeconfigs'
	Problems []Problem // sorted by Path, then Msg
}

// OK reports whether the bundle has no problems.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// WriteReport prints r: one line per problem, then a summary line.
func WriteReport(w io.Writer, r *Report) error {
	var b strings.Builder
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "%s\n", p)
	}
	status := "OK"
	if !r.OK() {
		status = fmt.Sprintf("%d problem(s)", len(r.Problems))
	}
	fmt.Fprintf(&b, "%s: %d files, %d certificates: %s\n", r.Host, r.Files, r.Certs, status)
	_, err := io.WriteString(w, b.String())
	return err
}

// ErrNoCA means Options.CA holds no PEM certificate.
var ErrNoCA = errors.New("no PEM certificate in the given CA")

// Verify checks the bundle at bundlePath:
//
//   - tar members: no absolute names, no "..", no symlinks or hard links
//     leading out of the bundle, nothing written through a symlink, no
//     device files, no member twice;
//   - SHA256SUMS lists every regular file but itself, and every line
//     matches the content;
//   - bundle.json decodes (plan.Decode), and each manifest file exists
//     under its source with the manifest's size, sha256 and mode; nothing
//     under rootfs/ is left out of the manifest; firstboot is present;
//   - secrets (*-key.pem, sa.key, encryption-config.yaml, kubeconfigs with
//     client-key-data or a token) are 0600 and marked secret;
//   - the host holds only the private keys its roles need: ca-key.pem only
//     on masters, front-proxy-ca-key.pem never;
//   - certificates parse, are valid at Now, chain to the CA, match their
//     key, and host-specific serving certificates name the host;
//   - kubeconfig certificates chain and match their keys.
//
// The error is for I/O failures and archives that cannot be read
// (errors.Is(err, ErrCorrupt)); everything else is a Problem.
func Verify(bundlePath string, o Options) (*Report, error) {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	var trusted []*certFile
	if o.CA != nil {
		cs, _, err := parseCerts(o.CA)
		if err != nil || len(cs) == 0 {
			return nil, fmt.Errorf("verify: Options.CA: %w", ErrNoCA)
		}
		trusted = append(trusted, &certFile{certs: cs})
	}
	a, err := scan(bundlePath)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	r := &Report{Host: strings.TrimSuffix(filepath.Base(bundlePath), ".tar.gz"), Files: len(a.order)}
	checkSums(a)
	m := checkManifest(a)
	if m != nil {
		r.Host = m.Host.Name
	}
	kcs := map[string]kubeconfig{}
	for name, b := range a.kept {
		if p := hostPath(name); p != "" && isKubeconfig(p) {
			kcs[name] = parseKubeconfig(b)
		}
	}
	checkSecrets(a, m, kcs)
	r.Certs = checkPKI(a, m, kcs, trusted, now)
	sortProblems(a.problems)
	r.Problems = a.problems
	return r, nil
}

// checkManifest decodes bundle.json and compares it with the archive. It
// returns nil when the manifest is missing or invalid; checks that need the
// host are then skipped.
func checkManifest(a *archive) *plan.Manifest {
	if e, ok := a.entries[plan.FirstbootName]; !ok || e.sha256 == "" {
		a.problem(plan.FirstbootName, "missing: the host cannot install the bundle without it; rebuild")
	} else if e.mode&0o100 == 0 {
		a.problem(plan.FirstbootName, "mode %s is not executable: want 0755", plan.FormatMode(uint32(e.mode)))
	}
	b, ok := a.kept[plan.ManifestName]
	if !ok {
		if _, there := a.entries[plan.ManifestName]; !there {
			a.problem(plan.ManifestName, "missing: firstboot has no plan; rebuild the bundle")
		}
		return nil
	}
	m, err := plan.Decode(strings.NewReader(string(b)))
	if err != nil {
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		for _, e := range errs {
			a.problem(plan.ManifestName, "%s", strings.TrimPrefix(e.Error(), plan.ManifestName+": "))
		}
		return nil
	}
	listed := map[string]bool{}
	for _, f := range m.Files {
		listed[f.Source] = true
		if want := plan.SourceFor(f.Path); f.Source != want {
			a.problem(plan.ManifestName, "file %s has source %s: want %s", f.Path, f.Source, want)
		}
		e, ok := a.entries[f.Source]
		switch {
		case !ok:
			a.problem(f.Source, "listed in %s but missing from the bundle", plan.ManifestName)
			continue
		case e.sha256 == "":
			a.problem(f.Source, "listed in %s but not a regular file", plan.ManifestName)
			continue
		}
		if e.size != f.Size {
			a.problem(f.Source, "size %d, %s says %d: rebuild the bundle", e.size, plan.ManifestName, f.Size)
		}
		if e.sha256 != strings.ToLower(f.SHA256) {
			a.problem(f.Source, "sha256 %s, %s says %s: firstboot would refuse it; rebuild the bundle", e.sha256, plan.ManifestName, f.SHA256)
		}
		if mode, _ := plan.ParseMode(f.Mode); uint32(e.mode) != mode {
			a.problem(f.Source, "tar mode %s, %s says %s: rebuild the bundle", plan.FormatMode(uint32(e.mode)), plan.ManifestName, plan.FormatMode(mode))
		}
	}
	for _, name := range a.order {
		if hostPath(name) != "" && !listed[name] {
			a.problem(name, "under %s/ but not in %s: firstboot would not install it", plan.RootfsDir, plan.ManifestName)
		}
	}
	if len(m.Images) > 0 {
		if _, ok := a.entries[plan.ImagesDir+"/index.json"]; !ok {
			a.problem(plan.ImagesDir+"/index.json", "missing, but %s lists %d images: the host could not preload them", plan.ManifestName, len(m.Images))
		}
	}
	return m
}

// keyRoles are the roles that may need a private key on the host: etcd,
// master and node for their certificates, lb for the edge's TLS, ops for
// Harbor's TLS and the admin kubeconfig. dns needs none.
var keyRoles = []string{plan.RoleEtcd, plan.RoleMaster, plan.RoleNode, plan.RoleLB, plan.RoleOps}

// checkSecrets checks modes and manifest flags of secrets, and that the
// host holds only the private keys its roles need.
func checkSecrets(a *archive, m *plan.Manifest, kcs map[string]kubeconfig) {
	files := map[string]plan.File{}
	if m != nil {
		for _, f := range m.Files {
			files[f.Source] = f
		}
	}
	for _, name := range a.order {
		p := hostPath(name)
		if p == "" {
			continue
		}
		kc, isKC := kcs[name]
		secret := isSecretName(p) || (isKC && kc.secret())
		if !secret {
			continue
		}
		e := a.entries[name]
		if e.mode&0o077 != 0 {
			a.problem(name, "secret with mode %s: want 0600 so only root can read it", plan.FormatMode(uint32(e.mode)))
		}
		if m == nil {
			continue
		}
		if f, ok := files[name]; ok && !f.Secret {
			a.problem(name, "secret not marked \"secret\" in %s: firstboot could log it and sites cannot deliver it apart", plan.ManifestName)
		}
		privateKey := isKeyName(p) || (isKC && len(kc.key) > 0)
		if !privateKey {
			continue
		}
		base := path.Base(p)
		needs := false
		for _, r := range keyRoles {
			needs = needs || m.Host.HasRole(r)
		}
		role := roleOf(name)
		switch {
		case base == "front-proxy-ca-key.pem":
			a.problem(name, "the front-proxy CA private key never ships in a bundle: remove it (it stays in state/)")
		case base == "ca-key.pem" && !m.Host.HasRole(plan.RoleMaster):
			a.problem(name, "the CA private key on a host without the master role (roles %s): remove it; only masters' controller-manager signs with it", strings.Join(m.Host.Roles, ","))
		case !needs:
			a.problem(name, "private key on a host whose roles (%s) need none: remove it", strings.Join(m.Host.Roles, ","))
		case isRole(role) && !m.Host.HasRole(role):
			a.problem(name, "private key for the %s role on a host without it (roles %s): remove it", role, strings.Join(m.Host.Roles, ","))
		}
	}
}

func isRole(r string) bool {
	for _, x := range plan.Roles {
		if x == r {
			return true
		}
	}
	return false
}
