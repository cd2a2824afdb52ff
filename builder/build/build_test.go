package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/builder/verify"
	"github.com/kubebake/kubebake/firstboot/plan"
	"github.com/kubebake/kubebake/internal/standin"
)

const seedSpec = "../../bundle-spec.yaml"

// firstbootBin is a real static firstboot, built once for the whole run.
var firstbootBin string

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBAKE_TEST_CHILD") == "bake" {
		os.Exit(childBake())
	}
	dir, err := os.MkdirTemp("", "kubebake-build-test-")
	if err != nil {
		panic(err)
	}
	firstbootBin = filepath.Join(dir, "firstboot")
	cmd := exec.Command("go", "build", "-trimpath", "-o", firstbootBin, "../../firstboot")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build firstboot: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// childBake is a bake in a separate process, so a test can give it another
// TZ, umask, locale and working directory, or kill it mid-write.
func childBake() int {
	s, rep, err := spec.Load(os.Getenv("KB_SPEC"))
	if err != nil || rep.IsFatal() {
		fmt.Fprintln(os.Stderr, err, rep)
		return 1
	}
	fb, err := os.ReadFile(os.Getenv("KB_FIRSTBOOT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_, err = Bake(context.Background(), s, WithArtifactsDir(os.Getenv("KB_ARTIFACTS")), WithStateDir(os.Getenv("KB_STATE")),
		WithStoreDir(filepath.Join(os.Getenv("KB_STATE"), "store")), WithOutDir(os.Getenv("KB_OUT")), WithFirstboot(fb))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type bed struct {
	spec      *spec.Spec
	specPath  string
	artifacts string
	root      string
}

// newBed loads the seed's spec and writes stand-in artifacts for it; pad
// makes each binary that many bytes.
func newBed(t *testing.T, pad int) *bed {
	t.Helper()
	// A copy, so no bundle-spec.lock beside the repo's spec leaks in.
	root := t.TempDir()
	abs := filepath.Join(root, "bundle-spec.yaml")
	data, err := os.ReadFile(seedSpec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(abs, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s := loadSpec(t, abs)
	b := &bed{spec: s, specPath: abs, artifacts: filepath.Join(root, "artifacts"), root: root}
	if err := standin.Generate(s, b.artifacts, pad); err != nil {
		t.Fatal(err)
	}
	return b
}

func loadSpec(t *testing.T, p string) *spec.Spec {
	t.Helper()
	s, rep, err := spec.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if rep.IsFatal() {
		t.Fatalf("seed spec invalid:\n%s", rep)
	}
	return s
}

func (b *bed) bake(t *testing.T, state, out string, opts ...Option) *Result {
	t.Helper()
	fb, err := os.ReadFile(firstbootBin)
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]Option{WithArtifactsDir(b.artifacts), WithStateDir(state), WithStoreDir(filepath.Join(state, "store")), WithOutDir(out), WithFirstboot(fb)}, opts...)
	res, err := Bake(context.Background(), b.spec, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// child returns a command that bakes in another process.
func (b *bed) child(state, out string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KUBEBAKE_TEST_CHILD=bake", "KB_SPEC="+b.specPath, "KB_ARTIFACTS="+b.artifacts,
		"KB_STATE="+state, "KB_OUT="+out, "KB_FIRSTBOOT="+firstbootBin)
	return cmd
}

func stateCAs(t *testing.T, state string) []byte {
	t.Helper()
	var ca []byte
	for _, n := range []string{"ca.pem", "front-proxy-ca.pem"} {
		b, err := os.ReadFile(filepath.Join(PKIDir(state), n))
		if err != nil {
			t.Fatal(err)
		}
		ca = append(ca, b...)
	}
	return ca
}

func bundles(t *testing.T, out string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(out, "*.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

func TestBakeSeedVerifies(t *testing.T) {
	b := newBed(t, 0)
	state, out := filepath.Join(b.root, "state"), filepath.Join(b.root, "out")
	res := b.bake(t, state, out)
	if len(res.Bundles) != 5 {
		t.Fatalf("bundles = %d, want 5", len(res.Bundles))
	}
	ca := stateCAs(t, state)
	for _, p := range bundles(t, out) {
		rep, err := verify.Verify(p, verify.Options{CA: ca})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Errorf("%s: %v", p, rep.Problems)
		}
		// Every file says which role needs it, and the host holds that role.
		m, _, err := verify.Inspect(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m.Files {
			if f.Role != plan.RoleCommon && !m.Host.HasRole(f.Role) {
				t.Errorf("%s: %s has role %q, which the host lacks", p, f.Path, f.Role)
			}
		}
		// GNU tar lists it (CentOS 7 unpacks with tar xzf).
		if outb, err := exec.Command("tar", "tzf", p).CombinedOutput(); err != nil || !bytes.Contains(outb, []byte("bundle.json\n")) {
			t.Errorf("tar tzf %s: %v\n%s", p, err, outb)
		}
	}
	if probs, err := verify.VerifySums(out); err != nil || len(probs) > 0 {
		t.Fatalf("out/SHA256SUMS: %v %v", err, probs)
	}

	// Drop a host: its old bundle is reported stale, not silently kept.
	b.spec.Hosts = b.spec.Hosts[:4]
	res = b.bake(t, state, out)
	if len(res.Stale) != 1 || filepath.Base(res.Stale[0]) != "hdss7-200.tar.gz" {
		t.Fatalf("stale = %v", res.Stale)
	}
}

// TestOpensslVerifiesEveryCert runs the real openssl over the state's PKI.
func TestOpensslVerifiesEveryCert(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl not installed; .ci/run installs it")
		}
		t.Skip("openssl not on PATH")
	}
	b := newBed(t, 0)
	state := filepath.Join(b.root, "state")
	b.bake(t, state, filepath.Join(b.root, "out"))
	certs, _ := filepath.Glob(filepath.Join(PKIDir(state), "*.pem"))
	n := 0
	for _, c := range certs {
		base := filepath.Base(c)
		if strings.HasSuffix(base, "-key.pem") {
			continue
		}
		ca := filepath.Join(PKIDir(state), "ca.pem")
		if strings.HasPrefix(base, "front-proxy") {
			ca = filepath.Join(PKIDir(state), "front-proxy-ca.pem")
		}
		if out, err := exec.Command(openssl, "verify", "-CAfile", ca, c).CombinedOutput(); err != nil {
			t.Errorf("openssl verify %s: %v\n%s", base, err, out)
		}
		n++
	}
	if n < 20 {
		t.Fatalf("verified %d certificates, want the whole matrix (>= 20)", n)
	}
}

// secretFiles lists the manifest's secret paths of a bundle.
func secretFiles(t *testing.T, p string) []string {
	t.Helper()
	m, items, err := verify.Inspect(p)
	if err != nil {
		t.Fatal(err)
	}
	_ = items
	var out []string
	for _, f := range m.Files {
		if f.Secret {
			if f.Mode != "0600" {
				t.Errorf("%s: %s is secret with mode %s", p, f.Path, f.Mode)
			}
			out = append(out, f.Path)
		}
	}
	sort.Strings(out)
	return out
}

// TestSecretsMatrix pins which host holds which private key or credential.
func TestSecretsMatrix(t *testing.T) {
	etcd := []string{"/opt/etcd/certs/etcd-peer-key.pem", "/opt/etcd/certs/etcd-server-key.pem"}
	master := []string{
		"/opt/kubernetes/certs/apiserver-etcd-client-key.pem", "/opt/kubernetes/certs/apiserver-key.pem",
		"/opt/kubernetes/certs/apiserver-kubelet-client-key.pem", "/opt/kubernetes/certs/front-proxy-client-key.pem",
		"/opt/kubernetes/certs/sa.key", "/opt/kubernetes/conf/encryption-config.yaml",
		"/opt/kubernetes/conf/kube-controller-manager.kubeconfig", "/opt/kubernetes/conf/kube-scheduler.kubeconfig",
		"/root/.kube/config",
	}
	node := []string{"/opt/flannel/certs/flannel-key.pem", "/opt/kubernetes/certs/kubelet-server-key.pem",
		"/opt/kubernetes/conf/kube-proxy.kubeconfig", "/opt/kubernetes/conf/kubelet.kubeconfig"}
	edge := []string{"/etc/nginx/certs/od.com-key.pem"}
	cat := func(lists ...[]string) []string {
		var out []string
		for _, l := range lists {
			out = append(out, l...)
		}
		sort.Strings(out)
		return out
	}
	want := map[string][]string{
		"hdss7-11":  edge,
		"hdss7-12":  cat(etcd, edge),
		"hdss7-21":  cat(etcd, master, node, []string{"/opt/kubernetes/conf/kubebake-addons.kubeconfig"}), // the first master applies the add-ons
		"hdss7-22":  cat(etcd, master, node),
		"hdss7-200": {"/opt/harbor/certs/harbor.od.com-key.pem", "/root/.kube/config"},
	}
	for _, caOnMasters := range []bool{false, true} {
		t.Run(fmt.Sprintf("caKeyOnMasters=%v", caOnMasters), func(t *testing.T) {
			b := newBed(t, 0)
			b.spec.PKI.CAKeyOnMasters = caOnMasters
			out := filepath.Join(b.root, "out")
			b.bake(t, filepath.Join(b.root, "state"), out)
			for host, w := range want {
				if caOnMasters && (host == "hdss7-21" || host == "hdss7-22") {
					w = cat(w, []string{"/opt/kubernetes/certs/ca-key.pem"})
				}
				got := secretFiles(t, filepath.Join(out, host+".tar.gz"))
				if strings.Join(got, "\n") != strings.Join(w, "\n") {
					t.Errorf("%s secrets:\n got %v\nwant %v", host, got, w)
				}
			}
		})
	}
}

func sameBytes(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Errorf("%s and %s differ", a, b)
	}
}

// TestReproducible bakes twice — the second time in another process with
// another TZ, umask, locale and working directory — and compares bytes; a
// third bake over the first output reuses every certificate.
func TestReproducible(t *testing.T) {
	b := newBed(t, 64<<10)
	state, outA, outB := filepath.Join(b.root, "state"), filepath.Join(b.root, "a"), filepath.Join(b.root, "b")
	b.bake(t, state, outA)

	cmd := b.child(state, outB)
	cmd.Dir = t.TempDir()
	cmd.Env = append(cmd.Env, "TZ=Pacific/Chatham", "LC_ALL=C.UTF-8", "LANG=zh_CN.UTF-8")
	old := syscall.Umask(0o077)
	outb, err := cmd.CombinedOutput()
	syscall.Umask(old)
	if err != nil {
		t.Fatalf("child bake: %v\n%s", err, outb)
	}
	for _, p := range append(bundles(t, outA), filepath.Join(outA, "SHA256SUMS")) {
		sameBytes(t, p, filepath.Join(outB, filepath.Base(p)))
	}

	res := b.bake(t, state, outA)
	if len(res.Issued) != 0 {
		t.Errorf("rebuild issued %v; want every certificate reused", res.Issued)
	}
	for _, p := range bundles(t, outA) {
		sameBytes(t, p, filepath.Join(outB, filepath.Base(p)))
	}
}

// TestEntriesNormalised reads each bundle back: sorted names, root-owned,
// the spec's fixed mtime, no PAX records GNU tar 1.26 would trip over.
func TestEntriesNormalised(t *testing.T) {
	b := newBed(t, 0)
	out := filepath.Join(b.root, "out")
	b.bake(t, filepath.Join(b.root, "state"), out)
	epoch := time.Unix(b.spec.Bundle.SourceDateEpoch, 0)
	for _, p := range bundles(t, out) {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(zr)
		var names []string
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, h.Name)
			if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(epoch) || len(h.PAXRecords) > 0 {
				t.Errorf("%s: %s: uid %d gid %d mtime %v pax %v", p, h.Name, h.Uid, h.Gid, h.ModTime, h.PAXRecords)
			}
		}
		f.Close()
		if !sort.StringsAreSorted(names) {
			t.Errorf("%s: entries not sorted", p)
		}
	}
}

