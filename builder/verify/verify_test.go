package verify

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubebake/kubebake/firstboot/plan"
)

func verifyOK(t *testing.T, path string, o Options) *Report {
	t.Helper()
	r, err := Verify(path, o)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() {
		t.Fatalf("want OK, got:\n%s", problems(r.Problems))
	}
	return r
}

func problems(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.String() + "\n")
	}
	return b.String()
}

func TestVerifyOK(t *testing.T) {
	p := newPKI(t)
	now := t0.AddDate(0, 1, 0)
	for _, tc := range []struct {
		name  string
		fix   fixture
		o     Options
		files int
		certs int
	}{
		{"master, bundle's own CA", p.master(), Options{Now: now}, 22, 11},
		{"master, both CAs given", p.master(), Options{Now: now, CA: append(slices.Clone(p.ca.pem), p.fpCA.pem...)}, 22, 11},
		{"master, front-proxy CA from the bundle", p.master(), Options{Now: now, CA: p.ca.pem}, 22, 11},
		{"node", p.node(t), Options{Now: now, CA: p.ca.pem}, 8, 4},
		{"dns without keys", p.dns(), Options{Now: now}, 5, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := verifyOK(t, tc.fix.write(t, t.TempDir()), tc.o)
			if r.Host != tc.fix.host.Name || r.Files != tc.files || r.Certs != tc.certs {
				t.Errorf("report %+v: want host %s, %d files, %d certs", r, tc.fix.host.Name, tc.files, tc.certs)
			}
		})
	}
}

