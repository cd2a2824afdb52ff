// Package bundletest reads baked bundles (<host>.tar.gz) in tests: every
// entry, one file, or the whole bundle unpacked as a host would.
package bundletest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Entry is one tar entry of a bundle and its data.
type Entry struct {
	Header *tar.Header
	Data   []byte
}

// Entries reads every entry of the bundle at path, in archive order, and
// fails the test if anything but zero blocks follows the archive's end.
func Entries(t testing.TB, path string) []Entry {
	t.Helper()
	var out []Entry
	rest := walk(t, path, func(h *tar.Header, r io.Reader) bool {
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s: %s: %v", path, h.Name, err)
		}
		out = append(out, Entry{h, b})
		return true
	})
	if len(rest) != 0 && bytes.Count(rest, []byte{0}) != len(rest) {
		t.Errorf("%s: %d non-zero bytes after the archive", path, len(rest))
	}
	return out
}

// File returns the data of the entry called name (a bundle path such as
// rootfs/etc/… or bundle.json); the test fails when there is none.
func File(t testing.TB, path, name string) []byte {
	t.Helper()
	var found []byte
	ok := false
	walk(t, path, func(h *tar.Header, r io.Reader) bool {
		if h.Name != name {
			return true
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("%s: %s: %v", path, name, err)
		}
		found, ok = b, true
		return false
	})
	if !ok {
		t.Fatalf("%s: no %s", path, name)
	}
	return found
}

// Untar unpacks the bundle at path into dir as `tar xzf` would, refusing
// entries that leave dir and any type but directories and regular files.
func Untar(t testing.TB, path, dir string) {
	t.Helper()
	walk(t, path, func(h *tar.Header, r io.Reader) bool {
		name := filepath.Clean(h.Name)
		if name == ".." || strings.HasPrefix(name, "../") || filepath.IsAbs(name) {
			t.Fatalf("%s: entry %q escapes", path, h.Name)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, os.FileMode(h.Mode)&0o7777); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("%s: entry %q: unexpected type %c", path, h.Name, h.Typeflag)
		}
		return true
	})
}

// walk calls fn for each entry until it returns false, and returns what
// the gzip stream holds after the archive's end (read only when every
// entry was walked).
func walk(t testing.TB, path string, fn func(*tar.Header, io.Reader) bool) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !fn(h, tr) {
			return nil
		}
	}
	rest, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rest
}
