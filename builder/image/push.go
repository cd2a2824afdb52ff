package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// Push copies images from the OCI layout at layoutDir (as Pull left it) to
// dst, without reaching any upstream (`mirror --from store`). For each image
// it HEADs the target tag first and skips the image when it already holds
// Locked.Stored; otherwise blobs are HEADed and skipped when present,
// mounted from another repository of the same registry when this run
// already put them there, else uploaded; then manifests are put (children
// before their index) and the tag is read back: its digest must equal
// Locked.Stored. Images run WithJobs at a time; results follow imgs.
func Push(ctx context.Context, layoutDir string, imgs []Locked, dst Target, opts ...Option) ([]Pushed, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	s, err := openStore(layoutDir, false)
	if err != nil {
		return nil, err
	}
	im, err := s.readIndex()
	if err != nil {
		return nil, fmt.Errorf("image layout %s: %w", layoutDir, err)
	}
	c, err := newClient(ctx, o)
	if err != nil {
		return nil, err
	}
	m := &mounts{m: map[v1.Hash]*mountState{}}
	out := make([]Pushed, len(imgs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.jobs)
	for i, l := range imgs {
		g.Go(func() error {
			desc, err := s.lookup(im, l.Ref, l.Stored)
			if err != nil {
				return fmt.Errorf("push %s: %w", l.Ref, err)
			}
			raw, err := s.readBlob(desc.Digest)
			if err != nil {
				return fmt.Errorf("push %s: %w", l.Ref, err)
			}
			p, err := c.pushOne(gctx, storeSource{s}, m, desc, raw, l.Ref, dst)
			if err != nil {
				return fmt.Errorf("push %s: %w", l.Ref, err)
			}
			out[i] = p
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// Copy copies images from upstream (mirrors, lock and platform filter
// applied as in Pull) straight to dst, with the same skip, mount and verify
// rules as Push. Nothing is written to disk.
func Copy(ctx context.Context, imgs []Image, dst Target, opts ...Option) ([]Pushed, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	c, err := newClient(ctx, o)
	if err != nil {
		return nil, err
	}
	m := &mounts{m: map[v1.Hash]*mountState{}}
	out := make([]Pushed, len(imgs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.jobs)
	for i, img := range imgs {
		g.Go(func() error {
			p, err := c.resolve(gctx, img)
			if err != nil {
				return fmt.Errorf("copy %s: %w", img.Ref, err)
			}
			src := remoteSource{c: c, repo: p.src.repo}
			pushed, err := c.pushOne(gctx, src, m, p.stored, p.storedRaw, img.Ref, dst)
			if err != nil {
				return fmt.Errorf("copy %s: %w", img.Ref, c.o.authErr(p.src.repo.RegistryStr(), err))
			}
			out[i] = pushed
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// source is where Push and Copy read manifests and blobs from.
type source interface {
	manifest(ctx context.Context, d v1.Descriptor) ([]byte, error)
	layer(ctx context.Context, d v1.Descriptor) (v1.Layer, error)
}

type storeSource struct{ s *store }

func (ss storeSource) manifest(_ context.Context, d v1.Descriptor) ([]byte, error) {
	return ss.s.readBlob(d.Digest)
}

func (ss storeSource) layer(_ context.Context, d v1.Descriptor) (v1.Layer, error) {
	if !ss.s.has(d.Digest, d.Size) {
		return nil, fmt.Errorf("blob %s missing from %s: %w (run kubebake pull)", d.Digest, ss.s.dir, ErrNotInStore)
	}
	return partial.CompressedToLayer(fileBlob{path: ss.s.blobPath(d.Digest), d: d})
}

// fileBlob is a blob in the layout, presented as a compressed layer.
type fileBlob struct {
	path string
	d    v1.Descriptor
}

func (f fileBlob) Digest() (v1.Hash, error)            { return f.d.Digest, nil }
func (f fileBlob) Size() (int64, error)                { return f.d.Size, nil }
func (f fileBlob) MediaType() (types.MediaType, error) { return f.d.MediaType, nil }
func (f fileBlob) Compressed() (io.ReadCloser, error)  { return os.Open(f.path) }
func (f fileBlob) Descriptor() (*v1.Descriptor, error) { d := f.d; return &d, nil }

type remoteSource struct {
	c    *client
	repo name.Repository
}

func (rs remoteSource) manifest(ctx context.Context, d v1.Descriptor) ([]byte, error) {
	raw, _, err := rs.c.manifest(ctx, rs.repo, d.Digest)
	return raw, err
}

func (rs remoteSource) layer(ctx context.Context, d v1.Descriptor) (v1.Layer, error) {
	l, err := rs.c.puller.Layer(ctx, rs.repo.Digest(d.Digest.String()))
	if err != nil {
		return nil, err
	}
	if ml, ok := l.(*remote.MountableLayer); ok {
		l = ml.Layer // never ask the target to mount from another registry
	}
	return typedLayer{Layer: l, d: d}, nil
}

// typedLayer keeps the media type and size of the manifest's descriptor.
type typedLayer struct {
	v1.Layer
	d v1.Descriptor
}

func (t typedLayer) MediaType() (types.MediaType, error) { return t.d.MediaType, nil }
func (t typedLayer) Size() (int64, error)                { return t.d.Size, nil }

// mounts remembers which repository of the target registry received each
// blob during this run, so the next repository mounts it instead of
// uploading it again.
type mounts struct {
	mu sync.Mutex
	m  map[v1.Hash]*mountState
}

type mountState struct {
	done chan struct{}
	repo name.Repository
	ok   bool
}

// manifestRef is a manifest in hand, as go-containerregistry's Taggable.
type manifestRef struct {
	raw []byte
	mt  types.MediaType
}

func (m manifestRef) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m manifestRef) MediaType() (types.MediaType, error) { return m.mt, nil }

func (c *client) pushOne(ctx context.Context, src source, m *mounts, root v1.Descriptor, raw []byte, srcRef string, dst Target) (Pushed, error) {
	start := time.Now()
	dstStr, err := TargetRef(srcRef, dst)
	if err != nil {
		return Pushed{}, err
	}
	var nopts []name.Option
	if c.o.insecure[dst.Registry] {
		nopts = append(nopts, name.Insecure)
	}
	dstRef, err := name.ParseReference(dstStr, nopts...)
	if err != nil {
		return Pushed{}, err
	}
	host := dstRef.Context().RegistryStr()
	res := Pushed{Src: srcRef, Dst: dstStr, Digest: root.Digest.String()}
	if got, err := c.headDigest(ctx, dstRef); err != nil {
		return Pushed{}, c.o.authErr(host, err)
	} else if got == root.Digest {
		res.Skipped = true
		c.o.report(Progress{Op: "push", Image: srcRef, Skipped: true, Done: true, Elapsed: time.Since(start)})
		c.o.log.Info("already present", "image", dstStr, "digest", root.Digest.String())
		return res, nil
	}
	if raw == nil {
		if raw, err = src.manifest(ctx, root); err != nil {
			return Pushed{}, err
		}
	}
	if err := c.pushTree(ctx, src, m, dstRef.Context(), root, raw, dstRef, srcRef); err != nil {
		return Pushed{}, c.o.authErr(host, err)
	}
	// Read back: the tag must now name exactly what we pushed.
	got, err := c.headDigest(ctx, dstRef)
	if err != nil {
		return Pushed{}, fmt.Errorf("verify %s: %w", dstStr, c.o.authErr(host, err))
	}
	if got != root.Digest {
		return Pushed{}, fmt.Errorf("verify %s: registry has %s, pushed %s", dstStr, got, root.Digest)
	}
	c.o.report(Progress{Op: "push", Image: srcRef, Done: true, Elapsed: time.Since(start)})
	c.o.log.Info("pushed", "image", dstStr, "digest", root.Digest.String(), "elapsed", time.Since(start))
	return res, nil
}

// headDigest returns the digest ref names, or a zero hash when absent.
func (c *client) headDigest(ctx context.Context, ref name.Reference) (v1.Hash, error) {
	d, err := c.puller.Head(ctx, ref)
	if err != nil {
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
			return v1.Hash{}, nil
		}
		return v1.Hash{}, err
	}
	return d.Digest, nil
}

// pushTree writes the manifest desc (bytes raw) and what it references to
// repo, then puts it under ref. Child manifests already present are skipped.
func (c *client) pushTree(ctx context.Context, src source, m *mounts, repo name.Repository, desc v1.Descriptor, raw []byte, ref name.Reference, srcRef string) error {
	switch {
	case desc.MediaType.IsIndex():
		im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return err
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(c.o.jobs)
		for _, child := range im.Manifests {
			g.Go(func() error {
				cref := repo.Digest(child.Digest.String())
				if got, err := c.headDigest(gctx, cref); err != nil {
					return err
				} else if got == child.Digest {
					return nil
				}
				craw, err := src.manifest(gctx, child)
				if err != nil {
					return err
				}
				return c.pushTree(gctx, src, m, repo, child, craw, cref, srcRef)
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	case desc.MediaType.IsImage():
		mf, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return err
		}
		blobs := append([]v1.Descriptor{mf.Config}, mf.Layers...)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(c.o.jobs)
		for _, b := range blobs {
			if !b.MediaType.IsDistributable() && len(b.URLs) > 0 {
				continue
			}
			g.Go(func() error { return c.pushBlob(gctx, src, m, repo, b, srcRef) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s: media type %q: %w", desc.Digest, desc.MediaType, errNotManifest)
	}
	_, err := c.retry(ctx, ref.String(), func() error {
		return c.pusher.Put(ctx, ref, manifestRef{raw: raw, mt: desc.MediaType})
	})
	return err
}

// pushBlob uploads one blob to repo: HEAD first (go-containerregistry skips
// present blobs), a mount when another repository got it this run, else an
// upload streamed from src.
func (c *client) pushBlob(ctx context.Context, src source, m *mounts, repo name.Repository, d v1.Descriptor, srcRef string) error {
	m.mu.Lock()
	st, seen := m.m[d.Digest]
	if !seen {
		st = &mountState{done: make(chan struct{}), repo: repo}
		m.m[d.Digest] = st
	}
	m.mu.Unlock()
	var from *name.Repository
	if seen {
		select {
		case <-st.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if st.ok && st.repo == repo {
			return nil
		}
		if st.ok {
			from = &st.repo
		}
	}
	start := time.Now()
	attempts, err := c.retry(ctx, repo.String()+"@"+d.Digest.String(), func() error {
		l, err := src.layer(ctx, d)
		if err != nil {
			return err
		}
		if from != nil {
			l = &remote.MountableLayer{Layer: l, Reference: from.Digest(d.Digest.String())}
		}
		return c.pusher.Upload(ctx, repo, l)
	})
	if !seen {
		st.ok = err == nil
		close(st.done)
	}
	if err != nil {
		return err
	}
	c.o.report(Progress{Op: "push", Image: srcRef, Blob: d.Digest.String(), Bytes: d.Size, Elapsed: time.Since(start), Attempts: attempts})
	return nil
}