func TestVerifyProblems(t *testing.T) {
	p := newPKI(t)
	now := t0.AddDate(0, 1, 0)
	const (
		etcdKey    = "/opt/etcd/certs/etcd-server-key.pem"
		etcdCert   = "/opt/etcd/certs/etcd-server.pem"
		kubeletBin = "/opt/kubernetes/server/bin/kubelet"
		unit       = "/etc/systemd/system/kubelet.service"
		kubelet    = "/opt/kubernetes/certs/kubelet-server.pem"
		kubeletKey = "/opt/kubernetes/certs/kubelet-server-key.pem"
		kubeProxy  = "/opt/kubernetes/conf/kube-proxy.kubeconfig"
	)
	src := plan.SourceFor
	master := p.master()
	tampered := []byte("\x7fELF evil firstbootxx")
	otherKC, otherKey := p.ca.issue(t, leaf{cn: "system:kube-proxy", eku: client})
	_, strayKey := p.ca.issue(t, leaf{cn: "x", eku: client})
	badKC := kubeconfigYAML(p.ca.pem, otherKC, strayKey, "kube-proxy")
	_ = otherKey

	rebuilt := func(t *testing.T, l leaf, ca *testCA) fixture {
		c, k := ca.issue(t, l)
		base := strings.TrimSuffix(kubelet, ".pem")
		if strings.HasPrefix(l.cn, "etcd") {
			base = strings.TrimSuffix(etcdCert, ".pem")
		}
		return master.with(tfile{base + ".pem", c, 0o644, false}).with(tfile{base + "-key.pem", k, 0o600, true})
	}
	appendEntries := func(es ...tentry) func([]tentry) []tentry {
		return func(in []tentry) []tentry { return append(in, es...) }
	}
	edit := func(name string, fn func(*tentry)) func([]tentry) []tentry {
		return func(in []tentry) []tentry {
			for i := range in {
				if in[i].hdr.Name == name {
					fn(&in[i])
				}
			}
			return in
		}
	}
	exp := now.AddDate(1, 0, 0)

	for _, tc := range []struct {
		name string
		fix  fixture
		now  time.Time
		want []Problem
	}{
		{
			name: "tampered file content",
			fix: func() fixture {
				f := master
				f.entries = edit(plan.FirstbootName, func(e *tentry) { e.body = tampered; e.hdr.Size = int64(len(tampered)) })
				return f
			}(),
			want: []Problem{{plan.FirstbootName, "sha256 " + sum(tampered) + " does not match SHA256SUMS (" + sum([]byte("\x7fELF static firstboot")) + "): the file changed after the bundle was built; rebuild it"}},
		},
		{
			name: "file missing from SHA256SUMS",
			fix: func() fixture {
				f := master
				f.sums = func(ls []string) []string {
					return slices.DeleteFunc(ls, func(l string) bool { return strings.HasSuffix(l, src(unit)) })
				}
				return f
			}(),
			want: []Problem{{src(unit), "not listed in SHA256SUMS: it would go unchecked; rebuild the bundle"}},
		},
		{
			name: "manifest sha256 mismatch",
			fix: func() fixture {
				f := master
				f.manifest = func(m *plan.Manifest) {
					for i := range m.Files {
						if m.Files[i].Path == kubeletBin {
							m.Files[i].SHA256 = sum([]byte("other"))
						}
					}
				}
				return f
			}(),
			want: []Problem{{src(kubeletBin), "sha256 " + sum(master.file(t, kubeletBin).data) + ", bundle.json says " + sum([]byte("other")) + ": firstboot would refuse it; rebuild the bundle"}},
		},
		{
			name: "key with mode 0644 in the tar",
			fix: func() fixture {
				f := master
				f.entries = edit(src(etcdKey), func(e *tentry) { e.hdr.Mode = 0o644 })
				return f
			}(),
			want: []Problem{
				{src(etcdKey), "secret with mode 0644: want 0600 so only root can read it"},
				{src(etcdKey), "tar mode 0644, bundle.json says 0600: rebuild the bundle"},
			},
		},
		{
			name: "key not marked secret",
			fix:  master.with(tfile{etcdKey, master.file(t, etcdKey).data, 0o600, false}),
			want: []Problem{{src(etcdKey), `secret not marked "secret" in bundle.json: firstboot could log it and sites cannot deliver it apart`}},
		},
		{
			name: "key readable by all and not marked secret",
			fix:  master.with(tfile{etcdKey, master.file(t, etcdKey).data, 0o644, false}),
			want: []Problem{
				{src(etcdKey), `secret not marked "secret" in bundle.json: firstboot could log it and sites cannot deliver it apart`},
				{src(etcdKey), "secret with mode 0644: want 0600 so only root can read it"},
			},
		},
		{
			name: "cert from another CA",
			fix:  rebuilt(t, leaf{cn: "hdss7-21.host.com", ips: []string{"10.4.7.21"}, dns: []string{"hdss7-21.host.com"}, eku: server}, p.other),
			want: []Problem{{src(kubelet), `not signed by the bundle's ca.pem (issuer "other-ca"): re-issue it from the cluster CA`}},
		},
		{
			name: "expired cert",
			fix:  rebuilt(t, leaf{cn: "hdss7-21.host.com", ips: []string{"10.4.7.21"}, dns: []string{"hdss7-21.host.com"}, eku: server, notAfter: t0.AddDate(0, 6, 0)}, p.ca),
			now:  t0.AddDate(0, 7, 0),
			want: []Problem{{src(kubelet), "expired on 2025-07-01T00:00:00Z (checked at 2025-08-01T00:00:00Z): re-issue it and rebuild"}},
		},
		{
			name: "key does not match cert",
			fix:  master.with(tfile{etcdKey, keyPEM(t, ecKey(t)), 0o600, true}),
			want: []Problem{{src(etcdCert), "does not match its private key etcd-server-key.pem: re-issue the pair"}},
		},
		{
			name: "serving cert without the host IP",
			fix:  rebuilt(t, leaf{cn: "etcd-server", ips: []string{"10.4.7.22", "127.0.0.1"}, eku: peer}, p.ca),
			want: []Problem{{src(etcdCert), "SANs lack this host's IP 10.4.7.21 (IPs 10.4.7.22,127.0.0.1): re-issue it with the host's IP"}},
		},
		{
			name: "kubelet serving cert without the FQDN",
			fix:  rebuilt(t, leaf{cn: "hdss7-21", ips: []string{"10.4.7.21"}, dns: []string{"hdss7-21"}, eku: server}, p.ca),
			want: []Problem{{src(kubelet), "SANs lack this host's name hdss7-21.host.com (names hdss7-21): re-issue it with the host's FQDN"}},
		},
		{
			name: "serving cert without server auth",
			fix:  rebuilt(t, leaf{cn: "hdss7-21.host.com", ips: []string{"10.4.7.21"}, dns: []string{"hdss7-21.host.com"}, eku: client}, p.ca),
			want: []Problem{{src(kubelet), "a serving certificate without the server auth usage: re-issue it with the server profile"}},
		},
		{
			name: "kubeconfig key does not match",
			fix:  master.with(tfile{kubeProxy, badKC, 0o600, true}),
			want: []Problem{{src(kubeProxy), "client-certificate-data does not match client-key-data: rebuild the kubeconfig"}},
		},
		{
			name: "sa.key does not match sa.pub",
			fix:  master.with(tfile{"/opt/kubernetes/certs/sa.pub", pubPEM(t, ecKey(t)), 0o644, false}),
			want: []Problem{{src("/opt/kubernetes/certs/sa.key"), "does not match sa.pub: tokens signed with it would not verify; re-issue the pair"}},
		},
		{
			name: "ca-key.pem on a node",
			fix:  p.node(t).with(tfile{"/opt/kubernetes/certs/ca-key.pem", keyPEM(t, p.ca.key), 0o600, true}),
			want: []Problem{{src("/opt/kubernetes/certs/ca-key.pem"), "the CA private key on a host without the master role (roles node): remove it; only masters' controller-manager signs with it"}},
		},
		{
			name: "front-proxy-ca-key.pem on a master",
			fix:  master.with(tfile{"/opt/kubernetes/certs/front-proxy-ca-key.pem", keyPEM(t, p.fpCA.key), 0o600, true}),
			want: []Problem{{src("/opt/kubernetes/certs/front-proxy-ca-key.pem"), "the front-proxy CA private key never ships in a bundle: remove it (it stays in state/)"}},
		},
		{
			name: "master key on a node",
			fix:  p.node(t).with(tfile{"/opt/kubernetes/certs/apiserver-key.pem", master.file(t, "/opt/kubernetes/certs/apiserver-key.pem").data, 0o600, true}),
			want: []Problem{{src("/opt/kubernetes/certs/apiserver-key.pem"), "private key for the master role on a host without it (roles node): remove it"}},
		},
		{
			name: "any key on a dns host",
			fix:  p.dns().with(tfile{kubeletKey, keyPEM(t, ecKey(t)), 0o600, true}),
			want: []Problem{{src(kubeletKey), "private key on a host whose roles (dns) need none: remove it"}},
		},
		{
			name: "entry name with ..",
			fix: func() fixture {
				f := master
				f.entries = appendEntries(reg("rootfs/../../etc/cron.d/evil", 0o644, []byte("* * * * * root sh\n")))
				return f
			}(),
			want: []Problem{{"rootfs/../../etc/cron.d/evil", `entry name contains "..": extracting it would write outside the target directory`}},
		},
		{
			name: "absolute entry name",
			fix: func() fixture {
				f := master
				f.entries = appendEntries(reg("/etc/cron.d/evil", 0o644, []byte("x")))
				return f
			}(),
			want: []Problem{{"/etc/cron.d/evil", "absolute entry name: extracting it would write outside the target directory"}},
		},
		{
			name: "symlink out of the bundle and a file through it",
			fix: func() fixture {
				f := master
				f.entries = appendEntries(
					tentry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "rootfs/opt/kubernetes/evil", Linkname: "../../../../etc", Mode: 0o777, ModTime: mtime}},
					reg("rootfs/opt/kubernetes/evil/shadow", 0o600, []byte("x")),
				)
				return f
			}(),
			want: []Problem{
				{"rootfs/opt/kubernetes/evil", "symlink to ../../../../etc escapes the bundle: remove it (bundles hold regular files and directories)"},
				{"rootfs/opt/kubernetes/evil/shadow", "is written through the symlink rootfs/opt/kubernetes/evil: extracting it would follow the link"},
			},
		},
		{
			name: "absolute hard link",
			fix: func() fixture {
				f := master
				f.entries = appendEntries(tentry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "rootfs/etc/shadow", Linkname: "/etc/shadow", ModTime: mtime}})
				return f
			}(),
			want: []Problem{{"rootfs/etc/shadow", "hard link to /etc/shadow escapes the bundle: remove it"}},
		},
		{
			name: "device file",
			fix: func() fixture {
				f := master
				f.entries = appendEntries(tentry{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "rootfs/dev/sda", Devmajor: 8, Mode: 0o660, ModTime: mtime}})
				return f
			}(),
			want: []Problem{{"rootfs/dev/sda", "is a device file: bundles hold regular files and directories only"}},
		},
		{
			name: "member twice",
			fix: func() fixture {
				f := master
				f.entries = func(in []tentry) []tentry { return append(in, in[len(in)-1]) }
				return f
			}(),
			want: []Problem{{src("/root/.kube/config"), "appears twice in the archive: the later copy would silently replace the first"}},
		},
		{
			name: "bad bundle.json format version",
			fix: func() fixture {
				f := master
				f.manifest = func(m *plan.Manifest) { m.Format = "kubebake.io/bundle/v0" }
				return f
			}(),
			want: []Problem{{plan.ManifestName, `format "kubebake.io/bundle/v0": unsupported bundle format (this firstboot reads "kubebake.io/bundle/v1")`}},
		},
		{
			name: "file in the manifest but not the bundle",
			fix: func() fixture {
				f := master
				f.entries = func(in []tentry) []tentry {
					return slices.DeleteFunc(in, func(e tentry) bool { return e.hdr.Name == src(unit) })
				}
				return f
			}(),
			want: []Problem{
				{src(unit), "listed in SHA256SUMS but not in the bundle"},
				{src(unit), "listed in bundle.json but missing from the bundle"},
			},
		},
		{
			name: "data after the end of the archive",
			fix: func() fixture {
				f := master
				f.trailer = []byte("appended payload")
				return f
			}(),
			want: []Problem{{"", "non-zero data follows the end of the tar archive: rebuild the bundle"}},
		},
		{
			name: "malformed SHA256SUMS line",
			fix: func() fixture {
				f := master
				f.sums = func(ls []string) []string { return append(ls, "deadbeef  rootfs/x") }
				return f
			}(),
			want: []Problem{{"SHA256SUMS:22", `malformed line: want "<sha256 hex>  <path>"`}},
		},
		{
			name: "no CA to chain to",
			fix: func() fixture {
				f := p.node(t)
				f.files = slices.DeleteFunc(f.files, func(x tfile) bool { return strings.HasSuffix(x.path, "/ca.pem") })
				return f
			}(),
			want: []Problem{{"", "no ca.pem in the bundle and no CA given: 1 certificate(s) were not chain-checked; pass the cluster CA"}},
		},
		{
			name: "executable bit missing on firstboot",
			fix: func() fixture {
				f := master
				f.entries = edit(plan.FirstbootName, func(e *tentry) { e.hdr.Mode = 0o644 })
				return f
			}(),
			want: []Problem{{plan.FirstbootName, "mode 0644 is not executable: want 0755"}},
		},
		{
			name: "everything expired",
			fix:  master,
			now:  exp.AddDate(10, 0, 0),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := now
			if !tc.now.IsZero() {
				at = tc.now
			}
			r, err := Verify(tc.fix.write(t, t.TempDir()), Options{Now: at})
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil { // every certificate expired: each is reported, nothing else
				if len(r.Problems) != r.Certs {
					t.Errorf("want %d problems, got:\n%s", r.Certs, problems(r.Problems))
				}
				for _, p := range r.Problems {
					if !strings.Contains(p.Msg, "expired on ") {
						t.Errorf("unexpected %s", p)
					}
				}
				return
			}
			if !slices.Equal(r.Problems, tc.want) {
				t.Errorf("got:\n%swant:\n%s", problems(r.Problems), problems(tc.want))
			}
		})
	}
}

