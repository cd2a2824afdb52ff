package bake

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// memberThreshold is the entry size (content bytes) from which an entry gets
// a cached gzip member of its own. Tests lower it.
var memberThreshold int64 = 64 << 10

// keyVersion changes whenever the member layout changes, so old cache files
// are never mistaken for new ones.
const keyVersion = "kubebake/bake member v1"

const blockSize = 512

// item is one tar entry ready to write.
type item struct {
	name string // tar name; directories end in "/"
	hdr  []byte // encoded header blocks, including any GNU long-name blocks
	e    *Entry // nil for a directory
	size int64
}

// padding returns the zero bytes that complete the last data block.
func (it *item) padding() int64 {
	return (blockSize - it.size%blockSize) % blockSize
}

// streamLen is the length of the entry in the tar stream.
func (it *item) streamLen() int64 { return int64(len(it.hdr)) + it.size + it.padding() }

// segment is one gzip member of a bundle: either a shared member or a run of
// small items compressed in place (with the end-of-archive if last).
type segment struct {
	shared *member
	items  []*item
	last   bool
}

// plan is one bundle ready to assemble.
type plan struct {
	name string
	segs []segment
}

// planner validates bundles and collects their distinct shared members.
type planner struct {
	o       *options
	members map[string]*member
	order   []*member // by first use, the order they are compressed in
}

func (p *planner) bundle(b *Bundle) (*plan, error) {
	if err := checkBundleName(b.Name); err != nil {
		return nil, err
	}
	items := make(map[string]*item) // by name without trailing slash
	var listed []string
	for i := range b.Entries {
		e := &b.Entries[i]
		name, dir, err := checkEntryName(e.Name)
		if err != nil {
			return nil, fmt.Errorf("bake %s: %w", b.Name, err)
		}
		if _, dup := items[name]; dup {
			return nil, fmt.Errorf("bake %s: entry %q: %w: listed twice", b.Name, e.Name, ErrInvalidBundle)
		}
		it, err := p.item(name, dir, e)
		if err != nil {
			return nil, fmt.Errorf("bake %s: entry %q: %w", b.Name, e.Name, err)
		}
		items[name] = it
		listed = append(listed, name)
	}
	// Add missing parents; refuse a file used as a directory.
	for _, name := range listed {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if it, ok := items[d]; ok {
				if it.e != nil {
					return nil, fmt.Errorf("bake %s: entry %q: %w: it is a file but %q is inside it", b.Name, d, ErrInvalidBundle, name)
				}
				continue
			}
			it, err := p.item(d, true, nil)
			if err != nil {
				return nil, fmt.Errorf("bake %s: directory %q: %w", b.Name, d, err)
			}
			items[d] = it
		}
	}
	names := make([]string, 0, len(items))
	for n := range items {
		names = append(names, n)
	}
	// Bytewise order; a directory is a prefix of its contents so it sorts first.
	slices.Sort(names)

	pl := &plan{name: b.Name}
	var small []*item
	for _, n := range names {
		it := items[n]
		if it.e == nil || it.size < memberThreshold {
			small = append(small, it)
			continue
		}
		if len(small) > 0 {
			pl.segs = append(pl.segs, segment{items: small})
			small = nil
		}
		pl.segs = append(pl.segs, segment{shared: p.member(b.Name, it)})
	}
	pl.segs = append(pl.segs, segment{items: small, last: true})
	return pl, nil
}

// item validates an entry (nil e: an implied directory) and encodes its header.
func (p *planner) item(name string, dir bool, e *Entry) (*item, error) {
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     0o644,
		ModTime:  p.o.mtime,
		Uname:    "root",
		Gname:    "root",
		Format:   tar.FormatGNU,
	}
	it := &item{e: e}
	if dir {
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
		hdr.Mode = 0o755
	}
	if e != nil {
		if e.Mode&^0o7777 != 0 {
			return nil, fmt.Errorf("%w: mode %#o has bits other than permissions", ErrInvalidBundle, e.Mode)
		}
		if e.Mode != 0 {
			hdr.Mode = int64(e.Mode)
		}
		if dir {
			if e.SHA256 != "" || e.Size != 0 || e.Data != nil || e.Path != "" {
				return nil, fmt.Errorf("%w: a directory has no content", ErrInvalidBundle)
			}
			it.e = nil
		} else {
			if err := checkContent(e); err != nil {
				return nil, err
			}
			hdr.Size = e.Size
			it.size = e.Size
		}
	}
	it.name = hdr.Name
	var buf bytes.Buffer
	if err := tar.NewWriter(&buf).WriteHeader(hdr); err != nil {
		return nil, fmt.Errorf("%w: tar header: %v", ErrInvalidBundle, err)
	}
	it.hdr = buf.Bytes()
	return it, nil
}

// member returns the shared member for it, creating it on first use.
func (p *planner) member(bundle string, it *item) *member {
	level := p.o.level
	if level == gzip.DefaultCompression {
		level = 6 // the same output as compress/flate's default
	}
	h := sha256.New()
	h.Write([]byte(keyVersion + "\x00" + runtime.Version() + "\x00" + strconv.Itoa(level) + "\x00"))
	h.Write(it.hdr)
	h.Write([]byte(it.e.SHA256))
	key := hex.EncodeToString(h.Sum(nil))
	if m, ok := p.members[key]; ok {
		return m
	}
	m := &member{key: key, bundle: bundle, it: it, done: make(chan struct{})}
	p.members[key] = m
	p.order = append(p.order, m)
	return m
}

func checkContent(e *Entry) error {
	if e.Size < 0 {
		return fmt.Errorf("%w: negative size %d", ErrInvalidBundle, e.Size)
	}
	if len(e.SHA256) != sha256.Size*2 || strings.ToLower(e.SHA256) != e.SHA256 {
		return fmt.Errorf("%w: sha256 %q is not 64 lowercase hex digits", ErrInvalidBundle, e.SHA256)
	}
	if _, err := hex.DecodeString(e.SHA256); err != nil {
		return fmt.Errorf("%w: sha256 %q is not 64 lowercase hex digits", ErrInvalidBundle, e.SHA256)
	}
	switch {
	case e.Data != nil && e.Path != "":
		return fmt.Errorf("%w: both Data and Path are set", ErrInvalidBundle)
	case e.Path == "" && int64(len(e.Data)) != e.Size:
		return fmt.Errorf("%w: %d bytes of Data, Size says %d", ErrSize, len(e.Data), e.Size)
	}
	return nil
}

// checkEntryName returns the name without a trailing slash and whether it
// names a directory.
func checkEntryName(n string) (string, bool, error) {
	name, dir := strings.CutSuffix(n, "/")
	bad := name == "" || name == "." || strings.HasPrefix(name, "/") ||
		path.Clean(name) != name || strings.ContainsRune(name, 0)
	if !bad {
		for _, el := range strings.Split(name, "/") {
			if el == ".." {
				bad = true
			}
		}
	}
	if bad {
		return "", false, fmt.Errorf("entry %q: %w: want a clean relative slash-separated path", n, ErrInvalidBundle)
	}
	return name, dir, nil
}

func checkBundleName(n string) error {
	if n == "" || n == "." || n == ".." || strings.HasPrefix(n, ".") || strings.ContainsAny(n, "/\\\x00") {
		return fmt.Errorf("bundle name %q: %w: want a host name (no slash, no leading dot)", n, ErrInvalidBundle)
	}
	return nil
}
