// Package serve serves kubebake's PXE HTTP tree (out/pxe/http) read-only,
// handing each host's files only to that host's address.
//
// A file is a host's when its name or any directory above it, up to the
// first dot, is the host's name (bundles/hdss7-21.tar.gz, ks/hdss7-21.cfg,
// ipxe/hdss7-21.ipxe); everything else is public. The client is the TCP peer:
// no header (X-Forwarded-For, Forwarded, X-Real-IP) is ever believed.
package serve

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Handler is the read-only file server. Build it with New.
type Handler struct {
	dir    string
	hosts  *hostTable
	opts   *options
	budget *budget
	sums   *sumsCache
	logMu  sync.Mutex
}

var _ http.Handler = (*Handler)(nil)

// New returns a Handler serving dir to hosts.
func New(dir string, hosts []Host, opts ...Option) (*Handler, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("serve: %s is not a directory", dir)
	}
	t, err := newHostTable(hosts)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if o.countsFile != "" {
		if inside(dir, o.countsFile) {
			return nil, fmt.Errorf("serve: %w: counts file %s is inside the served directory %s", ErrInvalidOption, o.countsFile, dir)
		}
	}
	b, err := newBudget(o.maxFetches, o.countsFile)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	return &Handler{dir: dir, hosts: t, opts: o, budget: b, sums: &sumsCache{}}, nil
}

// Hosts is the number of hosts whose files are kept to their addresses.
func (h *Handler) Hosts() int { return len(h.hosts.byName) }

// record is what the access log line says about one request.
type record struct {
	client  netip.Addr
	who     string // the client's host name, if it is one
	owner   string // the path's host(s)
	note    string // why it was refused, or how much of a budget is spent
	aborted bool
}

// ServeHTTP serves one request and logs one line.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &recorder{ResponseWriter: w, rc: http.NewResponseController(w), stall: h.opts.stall}
	rw.extend()
	var rec record
	defer func() { h.logRequest(start, r, rw, &rec) }()

	rec.client = peer(r.RemoteAddr)
	rec.who = h.hosts.byIP[rec.client]
	refuse := func(status int, note string) {
		rec.note = note
		http.Error(rw, http.StatusText(status), status)
	}

	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		rw.Header().Set("Allow", "GET, HEAD")
		refuse(http.StatusMethodNotAllowed, "read-only: GET and HEAD only")
		return
	}
	rel, ok := cleanPath(r.URL.Path)
	if !ok {
		refuse(http.StatusBadRequest, "path refused: '..', '.', a dot file, or a control character")
		return
	}
	if !h.allowed(rel, &rec) {
		refuse(http.StatusForbidden, rec.note)
		return
	}

	// Resolve symlinks and require the result inside dir; then the real
	// path's owner must allow the client too (a public link to a host's
	// bundle is still the host's).
	root, err := filepath.EvalSymlinks(h.dir)
	if err != nil {
		refuse(http.StatusInternalServerError, "served directory: "+err.Error())
		return
	}
	real, err := filepath.EvalSymlinks(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		refuse(http.StatusNotFound, "")
		return
	}
	realRel, err := filepath.Rel(root, real)
	if err != nil || realRel == ".." || strings.HasPrefix(realRel, ".."+string(filepath.Separator)) {
		refuse(http.StatusForbidden, "refused: the path leads outside the served directory (symlink to "+real+")")
		return
	}
	realRel = filepath.ToSlash(realRel)
	if realRel != rel {
		if _, ok := cleanPath("/" + realRel); !ok && realRel != "." {
			refuse(http.StatusForbidden, "refused: symlink to a dot file ("+realRel+")")
			return
		}
		if !h.allowed(realRel, &rec) {
			refuse(http.StatusForbidden, rec.note+" (through a symlink to "+realRel+")")
			return
		}
	}
	if realRel == "." {
		refuse(http.StatusForbidden, "directory listings are off")
		return
	}

	// os.OpenInRoot refuses to leave root even if the tree changes under us.
	f, err := os.OpenInRoot(root, filepath.FromSlash(realRel))
	if err != nil {
		refuse(http.StatusNotFound, "")
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		refuse(http.StatusInternalServerError, err.Error())
		return
	}
	if fi.IsDir() {
		refuse(http.StatusForbidden, "directory listings are off")
		return
	}
	if !fi.Mode().IsRegular() {
		refuse(http.StatusForbidden, "not a regular file")
		return
	}

	if rec.owner != "" {
		rw.Header().Set("Cache-Control", "no-store")
	}
	if ct := contentType(realRel); ct != "" {
		rw.Header().Set("Content-Type", ct)
	}
	etag := ""
	if sum := h.sums.lookup(root, fi, rel, realRel); sum != "" {
		etag = `"sha256:` + sum + `"`
		rw.Header().Set("ETag", etag)
	}
	if h.budget.max > 0 && rec.owner != "" && strings.HasPrefix(realRel, "bundles/") {
		g, no := h.budget.reserve(realRel, fi.Size(), wantBytes(r, fi.Size(), etag, fi.ModTime()))
		if no != nil {
			if no.status == http.StatusServiceUnavailable {
				rw.Header().Set("Retry-After", "10")
			}
			refuse(no.status, realRel+": "+no.reason)
			return
		}
		rw.grant = g
		defer func() {
			d, err := g.done()
			if err != nil {
				h.opts.logger.Error("cannot save fetch counts", "err", err)
			}
			rec.note = fmt.Sprintf("fetches=%s/%d", copies(d, fi.Size()), h.budget.max)
			if errors.Is(rw.err, errBudget) {
				rec.note += " cut off: fetch budget spent"
			}
		}()
	}
	http.ServeContent(rw, r, path.Base(realRel), fi.ModTime(), f)
}

