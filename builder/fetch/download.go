package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// pinned names a digest's origin in messages.
const pinned = "the pin in bundle-spec.yaml"

// mismatchError: downloaded bytes whose digest is not the expected one.
type mismatchError struct{ got, want, from string }

func (e *mismatchError) Error() string {
	hint := "the download or the mirror is corrupt; delete nothing, re-run kubebake pull"
	switch e.from {
	case pinned:
		hint = "the download or the mirror is corrupt, or the pin is wrong; delete nothing, re-run kubebake pull, and check the pin if it fails again"
	case "bundle-spec.lock":
		hint = "upstream's file changed since the lock was made, or the mirror is corrupt; if the change is intended, run kubebake pull without --locked to update the lock"
	}
	return fmt.Sprintf("%v: got %s, want %s (from %s) — %s", ErrChecksum, e.got, e.want, e.from, hint)
}

func (e *mismatchError) Unwrap() error { return ErrChecksum }

// download fetches one URL into partial/ and, once verified, into sha256/.
type download struct {
	p       *puller
	name    string
	url     string
	want    string
	size    int64  // expected, 0: unknown
	from    string // where want comes from
	recheck func(context.Context) (string, string, error)

	mismatches int
	restarted  bool
	got        int64 // final size
}

// sidecar is partial/<key>.json: what the partial bytes are.
type sidecar struct {
	URL          string `json:"url"`
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
}

func (d *download) run(ctx context.Context) error {
	u, err := url.Parse(d.url)
	if err != nil {
		return err
	}
	if u.Scheme == "file" {
		return d.copyFile(u.Path)
	}
	part := d.p.st.partial(d.url)
	err = d.p.retrier().do(ctx, d.url, func(ctx context.Context) error { return d.attempt(ctx, part) })
	if err != nil {
		return fmt.Errorf("%s: %w", d.url, withHint(err))
	}
	return nil
}

// copyFile reads a file:// source in place and copies it into the store.
func (d *download) copyFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", d.url, err)
	}
	defer f.Close()
	pw := &progressWriter{p: d.p, name: d.name, total: d.size}
	sum, n, err := d.p.st.putStream(io.TeeReader(f, pw), d.want)
	pw.flush()
	if errors.Is(err, ErrChecksum) {
		got, _, _ := hashFile(path)
		return fmt.Errorf("%s: %w", d.url, &mismatchError{got: got, want: d.want, from: d.from})
	}
	if err != nil {
		return fmt.Errorf("%s: %w", d.url, err)
	}
	d.want, d.got = sum, n
	return nil
}

