package qemuhost

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/e2e/bed"
	"github.com/kubebake/kubebake/firstboot/plan"
	"github.com/kubebake/kubebake/internal/qemutest"
)

const (
	repoRoot = "../.."
	hostName = "hdss7-21"
)

// gate runs the test only as root with KUBEBAKE_VMTEST=1 or KUBEBAKE_E2E=1
// (not merely under CI: the end-to-end driver boots these guests; this test
// is the guest machinery alone).
func gate(t *testing.T) {
	t.Helper()
	if os.Getenv("KUBEBAKE_VMTEST") != "1" && os.Getenv("KUBEBAKE_E2E") != "1" {
		t.Skip("QEMU host test: set KUBEBAKE_VMTEST=1 or KUBEBAKE_E2E=1 to run it (root, ~10 min, qemu-system-x86 mmdebstrap linux-image-amd64)")
	}
	if os.Geteuid() != 0 {
		t.Skip("QEMU host test: needs root (netns, tap, mmdebstrap)")
	}
	for _, c := range []string{"qemu-system-x86_64", "ip", "mkfs.ext4", "cp"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("QEMU host test: %s missing", c)
		}
	}
}

// TestNodeGuest boots one etcd + master + node host (hdss7-21) from its real
// bundle, alone: the modules load, the bundle's containerd runs, etcd starts
// and waits for its peers, and firstboot waits there (the start job of a
// Type=notify etcd without quorum). It shows the timeline, QEMU's memory,
// Exec, Logs and a Reboot onto the same root disk.
func TestNodeGuest(t *testing.T) {
	gate(t)
	ctx := context.Background()
	work := t.TempDir()
	keep := qemutest.NewKeeper(t, "kubebake-qemuhost")

	t0 := time.Now()
	guest, err := BuildGuest(ctx, repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("guest image %s ready in %.1fs", guest, time.Since(t0).Seconds())

	bundle := nodeBundle(t)
	m := manifest(t, bundle)
	t.Logf("bundle %s: containerd %s, runc %s, etcd %s, kubernetes %s", bundle, m.Versions["containerd"], m.Versions["runc"], m.Versions["etcd"], m.Versions["kubernetes"])

	s, rep, err := spec.Load(filepath.Join(repoRoot, "bundle-spec.yaml"))
	if err != nil || rep.IsFatal() {
		t.Fatalf("bundle-spec.yaml: %v\n%s", err, rep)
	}
	nw := testNetwork(t, s.Cluster.NodeNetwork, s.Cluster.Gateway)
	tap := addTap(t, nw, "kbtap21")
	c, err := FromSpec(s, hostName, nw, tap, guest, filepath.Join(work, hostName))
	if err != nil {
		t.Fatal(err)
	}
	c.Logf = t.Logf
	c.BootTimeout = qemutest.BootTimeout(t, DefaultBootTimeout)
	// KUBEBAKE_QEMUHOST_INSTALL_ON_HOST=1: kickstart's %post on this
	// machine (Config.InstallOnHost) instead of the guest's install unit.
	c.InstallOnHost = os.Getenv("KUBEBAKE_QEMUHOST_INSTALL_ON_HOST") == "1"
	h, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 2; i++ {
			if err := h.Stop(); err != nil {
				t.Errorf("Stop %d: %v", i+1, err)
			}
		}
		if h.PID() != 0 {
			t.Error("QEMU still running after Stop")
		}
	})
	logs := filepath.Join(work, "logs")
	t.Cleanup(func() {
		// Before Stop (cleanups run last-in first-out): the guest still runs.
		if t.Failed() || os.Getenv("KUBEBAKE_VMTEST_KEEP") == "1" {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			if err := h.Logs(ctx, logs); err != nil {
				t.Logf("logs: %v", err)
			}
			files, _ := filepath.Glob(filepath.Join(logs, "*"))
			for _, f := range files {
				keep.Add(filepath.Base(f), f)
			}
		}
	})

	if err := h.Boot(ctx, bundle); err != nil {
		t.Fatal(err)
	}
	agentUp := time.Since(h.Started())

	// The timeline, polled from the host side: when the bundle is
	// installed, firstboot starts, each of the bundle's units becomes
	// active (or activating), until etcd has been waiting for its peers a
	// while — or firstboot ends.
	units := []string{"kubebake-e2e-install", "kubebake-firstboot", "kubebake-network", "containerd", "etcd",
		"flannel-netconf", "flanneld", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"}
	seen := map[string]string{}
	var maxRSS int64
	var etcdWaiting time.Time
	hold := 45 * time.Second
	if os.Getenv("KUBEBAKE_QEMUHOST_UNTIL_FAIL") == "1" { // wait for firstboot's own verdict (its start job gives up after 5 min)
		hold = 10 * time.Minute
	}
	deadline := time.Now().Add(qemutest.BootTimeout(t, 12*time.Minute))
	script := "for u in " + strings.Join(units, " ") + "; do echo \"$u $(systemctl show -P ActiveState $u.service)\"; done"
	var fb FirstbootState
	for {
		if rss := h.RSS(); rss > maxRSS {
			maxRSS = rss
		}
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		out, err := h.Exec(pctx, "/bin/sh", "-c", script)
		if err == nil {
			fb, err = h.FirstbootState(pctx)
		}
		cancel()
		if err != nil {
			t.Fatalf("poll: %v\n%s", err, out)
		}
		el := time.Since(h.Started())
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			u, st, _ := strings.Cut(l, " ")
			if st != seen[u] && st != "inactive" {
				t.Logf("+%5.1fs %s %s", el.Seconds(), u, st)
			}
			seen[u] = st
		}
		if (seen["etcd"] == "activating" || seen["etcd"] == "active") && etcdWaiting.IsZero() {
			etcdWaiting = time.Now()
		}
		if fb.Done || fb.ActiveState == "failed" || seen["kubebake-e2e-install"] == "failed" {
			break
		}
		if !etcdWaiting.IsZero() && time.Since(etcdWaiting) > hold {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd not started %s after qemu started; firstboot %+v", time.Since(h.Started()), fb)
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("firstboot: %s/%s status %q, done %v; its last journal line: %s", fb.ActiveState, fb.SubState, fb.ExecMainStatus, fb.Done, fb.Last)

	show := func(what string, argv ...string) string {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		out, err := h.Exec(c, argv...)
		t.Logf("%s:\n%s(err %v)", what, out, err)
		return string(out)
	}
	lsmod := show("modules (lsmod)", "/bin/sh", "-c", "lsmod | grep -E '^(ip_vs[a-z_]*|nf_conntrack|br_netfilter|overlay|ip_set[a-z_]*|xt_set|veth|bridge) ' | sort")
	for _, mod := range []string{"ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "ip_vs_nq", "nf_conntrack", "br_netfilter", "overlay"} {
		if !strings.Contains(lsmod, mod+" ") {
			t.Errorf("module %s not loaded", mod)
		}
	}
	ver := show("containerd", "/bin/sh", "-c", "systemctl is-active containerd; /opt/containerd/bin/containerd --version; /opt/containerd/bin/runc --version | head -1; /opt/containerd/bin/ctr version | sed -n '/Server/,$p'")
	if want := m.Versions["containerd"]; !strings.HasPrefix(ver, "active\n") || !strings.Contains(ver, " "+want+" ") {
		t.Errorf("containerd: want the bundle's %s active, got:\n%s", want, ver)
	}
	show("etcd", "/bin/sh", "-c", "systemctl show etcd.service -p ActiveState,SubState,NRestarts,MainPID; journalctl -u etcd -b -n 8 -o cat --no-pager | cut -c1-300")
	if seen["etcd"] != "activating" && seen["etcd"] != "active" {
		t.Errorf("etcd.service %s, want activating (waiting for its peers) or active", seen["etcd"])
	}
	show("kube-apiserver", "/bin/sh", "-c", "systemctl show kube-apiserver.service -p UnitFileState,ActiveState; curl -sk --max-time 5 https://127.0.0.1:6443/readyz || echo 'no apiserver on :6443'")
	show("firstboot's journal (tail)", "journalctl", "-u", "kubebake-firstboot", "-b", "-n", "12", "-o", "cat", "--no-pager")
	show("identity", "/bin/sh", "-c", "hostname; cat /etc/resolv.conf; ip -4 -br addr show eth0; ip route; ping -c1 -W2 "+nw.Gateway+" | tail -2; cat /proc/cmdline; stat -fc %T /sys/fs/cgroup; ipvsadm -Ln | head -5; iptables --version")

	// Exec's contract: combined output, a non-zero exit is an *ExitError.
	out, err := h.Exec(ctx, "/bin/sh", "-c", "echo out; echo err >&2; exit 3")
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || string(out) != "out\nerr\n" {
		t.Errorf("Exec exit 3: out %q err %v, want \"out\\nerr\\n\" and exit status 3", out, err)
	}

	t.Logf("QEMU RSS: %d MiB max while polling (-m %d); guest agent answered %.1fs after qemu started",
		maxRSS>>20, h.Config().MemoryMB, agentUp.Seconds())
	show("guest memory", "/bin/sh", "-c", "free -m; ps -eo rss,comm --sort=-rss | head -8")

	// A second boot on the same root disk: the bundle is not installed
	// again, the journal keeps the first boot.
	bootID := func() string {
		out, err := h.Exec(ctx, "cat", "/proc/sys/kernel/random/boot_id")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	b1 := bootID()
	r0 := time.Now()
	if err := h.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("reboot: guest agent answers %.1fs after the kill", time.Since(r0).Seconds())
	if b2 := bootID(); b2 == b1 {
		t.Errorf("boot_id unchanged after Reboot (%s)", b1)
	}
	out2 := show("after the reboot", "/bin/sh", "-c", "systemctl show kubebake-e2e-install.service -p ConditionResult,ActiveState; ls /opt/kubebake | head -3; journalctl --list-boots --no-pager | tail -2")
	if !strings.Contains(out2, "ConditionResult=no") {
		t.Errorf("after the reboot the install unit ran again (want ConditionResult=no)")
	}
	ldir := filepath.Join(work, "logs-check")
	lctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := h.Logs(lctx, ldir); err != nil {
		t.Errorf("Logs: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(ldir, "*"))
	var names []string
	for _, f := range files {
		fi, _ := os.Stat(f)
		names = append(names, fmt.Sprintf("%s (%d B)", filepath.Base(f), fi.Size()))
	}
	t.Logf("Logs wrote: %s", strings.Join(names, ", "))
	for _, f := range files {
		keep.Add("check-"+filepath.Base(f), f)
	}
	if b, _ := os.ReadFile(filepath.Join(ldir, "firstboot.log")); !strings.Contains(string(b), "kubebake-e2e-install") {
		t.Errorf("firstboot.log lacks the install unit's lines")
	}
	// Stop (twice: idempotent) runs in the cleanups, after the logs.
}

// nodeBundle is KUBEBAKE_E2E_BUNDLE, or demo/out/hdss7-21.tar.gz (running
// scripts/demo.sh when it is missing: a minute with its caches warm).
func nodeBundle(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("KUBEBAKE_E2E_BUNDLE"); b != "" {
		return b
	}
	b, err := filepath.Abs(filepath.Join(repoRoot, "demo/out", hostName+".tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(b); err == nil {
		return b
	}
	t.Logf("%s missing: running scripts/demo.sh", b)
	cmd := exec.Command("bash", "scripts/demo.sh")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/demo.sh: %v\n%s", err, qemutest.Tail(string(out), 40))
	}
	return b
}

// manifest reads bundle.json from the bundle.
func manifest(t *testing.T, bundle string) *plan.Manifest {
	t.Helper()
	f, err := os.Open(bundle)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s: no %s", bundle, plan.ManifestName)
		}
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Clean(h.Name) == plan.ManifestName {
			var m plan.Manifest
			if err := json.NewDecoder(tr).Decode(&m); err != nil {
				t.Fatal(err)
			}
			return &m
		}
	}
}

// testNetwork is a private network like the driver's (bed.Seed), in a
// namespace of its own so it can run beside the driver.
func testNetwork(t *testing.T, cidr, gw string) bed.Network {
	t.Helper()
	nw := bed.Network{NS: fmt.Sprintf("kbqh%d", os.Getpid()), Bridge: "kbbr0", CIDR: cidr, Gateway: gw}
	if err := nw.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nw.Destroy(); err != nil {
			t.Error(err)
		}
	})
	return nw
}

// addTap adds a tap device to the network's bridge (it goes with the
// namespace).
func addTap(t *testing.T, nw bed.Network, name string) string {
	t.Helper()
	if err := nw.AddTap(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return name
}