func TestVerifyGivenCA(t *testing.T) {
	p := newPKI(t)
	r, err := Verify(p.master().write(t, t.TempDir()), Options{Now: t0.AddDate(0, 1, 0), CA: p.other.pem})
	if err != nil {
		t.Fatal(err)
	}
	want := Problem{plan.SourceFor("/opt/kubernetes/certs/ca.pem"), `is not the trusted CA (subject "kubebake-ca"): this bundle was built with another PKI`}
	if !slices.Contains(r.Problems, want) {
		t.Errorf("missing %s in:\n%s", want, problems(r.Problems))
	}
	if _, err := Verify("unused", Options{CA: []byte("not pem")}); !errors.Is(err, ErrNoCA) {
		t.Errorf("CA without PEM: got %v, want ErrNoCA", err)
	}
}

func TestVerifyUnreadable(t *testing.T) {
	p := newPKI(t)
	good, err := os.ReadFile(p.dns().write(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data func() []byte
	}{
		{"not gzip", func() []byte { return []byte("PK\x03\x04 a zip file") }},
		{"corrupt gzip", func() []byte {
			b := slices.Clone(good)
			for i := len(b) / 3; i < len(b)/3+8; i++ {
				b[i] ^= 0xff
			}
			return b
		}},
		{"truncated", func() []byte { return good[:len(good)-20] }},
		{"bad checksum in the last member", func() []byte {
			b := slices.Clone(good)
			b[len(b)-6] ^= 0xff // CRC32 of the last member
			return b
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "x.tar.gz")
			if err := os.WriteFile(path, tc.data(), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := Verify(path, Options{})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, %v; want ErrCorrupt", r, err)
			}
		})
	}
	if _, err := Verify(filepath.Join(t.TempDir(), "missing.tar.gz"), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing bundle: got %v", err)
	}
}

