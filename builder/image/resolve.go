package image

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// client holds what every remote call shares: options, one transport (with
// its retries), one keychain, one puller and one pusher (which cache auth
// tokens per repository).
type client struct {
	o      *options
	puller *remote.Puller
	pusher *remote.Pusher
}

func newClient(ctx context.Context, o *options) (*client, error) {
	ropts, err := o.remoteOptions(ctx)
	if err != nil {
		return nil, err
	}
	pl, err := remote.NewPuller(ropts...)
	if err != nil {
		return nil, err
	}
	ps, err := remote.NewPusher(ropts...)
	if err != nil {
		return nil, err
	}
	return &client{o: o, puller: pl, pusher: ps}, nil
}

// plan is an image resolved upstream: what the tag points at, and what is
// kept of it after the platform filter.
type plan struct {
	img    Image
	src    srcRef
	digest v1.Hash // what the reference resolved to (or the locked digest)

	stored    v1.Descriptor // what goes under the tag
	storedRaw []byte        // its bytes when already fetched or synthesized
	// children are the manifests of stored when it is an index.
	children  []v1.Descriptor
	platforms map[string]string
}

func (p *plan) locked() Locked {
	return Locked{
		Name: p.img.Name, Ref: p.img.Ref, Digest: p.digest.String(),
		Platforms: p.platforms, Stored: p.stored.Digest.String(),
		Index: p.stored.MediaType.IsIndex(),
	}
}

// retry runs f until it succeeds, fails for good, or attempts run out. It
// covers what the transport cannot: a body that breaks or fails
// verification after the response headers arrived.
func (c *client) retry(ctx context.Context, what string, f func() error) (int, error) {
	delay := c.o.backoff.Duration
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil || attempt >= c.o.attempts || !retriable(ctx, err) {
			return attempt, err
		}
		c.o.log.Warn("retrying", "what", what, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return attempt, ctx.Err()
		case <-time.After(delay):
		}
		delay = time.Duration(float64(delay) * c.o.backoff.Factor)
	}
}

// manifest fetches a manifest by digest; go-containerregistry verifies the
// digest of what it read.
func (c *client) manifest(ctx context.Context, repo name.Repository, h v1.Hash) ([]byte, types.MediaType, error) {
	var raw []byte
	var mt types.MediaType
	_, err := c.retry(ctx, repo.String()+"@"+h.String(), func() error {
		d, err := c.puller.Get(ctx, repo.Digest(h.String()))
		if err != nil {
			return err
		}
		if d.Digest != h {
			return fmt.Errorf("manifest %s@%s: registry returned %s", repo, h, d.Digest)
		}
		raw, mt = d.Manifest, d.MediaType
		return nil
	})
	return raw, mt, err
}

// smallBlob reads a small blob (an image config) into memory, verified.
func (c *client) smallBlob(ctx context.Context, repo name.Repository, d v1.Descriptor) ([]byte, error) {
	var b []byte
	_, err := c.retry(ctx, repo.String()+"@"+d.Digest.String(), func() error {
		l, err := c.puller.Layer(ctx, repo.Digest(d.Digest.String()))
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		defer rc.Close()
		b, err = io.ReadAll(io.LimitReader(rc, 8<<20))
		if err != nil {
			return err
		}
		if h, _, _ := v1.SHA256(bytes.NewReader(b)); h != d.Digest {
			return fmt.Errorf("blob %s: content has digest %s", d.Digest, h)
		}
		return nil
	})
	return b, err
}

