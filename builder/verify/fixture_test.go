package verify

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// tfile is one file a test bundle installs on the host.
type tfile struct {
	path   string
	data   []byte
	mode   int64
	secret bool
}

// tentry is one tar member of a test bundle.
type tentry struct {
	hdr  tar.Header
	body []byte
}

// fixture describes a bundle; the hooks break it at each stage.
type fixture struct {
	host     plan.Host
	files    []tfile
	manifest func(*plan.Manifest)    // after Files are filled in
	sums     func([]string) []string // SHA256SUMS lines
	entries  func([]tentry) []tentry // the final tar members
	trailer  []byte                  // bytes after the tar's end
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

var mtime = time.Unix(1700000000, 0)

func reg(name string, mode int64, body []byte) tentry {
	return tentry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: mtime}, body: body}
}

// write builds the bundle the way the builder does and returns its path.
func (f fixture) write(t *testing.T, dir string) string {
	t.Helper()
	m := &plan.Manifest{
		Format:   plan.Format,
		Cluster:  plan.Cluster{Name: "od", HostDomain: "host.com", ServiceDomain: "od.com", ClusterDomain: "cluster.local", NodeNetwork: "10.4.7.0/24", PodNetwork: "172.7.0.0/16", ServiceNetwork: "192.168.0.0/16", VIP: "10.4.7.10", APIServer: "https://10.4.7.10:7443"},
		Host:     f.host,
		Versions: map[string]string{"kubernetes": "v1.33.1", "etcd": "v3.5.21"},
		Plan:     plan.Plan{Units: []plan.Unit{{Name: "kubelet.service", Start: true}}},
		Build:    plan.Build{SpecDigest: "sha256:" + sum([]byte("spec")), BuilderVersion: "test", SourceDateEpoch: mtime.Unix()},
	}
	files := slices.Clone(f.files)
	slices.SortFunc(files, func(a, b tfile) int { return strings.Compare(a.path, b.path) })
	for _, x := range files {
		m.Files = append(m.Files, plan.File{Path: x.path, Source: plan.SourceFor(x.path), Mode: plan.FormatMode(uint32(x.mode)), Owner: "root:root", Size: int64(len(x.data)), SHA256: sum(x.data), Secret: x.secret})
	}
	if f.manifest != nil {
		f.manifest(m)
	}
	mb, err := plan.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	body := []tentry{reg(plan.FirstbootName, 0o755, []byte("\x7fELF static firstboot")), reg(plan.ManifestName, 0o644, mb)}
	body = append(body, tentry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: plan.RootfsDir + "/", Mode: 0o755, ModTime: mtime}})
	for _, x := range files {
		body = append(body, reg(plan.SourceFor(x.path), x.mode, x.data))
	}
	var lines []string
	for _, e := range body {
		if e.hdr.Typeflag == tar.TypeReg {
			lines = append(lines, sum(e.body)+"  "+e.hdr.Name)
		}
	}
	if f.sums != nil {
		lines = f.sums(lines)
	}
	entries := append([]tentry{reg(plan.SumsName, 0o644, []byte(strings.Join(lines, "\n")+"\n"))}, body...)
	if f.entries != nil {
		entries = f.entries(entries)
	}

	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	tb.Write(f.trailer)
	// Two gzip members with the tar stream split mid-entry, the way bake
	// reuses compressed shared payload.
	var out bytes.Buffer
	half := tb.Len() / 2
	for _, part := range [][]byte{tb.Bytes()[:half], tb.Bytes()[half:]} {
		zw := gzip.NewWriter(&out)
		if _, err := zw.Write(part); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, f.host.Name+".tar.gz")
	if err := os.WriteFile(p, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// testPKI is one cluster's certificates, made once per test function.
type testPKI struct {
	ca, fpCA, other *testCA
	files           map[string][]byte // host path → content, for the master
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{ca: newCA(t, "kubebake-ca"), fpCA: newCA(t, "front-proxy-ca"), other: newCA(t, "other-ca"), files: map[string][]byte{}}
	put := func(base string, c, k []byte) {
		p.files[base+".pem"] = c
		p.files[base+"-key.pem"] = k
	}
	c, k := p.ca.issue(t, leaf{cn: "etcd-server", ips: []string{"10.4.7.12", "10.4.7.21", "10.4.7.22", "127.0.0.1"}, eku: peer})
	put("/opt/etcd/certs/etcd-server", c, k)
	c, k = p.ca.issue(t, leaf{cn: "kube-apiserver", rsa: true, ips: []string{"192.168.0.1", "10.4.7.10", "10.4.7.21", "10.4.7.22", "127.0.0.1"}, dns: []string{"kubernetes", "kubernetes.default.svc.cluster.local"}, eku: server})
	put("/opt/kubernetes/certs/apiserver", c, k)
	c, k = p.ca.issue(t, leaf{cn: "hdss7-21.host.com", ips: []string{"10.4.7.21"}, dns: []string{"hdss7-21.host.com"}, eku: server})
	put("/opt/kubernetes/certs/kubelet-server", c, k)
	c, k = p.fpCA.issue(t, leaf{cn: "front-proxy-client", eku: client})
	put("/opt/kubernetes/certs/front-proxy-client", c, k)
	p.files["/opt/etcd/certs/ca.pem"] = p.ca.pem
	p.files["/opt/kubernetes/certs/ca.pem"] = p.ca.pem
	p.files["/opt/kubernetes/certs/ca-key.pem"] = keyPEM(t, p.ca.key)
	p.files["/opt/kubernetes/certs/front-proxy-ca.pem"] = p.fpCA.pem
	sa := ecKey(t)
	p.files["/opt/kubernetes/certs/sa.key"] = pkcs8PEM(t, sa)
	p.files["/opt/kubernetes/certs/sa.pub"] = pubPEM(t, sa)
	c, k = p.ca.issue(t, leaf{cn: "system:kube-proxy", eku: client})
	p.files["/opt/kubernetes/conf/kube-proxy.kubeconfig"] = kubeconfigYAML(p.ca.pem, c, k, "kube-proxy")
	c, k = p.ca.issue(t, leaf{cn: "admin", org: "system:masters", eku: client})
	p.files["/root/.kube/config"] = kubeconfigYAML(p.ca.pem, c, k, "admin")
	p.files["/opt/kubernetes/conf/encryption-config.yaml"] = []byte("kind: EncryptionConfiguration\n")
	return p
}

// master is hdss7-21 (etcd, master, node) with every file it needs.
func (p *testPKI) master() fixture {
	var fs []tfile
	for path, b := range p.files {
		mode, secret := int64(0o644), false
		if isSecretName(path) || isKubeconfig(path) {
			mode, secret = 0o600, true
		}
		fs = append(fs, tfile{path, b, mode, secret})
	}
	fs = append(fs,
		tfile{"/opt/kubernetes/server/bin/kubelet", bytes.Repeat([]byte("kubelet"), 4096), 0o755, false},
		tfile{"/etc/systemd/system/kubelet.service", []byte("[Unit]\nDescription=kubelet\n"), 0o644, false},
	)
	return fixture{host: plan.Host{Name: "hdss7-21", FQDN: "hdss7-21.host.com", IP: "10.4.7.21", Roles: []string{"etcd", "master", "node"}, PodSubnet: "172.7.21.0/24"}, files: fs}
}

// node is hdss7-23, a node without master or etcd roles.
func (p *testPKI) node(t *testing.T) fixture {
	t.Helper()
	c, k := p.ca.issue(t, leaf{cn: "hdss7-23.host.com", ips: []string{"10.4.7.23"}, dns: []string{"hdss7-23.host.com"}, eku: server})
	return fixture{
		host: plan.Host{Name: "hdss7-23", FQDN: "hdss7-23.host.com", IP: "10.4.7.23", Roles: []string{"node"}},
		files: []tfile{
			{"/opt/kubernetes/certs/ca.pem", p.ca.pem, 0o644, false},
			{"/opt/kubernetes/certs/kubelet-server.pem", c, 0o644, false},
			{"/opt/kubernetes/certs/kubelet-server-key.pem", k, 0o600, true},
			{"/opt/kubernetes/conf/kube-proxy.kubeconfig", p.files["/opt/kubernetes/conf/kube-proxy.kubeconfig"], 0o600, true},
			{"/opt/kubernetes/server/bin/kubelet", []byte("kubelet"), 0o755, false},
		},
	}
}

// dns is hdss7-11 with the dns role only: no keys at all.
func (p *testPKI) dns() fixture {
	return fixture{
		host:  plan.Host{Name: "hdss7-11", FQDN: "hdss7-11.host.com", IP: "10.4.7.11", Roles: []string{"dns"}},
		files: []tfile{{"/etc/named.conf", []byte("options {};\n"), 0o644, false}, {"/var/named/od.com.zone", []byte("$ORIGIN od.com.\n"), 0o644, false}},
	}
}

// with replaces (or adds) a file.
func (f fixture) with(x tfile) fixture {
	f.files = slices.DeleteFunc(slices.Clone(f.files), func(y tfile) bool { return y.path == x.path })
	f.files = append(f.files, x)
	return f
}

// file returns a fixture file by path.
func (f fixture) file(t *testing.T, path string) tfile {
	t.Helper()
	for _, x := range f.files {
		if x.path == path {
			return x
		}
	}
	t.Fatalf("no file %s", path)
	return tfile{}
}