func TestVerifySums(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	var lines []string
	for _, f := range []fixture{p.dns(), p.node(t)} {
		b, err := os.ReadFile(f.write(t, dir))
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, sum(b)+"  "+f.host.Name+".tar.gz")
	}
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ps, err := VerifySums(dir); err != nil || len(ps) != 0 {
		t.Fatalf("clean out/: %v, %v", ps, err)
	}

	f, err := os.OpenFile(filepath.Join(dir, "hdss7-23.tar.gz"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("x"))
	f.Close()
	b, _ := os.ReadFile(filepath.Join(dir, "hdss7-23.tar.gz"))
	if err := os.WriteFile(filepath.Join(dir, "stray.tar.gz"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ps, err := VerifySums(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []Problem{
		{"hdss7-23.tar.gz", "sha256 " + sum(b) + " does not match SHA256SUMS (" + strings.Fields(lines[1])[0] + "): the file changed or was truncated after the build; copy or rebuild it"},
		{"stray.tar.gz", "not listed in SHA256SUMS: it is not part of this build"},
	}
	if !slices.Equal(ps, want) {
		t.Errorf("got:\n%swant:\n%s", problems(ps), problems(want))
	}

	ps, err = VerifySums(t.TempDir())
	if err != nil || !slices.Equal(ps, []Problem{{"SHA256SUMS", "missing: run kubebake bake to write it"}}) {
		t.Errorf("empty out/: %v, %v", ps, err)
	}
}

func TestWriteReport(t *testing.T) {
	var b bytes.Buffer
	r := &Report{Host: "hdss7-21", Files: 3, Certs: 1, Problems: []Problem{{"rootfs/x", "bad"}, {"", "archive"}}}
	if err := WriteReport(&b, r); err != nil {
		t.Fatal(err)
	}
	want := "rootfs/x: bad\narchive\nhdss7-21: 3 files, 1 certificates: 2 problem(s)\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}