// TestKilledBake kills a bake at many points (SIGKILL: no cleanup runs) and
// checks that every file under a final name is whole, then that a rerun
// finishes with the same bytes as an uninterrupted bake.
func TestKilledBake(t *testing.T) {
	b := newBed(t, 4<<20)
	refState, refOut := filepath.Join(b.root, "ref-state"), filepath.Join(b.root, "ref-out")
	b.bake(t, refState, refOut)

	state, out := filepath.Join(b.root, "state"), filepath.Join(b.root, "out")
	// Share the PKI, so the bundles can be compared byte for byte.
	if err := os.CopyFS(PKIDir(state), os.DirFS(PKIDir(refState))); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(state, "secrets"), os.DirFS(filepath.Join(refState, "secrets"))); err != nil {
		t.Fatal(err)
	}
	ca := stateCAs(t, state)
	kills := 0
	for delay := 5 * time.Millisecond; delay < 20*time.Second; delay = delay * 3 / 2 {
		cmd := b.child(state, out)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		finished := false
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("child bake: %v", err)
			}
			finished = true
		case <-time.After(delay):
			cmd.Process.Kill()
			<-done
			kills++
		}
		for _, p := range bundles(t, out) {
			rep, err := verify.Verify(p, verify.Options{CA: ca})
			if err != nil {
				t.Fatalf("after kill at %v: %s under its final name is unreadable: %v", delay, p, err)
			}
			if !rep.OK() {
				t.Fatalf("after kill at %v: %s: %v", delay, p, rep.Problems)
			}
		}
		if finished {
			break
		}
	}
	if kills == 0 {
		t.Fatal("the bake always finished before the first kill; nothing was tested")
	}
	t.Logf("killed %d bakes", kills)
	b.bake(t, state, out)
	for _, p := range append(bundles(t, refOut), filepath.Join(refOut, "SHA256SUMS")) {
		sameBytes(t, p, filepath.Join(out, filepath.Base(p)))
	}
}

