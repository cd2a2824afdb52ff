package host

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeCtr writes a ctr stand-in into dir that appends its arguments to
// dir/args, saves stdin to dir/stdin.tar on "images import", prints
// dir/list on "images ls", and exits with dir/exit's code when present.
func fakeCtr(t *testing.T, dir string) string {
	t.Helper()
	script := `#!/bin/sh
d=$(dirname "$0")
printf "%s\n" "$*" >> "$d/args"
if [ -f "$d/exit" ]; then echo "ctr: connection refused" >&2; exit $(cat "$d/exit"); fi
case "$3 $4" in
"images ls") cat "$d/list" ;;
"images import") cat > "$d/stdin.tar" ;;
esac
`
	p := filepath.Join(dir, "ctr")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// ociLayout writes a one-image OCI layout (config, one layer, manifest,
// index annotated with io.containerd.image.name) and returns the manifest
// digest.
func ociLayout(t *testing.T, dir, name string) string {
	t.Helper()
	blob := func(b []byte) string {
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		p := filepath.Join(dir, "blobs", "sha256", h)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return "sha256:" + h
	}
	desc := func(mt string, b []byte) map[string]any {
		return map[string]any{"mediaType": mt, "digest": blob(b), "size": len(b)}
	}
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	config := mustJSON(map[string]any{"architecture": "amd64", "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": []string{}}})
	manifest := mustJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        desc("application/vnd.oci.image.config.v1+json", config),
		"layers":        []any{desc("application/vnd.oci.image.layer.v1.tar", []byte("not really a layer"))},
	})
	md := desc("application/vnd.oci.image.manifest.v1+json", manifest)
	md["annotations"] = map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "3.10"}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), mustJSON(map[string]any{"schemaVersion": 2, "manifests": []any{md}}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return md["digest"].(string)
}

func TestImagesImportStreamsOCILayoutTar(t *testing.T) {
	bin, layout := t.TempDir(), t.TempDir()
	const name = "harbor.od.com/public/pause:3.10"
	ociLayout(t, layout, name)
	img := NewImages(fakeCtr(t, bin))
	if err := img.Import(context.Background(), layout); err != nil {
		t.Fatal(err)
	}
	args, _ := os.ReadFile(filepath.Join(bin, "args"))
	if got, want := strings.TrimSpace(string(args)), "-n k8s.io images import -"; got != want {
		t.Errorf("ctr args %q, want %q", got, want)
	}
	stream, err := os.ReadFile(filepath.Join(bin, "stdin.tar"))
	if err != nil {
		t.Fatal(err)
	}
	// Read the stream back: every file of the layout, same bytes, blobs
	// named by their sha256, the image name annotation intact.
	tr := tar.NewReader(bytes.NewReader(stream))
	files := map[string][]byte{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not a valid tar: %v", err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || hdr.ModTime.Unix() != 0 || strings.HasPrefix(hdr.Name, "/") || strings.Contains(hdr.Name, "..") {
			t.Errorf("entry %s: uid %d gid %d mtime %v", hdr.Name, hdr.Uid, hdr.Gid, hdr.ModTime)
		}
		if hdr.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			files[hdr.Name] = b
		}
	}
	for _, want := range []string{"oci-layout", "index.json"} {
		if _, ok := files[want]; !ok {
			t.Errorf("tar lacks %s", want)
		}
	}
	blobs := 0
	for n, b := range files {
		if h, ok := strings.CutPrefix(n, "blobs/sha256/"); ok {
			blobs++
			sum := sha256.Sum256(b)
			if hex.EncodeToString(sum[:]) != h {
				t.Errorf("blob %s: content does not match its digest", n)
			}
		}
	}
	if blobs != 3 {
		t.Errorf("%d blobs in the tar, want 3 (config, layer, manifest)", blobs)
	}
	var idx struct {
		Manifests []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &idx); err != nil || len(idx.Manifests) != 1 || idx.Manifests[0].Annotations["io.containerd.image.name"] != name {
		t.Errorf("index.json in the tar: %s (%v)", files["index.json"], err)
	}

	// The stream depends only on the layout's content.
	var again bytes.Buffer
	if err := writeLayoutTar(&again, layout); err != nil || !bytes.Equal(again.Bytes(), stream) {
		t.Errorf("second tar differs from the first (err %v)", err)
	}
}

func TestImagesImportRefusesNonLayouts(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{"no index.json", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "oci-layout"), []byte("{}"), 0o644)
		}},
		{"symlink inside", func(t *testing.T, dir string) {
			ociLayout(t, dir, "x:1")
			if err := os.Symlink("/etc/shadow", filepath.Join(dir, "blobs", "sha256", "evil")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin, layout := t.TempDir(), t.TempDir()
			tc.setup(t, layout)
			err := NewImages(fakeCtr(t, bin)).Import(context.Background(), layout)
			if !errors.Is(err, ErrLayout) {
				t.Fatalf("Import: %v, want ErrLayout", err)
			}
		})
	}
}

func TestImagesPresent(t *testing.T) {
	bin := t.TempDir()
	ctr := fakeCtr(t, bin)
	list := `REF                                 TYPE                                       DIGEST                                                                  SIZE      PLATFORMS   LABELS
harbor.od.com/public/pause:3.10     application/vnd.oci.image.manifest.v1+json sha256:aaaa                                                             299.0 KiB linux/amd64 -
harbor.od.com/public/coredns:v1.15  application/vnd.oci.image.index.v1+json    sha256:bbbb                                                             20.1 MiB  linux/amd64 -
`
	if err := os.WriteFile(filepath.Join(bin, "list"), []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	img := NewImages(ctr)
	for _, tc := range []struct {
		name, ref, digest string
		want              bool
	}{
		{"ref and digest", "harbor.od.com/public/pause:3.10", "sha256:aaaa", true},
		{"ref only", "harbor.od.com/public/coredns:v1.15", "", true},
		{"other digest", "harbor.od.com/public/pause:3.10", "sha256:cccc", false},
		{"absent", "harbor.od.com/public/nginx:1", "", false},
		{"header is no image", "REF", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := img.Present(context.Background(), tc.ref, tc.digest)
			if err != nil || got != tc.want {
				t.Errorf("Present = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	args, _ := os.ReadFile(filepath.Join(bin, "args"))
	if !strings.HasPrefix(string(args), "-n k8s.io images ls\n") {
		t.Errorf("ctr args %q", args)
	}

	// containerd not running: an error with ctr's message, not "absent".
	os.WriteFile(filepath.Join(bin, "exit"), []byte("1"), 0o644)
	if _, err := img.Present(context.Background(), "harbor.od.com/public/pause:3.10", ""); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Present with containerd down: %v", err)
	}
}
