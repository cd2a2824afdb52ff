// Package e2e is the end-to-end test: nothing but kubebake's bundles (and
// the site's Harbor stand-in) turn empty hosts into the seed's cluster, on
// one private bridge in a network namespace (nothing leaves it).
//
// Phases, each logged with its wall time ("phase build 35.2s"):
//
//	build    scripts/e2e/build.sh: the offline upstream, the e2e spec
//	         (bundle-spec.yaml + mirrors/credentials/registry.endpoint and
//	         extraArgs for TCG-sized leader leases),
//	         PKI, the Harbor stand-in, kubebake build → e2e/out, verify,
//	         the test pods' busybox image pushed to Harbor
//	rootfs   scripts/e2e/rootfs.sh: the nspawn hosts' Debian root (cached)
//	network  bed.Seed(): netns kb-e2e, bridge kbbr0 with 10.4.7.254/24
//	boot     the systemd-nspawn hosts (e2e/nspawnhost): hdss7-11 (dns, lb),
//	         hdss7-12 (etcd, lb), hdss7-200 (ops), each with only its own
//	         bundle, installed as kickstart's %post would
//	harbor   the site's Harbor: the stand-in in hdss7-200's network
//	         namespace on 10.4.7.200:443 (the site's job, not kubebake's)
//	firstboot, assertions, second boot (a no-op for firstboot)
//
// The nodes hdss7-21 and hdss7-22 need ip_vs, which this machine's kernel
// lacks: they are QEMU/TCG guests (e2e/qemuhost), booted in parallel with
// the nspawn hosts (KUBEBAKE_E2E_NODES=0 leaves them out). Their phases:
// the guest agent answering, firstboot reaching etcd, etcd quorum
// (etcdctl endpoint health --cluster), kube-apiserver /readyz on both,
// then the control plane (cluster_test.go): kubectl through the VIP, the
// controller-manager and scheduler healthy and holding their leases, the
// nodes Ready. With KUBEBAKE_E2E_CLUSTER=1 the workloads follow: their
// firstboot done (health gates, add-ons), a pod on each node from the
// site's Harbor, pod to pod across nodes, CoreDNS and a Service through
// kube-proxy's ipvs from a pod, the ingress path where Traefik exists, and
// a second boot of hdss7-12, -21 and -22. Each assertion on a node logs
// its time after QEMU started.
//
// It runs only as root with KUBEBAKE_E2E=1 or CI_E2E=1 (make e2e); with
// either set, a missing tool fails the test instead of skipping it. On
// failure every host's console, firstboot journal, failed units' journals
// and whole journal are gathered under $TMPDIR/kubebake-e2e-<time>/ (always
// with KUBEBAKE_E2E_KEEP=1), and the log says where. Every process,
// namespace, mount and container it started is stopped, even on failure.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/e2e/bed"
	"github.com/kubebake/kubebake/e2e/nspawnhost"
	"github.com/kubebake/kubebake/e2e/qemuhost"
	"github.com/kubebake/kubebake/firstboot/plan"
)

const repoRoot = ".."

// nspawnHosts are the seed's hosts whose roles need no kernel module this
// machine lacks.
var nspawnHosts = []string{"hdss7-11", "hdss7-12", "hdss7-200"}

// nodeHosts are the etcd + master + node hosts that boot: QEMU/TCG guests
// (e2e/qemuhost), because their roles load ip_vs, which this machine's
// kernel cannot. By default only hdss7-21 boots; hdss7-22 stays off.
// Measured why (issue 7's note): two TCG guests running etcd and a whole
// control plane each on 2 shared cores starve; etcd loses its leader
// again and again, TLS handshakes to etcd time out, and kube-apiserver
// exits "etcd grpc connection not ready" every ~5 min without ever
// becoming ready. With one guest, etcd keeps quorum on hdss7-12 (nspawn,
// native speed) and hdss7-21 (2 of the 3 members). KUBEBAKE_E2E_NODES
// overrides the list: "hdss7-21,hdss7-22" for both, "0" for none (the
// nspawn hosts alone, ~1 min).
var nodeHosts = nodeList(os.Getenv("KUBEBAKE_E2E_NODES"))

// allNodeHosts are the seed's etcd + master + node hosts.
var allNodeHosts = []string{"hdss7-21", "hdss7-22"}

