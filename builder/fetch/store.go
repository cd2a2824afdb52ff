package fetch

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// rehashLimit: store files up to this size are re-hashed when checked;
// larger ones are trusted by name and size (they were verified on the way in
// and renamed only then).
const rehashLimit = 4 << 20

// copyBuf is the buffer size of every copy: memory stays flat whatever the
// artifact's size.
const copyBuf = 64 << 10

type store struct{ dir string }

func openStore(dir string) (*store, error) {
	for _, d := range []string{"sha256", "partial", "unpacked"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	return &store{dir: dir}, nil
}

func (s *store) blob(hexsum string) string { return filepath.Join(s.dir, "sha256", hexsum) }

func (s *store) partial(rawURL string) string {
	h := sha256.Sum256([]byte(rawURL))
	return filepath.Join(s.dir, "partial", hex.EncodeToString(h[:]))
}

// have reports whether blob hexsum is present and whole: of the given size
// (when size > 0) and, for files up to rehashLimit, of the right digest. A
// blob failing the check is reported absent (the next pull overwrites it).
func (s *store) have(hexsum string, size int64) (int64, bool, error) {
	p := s.blob(hexsum)
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: %w", err)
	}
	if !fi.Mode().IsRegular() || (size > 0 && fi.Size() != size) {
		return 0, false, nil
	}
	if fi.Size() <= rehashLimit {
		got, _, err := hashFile(p)
		if err != nil {
			return 0, false, fmt.Errorf("store: %w", err)
		}
		if got != hexsum {
			return 0, false, nil
		}
	}
	return fi.Size(), true, nil
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, copyBuf))
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// commit syncs tmp's directory entry into place as blob hexsum.
func (s *store) commit(tmp, hexsum string) error {
	if err := os.Rename(tmp, s.blob(hexsum)); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return syncDir(filepath.Join(s.dir, "sha256"))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	_ = d.Sync() // not supported everywhere; the rename is what matters
	return nil
}

// writeAtomic writes data to p through a temp file, fsync and rename.
func writeAtomic(p string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// putStream writes r into the store as a blob, hashing as it goes; the bytes
// carry their final name only once whole and synced. want, if set, must
// match.
func (s *store) putStream(r io.Reader, want string) (string, int64, error) {
	tmp, err := os.CreateTemp(filepath.Join(s.dir, "partial"), ".put-*")
	if err != nil {
		return "", 0, fmt.Errorf("store: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(tmp, h), r, make([]byte, copyBuf))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if want != "" && sum != want {
		return "", 0, fmt.Errorf("%w: got %s, want %s", ErrChecksum, sum, want)
	}
	return sum, n, s.commit(tmp.Name(), sum)
}

// member is one unpacked archive member, as recorded in unpacked/<hex>.json.
type member struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

func (s *store) indexPath(archive string) string {
	return filepath.Join(s.dir, "unpacked", archive+".json")
}

func (s *store) readIndex(archive string) map[string]member {
	idx := map[string]member{}
	data, err := os.ReadFile(s.indexPath(archive))
	if err == nil {
		_ = json.Unmarshal(data, &idx) // a bad index is just re-made
	}
	return idx
}

// unpacked returns src's files from archive's index when every member is
// recorded and present in the store.
func (s *store) unpacked(src Source, archive string) ([]File, bool, error) {
	idx := s.readIndex(archive)
	var out []File
	for m, name := range src.Extract {
		e, ok := idx[cleanMember(m)]
		if !ok {
			return nil, false, nil
		}
		n, ok, err := s.have(e.SHA256, e.Size)
		if err != nil || !ok {
			return nil, false, err
		}
		out = append(out, File{Name: name, Artifact: src.Name, Path: s.blob(e.SHA256), SHA256: e.SHA256, Size: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, true, nil
}

// extract unpacks src.Extract's members of the tar.gz blob archive into the
// store and records them in the archive's index.
func (s *store) extract(src Source, archive string) ([]File, error) {
	if files, ok, err := s.unpacked(src, archive); err != nil || ok {
		return files, err
	}
	f, err := os.Open(s.blob(archive))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, copyBuf))
	if err != nil {
		return nil, fmt.Errorf("%s: %w (extract needs a .tar.gz)", src.URL, err)
	}
	want := map[string]string{}
	for m, name := range src.Extract {
		want[cleanMember(m)] = name
	}
	idx := s.readIndex(archive)
	var out []File
	tr := tar.NewReader(zr)
	for len(want) > 0 {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src.URL, err)
		}
		m := cleanMember(h.Name)
		name, ok := want[m]
		if !ok || h.Typeflag != tar.TypeReg {
			continue
		}
		delete(want, m)
		sum, n, err := s.putStream(tr, "")
		if err != nil {
			return nil, fmt.Errorf("%s: member %s: %w", src.URL, h.Name, err)
		}
		idx[m] = member{SHA256: sum, Size: n}
		out = append(out, File{Name: name, Artifact: src.Name, Path: s.blob(sum), SHA256: sum, Size: n})
	}
	if len(want) > 0 {
		missing := slices.Sorted(func(yield func(string) bool) {
			for m := range want {
				if !yield(m) {
					return
				}
			}
		})
		return nil, fmt.Errorf("%s has no regular file %s (fix the artifact's extract list)", src.URL, strings.Join(missing, ", "))
	}
	data, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(s.indexPath(archive), data); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