// allowed says whether rec.client may have rel, filling rec.owner and, when
// it may not, rec.note.
func (h *Handler) allowed(rel string, rec *record) bool {
	owners := h.hosts.owners(rel)
	if len(owners) == 0 {
		return true
	}
	rec.owner = strings.Join(owners, ",")
	asker := rec.client.String()
	if rec.who != "" {
		asker += " (" + rec.who + ")"
	} else {
		asker += " (no host)"
	}
	if len(owners) > 1 {
		rec.note = fmt.Sprintf("refused: %s names hosts %s; such a file is served to nobody; asked by %s", rel, rec.owner, asker)
		return false
	}
	if rec.who != owners[0] {
		rec.note = fmt.Sprintf("refused: %s is %s's, served only to %s; asked by %s", rel, owners[0], h.hosts.addrs(owners[0]), asker)
		return false
	}
	return true
}

// peer is the TCP peer's address; the port and any IPv4-in-IPv6 mapping are
// dropped.
func peer(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// cleanPath turns a URL path into a slash-separated path relative to the
// served directory. It refuses, rather than cleans, anything a file tree
// written by kubebake never needs: "..", ".", empty segments other than a
// trailing slash, dot files (where temporary files live while being
// written), backslashes and control characters.
func cleanPath(p string) (string, bool) {
	if !strings.HasPrefix(p, "/") {
		return "", false
	}
	for _, c := range p {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "", false
		}
	}
	rel := strings.TrimSuffix(strings.TrimPrefix(p, "/"), "/")
	if rel == "" {
		return ".", true
	}
	for _, seg := range strings.Split(rel, "/") {
		if seg == "" || strings.HasPrefix(seg, ".") {
			return "", false
		}
	}
	return rel, true
}

// inside says whether file would be within dir (both made absolute).
func inside(dir, file string) bool {
	d, err1 := filepath.Abs(dir)
	f, err2 := filepath.Abs(file)
	if err1 != nil || err2 != nil {
		return false
	}
	if rd, err := filepath.EvalSymlinks(d); err == nil {
		d = rd
	}
	if rf, err := filepath.EvalSymlinks(filepath.Dir(f)); err == nil {
		f = filepath.Join(rf, filepath.Base(f))
	}
	r, err := filepath.Rel(d, f)
	return err == nil && r != ".." && !strings.HasPrefix(r, ".."+string(filepath.Separator))
}

