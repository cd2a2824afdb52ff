package bake

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// member is a shared gzip member: one large entry (header, data, padding),
// compressed once into <cacheDir>/<key>.gz. The key is the sha256 of the
// layout version, the Go version, the gzip level, the tar header bytes and
// the content sha256, so equal keys mean equal member bytes.
//
// A member file appears under its final name only by rename after fsync, so
// a torn member can never be found there; as a cheap guard against files
// damaged by other means, a cached member is used only if it starts with the
// gzip magic and its trailer's ISIZE matches the expected length.
type member struct {
	key    string
	bundle string // first bundle needing it, for error messages
	it     *item

	done chan struct{} // closed once path or err is set
	path string
	err  error
}

func (m *member) wait(ctx context.Context) (string, error) {
	select {
	case <-m.done:
		return m.path, m.err
	case <-ctx.Done():
		return "", context.Cause(ctx)
	}
}

// cached reports whether a usable member file exists at path.
func cached(path string, usize int64) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() < 18+8 {
		return false
	}
	var head [3]byte
	var tail [4]byte
	if _, err := f.ReadAt(head[:], 0); err != nil {
		return false
	}
	if _, err := f.ReadAt(tail[:], fi.Size()-4); err != nil {
		return false
	}
	return head == [3]byte{0x1f, 0x8b, 8} && binary.LittleEndian.Uint32(tail[:]) == uint32(usize)
}

// build makes the member available in the cache, compressing it if needed.
func (w *writer) build(ctx context.Context, m *member) (hit bool, err error) {
	final := filepath.Join(w.o.cacheDir, m.key+".gz")
	if cached(final, m.it.streamLen()) {
		m.path = final
		return true, nil
	}
	tmp, err := os.CreateTemp(w.o.cacheDir, ".tmp-"+m.key+"-*")
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	zw := w.gzipWriter(bw)
	defer w.gz.Put(zw)
	cw := &countWriter{w: zw, report: w.compressed}
	if err := writeItems(ctx, cw, []*item{m.it}); err != nil {
		return false, err
	}
	if err := zw.Close(); err != nil {
		return false, err
	}
	w.compressed(cw.pending)
	if err := bw.Flush(); err != nil {
		return false, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return false, err
	}
	m.path = final
	return false, nil
}

func (w *writer) gzipWriter(dst io.Writer) *gzip.Writer {
	if zw, ok := w.gz.Get().(*gzip.Writer); ok {
		zw.Reset(dst)
		return zw
	}
	zw, _ := gzip.NewWriterLevel(dst, w.o.level) // level checked by WithLevel
	return zw
}

// writeItems writes the tar bytes of items (header, content, padding) to dst,
// checking each file's size and sha256 as it streams.
func writeItems(ctx context.Context, dst io.Writer, items []*item) error {
	var zeros [blockSize]byte
	for _, it := range items {
		if _, err := dst.Write(it.hdr); err != nil {
			return err
		}
		if it.e != nil {
			if err := copyContent(ctx, dst, it.e); err != nil {
				return fmt.Errorf("entry %s: %w", it.e.Name, err)
			}
		}
		if _, err := dst.Write(zeros[:it.padding()]); err != nil {
			return err
		}
	}
	return nil
}

// copyContent writes exactly e.Size bytes of e's content to dst and fails if
// the content is shorter, longer, or hashes to other than e.SHA256.
func copyContent(ctx context.Context, dst io.Writer, e *Entry) error {
	h := sha256.New()
	if e.Path == "" {
		h.Write(e.Data)
		if got := hex.EncodeToString(h.Sum(nil)); got != e.SHA256 {
			return fmt.Errorf("%w: content has %s, entry says %s", ErrChecksum, got, e.SHA256)
		}
		_, err := dst.Write(e.Data)
		return err
	}
	f, err := os.Open(e.Path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Mode().IsRegular() && fi.Size() != e.Size {
		return fmt.Errorf("%w: %s has %d bytes, entry says %d", ErrSize, e.Path, fi.Size(), e.Size)
	}
	buf := make([]byte, 256<<10)
	var n int64
	for n < e.Size {
		if err := ctx.Err(); err != nil {
			return context.Cause(ctx)
		}
		chunk := buf[:min(int64(len(buf)), e.Size-n)]
		k, err := io.ReadFull(f, chunk)
		h.Write(chunk[:k])
		if _, werr := dst.Write(chunk[:k]); werr != nil {
			return werr
		}
		n += int64(k)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("%w: %s ended after %d bytes, entry says %d", ErrSize, e.Path, n, e.Size)
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", e.Path, err)
		}
	}
	if k, _ := f.Read(buf[:1]); k != 0 {
		return fmt.Errorf("%w: %s is longer than the %d bytes the entry says", ErrSize, e.Path, e.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != e.SHA256 {
		return fmt.Errorf("%w: %s has %s, entry says %s", ErrChecksum, e.Path, got, e.SHA256)
	}
	return nil
}

// countWriter reports bytes written every few MiB, for progress.
type countWriter struct {
	w       io.Writer
	pending int64
	report  func(int64)
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.pending += int64(n)
	if c.pending >= 8<<20 {
		c.report(c.pending)
		c.pending = 0
	}
	return n, err
}

func newBufWriter(w io.Writer) *bufio.Writer { return bufio.NewWriterSize(w, 256<<10) }
