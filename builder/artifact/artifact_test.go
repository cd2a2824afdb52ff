package artifact

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubebake/kubebake/builder/spec"
)

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func write(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func tgz(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(data)
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

func TestResolve(t *testing.T) {
	dir, cache := t.TempDir(), t.TempDir()
	kubelet := []byte("#!/bin/sh\necho kubelet\n")
	write(t, filepath.Join(dir, "kubelet", "kubelet"), kubelet)
	write(t, filepath.Join(dir, "kubelet", "kubelet.sha256"), []byte(sum(kubelet)))

	etcd := []byte("etcd-binary")
	arch := tgz(t, map[string][]byte{"etcd-v3.6.16-linux-amd64/etcd": etcd, "etcd-v3.6.16-linux-amd64/etcdctl": []byte("ctl"), "etcd-v3.6.16-linux-amd64/README.md": []byte("x")})
	write(t, filepath.Join(dir, "etcd", "etcd-v3.6.16-linux-amd64.tar.gz"), arch)
	write(t, filepath.Join(dir, "etcd", "SHA256SUMS"), []byte(sum([]byte("other"))+"  etcd-v3.6.16-linux-arm64.tar.gz\n"+sum(arch)+"  etcd-v3.6.16-linux-amd64.tar.gz\n"))

	runc := []byte("runc")
	runcPath := filepath.Join(t.TempDir(), "runc.amd64")
	write(t, runcPath, runc)

	s := &spec.Spec{Artifacts: []spec.Artifact{
		{Name: "kubelet", URL: "https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubelet", SHA256URL: "https://dl.k8s.io/release/v1.37.2/bin/linux/amd64/kubelet.sha256"},
		{Name: "etcd", URL: "https://github.com/etcd-io/etcd/releases/download/v3.6.16/etcd-v3.6.16-linux-amd64.tar.gz", SHA256URL: "https://github.com/etcd-io/etcd/releases/download/v3.6.16/SHA256SUMS",
			Extract: map[string]string{"etcd-v3.6.16-linux-amd64/etcd": "etcd", "./etcd-v3.6.16-linux-amd64/etcdctl": "etcdctl"}},
		{Name: "runc", URL: "file://" + runcPath, SHA256: sum(runc)},
	}}
	set, err := Resolve(context.Background(), s, dir, cache)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(set.Names(), ","); got != "etcd/etcd,etcd/etcdctl,kubelet/kubelet,runc/runc" {
		t.Fatalf("names = %s", got)
	}
	if set["etcd/etcd"].SHA256 != sum(etcd) || set["kubelet/kubelet"].SHA256 != sum(kubelet) || set["runc/runc"].SHA256 != sum(runc) || filepath.Dir(set["runc/runc"].Path) != filepath.Join(cache, "sha256") {
		t.Fatalf("set = %+v", set)
	}
	if b, _ := os.ReadFile(set["etcd/etcd"].Path); !bytes.Equal(b, etcd) {
		t.Fatal("unpacked etcd differs")
	}

	// A tampered binary is refused, naming the artifact and both digests
	// (into a fresh store: one that holds the verified bytes already ships
	// those, whatever the directory now holds).
	write(t, filepath.Join(dir, "kubelet", "kubelet"), []byte("evil"))
	_, err = Resolve(context.Background(), s, dir, t.TempDir())
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "artifact kubelet:") || !strings.Contains(err.Error(), sum([]byte("evil"))) {
		t.Fatalf("tampered: %v", err)
	}
}

func TestResolveErrors(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a", "a"), []byte("a"))
	write(t, filepath.Join(dir, "a", "SUMS"), []byte(sum([]byte("a"))+"  other-file\n"))
	write(t, filepath.Join(dir, "a", "v1"), []byte(`{"assets":[{"name":"b","digest":"sha256:`+sum([]byte("b"))+`"}]}`))
	write(t, filepath.Join(dir, "b", "b.tgz"), tgz(t, map[string][]byte{"x": []byte("x")}))
	for _, tc := range []struct {
		name string
		a    spec.Artifact
		want string
	}{
		{"missing file", spec.Artifact{Name: "m", URL: "https://x/m", SHA256: sum(nil)}, "download https://x/m there"},
		{"no checksum", spec.Artifact{Name: "a", URL: "https://x/a"}, "no sha256 and no sha256URL"},
		{"checksum file lacks entry", spec.Artifact{Name: "a", URL: "https://x/a", SHA256URL: "https://x/SUMS"}, "no sha256 for a in it"},
		{"github release without the asset", spec.Artifact{Name: "a", URL: "https://x/a", SHA256URL: "https://api.github.com/repos/o/r/releases/tags/v1"}, "no sha256 digest for asset a"},
		{"member missing", spec.Artifact{Name: "b", URL: "https://x/b.tgz", SHA256: sum(tgz(t, map[string][]byte{"x": []byte("x")})), Extract: map[string]string{"y": "y"}}, "has no regular file y"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Resolve(context.Background(), &spec.Spec{Artifacts: []spec.Artifact{tc.a}}, dir, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestGitHubReleaseDigest(t *testing.T) {
	dir := t.TempDir()
	bin := []byte("flanneld")
	write(t, filepath.Join(dir, "flannel", "flanneld-amd64"), bin)
	write(t, filepath.Join(dir, "flannel", "v0.28.10"), []byte(`{"tag_name":"v0.28.10","assets":[{"name":"flanneld-arm64","digest":"sha256:`+sum([]byte("x"))+`"},{"name":"flanneld-amd64","digest":"sha256:`+sum(bin)+`"}]}`))
	s := &spec.Spec{Artifacts: []spec.Artifact{{Name: "flannel", URL: "https://github.com/flannel-io/flannel/releases/download/v0.28.10/flanneld-amd64",
		SHA256URL: "https://api.github.com/repos/flannel-io/flannel/releases/tags/v0.28.10"}}}
	set, err := Resolve(context.Background(), s, dir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if set["flannel/flannel"].SHA256 != sum(bin) {
		t.Fatalf("set = %+v", set)
	}
}