func nodeList(env string) []string {
	switch strings.TrimSpace(env) {
	case "":
		return []string{"hdss7-21"}
	case "0", "none":
		return nil
	case "1", "all":
		return allNodeHosts
	}
	var out []string
	for _, n := range strings.Split(env, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func withNodes() bool { return len(nodeHosts) > 0 }

// withCluster: KUBEBAKE_E2E_CLUSTER=1 also runs the workload assertions on
// the QEMU nodes (firstboot's add-ons, pods onwards). Off by default: under
// TCG on 2 cores they take far longer than make e2e's budget (see the SKIP
// line). The control plane through the nodes Ready runs either way.
func withCluster() bool { return os.Getenv("KUBEBAKE_E2E_CLUSTER") == "1" }

func gate(t *testing.T) {
	t.Helper()
	if os.Getenv("KUBEBAKE_E2E") != "1" && os.Getenv("CI_E2E") != "1" {
		t.Skip("end-to-end test: set KUBEBAKE_E2E=1 (make e2e) to run it; it needs root, systemd-container, mmdebstrap, docker-registry, curl and the offline upstream (~20 min the first time)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("end-to-end test: needs root (network namespaces, mounts, systemd-nspawn)")
	}
	var missing []string
	for _, c := range []string{"systemd-nspawn", "mmdebstrap", "nsenter", "script", "ip", "mount", "tar", "curl", "docker-registry", "go", "make", "journalctl", "systemctl"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("end-to-end test: missing %s; install with:\n  apt-get install -y --no-install-recommends systemd-container mmdebstrap docker-registry curl util-linux iproute2", strings.Join(missing, ", "))
	}
}

// run is one test run's shared state.
type run struct {
	t     *testing.T
	start time.Time
	cache string // ~/.cache/kubebake-e2e
	env   map[string]string
	spec  *spec.Spec
	net   bed.Network
	hosts map[string]bed.Host       // every booted host, by the spec's name
	ops   *nspawnhost.Host          // hdss7-200: the site's Harbor joins its network namespace
	nodes map[string]*qemuhost.Host // the QEMU hosts (unless KUBEBAKE_E2E_NODES=0)

	nodeBoot      chan error // one result per node host's Boot
	nodeBootStart time.Time
	order         []string
	harbor        *exec.Cmd
	logs          string // where logs are gathered on failure
	clusterOK     bool   // the cluster assertions passed
	mu            sync.Mutex
	times         []string
}

func (r *run) phase(name string, f func()) {
	r.t.Helper()
	t0 := time.Now()
	defer func() {
		line := fmt.Sprintf("phase %s %.1fs", name, time.Since(t0).Seconds())
		r.mu.Lock()
		r.times = append(r.times, line)
		r.mu.Unlock()
		r.t.Log(line)
	}()
	f()
}

func (r *run) assertOK(format string, a ...any) {
	r.t.Helper()
	r.t.Logf("ASSERT ok: "+format, a...)
}

func (r *run) assertFail(format string, a ...any) {
	r.t.Helper()
	r.t.Errorf("ASSERT FAILED: "+format+" (logs: %s)", append(a, r.logs)...)
}

func TestEndToEnd(t *testing.T) {
	gate(t)
	ctx := context.Background()
	home, _ := os.UserHomeDir()
	cache := os.Getenv("KUBEBAKE_E2E_CACHE")
	if cache == "" {
		cache = filepath.Join(home, ".cache", "kubebake-e2e")
	}
	r := &run{
		t: t, start: time.Now(), cache: cache, net: bed.Seed(), hosts: map[string]bed.Host{}, nodes: map[string]*qemuhost.Host{},
		logs: filepath.Join(os.TempDir(), "kubebake-e2e-"+time.Now().UTC().Format("20060102T150405Z")),
	}
	defer func() {
		t.Logf("phases:\n  %s\n  total %.1fs", strings.Join(r.times, "\n  "), time.Since(r.start).Seconds())
	}()

	// The build may compile the offline upstream (~20 min the first time);
	// it must end well before go test's own timeout, which panics without
	// running the cleanups.
	buildTimeout := 45 * time.Minute
	if d, ok := t.Deadline(); ok && time.Until(d)-10*time.Minute < buildTimeout {
		buildTimeout = time.Until(d) - 10*time.Minute
	}
	r.phase("build", func() { r.env = runScript(t, "scripts/e2e/build.sh", buildTimeout, "KUBEBAKE_E2E_") })
	var rootfs string
	r.phase("rootfs", func() {
		rootfs = runScript(t, "scripts/e2e/rootfs.sh", 15*time.Minute, "KUBEBAKE_E2E_")["KUBEBAKE_E2E_ROOTFS"]
	})
	s, rep, err := spec.Load(r.env["KUBEBAKE_E2E_SPEC"])
	if err != nil || s == nil || rep.IsFatal() {
		t.Fatalf("e2e spec %s: %v\n%v", r.env["KUBEBAKE_E2E_SPEC"], err, rep)
	}
	r.spec = s

	// Cleanups run last-in first-out: registered before the hosts and the
	// Harbor, the network goes last.
	r.phase("network", func() {
		if err := r.net.Create(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Cleanup(func() {
		if err := r.net.Destroy(); err != nil {
			t.Errorf("network: %v", err)
		}
	})
	for _, name := range nspawnHosts {
		h := specHost(t, s, name)
		dns := s.Cluster.DNSServers
		if s.PXE != nil && len(s.PXE.DNSServers) > 0 {
			dns = s.PXE.DNSServers
		}
		var mac string
		if len(h.MACs) > 0 {
			mac = h.MACs[0]
		}
		nh := nspawnhost.New(nspawnhost.Config{
			Name: name, IP: h.IP, MAC: mac, FQDN: s.FQDN(h), DNS: dns,
			Rootfs: rootfs, Dir: filepath.Join(cache, "hosts", name),
			Net: r.net, Ifname: s.Cluster.VIPInterface,
		})
		if name == "hdss7-200" {
			r.ops = nh
		}
		r.hosts[name] = nh
		r.order = append(r.order, name)
	}
	if withNodes() {
		r.setupNodes(ctx)
	}
	t.Cleanup(func() { r.stopAll() })

	// boot: every nspawn host at once, each with its own bundle.
	booted := map[string]time.Time{}
	r.phase("boot nspawn hosts", func() {
		var wg sync.WaitGroup
		var mu sync.Mutex
		errs := make([]error, len(nspawnHosts))
		for i, name := range nspawnHosts {
			wg.Go(func() {
				bundle := filepath.Join(r.env["KUBEBAKE_E2E_OUT"], name+".tar.gz")
				t0 := time.Now()
				errs[i] = r.hosts[name].Boot(ctx, bundle)
				mu.Lock()
				booted[name] = t0
				mu.Unlock()
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("boot %s: %v", nspawnHosts[i], err)
			}
		}
	})

	r.phase("harbor on hdss7-200", func() { r.startHarbor(ctx) })

	// firstboot: hdss7-11 and hdss7-200 converge alone. hdss7-12's plan
	// starts etcd, whose cluster needs hdss7-21 and hdss7-22 (QEMU): its
	// firstboot waits on that (etcd.service is Type=notify) and is checked
	// for what it can show alone.
	fbDone := map[string]time.Duration{}
	r.phase("firstboot hdss7-11 hdss7-200", func() {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, name := range []string{"hdss7-11", "hdss7-200"} {
			wg.Go(func() {
				err := r.hosts[name].WaitFirstboot(ctx, 5*time.Minute)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					r.assertFail("firstboot on %s: %v", name, err)
					return
				}
				fbDone[name] = time.Since(booted[name])
				r.assertOK("firstboot converged on %s, %.1fs after boot (%s)", name, fbDone[name].Seconds(), r.firstbootSpan(ctx, name))
			})
		}
		wg.Wait()
	})

	if withNodes() {
		r.nodesPhases(ctx)
	}

	r.phase("hdss7-12 lb and etcd started", func() {
		h := r.hosts["hdss7-12"]
		for _, u := range []string{"nginx.service", "keepalived.service"} {
			if err := waitUnit(ctx, h, u, 3*time.Minute, "active"); err != nil {
				r.assertFail("%s on hdss7-12: %v", u, err)
			} else {
				r.assertOK("%s active on hdss7-12, %.1fs after boot", u, time.Since(booted["hdss7-12"]).Seconds())
			}
		}
		if err := waitUnit(ctx, h, "etcd.service", 2*time.Minute, "activating", "active"); err != nil {
			r.assertFail("etcd.service on hdss7-12: %v", err)
			return
		}
		u, _ := bed.ShowUnit(ctx, h, "etcd.service", "ActiveState", "SubState", "MainPID")
		if u["MainPID"] == "0" || u["MainPID"] == "" {
			r.assertFail("etcd.service on hdss7-12 %s/%s has no main process", u["ActiveState"], u["SubState"])
			return
		}
		note := "its cluster waits for hdss7-21/22, the QEMU side, left out by KUBEBAKE_E2E_NODES=0"
		if withNodes() {
			note = "with " + strings.Join(nodeHosts, ", ") + " booted"
		}
		r.assertOK("etcd running on hdss7-12 (pid %s, %s/%s: %s)", u["MainPID"], u["ActiveState"], u["SubState"], note)
	})

	r.phase("assertions", func() {
		r.assertDNS(ctx)
		r.assertLB(ctx)
		r.assertHarbor(ctx)
		r.assertNFS(ctx)
	})

	// A second boot of every host whose firstboot is done is a no-op.
	r.phase("second boot", func() {
		var wg sync.WaitGroup
		for _, name := range []string{"hdss7-11", "hdss7-200"} {
			if _, ok := fbDone[name]; !ok {
				continue
			}
			wg.Go(func() { r.secondBoot(ctx, name) })
		}
		wg.Wait()
	})
	if t.Failed() {
		return
	}
	// After the reboot the VIP must still be held by exactly one lb host,
	// and come back to the first lb host: its keepalived is MASTER with the
	// higher priority and preempts (only the BACKUPs have nopreempt).
	r.phase("assertions after the second boot", func() {
		r.assertDNS(ctx)
		r.assertLB(ctx)
		r.assertVIPBack(ctx)
	})
	if withNodes() && r.clusterOK {
		r.nodesSecondBoot(ctx)
	}
}

func specHost(t *testing.T, s *spec.Spec, name string) spec.Host {
	t.Helper()
	for _, h := range s.Hosts {
		if h.Name == name {
			return h
		}
	}
	t.Fatalf("the e2e spec has no host %s", name)
	return spec.Host{}
}

// runScript runs a script of the repo, streaming its stderr and stdout to
// the test log line by line, and returns its KEY=VALUE lines with prefix.
func runScript(t *testing.T, script string, timeout time.Duration, prefix string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, script))
	cmd.Dir = root
	cmd.WaitDelay = 10 * time.Second
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	vars := map[string]string{}
	var all bytes.Buffer
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		all.WriteString(l + "\n")
		if k, v, ok := strings.Cut(l, "="); ok && strings.HasPrefix(k, prefix) && !strings.ContainsAny(k, " \t") {
			vars[k] = v
			continue
		}
		t.Logf("%s: %s", filepath.Base(script), l)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return vars
}

// startHarbor runs the site's Harbor: the stand-in (Debian's
// docker-registry with harbor.od.com's certificate from the e2e state and
// htpasswd auth) on 10.4.7.200:443 in hdss7-200's network namespace, on
// the storage the build pushed into. It is the site's service, not
// kubebake's: kubebake only renders the ops host's files.
func (r *run) startHarbor(ctx context.Context) {
	t := r.t
	h := r.ops
	dir := r.env["KUBEBAKE_E2E_HARBOR_DIR"]
	// A crashed run's stand-in lives on in its old (deleted) namespace:
	// stop it by its PID file, only when it is still our registry.
	pidf := filepath.Join(dir, "site.pid")
	if b, err := os.ReadFile(pidf); err == nil {
		var pid int
		fmt.Sscan(string(b), &pid)
		if cl, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); pid > 1 && err == nil &&
			strings.Contains(string(cl), "harbor-standin") && strings.Contains(string(cl), dir) {
			t.Logf("stopping the Harbor stand-in a previous run left (pid %d)", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = os.Remove(pidf)
	}
	logf := filepath.Join(dir, "site.log")
	lf, err := os.Create(logf)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	// The nodes pull the seed's public project with no credentials, as
	// from Harbor; a private project needs the pull Secret kubebake ships.
	var public []string
	if !r.spec.Registry.Private {
		public = append(public, r.spec.Registry.Project)
	}
	cmd := exec.Command("ip", "netns", "exec", h.NetNS(), r.env["KUBEBAKE_E2E_HARBOR_STANDIN"],
		"-state", r.env["KUBEBAKE_E2E_STATE"], "-dir", dir, "-addr", h.IP()+":443",
		"-user", "admin", "-password-file", r.env["KUBEBAKE_E2E_HARBOR_PASSWORD_FILE"],
		"-public-projects", strings.Join(public, ","))
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.harbor = cmd
	_ = os.WriteFile(pidf, []byte(fmt.Sprintln(cmd.Process.Pid)), 0o644)
	go func() { _ = cmd.Wait(); _ = os.Remove(pidf) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := r.curlHarbor(ctx, "/v2/"); err == nil {
			t.Logf("the site's Harbor (stand-in) answers on https://harbor.od.com (10.4.7.200:443 in %s), log %s", h.NetNS(), logf)
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf)
			t.Fatalf("the Harbor stand-in did not answer on 10.4.7.200:443 within 20 s:\n%s", b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// curlHarbor GETs path on https://harbor.od.com from the bridge's namespace
// (10.4.7.254), trusting only the cluster CA, with the site's login.
func (r *run) curlHarbor(ctx context.Context, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	pw, err := os.ReadFile(r.env["KUBEBAKE_E2E_HARBOR_PASSWORD_FILE"])
	if err != nil {
		return nil, err
	}
	return r.net.Exec(ctx, "curl", "-fsS", "--max-time", "10",
		"--cacert", filepath.Join(r.env["KUBEBAKE_E2E_STATE"], "pki", "ca.pem"),
		"--resolve", "harbor.od.com:443:"+r.hosts["hdss7-200"].IP(),
		"-u", "admin:"+strings.TrimSpace(string(pw)),
		"https://harbor.od.com"+path)
}

func (r *run) stopAll() {
	t := r.t
	if t.Failed() || os.Getenv("KUBEBAKE_E2E_KEEP") == "1" {
		for _, name := range r.order {
			lctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			if err := r.hosts[name].Logs(lctx, filepath.Join(r.logs, name)); err != nil {
				t.Logf("logs of %s: %v", name, err)
			}
			cancel()
		}
		if dir := r.env["KUBEBAKE_E2E_HARBOR_DIR"]; dir != "" {
			if b, err := os.ReadFile(filepath.Join(dir, "site.log")); err == nil {
				_ = os.WriteFile(filepath.Join(r.logs, "harbor-site.log"), b, 0o644)
			}
		}
		t.Logf("logs gathered in %s (consoles, firstboot and failed units' journals, whole journals)", r.logs)
	}
	if r.harbor != nil && r.harbor.Process != nil {
		_ = syscall.Kill(-r.harbor.Process.Pid, syscall.SIGTERM)
		_ = syscall.Kill(r.harbor.Process.Pid, syscall.SIGTERM)
	}
	var wg sync.WaitGroup
	for _, name := range r.order {
		wg.Go(func() {
			if err := r.hosts[name].Stop(); err != nil {
				t.Errorf("stop %s: %v", name, err)
			}
		})
	}
	wg.Wait()
}

// firstbootSpan is firstboot's own start→exit time from systemd's
// timestamps, for the log.
func (r *run) firstbootSpan(ctx context.Context, name string) string {
	u, err := bed.ShowUnit(ctx, r.hosts[name], "kubebake-firstboot.service", "ExecMainStartTimestampMonotonic", "ExecMainExitTimestampMonotonic")
	if err != nil {
		return "firstboot's own time unknown"
	}
	var a, b int64
	fmt.Sscan(u["ExecMainStartTimestampMonotonic"], &a)
	fmt.Sscan(u["ExecMainExitTimestampMonotonic"], &b)
	if a == 0 || b < a {
		return "firstboot's own time unknown"
	}
	return fmt.Sprintf("the unit ran %.1fs", float64(b-a)/1e6)
}

// waitUnit polls a unit until its ActiveState is one of states.
func waitUnit(ctx context.Context, h bed.Host, unit string, timeout time.Duration, states ...string) error {
	deadline := time.Now().Add(timeout)
	var last map[string]string
	var err error
	for {
		last, err = bed.ShowUnit(ctx, h, unit, "ActiveState", "SubState", "Result")
		if err == nil {
			for _, s := range states {
				if last["ActiveState"] == s {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not %s after %s (last: %v %v)", strings.Join(states, "/"), timeout, last, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// retry calls f until it succeeds or timeout passes; the last error.
func retry(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Second)
	}
}

// assertDNS: bind9 on the dns host answers the host and service domains,
// asked across the bridge from another host (hdss7-200, whose resolv.conf
// names the spec's dnsServers).
func (r *run) assertDNS(ctx context.Context) {
	dns := r.spec.Cluster.DNSServers[0]
	for _, q := range []struct{ name, want string }{
		{"hdss7-21." + r.spec.Cluster.HostDomain, "10.4.7.21"},
		{"harbor." + r.spec.Cluster.ServiceDomain, r.hosts["hdss7-200"].IP()},
	} {
		var out []byte
		err := retry(30*time.Second, func() error {
			var err error
			out, err = r.hosts["hdss7-200"].Exec(ctx, "dig", "+short", "+time=2", "+tries=1", "@"+dns, q.name, "A")
			if err == nil && strings.TrimSpace(string(out)) != q.want {
				err = fmt.Errorf("answer %q", strings.TrimSpace(string(out)))
			}
			return err
		})
		if err != nil {
			r.assertFail("bind9 on %s answers %s with %s: %v %s", dns, q.name, q.want, err, out)
			continue
		}
		r.assertOK("bind9 on %s answers %s → %s (asked from hdss7-200)", dns, q.name, q.want)
	}
	out, err := r.hosts["hdss7-200"].Exec(ctx, "getent", "hosts", "hdss7-12."+r.spec.Cluster.HostDomain)
	if err != nil || !strings.HasPrefix(string(out), "10.4.7.12 ") {
		r.assertFail("hdss7-200 resolves hdss7-12.%s through its resolv.conf: %v %s", r.spec.Cluster.HostDomain, err, out)
	} else {
		r.assertOK("hdss7-200 resolves hdss7-12.%s through resolv.conf → 10.4.7.12", r.spec.Cluster.HostDomain)
	}
}

var inetRE = regexp.MustCompile(`inet (\d+\.\d+\.\d+\.\d+)/`)

// assertLB: nginx listens on lbPort on every lb host, and keepalived put
// the VIP on exactly one of them.
func (r *run) assertLB(ctx context.Context) {
	c := r.spec.Cluster
	port := fmt.Sprint(c.LBPort)
	var lbs []string
	for _, h := range r.spec.Hosts {
		if h.HasRole(plan.RoleLB) {
			lbs = append(lbs, h.Name)
		}
	}
	for _, name := range lbs {
		out, err := r.hosts[name].Exec(ctx, "ss", "-Hltn", "sport = :"+port)
		if err != nil || !strings.Contains(string(out), "LISTEN") {
			r.assertFail("nginx listens on %s:%s: %v %s", name, port, err, out)
		} else {
			r.assertOK("nginx listens on %s:%s (the L4 proxy to the apiservers)", name, port)
		}
	}
	// VRRP settles in a few seconds (adverts every second, a check that
	// must pass twice, preemption by the MASTER): the holder must be the
	// same single host in three polls a second apart.
	var holders []string
	stable, prev := 0, ""
	err := retry(45*time.Second, func() error {
		holders = nil
		for _, name := range lbs {
			out, err := r.hosts[name].Exec(ctx, "ip", "-4", "-o", "addr", "show", "dev", c.VIPInterface)
			if err != nil {
				return err
			}
			for _, m := range inetRE.FindAllStringSubmatch(string(out), -1) {
				if m[1] == c.VIP {
					holders = append(holders, name)
				}
			}
		}
		if len(holders) != 1 {
			stable, prev = 0, ""
			return fmt.Errorf("VIP %s on %v", c.VIP, holders)
		}
		if holders[0] != prev {
			stable, prev = 0, holders[0]
		}
		if stable++; stable < 3 {
			return fmt.Errorf("VIP %s on %s for %d poll(s) only", c.VIP, holders[0], stable)
		}
		return nil
	})
	if err != nil {
		r.assertFail("keepalived puts the VIP %s on exactly one lb host: %v", c.VIP, err)
		return
	}
	r.assertOK("keepalived put the VIP %s on exactly one lb host: %s (of %s), stable for 3 s", c.VIP, holders[0], strings.Join(lbs, ", "))
	// The VIP answers on lbPort from the bridge: nginx's L4 listener.
	out, err := r.net.Exec(ctx, "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s && echo connected", c.VIP, port))
	if err != nil {
		r.assertFail("a TCP connection to %s:%s from the bridge: %v %s", c.VIP, port, err, out)
	} else {
		r.assertOK("%s:%s accepts TCP from the bridge (nginx on %s)", c.VIP, port, holders[0])
	}
}

// assertVIPBack: the VIP returns to the first lb host (keepalived MASTER,
// priority 100, no nopreempt) once it is back from its reboot.
func (r *run) assertVIPBack(ctx context.Context) {
	c := r.spec.Cluster
	var first string
	for _, h := range r.spec.Hosts {
		if h.HasRole(plan.RoleLB) {
			first = h.Name
			break
		}
	}
	err := retry(60*time.Second, func() error {
		out, err := r.hosts[first].Exec(ctx, "ip", "-4", "-o", "addr", "show", "dev", c.VIPInterface)
		if err != nil {
			return err
		}
		if !strings.Contains(string(out), "inet "+c.VIP+"/") {
			return fmt.Errorf("not on %s yet", first)
		}
		return nil
	})
	if err != nil {
		r.assertFail("the VIP %s returns to %s (keepalived MASTER) after its reboot: %v", c.VIP, first, err)
		return
	}
	r.assertOK("the VIP %s is back on %s (keepalived MASTER preempts the BACKUP) after its second boot", c.VIP, first)
	r.assertLB(ctx)
}

// assertHarbor: the site's Harbor answers /v2/ for harbor.od.com with a
// certificate the cluster CA signed, and holds the test pods' image.
func (r *run) assertHarbor(ctx context.Context) {
	if _, err := r.curlHarbor(ctx, "/v2/"); err != nil {
		r.assertFail("Harbor answers https://harbor.od.com/v2/ from the bridge with the cluster CA: %v", err)
		return
	}
	r.assertOK("Harbor answers https://harbor.od.com/v2/ from the bridge (TLS verified with the cluster CA, login ok)")
	img := r.env["KUBEBAKE_E2E_TEST_IMAGE"] // harbor.od.com/public/busybox:1.35.0
	repo, tag, _ := strings.Cut(strings.TrimPrefix(img, "harbor.od.com/"), ":")
	out, err := r.curlHarbor(ctx, "/v2/"+repo+"/tags/list")
	if err != nil || !strings.Contains(string(out), `"`+tag+`"`) {
		r.assertFail("Harbor lists %s: %v %s", img, err, out)
		return
	}
	r.assertOK("Harbor holds the test pods' image %s", img)
	// And the images kubebake mirrored: pause, from the bundle's spec.
	out, err = r.curlHarbor(ctx, "/v2/"+r.spec.Registry.Project+"/pause/tags/list")
	if err != nil || !strings.Contains(string(out), r.spec.Versions.Pause) {
		r.assertFail("Harbor lists %s/pause:%s (kubebake mirror): %v %s", r.spec.Registry.Project, r.spec.Versions.Pause, err, out)
		return
	}
	r.assertOK("Harbor holds %s/pause:%s, mirrored by kubebake build", r.spec.Registry.Project, r.spec.Versions.Pause)
}

// assertNFS: what the ops host's NFS role can show here. The kernel has no
// nfsd, so the rootfs's nfs-server.service is a test-bed substitute that
// only runs exportfs on kubebake's /etc/exports (scripts/e2e/rootfs.sh).
func (r *run) assertNFS(ctx context.Context) {
	h := r.hosts["hdss7-200"]
	out, err := h.Exec(ctx, "exportfs", "-v")
	if err != nil || !strings.Contains(string(out), "/data/nfs-volume") {
		r.assertFail("exportfs on hdss7-200 lists /data/nfs-volume: %v %s", err, out)
		return
	}
	r.assertOK("hdss7-200's /etc/exports is valid for exportfs and exports /data/nfs-volume (NOT served: no nfsd in this kernel; see scripts/e2e/rootfs.sh)")
}

// secondBoot reboots a converged host and checks firstboot did nothing:
// its unit skipped (the done marker's condition) or not even enabled
// (firstboot's finish step disables it), state.json and the done marker
// byte for byte the same, the plan's units active again.
func (r *run) secondBoot(ctx context.Context, name string) {
	h := r.hosts[name]
	read := func(p string) string {
		out, err := h.Exec(ctx, "sha256sum", p)
		if err != nil {
			return "error: " + err.Error()
		}
		return string(out)
	}
	state1, done1 := read("/var/lib/kubebake/state.json"), read("/var/lib/kubebake/done")
	t0 := time.Now()
	if err := h.Reboot(ctx); err != nil {
		r.assertFail("reboot %s: %v", name, err)
		return
	}
	// A TCG guest's reboot is a poweroff (~95 s) and a boot (~60 s).
	// hdss7-12's etcd waits for a peer that reboots at the same time.
	wait := 2 * time.Minute
	if r.nodes[name] != nil || (name == "hdss7-12" && withNodes()) {
		wait = r.budget(12 * time.Minute)
	}
	if err := h.WaitFirstboot(ctx, wait); err != nil {
		r.assertFail("second boot of %s: %v", name, err)
		return
	}
	u, err := bed.ShowUnit(ctx, h, "kubebake-firstboot.service", "ActiveState", "UnitFileState", "ConditionResult", "ExecMainStartTimestampMonotonic")
	if err != nil {
		r.assertFail("second boot of %s: %v", name, err)
		return
	}
	state2, done2 := read("/var/lib/kubebake/state.json"), read("/var/lib/kubebake/done")
	switch {
	case u["ExecMainStartTimestampMonotonic"] != "0":
		r.assertFail("second boot of %s: firstboot ran again (%v)", name, u)
	case state1 != state2 || done1 != done2:
		r.assertFail("second boot of %s: state changed:\n%s%s→\n%s%s", name, state1, done1, state2, done2)
	default:
		r.assertOK("second boot of %s is a no-op for firstboot (unit %s, condition %s, never started; state.json and done marker unchanged), up again in %.1fs", name, u["UnitFileState"], orDash(u["ConditionResult"]), time.Since(t0).Seconds())
	}
	// The plan's units came back on their own (enabled by firstboot).
	units := map[string][]string{
		"hdss7-11": {"named.service", "nginx.service", "keepalived.service"}, "hdss7-200": {"nfs-server.service"},
		"hdss7-12": {"nginx.service", "keepalived.service", "etcd.service"},
		"hdss7-21": {"etcd.service", "kube-apiserver.service", "kubelet.service", "kube-proxy.service", "flanneld.service"},
		"hdss7-22": {"etcd.service", "kube-apiserver.service", "kubelet.service", "kube-proxy.service", "flanneld.service"},
	}[name]
	for _, unit := range units {
		// etcd waits for its peers, which reboot at the same time.
		if err := waitUnit(ctx, h, unit, max(wait/2, time.Minute), "active"); err != nil {
			r.assertFail("second boot of %s: %s: %v", name, unit, err)
		}
	}
	if len(units) > 0 {
		r.assertOK("second boot of %s: %s active again", name, strings.Join(units, ", "))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// setupNodes makes the QEMU hosts (hdss7-21, hdss7-22): the guest image
// (cached), a tap on the bridge each, and starts booting both at once in
// the background (Boot returns once the guest agent answers, minutes under
// TCG); nodesPhases waits for them. Their dirs stay short: the guest
// agent's socket path must fit in 107 bytes.
func (r *run) setupNodes(ctx context.Context) {
	t := r.t
	var guest string
	r.phase("qemu guest image", func() {
		var err error
		if guest, err = qemuhost.BuildGuest(ctx, repoRoot); err != nil {
			t.Fatal(err)
		}
	})
	for _, name := range nodeHosts {
		tap := "kbtap" + strings.TrimPrefix(name, "hdss7-")
		if err := r.net.AddTap(ctx, tap); err != nil {
			t.Fatal(err)
		}
		c, err := qemuhost.FromSpec(r.spec, name, r.net, tap, guest, filepath.Join(r.cache, "q", strings.TrimPrefix(name, "hdss7-")))
		if err != nil {
			t.Fatal(err)
		}
		c.Logf = t.Logf
		c.InstallOnHost = true
		h, err := qemuhost.New(c)
		if err != nil {
			t.Fatal(err)
		}
		r.nodes[name] = h
		r.hosts[name] = h
		r.order = append(r.order, name)
	}
	r.nodeBoot = make(chan error, len(nodeHosts))
	r.nodeBootStart = time.Now()
	for _, name := range nodeHosts {
		go func() {
			err := r.nodes[name].Boot(ctx, filepath.Join(r.env["KUBEBAKE_E2E_OUT"], name+".tar.gz"))
			if err != nil {
				err = fmt.Errorf("boot %s: %w", name, err)
			} else {
				err = fmt.Errorf("ok %s %.0f", name, time.Since(r.nodes[name].Started()).Seconds())
			}
			r.nodeBoot <- err
		}()
	}
}

// budget is d, or less: what is left before go test's deadline minus the
// time the cleanups need (logs from the guests, Stop), whichever is less.
func (r *run) budget(d time.Duration) time.Duration {
	if dl, ok := r.t.Deadline(); ok {
		if left := time.Until(dl) - 6*time.Minute; left < d {
			d = max(left, 10*time.Second)
		}
	}
	return d
}

// since is the time since QEMU started for a node host.
func (r *run) since(name string) string {
	return fmt.Sprintf("+%.0fs after qemu start", time.Since(r.nodes[name].Started()).Seconds())
}

// nodesPhases: the QEMU nodes from their boot to the end of their
// firstboot, each step an assertion with its time after QEMU started.
func (r *run) nodesPhases(ctx context.Context) {
	t := r.t
	r.phase("boot qemu nodes (guest agent)", func() {
		for range nodeHosts {
			// "ok <name> <seconds>" or the boot's error.
			err := <-r.nodeBoot
			var name string
			var secs float64
			if n, _ := fmt.Sscanf(err.Error(), "ok %s %f", &name, &secs); n != 2 {
				t.Fatal(err)
			}
			r.assertOK("%s booted: guest agent answered +%.0fs after qemu start (qemu started %.0fs after its boot began: disks, bundle installed on the host)",
				name, secs, r.nodes[name].Started().Sub(r.nodeBootStart).Seconds())
		}
	})

	// (1) Both nodes' firstboot reaches etcd (its start job waits for
	// quorum: up to an hour, the plan's start timeout).
	ok := true
	r.phase("qemu nodes: firstboot reaches etcd", func() {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, name := range nodeHosts {
			wg.Go(func() {
				st, err := r.nodes[name].WaitUnit(ctx, "etcd.service", r.budget(25*time.Minute), "activating", "active")
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					ok = false
					r.assertFail("etcd.service on %s starts: %v", name, err)
					return
				}
				r.assertOK("firstboot on %s reached etcd: etcd.service %s, %s", name, st, r.since(name))
			})
		}
		wg.Wait()
	})
	if !ok {
		return
	}

	// (2) etcd quorum: every booted member (hdss7-12 and the booted nodes)
	// healthy, asked from the first node with the apiserver's etcd client
	// certificate. A member that does not boot here (KUBEBAKE_E2E_NODES)
	// is listed unhealthy and makes etcdctl exit 1: quorum is what counts.
	first := r.nodes[nodeHosts[0]]
	members := []string{r.hosts["hdss7-12"].IP()}
	for _, n := range nodeHosts {
		members = append(members, r.nodes[n].IP())
	}
	etcdctl := []string{"/opt/etcd/bin/etcdctl", "--endpoints=https://" + first.IP() + ":2379",
		"--cacert=/opt/etcd/certs/ca.pem", "--cert=/opt/kubernetes/certs/apiserver-etcd-client.pem",
		"--key=/opt/kubernetes/certs/apiserver-etcd-client-key.pem", "--command-timeout=20s",
		"endpoint", "health", "--cluster"}
	r.phase("etcd quorum", func() {
		var out []byte
		err := retry(r.budget(20*time.Minute), func() error {
			ectx, cancel := context.WithTimeout(ctx, 90*time.Second)
			defer cancel()
			var err error
			out, err = first.Exec(ectx, etcdctl...)
			var missing []string
			for _, ip := range members {
				if !strings.Contains(string(out), "https://"+ip+":2379 is healthy") {
					missing = append(missing, ip)
				}
			}
			switch {
			case len(missing) > 0:
				err = fmt.Errorf("not healthy: %s (%v)", strings.Join(missing, ", "), err)
			case len(members) < 3 && len(members) >= 2:
				err = nil // the members that did not boot are reported unhealthy
			}
			if err != nil {
				time.Sleep(10 * time.Second)
			}
			return err
		})
		if err != nil {
			ok = false
			r.assertFail("etcdctl endpoint health --cluster on %s: %v\n%s", first.Name(), err, out)
			return
		}
		r.assertOK("etcd quorum: members %s healthy of 3 (etcdctl endpoint health --cluster on %s), %s:\n%s", strings.Join(members, ", "), first.Name(), r.since(first.Name()), strings.TrimSpace(string(out)))
	})
	if !ok {
		return
	}

	// The kernel modules firstboot loaded for kube-proxy's ipvs mode and
	// the bridge: what puts these hosts in QEMU.
	r.phase("qemu nodes: kernel modules", func() {
		for _, name := range nodeHosts {
			out, err := r.nodes[name].Exec(ctx, "cat", "/proc/modules")
			if err != nil {
				r.assertFail("modules on %s: %v", name, err)
				continue
			}
			var loaded, missing []string
			for _, m := range []string{"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "ip_vs_nq", "br_netfilter", "overlay", "nf_conntrack"} {
				if strings.Contains(string(out), "\n"+m+" ") || strings.HasPrefix(string(out), m+" ") {
					loaded = append(loaded, m)
				} else {
					missing = append(missing, m)
				}
			}
			if len(missing) > 0 {
				r.assertFail("modules on %s: %s not loaded (loaded: %s)", name, strings.Join(missing, " "), strings.Join(loaded, " "))
				continue
			}
			r.assertOK("kernel modules loaded by firstboot on %s (Debian's kernel under QEMU): %s", name, strings.Join(loaded, " "))
		}
	})

	// (3) kube-apiserver /readyz on both masters, with a client certificate
	// of the bundle and the cluster CA.
	r.phase("kube-apiserver readyz on the masters", func() {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, name := range nodeHosts {
			wg.Go(func() {
				h := r.nodes[name]
				var out []byte
				err := retry(r.budget(15*time.Minute), func() error {
					cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
					defer cancel()
					var err error
					out, err = h.Exec(cctx, "curl", "-fsS", "--max-time", "20", "--cacert", "/opt/kubernetes/certs/ca.pem",
						"--cert", "/opt/kubernetes/certs/apiserver-kubelet-client.pem", "--key", "/opt/kubernetes/certs/apiserver-kubelet-client-key.pem",
						"https://"+h.IP()+":6443/readyz")
					if err == nil && strings.TrimSpace(string(out)) != "ok" {
						err = fmt.Errorf("readyz %q", out)
					}
					if err != nil {
						time.Sleep(5 * time.Second)
					}
					return err
				})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					ok = false
					r.assertFail("kube-apiserver /readyz on %s: %v %s", name, err, out)
					return
				}
				r.assertOK("kube-apiserver /readyz ok on %s (TLS verified with the cluster CA), %s", name, r.since(name))
			})
		}
		wg.Wait()
	})
	if !ok {
		return
	}

	// (4) kubectl through the VIP, the controller-manager and scheduler,
	// the nodes Ready: they need the node's health gates, not its add-ons.
	if !r.controlPlanePhases(ctx) {
		return
	}

	if !withCluster() {
		r.t.Logf("SKIP: the workloads on the QEMU nodes (firstboot's add-ons, pods, pod to pod, CoreDNS, Services, ingress, the nodes' second boot): under TCG on this machine's 2 cores they take far past this test's budget and, in issue 7's runs, never got all pods Ready (the guest's load rose past 20 as pods started; the apiserver then timed out TLS handshakes); KUBEBAKE_E2E_CLUSTER=1 runs them")
		return
	}

	// (5) The nodes' firstboot finishes: its health gates, the add-ons
	// (applied from hdss7-21).
	r.phase("qemu nodes: firstboot done", func() {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, name := range nodeHosts {
			wg.Go(func() {
				err := r.nodes[name].WaitFirstboot(ctx, r.budget(25*time.Minute))
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					ok = false
					r.assertFail("firstboot on %s: %v", name, err)
					return
				}
				r.assertOK("firstboot converged on %s (health gates passed%s), %s", name,
					map[bool]string{true: ", add-ons applied", false: ""}[name == "hdss7-21"], r.since(name))
			})
		}
		wg.Wait()
	})

	if !ok {
		return
	}
	r.clusterOK = r.workloadPhases(ctx)
}
