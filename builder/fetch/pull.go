package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// puller is the state of one Pull.
type puller struct {
	o     *options
	st    *store
	lock  map[string]Locked
	files int

	pmu       sync.Mutex // serialises progress callbacks
	filesDone int

	smu  sync.Mutex
	sums map[string]*sumEntry // checksum files fetched by this Pull, by URL

	umu  sync.Mutex
	urls map[string]*sync.Mutex // one download per URL at a time
}

type sumEntry struct {
	once sync.Once
	data []byte
	err  error
}

func (p *puller) retrier() retrier {
	return retrier{attempts: p.o.attempts, base: p.o.base, log: p.o.logger}
}

// expect returns what the lock and the pin say src's bytes are: the digest
// ("" when the checksum URL must tell), the size (0: unknown) and where the
// digest comes from.
func (p *puller) expect(src Source) (string, int64, string, error) {
	pin := strings.ToLower(src.SHA256)
	l, inLock := p.lock[src.Name]
	if p.o.strict {
		switch {
		case !inLock:
			return "", 0, "", fmt.Errorf("%w: %s — pull --locked refuses artifacts the lock lacks; run kubebake pull without --locked to lock it", ErrNotLocked, src.URL)
		case l.URL != src.URL:
			return "", 0, "", fmt.Errorf("%w: url is %s, the lock has %s — run kubebake pull without --locked to update the lock if the change is intended", ErrDrift, src.URL, l.URL)
		case pin != "" && pin != strings.ToLower(l.SHA256):
			return "", 0, "", fmt.Errorf("%w: sha256 is pinned to %s, the lock has %s — run kubebake pull without --locked to update the lock if the change is intended", ErrDrift, pin, strings.ToLower(l.SHA256))
		}
		return strings.ToLower(l.SHA256), l.Size, "bundle-spec.lock", nil
	}
	sameURL := inLock && l.URL == src.URL
	switch {
	case pin != "" && sameURL && strings.ToLower(l.SHA256) == pin:
		return pin, l.Size, pinned, nil
	case pin != "":
		return pin, 0, pinned, nil
	case sameURL:
		return strings.ToLower(l.SHA256), l.Size, "bundle-spec.lock", nil
	}
	return "", 0, "", nil
}

func (p *puller) pullOne(ctx context.Context, src Source) (Result, error) {
	u := rewrite(p.o.mirrors, src.URL)
	want, size, from, err := p.expect(src)
	if err != nil {
		return Result{}, err
	}
	// recheck asks the checksum URL again when the bytes do not match: the
	// checksum file may have been damaged on the way, or (without --locked)
	// upstream may have republished what the lock remembers.
	var recheck func(context.Context) (string, string, error)
	if src.SHA256 == "" && !p.o.strict {
		su := rewrite(p.o.mirrors, src.SHA256URL)
		recheck = func(ctx context.Context) (string, string, error) {
			d, err := p.published(ctx, su, baseName(src.URL), true)
			return d, su, err
		}
		if want == "" {
			if want, err = p.published(ctx, su, baseName(src.URL), false); err != nil {
				return Result{}, err
			}
			from = su
		}
	}

	mu := p.urlMutex(u)
	mu.Lock()
	defer mu.Unlock()

	n, ok, err := p.st.have(want, size)
	if err != nil {
		return Result{}, err
	}
	if ok {
		p.o.logger.Debug("in store", "artifact", src.Name, "sha256", want)
	} else {
		d := &download{p: p, name: src.Name, url: u, want: want, size: size, from: from, recheck: recheck}
		if err := d.run(ctx); err != nil {
			return Result{}, err
		}
		want, n = d.want, d.got
		p.o.logger.Info("pulled", "artifact", src.Name, "url", u, "sha256", want, "size", n)
	}
	r := Result{Locked: Locked{Name: src.Name, URL: src.URL, SHA256: want, Size: n}}
	if len(src.Extract) == 0 {
		r.Files = []File{{Name: src.Name, Artifact: src.Name, Path: p.st.blob(want), SHA256: want, Size: n}}
		return r, nil
	}
	if r.Files, err = p.st.extract(src, want); err != nil {
		return Result{}, err
	}
	return r, nil
}

