package verify

import (
	"archive/tar"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// Limits on what the scan keeps in memory. Certificates, keys and
// kubeconfigs are a few KiB; bundle.json and SHA256SUMS grow with the
// number of files and images, so they get more room.
const (
	maxSmall = 1 << 20  // certs, keys, kubeconfigs
	maxIndex = 32 << 20 // bundle.json, SHA256SUMS
)

// entry is what one pass over the tar learns about a member.
type entry struct {
	name     string
	typ      byte
	mode     int64 // permission bits only
	size     int64
	sha256   string // regular files (and hard links to them)
	linkname string
}

// archive is the result of one streaming pass over a bundle.
type archive struct {
	entries  map[string]*entry
	order    []string          // regular files in archive order
	kept     map[string][]byte // small files worth parsing, by entry name
	problems []Problem
}

func (a *archive) problem(p, format string, args ...any) {
	a.problems = append(a.problems, Problem{Path: p, Msg: fmt.Sprintf(format, args...)})
}

// keep reports whether an entry's content is parsed after the pass, and the
// most bytes it may have.
func keep(name string) (int64, bool) {
	if name == plan.ManifestName || name == plan.SumsName {
		return maxIndex, true
	}
	p := hostPath(name)
	if p == "" {
		return 0, false
	}
	base := path.Base(p)
	if strings.HasSuffix(base, ".pem") || base == "sa.key" || base == "sa.pub" || isKubeconfig(p) {
		return maxSmall, true
	}
	return 0, false
}

// corrupt marks errors that mean the bytes are bad rather than unreadable.
func corrupt(err error) bool {
	var ce flate.CorruptInputError
	return errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) ||
		errors.Is(err, tar.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, tar.ErrFieldTooLong) || errors.As(err, &ce)
}

func wrapRead(bundle string, err error) error {
	if corrupt(err) {
		return fmt.Errorf("%s: %w: %w", bundle, ErrCorrupt, err)
	}
	return fmt.Errorf("%s: %w", bundle, err)
}

// walk streams the bundle's tar members to fn. fn reads r only for regular
// files. walk drains the gzip stream after the tar's end so the last
// member's checksum is checked, and reports whether non-zero bytes followed
// the end of the archive.
func walk(bundle string, fn func(h *tar.Header, r io.Reader) error) (trailing bool, err error) {
	f, err := os.Open(bundle)
	if err != nil {
		return false, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return false, wrapRead(bundle, err)
	}
	defer gz.Close()
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, wrapRead(bundle, err)
		}
		if err := fn(h, tr); err != nil {
			return false, wrapRead(bundle, err)
		}
	}
	nz := &nonZero{}
	if _, err := io.Copy(nz, gz); err != nil {
		return false, wrapRead(bundle, err)
	}
	return nz.seen, nil
}

type nonZero struct{ seen bool }

func (z *nonZero) Write(p []byte) (int, error) {
	if !z.seen && bytes.ContainsFunc(p, func(r rune) bool { return r != 0 }) {
		z.seen = true
	}
	return len(p), nil
}

// scan reads a bundle in one pass: it checks each member's name and type,
// hashes every regular file while reading it, and keeps only small files.
func scan(bundle string) (*archive, error) {
	a := &archive{entries: map[string]*entry{}, kept: map[string][]byte{}}
	var symlinks []string // directories a later member must not pass through
	trailing, err := walk(bundle, func(h *tar.Header, r io.Reader) error {
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag == tar.TypeDir {
			name = strings.TrimSuffix(name, "/")
		}
		if name == "" || name == "." {
			return nil // the archive root itself
		}
		if !safeName(a, h.Name, name) {
			return nil
		}
		for _, l := range symlinks {
			if strings.HasPrefix(name, l+"/") {
				a.problem(name, "is written through the symlink %s: extracting it would follow the link", l)
				return nil
			}
		}
		if prev, ok := a.entries[name]; ok && !(prev.typ == tar.TypeDir && h.Typeflag == tar.TypeDir) {
			a.problem(name, "appears twice in the archive: the later copy would silently replace the first")
		}
		e := &entry{name: name, typ: h.Typeflag, mode: h.Mode & 0o7777, size: h.Size, linkname: h.Linkname}
		switch h.Typeflag {
		case tar.TypeReg:
			sum, err := readEntry(a, name, r)
			if err != nil {
				return err
			}
			e.sha256 = sum
			a.order = append(a.order, name)
		case tar.TypeDir:
		case tar.TypeSymlink:
			symlinks = append(symlinks, name)
			target := h.Linkname
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(name), target)
			}
			if path.IsAbs(h.Linkname) || target == ".." || strings.HasPrefix(target, "../") {
				a.problem(name, "symlink to %s escapes the bundle: remove it (bundles hold regular files and directories)", h.Linkname)
			}
		case tar.TypeLink:
			target := path.Clean(strings.TrimPrefix(h.Linkname, "./"))
			t, ok := a.entries[target]
			switch {
			case path.IsAbs(h.Linkname) || target == ".." || strings.HasPrefix(target, "../"):
				a.problem(name, "hard link to %s escapes the bundle: remove it", h.Linkname)
			case !ok || t.typ != tar.TypeReg:
				a.problem(name, "hard link to %s, which is not an earlier regular file in the bundle", h.Linkname)
			default:
				e.sha256, e.size = t.sha256, t.size
				a.order = append(a.order, name)
				if b, ok := a.kept[target]; ok {
					a.kept[name] = b
				}
			}
		case tar.TypeChar, tar.TypeBlock:
			a.problem(name, "is a device file: bundles hold regular files and directories only")
		case tar.TypeXGlobalHeader:
			return nil
		default:
			a.problem(name, "has tar type %q: bundles hold regular files and directories only", h.Typeflag)
		}
		a.entries[name] = e
		return nil
	})
	if err != nil {
		return nil, err
	}
	if trailing {
		a.problem("", "non-zero data follows the end of the tar archive: rebuild the bundle")
	}
	return a, nil
}

// safeName reports whether a member may be extracted where its name says.
func safeName(a *archive, raw, name string) bool {
	switch {
	case path.IsAbs(raw):
		a.problem(raw, "absolute entry name: extracting it would write outside the target directory")
		return false
	case name == ".." || strings.HasPrefix(name, "../") || strings.Contains(name, "/../") || strings.HasSuffix(name, "/.."):
		a.problem(raw, "entry name contains \"..\": extracting it would write outside the target directory")
		return false
	case strings.ContainsRune(name, 0) || strings.Contains(name, "\\"):
		a.problem(raw, "entry name contains a NUL or backslash")
		return false
	}
	return true
}

// readEntry hashes one regular file, keeping its bytes if they are parsed
// later and small enough.
func readEntry(a *archive, name string, r io.Reader) (string, error) {
	h := sha256.New()
	limit, ok := keep(name)
	if !ok {
		if _, err := io.Copy(h, r); err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	var b bytes.Buffer
	n, err := io.Copy(io.MultiWriter(h, &b), io.LimitReader(r, limit+1))
	if err != nil {
		return "", err
	}
	if n > limit {
		if _, err := io.Copy(h, r); err != nil {
			return "", err
		}
		a.problem(name, "is larger than %d bytes: too large to check", limit)
	} else {
		a.kept[name] = b.Bytes()
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
