package lock

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), FileName)
	if l, err := Read(p); l != nil || err != nil {
		t.Fatalf("missing lock: %v %v", l, err)
	}
	in := &Lock{
		Artifacts: []Artifact{{Name: "kubelet", URL: "https://dl.k8s.io/k", SHA256: strings.Repeat("b", 64), Size: 2}, {Name: "etcd", URL: "https://x/e", SHA256: strings.Repeat("a", 64), Size: 1}},
		Images:    []Image{{Name: "pause", Ref: "registry.k8s.io/pause:3.10", Digest: "sha256:" + strings.Repeat("c", 64), Platforms: map[string]string{"linux/amd64": "sha256:" + strings.Repeat("d", 64)}}},
	}
	if err := Write(p, in); err != nil {
		t.Fatal(err)
	}
	out, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if out.Artifacts[0].Name != "etcd" || out.Images[0].Platforms["linux/amd64"] == "" {
		t.Fatalf("read back %+v", out)
	}
	d1, _ := in.Digest()
	d2, _ := out.Digest()
	if d1 != d2 || !strings.HasPrefix(d1, "sha256:") {
		t.Fatalf("digests %s %s", d1, d2)
	}
}

func TestReadRejects(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"future version": "version: 9\n",
		"unknown field":  "version: 1\nextra: 1\n",
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			os.WriteFile(p, []byte(body), 0o644)
			if _, err := Read(p); err == nil || !strings.Contains(err.Error(), "kubebake pull") {
				t.Fatalf("err = %v", err)
			}
		})
	}
	if PathFor("/a/b/bundle-spec.yaml") != "/a/b/bundle-spec.lock" || PathFor("bundle-spec.yaml") != FileName {
		t.Fatal("PathFor")
	}
}