// resolve resolves img upstream (mirrors applied), checks it against the
// lock and applies the platform filter.
func (c *client) resolve(ctx context.Context, img Image) (*plan, error) {
	o := c.o
	src, err := parseSrc(img.Ref, o)
	if err != nil {
		return nil, err
	}
	p := &plan{img: img, src: src, platforms: map[string]string{}}
	if _, ok := o.lock[img.Ref]; o.strict && !ok {
		return nil, fmt.Errorf("%s is not in the lock (re-lock with `kubebake pull` without --locked): %w", img.Ref, ErrDrift)
	}
	if src.digest != "" {
		p.digest, _ = v1.NewHash(src.digest)
	} else {
		d, err := c.puller.Head(ctx, src.repo.Tag(src.tag))
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", img.Ref, o.authErr(src.repo.RegistryStr(), err))
		}
		p.digest = d.Digest
	}
	if l, ok := o.lock[img.Ref]; ok && l.Digest != p.digest.String() {
		de := &DriftError{Ref: img.Ref, Locked: l.Digest, Current: p.digest.String()}
		if o.strict {
			return nil, de
		}
		o.log.Warn("tag moved since the lock; using the locked digest", "image", img.Ref, "locked", l.Digest, "current", p.digest.String())
		if p.digest, err = v1.NewHash(l.Digest); err != nil {
			return nil, fmt.Errorf("lock entry %s: %w", img.Ref, err)
		}
	}
	raw, mt, err := c.manifest(ctx, src.repo, p.digest)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", img.Ref, o.authErr(src.repo.RegistryStr(), err))
	}
	root := v1.Descriptor{MediaType: mt, Digest: p.digest, Size: int64(len(raw))}

	switch {
	case mt.IsIndex():
		im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: index: %w", img.Ref, err)
		}
		if o.platforms == nil { // keep the index whole
			p.stored, p.storedRaw, p.children = root, raw, im.Manifests
			for _, d := range im.Manifests {
				if ps := platformString(d.Platform); ps != "" && ps != "unknown/unknown" {
					p.platforms[ps] = d.Digest.String()
				}
			}
			return p, nil
		}
		sel, err := selectPlatforms(img.Ref, im, o.platforms)
		if err != nil {
			return nil, err
		}
		for _, d := range sel {
			p.platforms[platformString(d.Platform)] = d.Digest.String()
		}
		if len(sel) == 1 {
			p.stored = sel[0]
			return p, nil
		}
		// Several platforms but not all: an index of the source's own
		// descriptors for them, in source order (deterministic bytes).
		filtered := *im
		filtered.Manifests = sel
		b, err := json.Marshal(&filtered)
		if err != nil {
			return nil, err
		}
		h, n, _ := v1.SHA256(bytes.NewReader(b))
		mtIdx := im.MediaType
		if mtIdx == "" {
			mtIdx = mt
		}
		p.stored = v1.Descriptor{MediaType: mtIdx, Digest: h, Size: n}
		p.storedRaw, p.children = b, sel
		return p, nil

	case mt.IsImage():
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: manifest: %w", img.Ref, err)
		}
		cfgRaw, err := c.smallBlob(ctx, src.repo, m.Config)
		if err != nil {
			return nil, fmt.Errorf("%s: config: %w", img.Ref, o.authErr(src.repo.RegistryStr(), err))
		}
		var cf v1.ConfigFile
		if err := json.Unmarshal(cfgRaw, &cf); err != nil {
			return nil, fmt.Errorf("%s: config: %w", img.Ref, err)
		}
		ps := platformString(cf.Platform())
		if cf.OS == "" || cf.Architecture == "" {
			ps = "unknown/unknown"
		} else if o.platforms != nil && !anyPlatform(cf.Platform(), o.platforms) {
			return nil, fmt.Errorf("%s is a single-platform image for %s; wanted %v: %w", img.Ref, ps, o.platforms, ErrPlatform)
		}
		root.Platform = cf.Platform()
		p.stored, p.storedRaw = root, raw
		p.platforms[ps] = p.digest.String()
		return p, nil
	}
	return nil, fmt.Errorf("%s: media type %q: %w", img.Ref, mt, errNotManifest)
}

func anyPlatform(have *v1.Platform, want []string) bool {
	if have == nil {
		return false
	}
	for _, w := range want {
		wp, _ := parsePlatform(w)
		if have.OS == wp.OS && have.Architecture == wp.Architecture && (wp.Variant == "" || wp.Variant == have.Variant) {
			return true
		}
	}
	return false
}

// selectPlatforms picks, for each wanted platform in order, the first
// manifest of the index for it; a missing platform is an error listing
// what the index has.
func selectPlatforms(ref string, im *v1.IndexManifest, want []string) ([]v1.Descriptor, error) {
	var out []v1.Descriptor
	seen := map[v1.Hash]bool{}
	for _, w := range want {
		found := false
		for _, d := range im.Manifests {
			if d.Platform != nil && anyPlatform(d.Platform, []string{w}) {
				if !seen[d.Digest] {
					seen[d.Digest] = true
					out = append(out, d)
				}
				found = true
				break
			}
		}
		if !found {
			var have []string
			for _, d := range im.Manifests {
				have = append(have, platformString(d.Platform))
			}
			return nil, fmt.Errorf("%s has no %s manifest (index has %v): %w", ref, w, have, ErrPlatform)
		}
	}
	// keep source order, so the filtered index is stable
	var ordered []v1.Descriptor
	for _, d := range im.Manifests {
		if seen[d.Digest] {
			ordered = append(ordered, d)
			delete(seen, d.Digest)
		}
	}
	return ordered, nil
}