// attempt makes one request, resuming from the partial file when it holds
// bytes of the same URL.
func (d *download) attempt(ctx context.Context, part string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	side := part + ".json"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return permanent(err)
	}
	defer f.Close()
	if err := lockPartial(f); err != nil {
		return permanent(fmt.Errorf("%s: %w — another kubebake pull uses this store; let it finish", part, err))
	}
	fi, err := f.Stat()
	if err != nil {
		return permanent(err)
	}
	var meta sidecar
	if data, err := os.ReadFile(side); err == nil {
		_ = json.Unmarshal(data, &meta)
	}
	off := fi.Size()
	if meta.URL != d.url || (d.size > 0 && off > d.size) {
		off = 0
	}
	buf := make([]byte, copyBuf)
	h := sha256.New()
	if off > 0 {
		if _, err := io.CopyBuffer(h, io.LimitReader(f, off), buf); err != nil {
			return permanent(fmt.Errorf("read partial download: %w", err))
		}
		if d.size > 0 && off == d.size { // whole; the last run stopped before the rename
			return d.finish(ctx, f, h, part)
		}
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url, nil)
	if err != nil {
		return permanent(err)
	}
	// Raw bytes: no transparent decompression, so offsets and digests are
	// those of the file itself.
	req.Header.Set("Accept-Encoding", "identity")
	if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
		// If-Range takes only a strong ETag; else the date.
		if meta.ETag != "" && !strings.HasPrefix(meta.ETag, "W/") {
			req.Header.Set("If-Range", meta.ETag)
		} else if meta.LastModified != "" {
			req.Header.Set("If-Range", meta.LastModified)
		}
	}
	resp, err := d.p.o.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && off > 0:
		if start := rangeStart(resp.Header.Get("Content-Range")); start != off {
			d.p.o.logger.Warn("server resumed at the wrong byte", "artifact", d.name, "want", off, "got", start)
			return d.restart(f, side)
		}
		d.p.o.logger.Info("resuming", "artifact", d.name, "url", d.url, "from", off)
	case resp.StatusCode == http.StatusOK:
		if off > 0 {
			d.p.o.logger.Info("server sent the whole file; restarting", "artifact", d.name)
			off = 0
			h.Reset()
		}
		meta = sidecar{URL: d.url, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
		data, _ := json.Marshal(meta)
		if err := writeAtomic(side, data); err != nil {
			return permanent(err)
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && off > 0:
		if d.restarted {
			return permanent(fmt.Errorf("%w: the server refused to resume twice", statusError(d.url, resp)))
		}
		return d.restart(f, side)
	default:
		return statusError(d.url, resp)
	}
	if err := f.Truncate(off); err != nil {
		return permanent(err)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return permanent(err)
	}
	total := d.size
	if total <= 0 && resp.ContentLength >= 0 {
		total = off + resp.ContentLength
	}
	pw := &progressWriter{p: d.p, name: d.name, total: total, done: off}
	idle := time.AfterFunc(idleTimeout, func() { cancel(errStalled) })
	defer idle.Stop()
	body := &idleReader{r: resp.Body, t: idle}
	n, err := io.CopyBuffer(io.MultiWriter(f, h, pw), body, buf)
	pw.flush()
	if err != nil {
		if errors.Is(context.Cause(ctx), errStalled) {
			err = errStalled
		}
		return fmt.Errorf("after %d bytes: %w", off+n, err)
	}
	if resp.ContentLength >= 0 && n < resp.ContentLength {
		return fmt.Errorf("after %d bytes: %w", off+n, errShortBody)
	}
	return d.finish(ctx, f, h, part)
}

// restart drops the partial bytes; the next attempt starts from zero.
func (d *download) restart(f *os.File, side string) error {
	d.restarted = true
	_ = os.Remove(side)
	if err := f.Truncate(0); err != nil {
		return permanent(err)
	}
	return errRestart
}

// finish verifies the whole partial file and renames it into the store.
func (d *download) finish(ctx context.Context, f *os.File, h hash.Hash, part string) error {
	if err := f.Sync(); err != nil {
		return permanent(err)
	}
	fi, err := f.Stat()
	if err != nil {
		return permanent(err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if got != d.want && d.recheck != nil {
		// The checksum file may be what was damaged: ask again.
		if again, from, err := d.recheck(ctx); err == nil && again != d.want {
			d.p.o.logger.Warn("published checksum differs from the expected one", "artifact", d.name, "was", d.want, "from", d.from, "now", again)
			d.want, d.from, d.size = again, from, 0
		}
	}
	if got != d.want {
		_ = os.Remove(part + ".json")
		_ = os.Remove(part)
		d.mismatches++
		err := &mismatchError{got: got, want: d.want, from: d.from}
		if d.mismatches >= 2 {
			return permanent(err)
		}
		d.p.o.logger.Warn("sha256 mismatch; downloading again", "artifact", d.name, "got", got, "want", d.want)
		return err
	}
	if err := d.p.st.commit(part, got); err != nil {
		return permanent(err)
	}
	_ = os.Remove(part + ".json")
	d.got = fi.Size()
	return nil
}

// rangeStart parses "bytes 100-199/200"; -1 when malformed.
func rangeStart(cr string) int64 {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return -1
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// idleReader pushes back the stall timer on every read.
type idleReader struct {
	r io.Reader
	t *time.Timer
}

func (r *idleReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	if n > 0 {
		r.t.Reset(idleTimeout)
	}
	return n, err
}

// progressWriter counts bytes and reports every 256 KiB.
type progressWriter struct {
	p           *puller
	name        string
	done, total int64
	last        int64
}

func (w *progressWriter) Write(b []byte) (int, error) {
	w.done += int64(len(b))
	if w.done-w.last >= 256<<10 {
		w.flush()
	}
	return len(b), nil
}

func (w *progressWriter) flush() {
	w.last = w.done
	w.p.report(w.name, w.done, w.total, false)
}
