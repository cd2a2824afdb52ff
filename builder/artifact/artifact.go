// Package artifact reads artifacts downloaded by hand: each artifact of the
// spec in a local directory as DIR/<artifact name>/<file name of its URL>,
// with the upstream's published checksum file beside it (what
// `curl -O $url; curl -O $sha256URL` leaves), or at its file:// URL. It is
// fetch.Pull over file:// sources, so verification, checksum formats and
// archive unpacking are the store's own.
package artifact

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/kubebake/kubebake/builder/fetch"
	"github.com/kubebake/kubebake/builder/spec"
)

// File is one installable file an artifact provides.
type File struct {
	Name     string // installed name: "kubelet", "etcdctl", "bridge"
	Artifact string // the spec artifact it came from
	Path     string // local file holding the bytes
	SHA256   string
	Size     int64
}

// Set maps keys (Key) to files.
type Set map[string]File

// Key names a file by its artifact and installed name: "etcd/etcdctl",
// "flannel-cni-plugin/flannel". Two artifacts may install the same name
// (flanneld and the flannel CNI plugin are both "flannel" upstream).
func Key(artifact, name string) string { return artifact + "/" + name }

// Key is f's key in a Set.
func (f File) Key() string { return Key(f.Artifact, f.Name) }

// Names returns the keys, sorted.
func (s Set) Names() []string {
	var n []string
	for k := range s {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// ErrChecksum means an artifact's bytes are not the ones the spec pins.
var ErrChecksum = fetch.ErrChecksum

// FromResults turns fetch results into a Set.
func FromResults(res []fetch.Result) Set {
	set := Set{}
	for _, r := range res {
		for _, f := range r.Files {
			af := File{Name: f.Name, Artifact: f.Artifact, Path: f.Path, SHA256: f.SHA256, Size: f.Size}
			set[af.Key()] = af
		}
	}
	return set
}

// Resolve verifies every artifact of s found in dir (or at its file:// URL)
// and copies it, and the members of archives, into the store at storeDir.
func Resolve(ctx context.Context, s *spec.Spec, dir, storeDir string) (Set, error) {
	var srcs []fetch.Source
	var errs []error
	for _, a := range s.Artifacts {
		src := fetch.Source{Name: a.Name, SHA256: a.SHA256, Extract: a.Extract}
		var err error
		if src.URL, err = local(a.URL, a.Name, dir); err == nil && a.SHA256URL != "" {
			src.SHA256URL, err = local(a.SHA256URL, a.Name, dir)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("artifact %s: %w", a.Name, err))
			continue
		}
		srcs = append(srcs, src)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	res, err := fetch.Pull(ctx, storeDir, srcs)
	if err != nil {
		return nil, err
	}
	return FromResults(res), nil
}

// local maps a URL to a file:// URL of the local copy: file:// URLs as they
// are, others by base name under dir/<name>/.
func local(raw, name, dir string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("url %q: %w", raw, err)
	}
	p := u.Path
	if u.Scheme != "file" {
		if dir == "" {
			return "", fmt.Errorf("%s is not a file:// URL and no artifacts directory was given (--artifacts DIR)", raw)
		}
		if p, err = filepath.Abs(filepath.Join(dir, name, path.Base(u.Path))); err != nil {
			return "", err
		}
	}
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%s not found (download %s there)", p, raw)
		}
		return "", err
	}
	return (&url.URL{Scheme: "file", Path: p}).String(), nil
}
