package image

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
)

// Pull fetches imgs into the OCI image layout at layoutDir (created when
// missing) and returns what each resolved to. Every index.json entry is
// annotated with org.opencontainers.image.ref.name = the source reference
// (a re-pull replaces the entry). Blobs are shared across images and written
// once; each blob and manifest is verified against its digest before it gets
// its final name. Multi-arch indexes are filtered to WithPlatforms (default
// linux/amd64) or kept whole with "all"; Locked.Stored and Locked.Index say
// which. Images run WithJobs at a time; results follow the order of imgs.
func Pull(ctx context.Context, layoutDir string, imgs []Image, opts ...Option) ([]Locked, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	s, err := openStore(layoutDir, true)
	if err != nil {
		return nil, err
	}
	c, err := newClient(ctx, o)
	if err != nil {
		return nil, err
	}
	out := make([]Locked, len(imgs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.jobs)
	for i, img := range imgs {
		g.Go(func() error {
			l, err := c.pullOne(gctx, s, img)
			if err != nil {
				return fmt.Errorf("pull %s: %w", img.Ref, err)
			}
			out[i] = l
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *client) pullOne(ctx context.Context, s *store, img Image) (Locked, error) {
	start := time.Now()
	p, err := c.resolve(ctx, img)
	if err != nil {
		return Locked{}, err
	}
	if err := c.pullTree(ctx, s, p.src.repo, p.stored, p.storedRaw, img.Ref); err != nil {
		return Locked{}, c.o.authErr(p.src.repo.RegistryStr(), err)
	}
	desc := p.stored
	desc.Annotations = nil
	if err := s.setRef(img.Ref, desc); err != nil {
		return Locked{}, err
	}
	c.o.report(Progress{Op: "pull", Image: img.Ref, Done: true, Elapsed: time.Since(start)})
	c.o.log.Info("pulled", "image", img.Ref, "digest", p.stored.Digest.String())
	return p.locked(), nil
}

// pullTree stores the manifest desc (raw when already in hand) and
// everything it references. A manifest is written after its blobs and
// children, so a manifest in the store implies its content is there too.
func (c *client) pullTree(ctx context.Context, s *store, repo name.Repository, desc v1.Descriptor, raw []byte, ref string) error {
	if raw == nil {
		if s.has(desc.Digest, desc.Size) {
			return nil // written whole by an earlier run
		}
		var err error
		if raw, _, err = c.manifest(ctx, repo, desc.Digest); err != nil {
			return err
		}
	}
	switch {
	case desc.MediaType.IsIndex():
		im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return err
		}
		for _, child := range im.Manifests {
			if err := c.pullTree(ctx, s, repo, child, nil, ref); err != nil {
				return err
			}
		}
	case desc.MediaType.IsImage():
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return err
		}
		blobs := append([]v1.Descriptor{m.Config}, m.Layers...)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(c.o.jobs)
		for _, b := range blobs {
			if !b.MediaType.IsDistributable() && len(b.URLs) > 0 {
				continue // foreign layer: not ours to copy
			}
			g.Go(func() error { return c.pullBlob(gctx, s, repo, b, ref) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s: media type %q: %w", desc.Digest, desc.MediaType, errNotManifest)
	}
	h, err := s.putBytes(raw)
	if err != nil {
		return err
	}
	if h != desc.Digest {
		return fmt.Errorf("manifest %s: content has digest %s", desc.Digest, h)
	}
	return nil
}

func (c *client) pullBlob(ctx context.Context, s *store, repo name.Repository, d v1.Descriptor, ref string) error {
	return s.once(d.Digest, func() error {
		if s.has(d.Digest, d.Size) {
			c.o.report(Progress{Op: "pull", Image: ref, Blob: d.Digest.String(), Skipped: true})
			return nil
		}
		start := time.Now()
		var n int64
		attempts, err := c.retry(ctx, repo.String()+"@"+d.Digest.String(), func() error {
			l, err := c.puller.Layer(ctx, repo.Digest(d.Digest.String()))
			if err != nil {
				return err
			}
			rc, err := l.Compressed()
			if err != nil {
				return err
			}
			defer rc.Close()
			n, err = s.writeBlob(d, rc)
			return err
		})
		if err != nil {
			return err
		}
		c.o.report(Progress{Op: "pull", Image: ref, Blob: d.Digest.String(), Bytes: n, Elapsed: time.Since(start), Attempts: attempts})
		return nil
	})
}
