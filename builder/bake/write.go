package bake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
)

// writer is the state of one Write call.
type writer struct {
	o      *options
	outDir string
	gz     sync.Pool // *gzip.Writer at o.level

	mu   sync.Mutex // guards prog and serialises o.progress
	prog Progress
}

// Write writes one <outDir>/<Name>.tar.gz per bundle and then
// <outDir>/SHA256SUMS (sha256sum(1) format, sorted by name), and returns the
// results in the order of bundles. All bundles are validated before any file
// is written. On error no bundle of this call is left under a partial final
// name; bundles renamed before the error are complete, and SHA256SUMS is not
// written. Temporary files left by a killed bake are removed first. Only one
// bake may use an output or cache directory at a time (ErrBusy otherwise).
func Write(ctx context.Context, outDir string, bundles []Bundle, opts ...Option) ([]Result, error) {
	if outDir == "" {
		return nil, fmt.Errorf("bake: %w: empty output directory", ErrInvalidOption)
	}
	o, err := makeOptions(outDir, opts...)
	if err != nil {
		return nil, err
	}
	p := &planner{o: o, members: make(map[string]*member)}
	plans := make([]*plan, len(bundles))
	names := make(map[string]bool, len(bundles))
	for i := range bundles {
		if names[bundles[i].Name] {
			return nil, fmt.Errorf("bake %s: %w: bundle listed twice", bundles[i].Name, ErrInvalidBundle)
		}
		names[bundles[i].Name] = true
		if plans[i], err = p.bundle(&bundles[i]); err != nil {
			return nil, err
		}
	}

	for _, d := range []string{outDir, o.cacheDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("bake: %w", err)
		}
	}
	unlockOut, err := lockFile(filepath.Join(outDir, ".bake.lock"))
	if err != nil {
		return nil, fmt.Errorf("bake: %w", err)
	}
	defer unlockOut()
	unlockCache, err := lockFile(filepath.Join(o.cacheDir, ".lock"))
	if err != nil {
		return nil, fmt.Errorf("bake: %w", err)
	}
	defer unlockCache()
	removeStale(o, outDir)

	w := &writer{o: o, outDir: outDir}
	w.prog = Progress{Bundles: len(plans), Members: len(p.order)}
	for _, m := range p.order {
		w.prog.Bytes += m.it.streamLen()
	}
	results, err := w.run(ctx, plans, p.order)
	if err != nil {
		return nil, err
	}

	var sums strings.Builder
	sorted := slices.Clone(results)
	slices.SortFunc(sorted, func(a, b Result) int { return strings.Compare(a.Name, b.Name) })
	for _, r := range sorted {
		fmt.Fprintf(&sums, "%s  %s.tar.gz\n", r.SHA256, r.Name)
	}
	if err := writeFileAtomic(outDir, "SHA256SUMS", []byte(sums.String())); err != nil {
		return nil, fmt.Errorf("bake: SHA256SUMS: %w", err)
	}
	for _, d := range []string{o.cacheDir, outDir} {
		if err := syncDir(d); err != nil {
			return nil, fmt.Errorf("bake: %w", err)
		}
	}
	return results, nil
}