func (p *puller) urlMutex(u string) *sync.Mutex {
	p.umu.Lock()
	defer p.umu.Unlock()
	m, ok := p.urls[u]
	if !ok {
		m = &sync.Mutex{}
		p.urls[u] = m
	}
	return m
}

// published fetches (once per Pull, unless fresh) the checksum file at su
// and returns the digest it gives for file. A file that names no digest for
// file is fetched a second time before giving up, in case it was damaged on
// the way.
func (p *puller) published(ctx context.Context, su, file string, fresh bool) (string, error) {
	data, err := p.checksumData(ctx, su, fresh)
	if err != nil {
		return "", fmt.Errorf("published checksum %s: %w", su, err)
	}
	d, err := parseChecksum(data, file)
	if err != nil && !fresh {
		if data, err = p.checksumData(ctx, su, true); err != nil {
			return "", fmt.Errorf("published checksum %s: %w", su, err)
		}
		d, err = parseChecksum(data, file)
	}
	if err != nil {
		return "", fmt.Errorf("published checksum %s: %w — fix the artifact's sha256URL, or pin sha256 in bundle-spec.yaml", su, err)
	}
	return d, nil
}

func (p *puller) checksumData(ctx context.Context, su string, fresh bool) ([]byte, error) {
	p.smu.Lock()
	e, ok := p.sums[su]
	if !ok || fresh {
		e = &sumEntry{}
		p.sums[su] = e
	}
	p.smu.Unlock()
	e.once.Do(func() { e.data, e.err = p.fetchSmall(ctx, su) })
	return e.data, e.err
}

// fetchSmall reads a checksum file, at most maxChecksumFile bytes.
func (p *puller) fetchSmall(ctx context.Context, raw string) ([]byte, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "file" {
		f, err := os.Open(u.Path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readCapped(f, -1)
	}
	var data []byte
	err = p.retrier().do(ctx, raw, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
		if err != nil {
			return permanent(err)
		}
		req.Header.Set("Accept-Encoding", "identity")
		resp, err := p.o.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return statusError(raw, resp)
		}
		data, err = readCapped(resp.Body, resp.ContentLength)
		return err
	})
	if err != nil {
		return nil, withHint(err)
	}
	return data, nil
}

func readCapped(r io.Reader, length int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxChecksumFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxChecksumFile {
		return nil, permanent(fmt.Errorf("%w: over %d bytes", ErrTooLarge, maxChecksumFile))
	}
	if length >= 0 && int64(len(data)) < length {
		return nil, errShortBody
	}
	return data, nil
}

func statusError(raw string, resp *http.Response) *StatusError {
	se := &StatusError{URL: raw, Code: resp.StatusCode, Status: resp.Status}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		se.retryAfter = time.Duration(s) * time.Second
	}
	return se
}

// withHint appends what to do to a failed request's error.
func withHint(err error) error {
	var se *StatusError
	switch {
	case errors.As(err, &se) && (se.Code == 401 || se.Code == 403):
		return fmt.Errorf("%w — the server refused access; check the URL and the mirrors: in bundle-spec.yaml", err)
	case errors.As(err, &se) && !se.Temporary():
		return fmt.Errorf("%w — check the URL and the mirrors: in bundle-spec.yaml", err)
	case retryable(err):
		return fmt.Errorf("%w — the server or the network kept failing; re-run kubebake pull (it resumes where it stopped)", err)
	}
	return err
}

func (p *puller) report(name string, done, total int64, finished bool) {
	p.pmu.Lock()
	defer p.pmu.Unlock()
	if finished {
		p.filesDone++
	}
	p.o.progress(Progress{Name: name, Done: done, Total: total, Files: p.files, FilesDone: p.filesDone})
}

func (p *puller) done(name string, size int64) { p.report(name, size, size, true) }
