// Package addonstest runs the rendered add-on manifests against a real
// kube-apiserver: etcd and kube-apiserver from the offline upstream
// (`make upstream`, ~/.cache/kubebake-upstream: the real v1.37.2 binaries,
// built from source, which takes about 25 minutes the first time), started
// on 127.0.0.1 with certificates from a real kubebake PKI (the seed spec's,
// issued by builder/build into a temp state directory). It checks:
//
//   - `kubectl apply --dry-run=server` accepts every manifest (admission,
//     defaulting and validation by the apiserver itself);
//   - firstboot's add-ons step, through its real kubectl path (host.Exec),
//     applies them (server-side, field manager kubebake) and its Check
//     then reports converged, as a re-run of firstboot would see.
//
// Without the upstream's binaries the test skips with the reason (CI
// machines that have not built the upstream skip it; nothing is
// downloaded). KUBEBAKE_UPSTREAM_CACHE overrides the cache directory.
package addonstest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubebake/kubebake/builder/build"
	"github.com/kubebake/kubebake/builder/kubeconfig"
	"github.com/kubebake/kubebake/builder/pki"
	"github.com/kubebake/kubebake/builder/render"
	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/host"
	"github.com/kubebake/kubebake/firstboot/plan"
	"github.com/kubebake/kubebake/firstboot/steps"
)

const seedSpec = "../../bundle-spec.yaml"

// upstream finds the offline upstream's kube-apiserver, kubectl and etcd
// for the spec's versions, or skips.
func upstream(t *testing.T, s *spec.Spec) (apiserver, kubectl, etcd string) {
	t.Helper()
	cache := os.Getenv("KUBEBAKE_UPSTREAM_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Skipf("no home directory for ~/.cache/kubebake-upstream: %v", err)
		}
		cache = filepath.Join(home, ".cache", "kubebake-upstream")
	}
	k8s := filepath.Join(cache, "kubernetes", s.Versions.Kubernetes, "out")
	apiserver, kubectl = filepath.Join(k8s, "kube-apiserver"), filepath.Join(k8s, "kubectl")
	etcd = filepath.Join(cache, "etcd", s.Versions.Etcd, "work", "tree", "etcd-"+s.Versions.Etcd+"-linux-amd64", "etcd")
	for _, p := range []string{apiserver, kubectl, etcd} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("offline upstream not built (%v): run `make upstream` (about 25 minutes the first time) to test the add-ons against a real apiserver", err)
		}
	}
	if _, err := exec.LookPath("diff"); err != nil {
		t.Skipf("kubectl diff needs diff(1): %v", err)
	}
	return apiserver, kubectl, etcd
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func write(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// start runs a daemon until the test ends, its output in a log file shown
// on failure.
func start(t *testing.T, dir, name, bin string, args ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log (last 3000 bytes):\n%s", name, tail(b, 3000))
		}
	})
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// waitReady polls url with the admin client certificate until it answers 200.
func waitReady(t *testing.T, url string, ca, cert, key []byte, d time.Duration) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}}}}
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			b := make([]byte, 512)
			n, _ := resp.Body.Read(b)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b[:n])
		} else {
			last = err.Error()
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s not ready after %s: %s", url, d, last)
}

