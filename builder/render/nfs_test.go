package render

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// exportfsIn runs nfs-kernel-server's `exportfs -ra` on exports in a
// private mount namespace, with exports bind-mounted over /etc/exports
// (and an empty /etc/exports.d) and a scratch /var/lib/nfs, so it parses
// the file and writes its export table there without touching the
// machine's NFS server. It returns exportfs's output and the table.
func exportfsIn(t *testing.T, exports []byte) (out, etab string, err error) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("exportfs check needs root (CI runs as root)")
		}
		t.Skip("exportfs check needs root: it runs in a private mount namespace")
	}
	exportfs := needValidator(t, "exportfs", "nfs-kernel-server")
	unshare := needValidator(t, "unshare", "util-linux")
	for _, p := range []string{"/etc/exports", "/var/lib/nfs"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%v (nfs-kernel-server installs it)", err)
		}
	}
	dir := t.TempDir()
	file, lib, empty := filepath.Join(dir, "exports"), filepath.Join(dir, "lib"), filepath.Join(dir, "exports.d")
	for _, d := range []string{lib, empty} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(file, exports, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `set -e
mount --make-rprivate /
mount --bind "$1" /etc/exports
mount --bind "$2" /var/lib/nfs
if [ -d /etc/exports.d ]; then mount --bind "$3" /etc/exports.d; fi
exec "$4" -ra`
	out, err = run(t, unshare, "--mount", "sh", "-c", script, "sh", file, lib, empty, exportfs)
	b, _ := os.ReadFile(filepath.Join(lib, "etab"))
	return out, string(b), err
}

// TestExportsReal: exportfs from nfs-kernel-server (nfs-utils 2.6) parses
// the ops host's /etc/exports without a warning and exports the directory
// to the node network with the seed's options. The export directory is the
// one substitution: /data/nfs-volume becomes a directory of the test's
// (exportfs skips an export whose directory does not exist).
func TestExportsReal(t *testing.T) {
	vol := filepath.Join(t.TempDir(), "nfs-volume")
	if err := os.Mkdir(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	exports := substitute(t, ExportsFile, renderFile(t, seedSpec(), "hdss7-200", ExportsFile),
		[][2]string{{NFSExportDir + " ", vol + " "}})
	out, etab, err := exportfsIn(t, exports)
	t.Logf("exportfs -ra:\n%s\netab:\n%s", out, etab)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("exportfs -ra: %v\n%s", err, out)
	}
	f := strings.Fields(etab)
	if len(f) != 2 || f[0] != vol || !strings.HasPrefix(f[1], "10.4.7.0/24(") {
		t.Fatalf("etab = %q, want %s exported to 10.4.7.0/24", etab, vol)
	}
	for _, opt := range []string{"rw", "sync", "no_root_squash", "no_subtree_check"} {
		if !strings.Contains(","+strings.Trim(f[1][len("10.4.7.0/24"):], "()")+",", ","+opt+",") {
			t.Errorf("etab options %s lack %s", f[1], opt)
		}
	}
}

// TestExportfsCatches: the harness fails on what exportfs refuses.
func TestExportfsCatches(t *testing.T) {
	vol := t.TempDir()
	for _, bad := range []string{
		vol + " 10.4.7.0/24(rw,no_root_sqash)\n",
		"/nonexistent/kubebake 10.4.7.0/24(rw)\n",
	} {
		out, _, err := exportfsIn(t, []byte(bad))
		if err == nil && strings.TrimSpace(out) == "" {
			t.Errorf("exportfs accepted %q silently", bad)
		}
	}
}

// TestNFSExample decodes the example manifest strictly into the
// Kubernetes API types (an unknown or misplaced field is an error) and
// checks that it uses the ops host's export.
func TestNFSExample(t *testing.T) {
	s := seedSpec()
	b := renderFile(t, s, "hdss7-200", NFSExample)
	docs := bytes.Split(b, []byte("\n---\n"))
	if len(docs) != 3 {
		t.Fatalf("%d documents, want PersistentVolume, PersistentVolumeClaim, Pod", len(docs))
	}
	var pv corev1.PersistentVolume
	var pvc corev1.PersistentVolumeClaim
	var pod corev1.Pod
	for i, obj := range []any{&pv, &pvc, &pod} {
		if err := yaml.UnmarshalStrict(docs[i], obj); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
	}
	if pv.Kind != "PersistentVolume" || pvc.Kind != "PersistentVolumeClaim" || pod.Kind != "Pod" {
		t.Fatalf("kinds %s, %s, %s", pv.Kind, pvc.Kind, pod.Kind)
	}
	if n := pv.Spec.NFS; n == nil || n.Server != "10.4.7.200" || n.Path != NFSExportDir {
		t.Errorf("PV nfs = %+v, want 10.4.7.200:%s", n, NFSExportDir)
	}
	if pvc.Spec.VolumeName != pv.Name || pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "" {
		t.Errorf("PVC does not bind the PV statically: %+v", pvc.Spec)
	}
	if len(pod.Spec.Containers) != 1 || pod.Spec.Containers[0].Image != "harbor.od.com/public/pause:3.10" {
		t.Errorf("pod containers = %+v, want the preloaded pause image from Harbor", pod.Spec.Containers)
	}
	var claim, inline bool
	for _, v := range pod.Spec.Volumes {
		claim = claim || v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == pvc.Name
		inline = inline || v.NFS != nil && v.NFS.Server == "10.4.7.200" && v.NFS.Path == NFSExportDir
	}
	if !claim || !inline {
		t.Errorf("pod volumes %+v: want the claim and the export inline", pod.Spec.Volumes)
	}
}
