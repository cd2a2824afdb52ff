package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Layout writes to outDir an OCI image layout holding only keep, for one
// platform ("linux/amd64"), as a host bundle's images/ directory. Each
// image's entry is its platform's image manifest (never an index), annotated
// with org.opencontainers.image.ref.name = the source reference and
// io.containerd.image.name = the name nodes will ask for (TargetRef with
// WithTarget, else the fully qualified source reference). Blobs are
// hardlinked from storeLayout when on the same filesystem, else copied;
// blobs already in outDir are kept, blobs nothing references are removed,
// and index.json is sorted, so the same inputs give the same tree.
func Layout(ctx context.Context, storeLayout, outDir string, keep []Locked, platform string, opts ...Option) error {
	o, err := makeOptions(opts...)
	if err != nil {
		return err
	}
	if _, err := parsePlatform(platform); err != nil {
		return err
	}
	s, err := openStore(storeLayout, false)
	if err != nil {
		return err
	}
	im, err := s.readIndex()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(outDir, "index.json")); err != nil {
		return err
	}
	out, err := openStore(outDir, true)
	if err != nil {
		return err
	}
	want := map[v1.Hash]bool{}
	idx := &v1.IndexManifest{SchemaVersion: 2, MediaType: im.MediaType}
	if idx.MediaType == "" {
		idx.MediaType = "application/vnd.oci.image.index.v1+json"
	}
	for _, l := range keep {
		if err := ctx.Err(); err != nil {
			return err
		}
		desc, err := pickPlatform(s, im, l, platform)
		if err != nil {
			return fmt.Errorf("layout %s: %w", l.Ref, err)
		}
		raw, err := s.readBlob(desc.Digest)
		if err != nil {
			return fmt.Errorf("layout %s: %w", l.Ref, err)
		}
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return fmt.Errorf("layout %s: %w", l.Ref, err)
		}
		blobs := append([]v1.Descriptor{desc, m.Config}, m.Layers...)
		for _, b := range blobs {
			if !b.MediaType.IsDistributable() && len(b.URLs) > 0 {
				continue
			}
			want[b.Digest] = true
			if err := linkBlob(s, out, b); err != nil {
				return fmt.Errorf("layout %s: %w", l.Ref, err)
			}
		}
		nodeName := l.Ref
		if o.target != nil {
			if nodeName, err = TargetRef(l.Ref, *o.target); err != nil {
				return err
			}
		} else if r, err := name.ParseReference(stripTagDigest(l.Ref)); err == nil {
			nodeName = r.Name()
		}
		desc.Annotations = map[string]string{AnnotationRefName: l.Ref, AnnotationContainerdName: nodeName}
		idx.Manifests = append(idx.Manifests, desc)
	}
	if err := out.writeIndex(idx); err != nil {
		return err
	}
	// drop blobs nothing references (an earlier run's leftovers)
	dir := filepath.Join(outDir, "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !want[v1.Hash{Algorithm: "sha256", Hex: e.Name()}] {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// stripTagDigest turns "repo:tag@digest" into "repo:tag" for name parsing.
func stripTagDigest(ref string) string {
	repo, tag, digest, err := splitRef(ref)
	if err != nil || tag == "" {
		return ref
	}
	_ = digest
	return repo + ":" + tag
}

// pickPlatform finds l in the store and returns the image manifest for
// platform: the entry itself when it is an image for that platform, else
// the index child for it.
func pickPlatform(s *store, im *v1.IndexManifest, l Locked, platform string) (v1.Descriptor, error) {
	desc, err := s.lookup(im, l.Ref, l.Stored)
	if err != nil {
		return v1.Descriptor{}, err
	}
	desc.Annotations = nil
	if desc.MediaType.IsImage() {
		ps := platformString(desc.Platform)
		if ps == "" || ps == "unknown/unknown" {
			for p, d := range l.Platforms { // the lock knows what Pull saw
				if d == desc.Digest.String() {
					ps = p
				}
			}
		}
		if ps != platform && ps != "unknown/unknown" && ps != "" {
			return v1.Descriptor{}, fmt.Errorf("store holds %s only, not %s: %w", ps, platform, ErrPlatform)
		}
		wp, _ := parsePlatform(platform)
		desc.Platform = &wp
		return desc, nil
	}
	if !desc.MediaType.IsIndex() {
		return v1.Descriptor{}, fmt.Errorf("%s: media type %q: %w", desc.Digest, desc.MediaType, errNotManifest)
	}
	raw, err := s.readBlob(desc.Digest)
	if err != nil {
		return v1.Descriptor{}, err
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Descriptor{}, err
	}
	sel, err := selectPlatforms(l.Ref, idx, []string{platform})
	if err != nil {
		return v1.Descriptor{}, err
	}
	if !sel[0].MediaType.IsImage() {
		return v1.Descriptor{}, fmt.Errorf("%s for %s is a nested index: %w", l.Ref, platform, errNotManifest)
	}
	return sel[0], nil
}

// linkBlob puts blob d of src into dst: a hardlink when both are on the same
// filesystem, else a verified copy. A blob present at the right size stays.
func linkBlob(src, dst *store, d v1.Descriptor) error {
	if dst.has(d.Digest, d.Size) {
		return nil
	}
	if !src.has(d.Digest, d.Size) {
		return fmt.Errorf("blob %s missing from %s: %w", d.Digest, src.dir, ErrNotInStore)
	}
	from, to := src.blobPath(d.Digest), dst.blobPath(d.Digest)
	_ = os.Remove(to) // wrong size: replace it
	err := os.Link(from, to)
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EXDEV) && !errors.Is(err, os.ErrPermission) && !errors.Is(err, syscall.EMLINK) {
		return err
	}
	f, err := os.Open(from)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = dst.writeBlob(d, io.Reader(f))
	return err
}
