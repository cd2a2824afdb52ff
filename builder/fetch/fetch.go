// Package fetch pulls file artifacts (release binaries, tarballs) into a
// content-addressed store, verified by sha256 while streaming, resumable, in
// parallel, with retries and URL mirrors. It is the library behind
// `kubebake pull` for files; images are another package's job.
//
// Store layout under storeDir:
//
//	sha256/<hex>          every verified download and every unpacked archive member
//	partial/<key>         a download in progress (<key>: sha256 of its URL after mirroring)
//	partial/<key>.json    its sidecar: the URL and the server's ETag / Last-Modified
//	unpacked/<hex>.json   which members of archive <hex> were unpacked, to which blobs
//
// Only sha256/ holds final names, and only for bytes whose digest was checked.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Source is one artifact to pull.
type Source struct {
	Name string // artifact name: "kubelet", "etcd"
	URL  string // https://, http:// or file://
	// SHA256 pins the artifact's digest. When empty, SHA256URL names
	// upstream's published checksum: a bare digest, sha256sum(1) lines (the
	// line naming the URL's base name), or GitHub's release JSON with a
	// per-asset "digest": "sha256:…".
	SHA256    string
	SHA256URL string
	// Extract maps tar.gz members ("./" prefix optional) to installed names;
	// empty means the artifact is itself the installable file.
	Extract map[string]string
}

// Mirror rewrites a URL prefix: From "https://dl.k8s.io" → To
// "http://127.0.0.1:8081/dl.k8s.io".
type Mirror struct{ From, To string }

// Locked is one artifact's entry in bundle-spec.lock. URL is the source's
// URL before mirroring; Size is the artifact's length in bytes (0: unknown).
type Locked struct {
	Name   string
	URL    string
	SHA256 string
	Size   int64
}

// File is one installable file in the store.
type File struct {
	Name     string // installed name: "kubelet", "etcdctl"
	Artifact string // the artifact it came from
	Path     string // <storeDir>/sha256/<hex>
	SHA256   string
	Size     int64
}

// Result is one pulled artifact: its lock entry and its installable files
// (for a non-archive, one file named after the artifact; for an archive, one
// per Extract entry, sorted by name).
type Result struct {
	Locked
	Files []File
}

// Progress is a snapshot passed to the WithProgress callback.
type Progress struct {
	Name        string // artifact the snapshot is about
	Done, Total int64  // its bytes so far, and expected (0: unknown)
	Files       int    // artifacts in this Pull
	FilesDone   int    // of which finished (pulled or found in the store)
}

// Pull makes every source present and verified in the store under storeDir
// and returns their results in the order of srcs. An artifact already in the
// store with its expected sha256 costs no network at all. The first hard
// error cancels the other pulls; downloads in flight stay resumable, and a
// re-run continues them with HTTP Range requests.
func Pull(ctx context.Context, storeDir string, srcs []Source, opts ...Option) ([]Result, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	if err := checkSources(storeDir, srcs); err != nil {
		return nil, err
	}
	st, err := openStore(storeDir)
	if err != nil {
		return nil, err
	}
	p := &puller{o: o, st: st, lock: lockIndex(o.lock), files: len(srcs), sums: map[string]*sumEntry{}, urls: map[string]*sync.Mutex{}}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	results := make([]Result, len(srcs))
	errs := make([]error, len(srcs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(o.jobs, max(len(srcs), 1)) {
		wg.Go(func() {
			for i := range next {
				r, err := p.pullOne(ctx, srcs[i])
				if err != nil {
					errs[i] = fmt.Errorf("artifact %s: %w", srcs[i].Name, err)
					cancel(fmt.Errorf("%w: %w", errStopped, errs[i]))
					continue
				}
				results[i] = r
				p.done(srcs[i].Name, r.Size)
			}
		})
	}
feed:
	for i := range srcs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()

	var hard []error
	for _, e := range errs {
		// Pulls stopped because another failed say nothing new.
		if e != nil && !errors.Is(e, context.Canceled) && !errors.Is(e, errStopped) {
			hard = append(hard, e)
		}
	}
	if len(hard) > 0 {
		return nil, errors.Join(hard...)
	}
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return results, nil
}

// errStopped marks the cancellation of a Pull after another artifact failed.
var errStopped = errors.New("stopped: another artifact failed")

// checkSources validates the inputs before any work.
func checkSources(storeDir string, srcs []Source) error {
	if storeDir == "" {
		return fmt.Errorf("%w: empty store directory", ErrInvalidSource)
	}
	var errs []error
	seen := map[string]bool{}
	for i, s := range srcs {
		bad := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("%w: artifact %s (sources[%d]): %s", ErrInvalidSource, s.Name, i, fmt.Sprintf(format, a...)))
		}
		if s.Name == "" {
			bad("no name")
		}
		if seen[s.Name] {
			bad("name given twice")
		}
		seen[s.Name] = true
		if err := checkURL(s.URL); err != nil {
			bad("url: %v", err)
		}
		switch {
		case s.SHA256 != "" && !isHex64(s.SHA256):
			bad("sha256 %q is not 64 hex digits", s.SHA256)
		case s.SHA256 == "" && s.SHA256URL == "":
			bad("no sha256 and no sha256URL: pin one in bundle-spec.yaml")
		case s.SHA256 == "":
			if err := checkURL(s.SHA256URL); err != nil {
				bad("sha256URL: %v", err)
			}
		}
		names := map[string]string{}
		for _, m := range slices.Sorted(maps.Keys(s.Extract)) {
			n := s.Extract[m]
			if cleanMember(m) == "" || n == "" {
				bad("extract %q → %q: both member and name are required", m, n)
				continue
			}
			if prev, ok := names[n]; ok {
				bad("extract: %q and %q both install %q", prev, m, n)
			}
			names[n] = m
		}
	}
	return errors.Join(errs...)
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return fmt.Errorf("%q has no host", raw)
		}
	case "file":
		if u.Path == "" {
			return fmt.Errorf("%q has no path", raw)
		}
	default:
		return fmt.Errorf("%q: scheme must be https, http or file", raw)
	}
	return nil
}

