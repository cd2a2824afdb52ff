// Package artifact turns the spec's artifacts into verified local files:
// each artifact is found in a local directory (as downloaded by hand, or by
// `kubebake pull` later) or at a file:// URL, checked against its sha256
// while streaming, and archives are unpacked into a content-addressed cache.
package artifact

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

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
var ErrChecksum = errors.New("sha256 mismatch")

// Resolve verifies every artifact of s. Artifacts are looked up at their
// file:// URL, or in dir as dir/<artifact name>/<URL base name>, with the
// published checksum file beside it (dir/<name>/<sha256URL base name>) when
// the spec gives sha256URL instead of sha256. Archives are unpacked into
// cacheDir/sha256/<hex>.
func Resolve(ctx context.Context, s *spec.Spec, dir, cacheDir string) (Set, error) {
	set := Set{}
	var errs []error
	for _, a := range s.Artifacts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		files, err := resolveOne(a, dir, cacheDir)
		if err != nil {
			errs = append(errs, fmt.Errorf("artifact %s: %w", a.Name, err))
			continue
		}
		for _, f := range files {
			set[f.Key()] = f
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return set, nil
}

func resolveOne(a spec.Artifact, dir, cacheDir string) ([]File, error) {
	local, err := locate(a.URL, a.Name, dir)
	if err != nil {
		return nil, err
	}
	want := strings.ToLower(a.SHA256)
	if want == "" {
		if a.SHA256URL == "" {
			return nil, errors.New("no sha256 and no sha256URL: pin one in bundle-spec.yaml")
		}
		sumFile, err := locate(a.SHA256URL, a.Name, dir)
		if err != nil {
			return nil, fmt.Errorf("published checksum: %w", err)
		}
		if want, err = readChecksum(sumFile, baseName(a.URL)); err != nil {
			return nil, err
		}
	}
	got, size, err := hashFile(local)
	if err != nil {
		return nil, err
	}
	if got != want {
		return nil, fmt.Errorf("%s: %w: got %s, want %s (re-download it, or fix the pin)", local, ErrChecksum, got, want)
	}
	if len(a.Extract) == 0 {
		return []File{{Name: a.Name, Artifact: a.Name, Path: local, SHA256: got, Size: size}}, nil
	}
	return extract(a, local, cacheDir)
}

// locate maps a URL to a local file: file:// URLs directly, others by base
// name under dir/<name>/.
func locate(raw, name, dir string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("url %q: %w", raw, err)
	}
	p := u.Path
	if u.Scheme != "file" {
		if dir == "" {
			return "", fmt.Errorf("%s is not a file:// URL and no artifacts directory was given (--artifacts DIR)", raw)
		}
		p = filepath.Join(dir, name, path.Base(u.Path))
	}
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("%s not found (download %s there)", p, raw)
		}
		return "", err
	}
	return p, nil
}

func baseName(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return path.Base(u.Path)
	}
	return path.Base(raw)
}

// readChecksum understands the formats upstreams publish: a bare hex digest
// (dl.k8s.io's <binary>.sha256) or sha256sum(1) lines (etcd's SHA256SUMS,
// containerd's .sha256sum), from which it takes the line naming file.
func readChecksum(p, file string) (string, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		return githubDigest(p, data, file)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	var only string
	lines := 0
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		lines++
		if !isHex64(f[0]) {
			continue
		}
		if len(f) == 1 {
			only = f[0]
			continue
		}
		if strings.TrimPrefix(strings.TrimPrefix(f[1], "*"), "./") == file || path.Base(f[1]) == file {
			return strings.ToLower(f[0]), nil
		}
	}
	if only != "" && lines == 1 {
		return strings.ToLower(only), nil
	}
	return "", fmt.Errorf("%s: no sha256 for %s in it", p, file)
}

// githubDigest reads GitHub's release JSON, which carries a "digest" per
// asset: the only published checksum for projects (flannel) that ship no
// checksum file.
func githubDigest(p string, data []byte, file string) (string, error) {
	var rel struct {
		Assets []struct {
			Name   string `json:"name"`
			Digest string `json:"digest"`
		} `json:"assets"`
	}
	if err := json.Unmarshal(data, &rel); err != nil {
		return "", fmt.Errorf("%s: not a checksum file nor a GitHub release: %w", p, err)
	}
	for _, a := range rel.Assets {
		if d, ok := strings.CutPrefix(a.Digest, "sha256:"); a.Name == file && ok && isHex64(d) {
			return strings.ToLower(d), nil
		}
	}
	return "", fmt.Errorf("%s: no sha256 digest for asset %s in it", p, file)
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// extract unpacks the archive members a.Extract names into the cache,
// content-addressed, each written to a temp file and renamed when whole.
func extract(a spec.Artifact, archive, cacheDir string) ([]File, error) {
	if cacheDir == "" {
		return nil, errors.New("archive needs a cache directory to unpack into")
	}
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w (want a .tar.gz)", archive, err)
	}
	want := map[string]string{}
	for member, name := range a.Extract {
		want[strings.TrimPrefix(member, "./")] = name
	}
	var out []File
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", archive, err)
		}
		name, ok := want[strings.TrimPrefix(h.Name, "./")]
		if !ok || h.Typeflag != tar.TypeReg {
			continue
		}
		delete(want, strings.TrimPrefix(h.Name, "./"))
		p, sum, n, err := store(tr, cacheDir)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", archive, h.Name, err)
		}
		out = append(out, File{Name: name, Artifact: a.Name, Path: p, SHA256: sum, Size: n})
	}
	if len(want) > 0 {
		var missing []string
		for m := range want {
			missing = append(missing, m)
		}
		sort.Strings(missing)
		return nil, fmt.Errorf("%s has no regular file %s (fix artifacts[].extract)", archive, strings.Join(missing, ", "))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// store writes r into cacheDir/sha256/<hex> atomically.
func store(r io.Reader, cacheDir string) (string, string, int64, error) {
	dir := filepath.Join(cacheDir, "sha256")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", 0, err
	}
	tmp, err := os.CreateTemp(dir, ".unpack-*")
	if err != nil {
		return "", "", 0, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", "", 0, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	final := filepath.Join(dir, sum)
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", "", 0, err
	}
	return final, sum, n, nil
}