// run compresses the shared members (o.jobs at a time, each once, in order of
// first use) while assembling the bundles (o.jobs at a time) as their members
// become ready. The first error cancels everything.
func (w *writer) run(ctx context.Context, plans []*plan, members []*member) ([]Result, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		once     sync.Once
		firstErr error
	)
	fail := func(err error) {
		once.Do(func() { firstErr = err; cancel(err) })
	}

	var wg sync.WaitGroup
	todo := make(chan *member)
	wg.Go(func() {
		defer close(todo)
		for _, m := range members {
			select {
			case todo <- m:
			case <-ctx.Done():
				return
			}
		}
	})
	for range w.o.jobs {
		wg.Go(func() {
			for m := range todo {
				hit, err := w.build(ctx, m)
				if err != nil {
					m.err = fmt.Errorf("bake %s: %w", m.bundle, err)
					fail(m.err)
				}
				close(m.done)
				if err == nil {
					w.memberDone(m, hit)
				}
			}
		})
	}

	results := make([]Result, len(plans))
	next := make(chan int)
	wg.Go(func() {
		defer close(next)
		for i := range plans {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	})
	for range w.o.jobs {
		wg.Go(func() {
			buf := make([]byte, 1<<20)
			for i := range next {
				r, err := w.bundle(ctx, plans[i], buf)
				if err != nil {
					fail(fmt.Errorf("bake %s: %w", plans[i].name, err))
					continue
				}
				results[i] = r
				w.bundleDone(r)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bake: %w", context.Cause(ctx))
	}
	return results, nil
}

// bundle assembles one bundle into a temporary file and renames it.
func (w *writer) bundle(ctx context.Context, pl *plan, buf []byte) (res Result, err error) {
	final := filepath.Join(w.outDir, pl.name+".tar.gz")
	tmp, err := os.CreateTemp(w.outDir, "."+pl.name+".tar.gz.tmp-*")
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	for _, seg := range pl.segs {
		if seg.shared != nil {
			path, err := seg.shared.wait(ctx)
			if err != nil {
				return res, err
			}
			if err := appendFile(tmp, h, path, buf); err != nil {
				return res, err
			}
			continue
		}
		if err := w.compressItems(ctx, io.MultiWriter(tmp, h), seg); err != nil {
			return res, err
		}
	}
	fi, err := tmp.Stat()
	if err != nil {
		return res, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return res, err
	}
	if err := tmp.Sync(); err != nil {
		return res, err
	}
	if err := tmp.Close(); err != nil {
		return res, err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return res, err
	}
	w.o.logger.Debug("bundle written", "bundle", pl.name, "path", final, "size", fi.Size())
	return Result{Name: pl.name, Path: final, SHA256: hex.EncodeToString(h.Sum(nil)), Size: fi.Size()}, nil
}

// compressItems writes one gzip member holding seg's small items, and the
// tar end-of-archive if seg is the last.
func (w *writer) compressItems(ctx context.Context, dst io.Writer, seg segment) error {
	bw := newBufWriter(dst)
	zw := w.gzipWriter(bw)
	defer w.gz.Put(zw)
	if err := writeItems(ctx, zw, seg.items); err != nil {
		return err
	}
	if seg.last {
		if _, err := zw.Write(make([]byte, 2*blockSize)); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// appendFile copies the member at path to the end of dst, kernel-side where
// the OS allows (copy_file_range on Linux), then feeds it to h.
func appendFile(dst *os.File, h hash.Hash, path string, buf []byte) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	n, err := io.Copy(dst, src)
	if err != nil {
		return fmt.Errorf("copy member %s: %w", filepath.Base(path), err)
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return err
	}
	// Hide WriterTo so the large buffer is used.
	m, err := io.CopyBuffer(h, struct{ io.Reader }{src}, buf)
	if err != nil {
		return err
	}
	if m != n {
		return fmt.Errorf("member %s changed while copied", filepath.Base(path))
	}
	return nil
}

func (w *writer) memberDone(m *member, hit bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.prog.MembersDone++
	if hit {
		w.prog.Reused++
		w.prog.BytesDone += m.it.streamLen()
	} else {
		w.prog.Compressed++
	}
	w.o.logger.Debug("member ready", "entry", m.it.name, "key", m.key, "cached", hit)
	w.o.progress(w.prog)
}

func (w *writer) compressed(n int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.prog.BytesDone += n
	w.o.progress(w.prog)
}

func (w *writer) bundleDone(r Result) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.prog.BundlesDone++
	w.o.logger.Info("bundle written", "bundle", r.Name, "size", r.Size)
	w.o.progress(w.prog)
}

// removeStale deletes temporaries a killed bake left behind.
func removeStale(o *options, outDir string) {
	clean := func(dir string, stale func(string) bool) {
		des, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, de := range des {
			if stale(de.Name()) {
				p := filepath.Join(dir, de.Name())
				if err := os.Remove(p); err == nil {
					o.logger.Debug("removed stale temporary file", "path", p)
				}
			}
		}
	}
	clean(outDir, func(n string) bool {
		return strings.HasPrefix(n, ".") && (strings.Contains(n, ".tar.gz.tmp-") || strings.HasPrefix(n, ".SHA256SUMS.tmp-"))
	})
	clean(o.cacheDir, func(n string) bool { return strings.HasPrefix(n, ".tmp-") })
}

// writeFileAtomic writes dir/name through a fsynced temporary file and rename.
func writeFileAtomic(dir, name string, data []byte) (err error) {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, name))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