func cleanMember(m string) string {
	for strings.HasPrefix(m, "./") {
		m = m[2:]
	}
	return strings.TrimPrefix(m, "/")
}

func lockIndex(lock []Locked) map[string]Locked {
	m := make(map[string]Locked, len(lock))
	for _, l := range lock {
		m[l.Name] = l
	}
	return m
}

// Lookup resolves every source from the store alone, with no network: each
// artifact's sha256 comes from its pin or from its lock entry (whose URL must
// still be the source's), and its bytes must be in the store at the locked
// size; files up to 4 MiB are re-hashed. The error names every artifact
// missing and says to run kubebake pull.
func Lookup(storeDir string, srcs []Source, lock []Locked) ([]Result, error) {
	if err := checkSources(storeDir, srcs); err != nil {
		return nil, err
	}
	st := &store{dir: storeDir}
	idx := lockIndex(lock)
	var errs []error
	var out []Result
	for _, s := range srcs {
		r, err := lookupOne(st, s, idx)
		if err != nil {
			errs = append(errs, fmt.Errorf("artifact %s: %w", s.Name, err))
			continue
		}
		out = append(out, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w\nrun kubebake pull to fetch what is missing", err)
	}
	return out, nil
}

func lookupOne(st *store, s Source, idx map[string]Locked) (Result, error) {
	want, size := strings.ToLower(s.SHA256), int64(0)
	if l, ok := idx[s.Name]; ok {
		switch {
		case l.URL != s.URL:
			return Result{}, fmt.Errorf("%w: the lock has %s, the spec %s", ErrNotLocked, l.URL, s.URL)
		case want != "" && want != strings.ToLower(l.SHA256):
			return Result{}, fmt.Errorf("%w: sha256 %s in the spec, %s in the lock", ErrDrift, want, l.SHA256)
		}
		want, size = strings.ToLower(l.SHA256), l.Size
	}
	if want == "" {
		return Result{}, fmt.Errorf("%w: its sha256 comes from %s, which is not fetched offline", ErrNotLocked, s.SHA256URL)
	}
	n, ok, err := st.have(want, size)
	if err != nil {
		return Result{}, err
	}
	if !ok {
		return Result{}, fmt.Errorf("%w: %s (sha256 %s)", ErrNotInStore, s.URL, want)
	}
	r := Result{Locked: Locked{Name: s.Name, URL: s.URL, SHA256: want, Size: n}}
	if len(s.Extract) == 0 {
		r.Files = []File{{Name: s.Name, Artifact: s.Name, Path: st.blob(want), SHA256: want, Size: n}}
		return r, nil
	}
	files, ok, err := st.unpacked(s, want)
	if err != nil {
		return Result{}, err
	}
	if !ok {
		return Result{}, fmt.Errorf("%w: members of %s not unpacked", ErrNotInStore, s.URL)
	}
	r.Files = files
	return r, nil
}