// contentType fixes the types of kubebake's own files; others are left to
// net/http (by extension, else by sniffing).
func contentType(rel string) string {
	base := path.Base(rel)
	switch {
	case strings.HasSuffix(base, ".tar.gz"), strings.HasSuffix(base, ".tgz"), strings.HasSuffix(base, ".gz"):
		return "application/gzip"
	case strings.HasSuffix(base, ".cfg"), strings.HasSuffix(base, ".ipxe"), base == "SHA256SUMS":
		return "text/plain; charset=utf-8"
	case strings.HasSuffix(base, ".img"), base == "vmlinuz":
		return "application/octet-stream"
	}
	return mime.TypeByExtension(path.Ext(base))
}

// wantBytes is how much of a size-byte file a GET will send: the single
// range asked for, else the whole file (multiple ranges, an If-Range that
// matches neither the ETag nor the modification time, and anything
// unparsable count as whole; the writer charges what is actually sent).
func wantBytes(r *http.Request, size int64, etag string, mtime time.Time) int64 {
	if r.Method == http.MethodHead {
		return 0
	}
	spec, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return size
	}
	if ir := r.Header.Get("If-Range"); ir != "" && (etag == "" || ir != etag) {
		t, err := http.ParseTime(ir)
		if err != nil || !t.Equal(mtime.Truncate(time.Second)) {
			return size
		}
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return size
	}
	if first == "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 {
			return size
		}
		return min(n, size)
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 || a >= size {
		return size
	}
	b := size - 1
	if last != "" {
		if b, err = strconv.ParseInt(last, 10, 64); err != nil || b < a {
			return size
		}
		b = min(b, size-1)
	}
	return b - a + 1
}

// recorder counts what a response writes, charges it to a fetch budget and
// keeps the connection's write deadline moving while data flows.
type recorder struct {
	http.ResponseWriter
	rc     *http.ResponseController
	stall  time.Duration
	status int
	n      int64
	grant  *grant
	err    error
}

func (w *recorder) extend() { _ = w.rc.SetWriteDeadline(time.Now().Add(w.stall)) }

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.grant != nil && !w.grant.take(int64(len(p))) {
		w.err = errBudget
		return 0, errBudget
	}
	w.extend()
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	if w.grant != nil && n < len(p) {
		w.grant.refund(int64(len(p) - n))
	}
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// logRequest writes the request's one access log line:
//
//	2026-05-14T10:21:07.123+08:00 10.4.7.21 GET /bundles/hdss7-21.tar.gz 200 1048576B 12.3ms host=hdss7-21 fetches=1/1
func (h *Handler) logRequest(start time.Time, r *http.Request, w *recorder, rec *record) {
	status := w.status
	if status == 0 {
		status = http.StatusOK
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s %s %d %dB %.1fms", start.Format("2006-01-02T15:04:05.000Z07:00"), rec.client,
		quote(r.Method), quote(r.URL.Path), status, w.n, float64(time.Since(start))/float64(time.Millisecond))
	if rec.owner != "" {
		fmt.Fprintf(&b, " host=%s", rec.owner)
	}
	if w.err != nil && !errors.Is(w.err, errBudget) {
		fmt.Fprintf(&b, " incomplete=%s", quote(w.err.Error()))
	}
	if rec.note != "" {
		fmt.Fprintf(&b, " %s", quote(rec.note))
	}
	b.WriteByte('\n')
	h.logMu.Lock()
	defer h.logMu.Unlock()
	_, _ = io.WriteString(h.opts.access, b.String())
}

// quote keeps a log line one line: anything a client sent that is not plain
// printable ASCII without spaces or quotes is Go-quoted.
func quote(s string) string {
	for _, c := range s {
		if c <= ' ' || c >= 0x7f || c == '"' {
			return strconv.Quote(s)
		}
	}
	return s
}
