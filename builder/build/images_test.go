package build

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/kubebake/kubebake/builder/bake"
)

// TestImageEntriesMakeAValidLayout puts a plain image and a multi-arch
// index into a store layout, ships a subset in a bundle, unpacks it with GNU
// tar and validates the result with go-containerregistry.
func TestImageEntriesMakeAValidLayout(t *testing.T) {
	store := filepath.Join(t.TempDir(), "images")
	lp, err := layout.Write(store, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	pause, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	amd, arm := platformImage(t, "amd64"), platformImage(t, "arm64")
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	other, _ := random.Image(256, 1) // in the store, not shipped
	for _, add := range []func() error{
		func() error { return lp.AppendImage(pause) },
		func() error { return lp.AppendIndex(idx) },
		func() error { return lp.AppendImage(other) },
	} {
		if err := add(); err != nil {
			t.Fatal(err)
		}
	}
	pd, _ := pause.Digest()
	id, _ := idx.Digest()
	entries, err := imageEntries(store, []layoutImage{
		{Ref: "harbor.od.com/public/pause:3.10", Digest: pd.String()},
		{Ref: "harbor.od.com/public/coredns/coredns:v1.15.0", Digest: id.String()},
	})
	if err != nil {
		t.Fatal(err)
	}
	od, _ := other.Digest()
	for _, e := range entries {
		if e.Name == "images/blobs/sha256/"+od.Hex {
			t.Fatal("an image the host does not run was shipped")
		}
	}

	out := t.TempDir()
	res, err := bake.Write(context.Background(), out, []bake.Bundle{{Name: "h", Entries: entries}}, bake.WithMTime(time.Unix(1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if o, err := exec.Command("tar", "xzf", res[0].Path, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, o)
	}
	got, err := layout.ImageIndexFromPath(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(got); err != nil {
		t.Fatalf("shipped layout does not validate: %v", err)
	}
	m, _ := got.IndexManifest()
	if len(m.Manifests) != 2 || m.Manifests[0].Annotations[refNameAnnotation] != "harbor.od.com/public/coredns/coredns:v1.15.0" {
		t.Fatalf("index.json = %+v", m.Manifests)
	}
}

func TestImageEntriesMissingBlob(t *testing.T) {
	store := filepath.Join(t.TempDir(), "images")
	if _, err := layout.Write(store, empty.Index); err != nil {
		t.Fatal(err)
	}
	_, err := imageEntries(store, []layoutImage{{Ref: "x", Digest: "sha256:" + "ab0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"[:64]}})
	if err == nil {
		t.Fatal("want an error for a manifest missing from the store")
	}
}

// platformImage is a random image whose config names its platform, as an
// index entry's must.
func platformImage(t *testing.T, arch string) v1.Image {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}
