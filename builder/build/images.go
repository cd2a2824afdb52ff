package build

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/kubebake/kubebake/builder/bake"
	"github.com/kubebake/kubebake/builder/image"
	"github.com/kubebake/kubebake/builder/lock"
	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// Annotations naming an image in an OCI layout's index.json: the OCI one,
// and containerd's, which `ctr images import` takes as the image name.
const (
	refNameAnnotation      = "org.opencontainers.image.ref.name"
	ctrImageNameAnnotation = "io.containerd.image.name"
)

// layoutImage is one image to ship in a bundle's images/ layout.
type layoutImage struct {
	Ref    string // the name nodes use (the registry's name for it)
	Digest string // sha256:… of its manifest or index in the store
}

// imageEntries lays out an OCI image layout under images/ holding imgs, with
// every blob read from the store's layout at storeLayout. Blobs are entries
// with a Path, so the bake compresses each shared blob once for all hosts.
func imageEntries(storeLayout string, imgs []layoutImage) ([]bake.Entry, error) {
	if len(imgs) == 0 {
		return nil, nil
	}
	blobs := map[string]int64{} // hex → size
	var descs []v1.Descriptor
	for _, im := range imgs {
		h, err := v1.NewHash(im.Digest)
		if err != nil {
			return nil, fmt.Errorf("image %s: digest %q: %w", im.Ref, im.Digest, err)
		}
		d, err := walkBlob(storeLayout, h, blobs)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w (run kubebake pull)", im.Ref, err)
		}
		d.Annotations = map[string]string{refNameAnnotation: im.Ref, ctrImageNameAnnotation: im.Ref}
		descs = append(descs, d)
	}
	sort.Slice(descs, func(i, j int) bool {
		return descs[i].Annotations[refNameAnnotation] < descs[j].Annotations[refNameAnnotation]
	})
	index, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: descs})
	if err != nil {
		return nil, err
	}
	entries := []bake.Entry{
		dataEntry(plan.ImagesDir+"/oci-layout", 0o644, []byte(`{"imageLayoutVersion":"1.0.0"}`)),
		dataEntry(plan.ImagesDir+"/index.json", 0o644, index),
	}
	var hexes []string
	for hx := range blobs {
		hexes = append(hexes, hx)
	}
	sort.Strings(hexes)
	for _, hx := range hexes {
		entries = append(entries, bake.Entry{
			Name: plan.ImagesDir + "/blobs/sha256/" + hx, Mode: 0o644, SHA256: hx, Size: blobs[hx],
			Path: blobPath(storeLayout, hx),
		})
	}
	return entries, nil
}

func blobPath(layout, hex string) string { return filepath.Join(layout, "blobs", "sha256", hex) }

// walkBlob records the blob h and everything it references (an index's
// manifests, a manifest's config and layers) and returns its descriptor.
func walkBlob(layout string, h v1.Hash, blobs map[string]int64) (v1.Descriptor, error) {
	if h.Algorithm != "sha256" {
		return v1.Descriptor{}, fmt.Errorf("digest %s: only sha256 is supported", h)
	}
	b, err := os.ReadFile(blobPath(layout, h.Hex))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("manifest %s not in the store: %w", h, err)
	}
	blobs[h.Hex] = int64(len(b))
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return v1.Descriptor{}, fmt.Errorf("manifest %s: %w", h, err)
	}
	desc := v1.Descriptor{MediaType: probe.MediaType, Size: int64(len(b)), Digest: h}
	if probe.MediaType.IsIndex() || (probe.MediaType == "" && probe.Manifests != nil) {
		idx, err := v1.ParseIndexManifest(strings.NewReader(string(b)))
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("index %s: %w", h, err)
		}
		if desc.MediaType == "" {
			desc.MediaType = types.OCIImageIndex
		}
		for _, m := range idx.Manifests {
			// A filtered index in the store holds only the kept platforms.
			if _, err := os.Stat(blobPath(layout, m.Digest.Hex)); err != nil {
				continue
			}
			if _, err := walkBlob(layout, m.Digest, blobs); err != nil {
				return v1.Descriptor{}, err
			}
		}
		return desc, nil
	}
	m, err := v1.ParseManifest(strings.NewReader(string(b)))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("manifest %s: %w", h, err)
	}
	if desc.MediaType == "" {
		desc.MediaType = types.OCIManifestSchema1
	}
	for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
		st, err := os.Stat(blobPath(layout, d.Digest.Hex))
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("blob %s of %s not in the store: %w", d.Digest, h, err)
		}
		if st.Size() != d.Size {
			return v1.Descriptor{}, fmt.Errorf("blob %s of %s: %d bytes in the store, manifest says %d", d.Digest, h, st.Size(), d.Size)
		}
		blobs[d.Digest.Hex] = d.Size
	}
	return desc, nil
}

// bootImages are the images a host preloads from its bundle, by spec image
// name and the role that runs them, so a node starts pods before Harbor
// answers. flannel runs as a systemd service here, so its images are
// mirrored but not preloaded; other images of the spec are mirrored only.
var bootImages = map[string]string{
	"pause":   plan.RoleNode,
	"coredns": plan.RoleNode,
	"traefik": plan.RoleNode,
}

// loadImages reads what bundle-spec.lock pins, if a pull wrote one.
func (d *data) loadImages() error {
	path := d.o.lockFile
	if path == "" {
		path = lock.PathFor(d.s.File)
	}
	l, err := lock.Read(path)
	if err != nil || l == nil {
		return err
	}
	if d.lockDigest, err = l.Digest(); err != nil {
		return err
	}
	d.images = l.Images
	return nil
}

// hostImages returns the layout entries and manifest records for the
// images host h preloads, named as nodes pull them from the registry.
func hostImages(d *data, h spec.Host) ([]bake.Entry, []plan.Image, error) {
	target := image.Target{Registry: d.s.Registry.Host, Project: d.s.Registry.Project}
	var imgs []layoutImage
	var recs []plan.Image
	for _, im := range d.images {
		role, ok := bootImages[im.Name]
		if !ok || !h.HasRole(role) {
			continue
		}
		ref, err := image.TargetRef(im.Ref, target)
		if err != nil {
			return nil, nil, fmt.Errorf("image %s: %w", im.Name, err)
		}
		stored := im.Stored
		if stored == "" {
			stored = im.Digest
		}
		imgs = append(imgs, layoutImage{Ref: ref, Digest: stored})
		recs = append(recs, plan.Image{Ref: ref, Source: im.Ref, Digest: stored})
	}
	entries, err := imageEntries(StoreImages(d.o.storeDir), imgs)
	sort.Slice(recs, func(i, j int) bool { return recs[i].Ref < recs[j].Ref })
	return entries, recs, err
}
