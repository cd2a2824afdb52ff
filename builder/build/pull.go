package build

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kubebake/kubebake/builder/artifact"
	"github.com/kubebake/kubebake/builder/fetch"
	"github.com/kubebake/kubebake/builder/image"
	"github.com/kubebake/kubebake/builder/lock"
	"github.com/kubebake/kubebake/builder/spec"
)

// StoreImages is the OCI image layout inside a store.
func StoreImages(store string) string { return filepath.Join(store, "images") }

// PullResult is what a pull fetched and pinned.
type PullResult struct {
	Artifacts   []fetch.Result
	Images      []image.Locked
	Unavailable []Unavailable // optional images that could not be pulled
	LockFile    string
	LockChanged bool
}

// Unavailable is an optional image left out, and why.
type Unavailable struct {
	Name, Ref string
	Err       error
}

// Pull fetches every artifact and image of s into the store, verifies them,
// and writes bundle-spec.lock beside the spec (or checks it, WithLocked).
func Pull(ctx context.Context, s *spec.Spec, opts ...Option) (*PullResult, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	lockPath := o.lockFile
	if lockPath == "" {
		lockPath = lock.PathFor(s.File)
	}
	old, err := lock.Read(lockPath)
	if err != nil {
		return nil, err
	}
	if old == nil && o.locked {
		return nil, fmt.Errorf("--locked: %s does not exist (run kubebake pull without --locked once, and commit the lock)", lockPath)
	}
	if old == nil {
		old = &lock.Lock{}
	}
	urlMirrors, _, _ := splitMirrors(s.Mirrors)

	o.progress(Event{Phase: "pull", Msg: "start"})
	arts, err := fetch.Pull(ctx, o.storeDir, fetchSources(s),
		fetch.WithMirrors(urlMirrors), fetch.WithLock(fetchLock(old), o.locked), fetch.WithJobs(o.jobs), fetch.WithLogger(o.logger),
		fetch.WithProgress(func(p fetch.Progress) {
			o.progress(Event{Phase: "pull", Done: p.FilesDone, Total: p.Files, Msg: p.Name})
		}))
	if err != nil {
		return nil, err
	}
	res := &PullResult{Artifacts: arts, LockFile: lockPath}
	imgOpts := append(append(imageOptions(s, o), upstreamImageOptions(s)...), image.WithLock(imageLock(old), o.locked))
	// Required images in one call (pulled in parallel); each optional one
	// alone, so its failure is reported without failing the others.
	var required []image.Image
	for _, im := range s.Images {
		if !im.Optional {
			required = append(required, image.Image{Name: im.Name, Ref: im.Ref})
		}
	}
	if len(required) > 0 {
		if res.Images, err = image.Pull(ctx, StoreImages(o.storeDir), required, imgOpts...); err != nil {
			return nil, err
		}
	}
	for _, im := range s.Images {
		if !im.Optional {
			continue
		}
		locked, err := image.Pull(ctx, StoreImages(o.storeDir), []image.Image{{Name: im.Name, Ref: im.Ref}}, imgOpts...)
		if err != nil {
			var drift *image.DriftError
			if errors.As(err, &drift) || ctx.Err() != nil {
				return nil, err
			}
			o.logger.Info("optional image unavailable", "image", im.Name, "ref", im.Ref, "err", err)
			res.Unavailable = append(res.Unavailable, Unavailable{Name: im.Name, Ref: im.Ref, Err: err})
			continue
		}
		res.Images = append(res.Images, locked...)
	}
	o.progress(Event{Phase: "pull", Msg: "done"})

	nl := &lock.Lock{Version: lock.Version}
	for _, a := range arts {
		nl.Artifacts = append(nl.Artifacts, lock.Artifact{Name: a.Name, URL: a.URL, SHA256: a.SHA256, Size: a.Size})
	}
	for _, im := range res.Images {
		nl.Images = append(nl.Images, lock.Image{Name: im.Name, Ref: im.Ref, Digest: im.Digest, Platforms: im.Platforms, Stored: im.Stored, Index: im.Index})
	}
	before, _ := old.Encode()
	after, err := nl.Encode()
	if err != nil {
		return nil, err
	}
	if res.LockChanged = string(before) != string(after); res.LockChanged {
		if o.locked {
			return nil, fmt.Errorf("--locked: the pull would change %s (run kubebake pull without --locked and review the diff)", lockPath)
		}
		if err := lock.Write(lockPath, nl); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// splitMirrors separates URL-prefix rewrites (artifacts) from registry-host
// rewrites (images), and lists the registry mirrors marked http:// as the
// only hosts allowed plain HTTP.
func splitMirrors(ms []spec.Mirror) ([]fetch.Mirror, []image.Mirror, []string) {
	var urls []fetch.Mirror
	var hosts []image.Mirror
	var plain []string
	for _, m := range ms {
		if strings.Contains(m.From, "://") {
			urls = append(urls, fetch.Mirror{From: m.From, To: m.To})
			continue
		}
		to, isPlain := strings.CutPrefix(m.To, "http://")
		if isPlain {
			host, _, _ := strings.Cut(to, "/")
			plain = append(plain, host)
		}
		hosts = append(hosts, image.Mirror{From: m.From, To: to})
	}
	return urls, hosts, plain
}

// upstreamImageOptions reach images through the spec's registry mirrors.
func upstreamImageOptions(s *spec.Spec) []image.Option {
	_, hosts, plain := splitMirrors(s.Mirrors)
	return []image.Option{image.WithMirrors(hosts...), image.WithInsecure(plain...)}
}

func fetchSources(s *spec.Spec) []fetch.Source {
	var out []fetch.Source
	for _, a := range s.Artifacts {
		out = append(out, fetch.Source{Name: a.Name, URL: a.URL, SHA256: a.SHA256, SHA256URL: a.SHA256URL, Extract: a.Extract})
	}
	return out
}

func fetchLock(l *lock.Lock) []fetch.Locked {
	var out []fetch.Locked
	for _, a := range l.Artifacts {
		out = append(out, fetch.Locked{Name: a.Name, URL: a.URL, SHA256: a.SHA256, Size: a.Size})
	}
	return out
}

func imageLock(l *lock.Lock) []image.Locked {
	var out []image.Locked
	for _, im := range l.Images {
		out = append(out, image.Locked{Name: im.Name, Ref: im.Ref, Digest: im.Digest, Platforms: im.Platforms, Stored: im.Stored, Index: im.Index})
	}
	return out
}

// imageOptions are what every image operation shares: platforms, the
// spec's credentials (by environment variable name), jobs, logging.
func imageOptions(s *spec.Spec, o *options) []image.Option {
	var creds []image.Cred
	for _, c := range s.Credentials {
		creds = append(creds, image.Cred{Registry: c.Registry, UsernameEnv: c.UsernameEnv, PasswordEnv: c.PasswordEnv})
	}
	return []image.Option{image.WithPlatforms(s.Platforms), image.WithCreds(creds), image.WithJobs(o.jobs), image.WithLogger(o.logger)}
}

// storeArtifacts resolves the spec's artifacts from the store alone, as the
// lock pins them: bake never touches the network.
func storeArtifacts(s *spec.Spec, o *options) (artifact.Set, error) {
	lockPath := o.lockFile
	if lockPath == "" {
		lockPath = lock.PathFor(s.File)
	}
	l, err := lock.Read(lockPath)
	if err != nil {
		return nil, err
	}
	if l == nil {
		l = &lock.Lock{}
	}
	res, err := fetch.Lookup(o.storeDir, fetchSources(s), fetchLock(l))
	if err != nil {
		return nil, err
	}
	return artifact.FromResults(res), nil
}