// TestFirstbootReadsBundle is the contract test: GNU tar unpacks a bundle
// the builder made, and the real firstboot binary reads its plan.
func TestFirstbootReadsBundle(t *testing.T) {
	b := newBed(t, 0)
	out := filepath.Join(b.root, "out")
	b.bake(t, filepath.Join(b.root, "state"), out)
	dir := t.TempDir()
	if o, err := exec.Command("tar", "xzf", filepath.Join(out, "hdss7-21.tar.gz"), "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar xzf: %v\n%s", err, o)
	}
	o, err := exec.Command(filepath.Join(dir, plan.FirstbootName), "plan").CombinedOutput()
	if err != nil {
		t.Fatalf("firstboot plan: %v\n%s", err, o)
	}
	for _, want := range []string{"hdss7-21.host.com (10.4.7.21) roles etcd,master,node", "172.7.22.0/24 via 10.4.7.22", "nf_conntrack_ipv4", "kubelet.service"} {
		if !strings.Contains(string(o), want) {
			t.Errorf("firstboot plan output lacks %q:\n%s", want, o)
		}
	}
}

func TestBakeErrors(t *testing.T) {
	b := newBed(t, 0)
	t.Run("tampered artifact", func(t *testing.T) {
		p := filepath.Join(b.artifacts, "kubelet", "kubelet")
		if err := os.WriteFile(p, []byte("tampered"), 0o755); err != nil {
			t.Fatal(err)
		}
		defer standin.Generate(b.spec, b.artifacts, 0)
		out := filepath.Join(b.root, "out-tampered")
		_, err := Bake(context.Background(), b.spec, WithArtifactsDir(b.artifacts), WithStateDir(filepath.Join(b.root, "s1")),
			WithStoreDir(filepath.Join(b.root, "s1", "store")), WithOutDir(out), WithFirstboot([]byte("fb")))
		if err == nil || !strings.Contains(err.Error(), "phase artifacts: artifact kubelet:") || !strings.Contains(err.Error(), "sha256 mismatch") {
			t.Fatalf("err = %v", err)
		}
		if m, _ := filepath.Glob(filepath.Join(out, "*")); len(m) > 0 {
			t.Fatalf("a failed bake left %v", m)
		}
	})
	t.Run("no timestamp", func(t *testing.T) {
		s := *b.spec
		s.Bundle.SourceDateEpoch = 0
		_, err := Bake(context.Background(), &s, WithArtifactsDir(b.artifacts), WithStateDir(filepath.Join(b.root, "s2")),
			WithStoreDir(filepath.Join(b.root, "s2", "store")), WithOutDir(filepath.Join(b.root, "o2")), WithFirstboot([]byte("fb")))
		if err == nil || !strings.Contains(err.Error(), "SOURCE_DATE_EPOCH") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("conflicting options", func(t *testing.T) {
		_, err := Bake(context.Background(), b.spec, WithJobs(2), WithJobs(3))
		if err == nil || !strings.Contains(err.Error(), "given twice") {
			t.Fatalf("err = %v", err)
		}
	})
}
