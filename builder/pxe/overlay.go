package pxe

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/cavaliergopher/cpio"
)

// OverlayEntry is one file of an initrd overlay. Exactly one of Data and
// File is set; File is streamed (a bundle can be hundreds of MB).
type OverlayEntry struct {
	Path string // relative, slash-separated: ks.cfg, kubebake/bundle.tar.gz
	Mode os.FileMode
	Data []byte
	File string
	// SHA256, when set with File, is checked while the file is streamed;
	// a mismatch fails the write.
	SHA256 string
}

// maxNewcSize is the largest file newc can describe (8 hex digits).
const maxNewcSize = 1<<32 - 1

// hookPath is the overlay's dracut pre-pivot hook. RHEL 7's initramfs has
// lib -> usr/lib, so the hook goes under usr/lib and the overlay never has
// an entry named lib (unpacking a directory there would fail on the link).
const hookPath = "usr/lib/dracut/hooks/pre-pivot/90-kubebake-bundle.sh"

// OverlayBundle is where the bundle sits in the overlay (and so in the
// initramfs, before the hook moves it).
const OverlayBundle = "kubebake/bundle.tar.gz"

// hookScript is sourced by dracut (dracut-pre-pivot.service, source_hook
// pre-pivot): no exit, no set -e. It only hands the bundle on; the
// kickstart's %post checks it and fails the install if it is not there or
// its sha256 differs. mv, not cp: the initramfs copy is freed.
const hookScript = `# kubebake: hand the bundle in this initrd overlay to the installer.
# Sourced by dracut in pre-pivot; the kickstart's %post verifies the result.
if [ -f /` + OverlayBundle + ` ]; then
    mkdir -p ` + "/run/install/kubebake" + `
    if mv -f /` + OverlayBundle + ` ` + RunBundle + `; then
        info "kubebake: bundle moved to ` + RunBundle + `"
    else
        warn "kubebake: could not move /` + OverlayBundle + ` to ` + RunBundle + `"
    fi
fi
`

// WriteOverlay writes entries to w as a gzip-compressed newc cpio archive
// that the kernel can unpack after another initrd: entries sorted with
// every parent directory first (created as needed), uid/gid 0, mtime fixed,
// inode numbers 1, 2, … in order, 4-byte alignment, TRAILER!!! last. The
// gzip header has no name and no time. It returns the sha256 of the
// compressed archive.
func WriteOverlay(w io.Writer, entries []OverlayEntry, mtime time.Time) (string, error) {
	sorted := append([]OverlayEntry(nil), entries...)
	seen := map[string]bool{}
	for _, e := range sorted {
		if e.Path == "" || strings.HasPrefix(e.Path, "/") || path.Clean(e.Path) != e.Path || strings.HasPrefix(e.Path, "../") {
			return "", fmt.Errorf("overlay entry %q: not a clean relative path", e.Path)
		}
		if seen[e.Path] {
			return "", fmt.Errorf("overlay entry %q: listed twice", e.Path)
		}
		seen[e.Path] = true
	}
	var dirs []OverlayEntry
	for _, e := range sorted {
		for d := path.Dir(e.Path); d != "."; d = path.Dir(d) {
			if d == "lib" {
				return "", fmt.Errorf("overlay entry %q: would create lib/, a symlink to usr/lib in RHEL 7's initramfs", e.Path)
			}
			if !seen[d] {
				seen[d] = true
				dirs = append(dirs, OverlayEntry{Path: d, Mode: os.ModeDir | 0o755})
			}
		}
	}
	sorted = append(sorted, dirs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })

	sum := sha256.New()
	gz, err := gzip.NewWriterLevel(io.MultiWriter(w, sum), gzip.BestSpeed)
	if err != nil {
		return "", err
	}
	cw := cpio.NewWriter(gz)
	for i, e := range sorted {
		if err := writeEntry(cw, e, int64(i+1), mtime); err != nil {
			return "", fmt.Errorf("overlay entry %s: %w", e.Path, err)
		}
	}
	if err := cw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(sum.Sum(nil)), nil
}

func writeEntry(cw *cpio.Writer, e OverlayEntry, inode int64, mtime time.Time) error {
	hdr := &cpio.Header{Name: e.Path, Inode: inode, ModTime: mtime, Uid: 0, Guid: 0}
	if e.Mode.IsDir() {
		hdr.Mode = cpio.TypeDir | cpio.FileMode(e.Mode.Perm())
		hdr.Links = 2
		return cw.WriteHeader(hdr)
	}
	hdr.Mode = cpio.TypeReg | cpio.FileMode(e.Mode.Perm())
	hdr.Links = 1
	if e.File == "" {
		hdr.Size = int64(len(e.Data))
		if err := cw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := cw.Write(e.Data)
		return err
	}
	f, err := os.Open(e.File)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() > maxNewcSize {
		return fmt.Errorf("%s is %d bytes; newc cpio holds at most %d: deliver it over http", e.File, st.Size(), int64(maxNewcSize))
	}
	hdr.Size = st.Size()
	if err := cw.WriteHeader(hdr); err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(cw, h), f)
	if err != nil {
		return err
	}
	if n != hdr.Size {
		return fmt.Errorf("%s changed size while being read", e.File)
	}
	if got := hex.EncodeToString(h.Sum(nil)); e.SHA256 != "" && got != e.SHA256 {
		return fmt.Errorf("%w: %s has sha256 %s, SHA256SUMS says %s", ErrBundle, e.File, got, e.SHA256)
	}
	return nil
}