func TestAddonsAgainstAPIServer(t *testing.T) {
	s, rep, err := spec.Load(seedSpec)
	if err != nil || rep.IsFatal() {
		t.Fatalf("seed spec: %v\n%v", err, rep)
	}
	apiserverBin, kubectl, etcdBin := upstream(t, s)
	ctx := context.Background()
	dir := t.TempDir()

	// A real kubebake PKI for the seed's cluster.
	set, err := build.Certs(ctx, s, build.WithStateDir(filepath.Join(dir, "state")))
	if err != nil {
		t.Fatal(err)
	}
	caPEM := set.CAs[pki.CA].CertPEM
	ca := write(t, dir, "ca.pem", caPEM)
	pair := func(name string) (string, string) {
		c := set.Certs[name]
		if c == nil {
			t.Fatalf("certificate %s not issued", name)
		}
		return write(t, dir, name+".pem", c.CertPEM), write(t, dir, name+"-key.pem", c.KeyPEM)
	}
	first, _ := render.FirstMaster(s)
	etcdCert, etcdKey := pair("etcd-server-" + first.Name) // SANs include 127.0.0.1
	apiCert, apiKey := pair("apiserver")                   // SANs include 127.0.0.1
	etcdClientCert, etcdClientKey := pair("apiserver-etcd-client")
	saKey := write(t, dir, "sa.key", set.ServiceAccount.PrivatePEM)
	saPub := write(t, dir, "sa.pub", set.ServiceAccount.PublicPEM)

	etcdPort, peerPort, apiPort := freePort(t), freePort(t), freePort(t)
	etcdURL := "https://127.0.0.1:" + strconv.Itoa(etcdPort)
	start(t, dir, "etcd", etcdBin,
		"--name", "test", "--data-dir", filepath.Join(dir, "etcd-data"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--initial-advertise-peer-urls", "http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--initial-cluster", "test=http://127.0.0.1:"+strconv.Itoa(peerPort),
		// As the etcd unit runs it: etcd-server (peer profile) is also the
		// client cert its gRPC gateway presents to its own client URL.
		"--cert-file", etcdCert, "--key-file", etcdKey, "--client-cert-auth", "--trusted-ca-file", ca)
	start(t, dir, "kube-apiserver", apiserverBin,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(apiPort),
		"--etcd-servers", etcdURL, "--etcd-cafile", ca, "--etcd-certfile", etcdClientCert, "--etcd-keyfile", etcdClientKey,
		"--tls-cert-file", apiCert, "--tls-private-key-file", apiKey, "--client-ca-file", ca,
		// No endpoint reconciler: a loopback address cannot be the
		// kubernetes Service's endpoint.
		"--endpoint-reconciler-type", "none",
		"--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction",
		"--service-cluster-ip-range", s.Cluster.ServiceNetwork,
		"--service-account-issuer", "https://kubernetes.default.svc."+s.Cluster.ClusterDomain,
		"--service-account-key-file", saPub, "--service-account-signing-key-file", saKey)

	// etcd-server must also be a client certificate: etcd's gRPC gateway
	// presents it to etcd's own client URL (a server-only one is refused
	// with "incompatible key usage", over and over).
	t.Cleanup(func() {
		if b, _ := os.ReadFile(filepath.Join(dir, "etcd.log")); bytes.Contains(b, []byte("incompatible key usage")) {
			t.Errorf("etcd refused its own certificate:\n%s", tail(b, 2000))
		}
	})
	admin := set.Certs["admin"]
	server := "https://127.0.0.1:" + strconv.Itoa(apiPort)
	waitReady(t, server+"/readyz", caPEM, admin.CertPEM, admin.KeyPEM, 2*time.Minute)

	// The add-ons kubeconfig as the builder makes it for the first master,
	// on this test's port.
	kc, err := kubeconfig.Marshal(kubeconfig.Config{Cluster: s.Cluster.Name, Server: server, User: "admin", CA: caPEM, Cert: admin.CertPEM, Key: admin.KeyPEM})
	if err != nil {
		t.Fatal(err)
	}
	kcPath := write(t, dir, "admin.kubeconfig", kc)

	// The manifests, with a private registry so the pull Secret and every
	// imagePullSecrets are exercised too.
	s.Registry.Private = true
	files, err := render.Addons(s)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := render.PullSecret(s, "robot$kubebake", "not-a-real-password")
	if err != nil {
		t.Fatal(err)
	}
	addons := filepath.Join(dir, "addons")
	if err := os.Mkdir(addons, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, sec) {
		write(t, addons, filepath.Base(f.Path), f.Content)
	}

	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(kubectl, append([]string{"--kubeconfig", kcPath}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	step := steps.Addons(&plan.Addons{Dir: addons, Kubeconfig: kcPath, Kubectl: kubectl, Attempts: 5, Interval: "2s"})[0]
	env := &engine.Env{Root: "/", Exec: host.NewExec()}

	// 0. firstboot's Check on a cluster that has none of it: the diff of
	// objects in a namespace not yet created fails (exit > 1); Check says
	// what Apply will do instead of failing.
	st, err := step.Check(ctx, env)
	if err != nil || st.Converged {
		t.Fatalf("Check on a fresh cluster: %+v, %v", st, err)
	}
	t.Logf("Check (fresh cluster, no namespace yet): %s", firstN(st.Diff, 6))

	// 1. A server-side dry run of everything. Objects in a namespace the
	// same apply creates cannot be dry-run before it exists, so the
	// namespaces go first, for real.
	t.Logf("kubectl apply --dry-run=server -f 00-namespaces.yaml:\n%s", run("apply", "--dry-run=server", "-f", filepath.Join(addons, "00-namespaces.yaml")))
	run("apply", "--server-side", "--field-manager=kubebake", "-f", filepath.Join(addons, "00-namespaces.yaml"))
	dry := run("apply", "--dry-run=server", "--server-side", "--field-manager=kubebake", "-f", addons)
	t.Logf("kubectl apply --dry-run=server --server-side -f addons/:\n%s", dry)
	objects := 0
	for _, f := range append(files, sec) {
		for _, l := range strings.Split(string(f.Content), "\n") {
			if strings.HasPrefix(l, "kind:") {
				objects++
			}
		}
	}
	if n := strings.Count(dry, "(server dry run)"); n != objects {
		t.Errorf("dry run covered %d objects, want all %d", n, objects)
	}

	// 2. firstboot's add-ons step through the real command runner.
	st, err = step.Check(ctx, env)
	if err != nil || st.Converged {
		t.Fatalf("Check with the namespaces only: %+v, %v", st, err)
	}
	t.Logf("Check (namespaces only): %s", firstN(st.Diff, 6))
	if err := step.Apply(ctx, env); err != nil {
		t.Fatal(err)
	}
	if err := step.Verify(ctx, env); err != nil {
		t.Fatal(err)
	}
	if st, err := step.Check(ctx, env); err != nil || !st.Converged {
		t.Fatalf("Check after Apply: %+v, %v", st, err)
	}
	// Re-applying is a no-op.
	if err := step.Apply(ctx, env); err != nil {
		t.Fatal(err)
	}
	if st, err := step.Check(ctx, env); err != nil || !st.Converged {
		t.Fatalf("Check after a second Apply: %+v, %v", st, err)
	}

	got := run("get", "service", "-n", "kube-system", "kube-dns", "-o", "jsonpath={.spec.clusterIP}")
	if got != s.Cluster.DNSServiceIP {
		t.Errorf("kube-dns clusterIP %s, want %s", got, s.Cluster.DNSServiceIP)
	}
	mgr := run("get", "deployment", "-n", "kube-system", "coredns", "-o", "jsonpath={.metadata.managedFields[*].manager}")
	if !strings.Contains(mgr, steps.AddonsFieldManager) {
		t.Errorf("coredns managed by %q, want %s", mgr, steps.AddonsFieldManager)
	}
	secret := run("get", "secret", "-n", "kubernetes-dashboard", render.PullSecretName, "-o", "jsonpath={.type}")
	if secret != "kubernetes.io/dockerconfigjson" {
		t.Errorf("pull secret type %q", secret)
	}
	t.Logf("kubectl get -A (managed by kubebake):\n%s", run("get", "deploy,ds,svc,ingress,ingressclass,sa", "-A", "-l", "app.kubernetes.io/managed-by=kubebake"))
}

func firstN(lines []string, n int) string {
	var b bytes.Buffer
	for i, l := range lines {
		if i == n {
			fmt.Fprintf(&b, "… (%d lines)", len(lines))
			break
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}
