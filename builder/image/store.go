package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// store is an OCI image layout on disk. Blobs are content-addressed and
// written once: a temp file in blobs/sha256/, verified, then renamed, so a
// half-written or corrupted blob never carries its final name. index.json is
// rewritten atomically under a mutex.
type store struct {
	dir string
	mu  sync.Mutex // index.json

	fmu      sync.Mutex
	inflight map[v1.Hash]*flight
}

type flight struct {
	done chan struct{}
	err  error
}

const layoutFile = `{"imageLayoutVersion":"1.0.0"}`

func openStore(dir string, create bool) (*store, error) {
	s := &store{dir: dir, inflight: map[v1.Hash]*flight{}}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
		if create {
			s.sweepPartials()
		}
		return s, nil
	} else if !create {
		return nil, fmt.Errorf("image layout %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, err
	}
	if err := atomicWrite(filepath.Join(dir, "oci-layout"), []byte(layoutFile)); err != nil {
		return nil, err
	}
	if err := s.writeIndex(&v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}); err != nil {
		return nil, err
	}
	return s, nil
}

// sweepPartials removes temp files a killed run left behind; a file touched
// in the last 10 minutes may belong to a run still going and stays.
func (s *store) sweepPartials() {
	left, _ := filepath.Glob(filepath.Join(s.dir, "blobs", "sha256", ".*.partial"))
	for _, p := range left {
		if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > 10*time.Minute {
			_ = os.Remove(p)
		}
	}
}

func (s *store) blobPath(h v1.Hash) string {
	return filepath.Join(s.dir, "blobs", h.Algorithm, h.Hex)
}

// has reports whether blob h is present with the given size (-1: any).
func (s *store) has(h v1.Hash, size int64) bool {
	fi, err := os.Stat(s.blobPath(h))
	return err == nil && fi.Mode().IsRegular() && (size < 0 || fi.Size() == size)
}

// once runs f for blob h unless another goroutine is already running it, in
// which case it waits for that result: a blob shared by images is fetched once.
func (s *store) once(h v1.Hash, f func() error) error {
	s.fmu.Lock()
	if fl, ok := s.inflight[h]; ok {
		s.fmu.Unlock()
		<-fl.done
		return fl.err
	}
	fl := &flight{done: make(chan struct{})}
	s.inflight[h] = fl
	s.fmu.Unlock()
	fl.err = f()
	close(fl.done)
	if fl.err != nil { // let a later caller try again
		s.fmu.Lock()
		delete(s.inflight, h)
		s.fmu.Unlock()
	}
	return fl.err
}

// writeBlob streams r into the blob for desc, verifying size and sha256
// before the rename; it returns the bytes written.
func (s *store) writeBlob(desc v1.Descriptor, r io.Reader) (int64, error) {
	if desc.Digest.Algorithm != "sha256" {
		return 0, fmt.Errorf("blob %s: unsupported digest algorithm", desc.Digest)
	}
	dir := filepath.Dir(s.blobPath(desc.Digest))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	f, err := os.CreateTemp(dir, "."+desc.Digest.Hex+".*.partial")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err == nil {
		err = f.Sync() // the final name must never point at unwritten data
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if desc.Size >= 0 && n != desc.Size {
		return n, fmt.Errorf("blob %s: got %d bytes, want %d", desc.Digest, n, desc.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != desc.Digest.Hex {
		return n, fmt.Errorf("blob %s: content has digest sha256:%s", desc.Digest, got)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return n, err
	}
	return n, os.Rename(f.Name(), s.blobPath(desc.Digest))
}

// putBytes stores a small blob (a manifest) already in memory.
func (s *store) putBytes(b []byte) (v1.Hash, error) {
	h, n, err := v1.SHA256(bytes.NewReader(b))
	if err != nil {
		return h, err
	}
	if s.has(h, n) {
		return h, nil
	}
	_, err = s.writeBlob(v1.Descriptor{Digest: h, Size: n}, bytes.NewReader(b))
	return h, err
}

// readBlob reads a small blob and verifies it.
func (s *store) readBlob(h v1.Hash) ([]byte, error) {
	b, err := os.ReadFile(s.blobPath(h))
	if err != nil {
		return nil, err
	}
	got, _, _ := v1.SHA256(bytes.NewReader(b))
	if got != h {
		return nil, fmt.Errorf("blob %s in %s is corrupt (content has %s)", h, s.dir, got)
	}
	return b, nil
}

func (s *store) readIndex() (*v1.IndexManifest, error) {
	f, err := os.Open(filepath.Join(s.dir, "index.json"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return v1.ParseIndexManifest(f)
}

func (s *store) writeIndex(im *v1.IndexManifest) error {
	sort.SliceStable(im.Manifests, func(i, j int) bool {
		a, b := im.Manifests[i], im.Manifests[j]
		if a.Annotations[AnnotationRefName] != b.Annotations[AnnotationRefName] {
			return a.Annotations[AnnotationRefName] < b.Annotations[AnnotationRefName]
		}
		return a.Digest.String() < b.Digest.String()
	})
	b, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return err
	}
	return atomicWrite(filepath.Join(s.dir, "index.json"), append(b, '\n'))
}

// setRef makes desc the only index.json entry annotated with ref.
func (s *store) setRef(ref string, desc v1.Descriptor) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	im, err := s.readIndex()
	if err != nil {
		return err
	}
	out := im.Manifests[:0]
	for _, d := range im.Manifests {
		if d.Annotations[AnnotationRefName] != ref {
			out = append(out, d)
		}
	}
	desc.Annotations = map[string]string{AnnotationRefName: ref}
	im.Manifests = append(out, desc)
	return s.writeIndex(im)
}

// lookup finds the index.json entry for ref (and digest, when given).
func (s *store) lookup(im *v1.IndexManifest, ref, digest string) (v1.Descriptor, error) {
	for _, d := range im.Manifests {
		if d.Annotations[AnnotationRefName] == ref && (digest == "" || d.Digest.String() == digest) {
			return d, nil
		}
	}
	if digest != "" {
		return v1.Descriptor{}, fmt.Errorf("%s@%s in %s: %w (run kubebake pull)", ref, digest, s.dir, ErrNotInStore)
	}
	return v1.Descriptor{}, fmt.Errorf("%s in %s: %w (run kubebake pull)", ref, s.dir, ErrNotInStore)
}

func atomicWrite(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

var errNotManifest = errors.New("not an image manifest or index")
