package steps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// ErrTampered means the bundle on disk is not the bundle that was built: a
// checksum differs, a path leaves the bundle, or a file is unaccounted for.
// Nothing is installed from such a bundle.
var ErrTampered = errors.New("bundle refused, nothing installed")

// ErrEscape means a path would leave the directory it must stay in.
var ErrEscape = errors.New("path escapes its root")

// Integrity is the first step of every plan: it checks the unpacked bundle
// against its SHA256SUMS before anything is installed from it. Every listed
// file must stay inside the bundle (no absolute paths, no "..", no symlink
// resolving outside) and match its sha256; every regular file under rootfs/
// must be listed; every manifest file's sha256 must agree with SHA256SUMS.
// It changes nothing: Check passes or refuses.
func Integrity() engine.Step { return integrityStep{} }

type integrityStep struct{}

func (integrityStep) ID() string { return "bundle/integrity" }

func (integrityStep) Check(ctx context.Context, env *engine.Env) (engine.Status, error) {
	if err := checkBundle(ctx, env.Bundle, env.Manifest); err != nil {
		return engine.Status{}, fmt.Errorf("bundle integrity: %w", err)
	}
	return engine.Status{Converged: true}, nil
}

func (integrityStep) Apply(context.Context, *engine.Env) error { return nil }

func (s integrityStep) Verify(ctx context.Context, env *engine.Env) error {
	_, err := s.Check(ctx, env)
	return err
}

func tampered(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), ErrTampered)
}

func checkBundle(ctx context.Context, dir string, m *plan.Manifest) error {
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("bundle directory: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, plan.SumsName))
	if err != nil {
		return tampered("%s: %v: the bundle cannot be checked", plan.SumsName, err)
	}
	sums, bad, err := plan.ParseSums(b)
	if err != nil {
		return tampered("%v", err)
	}
	if len(bad) > 0 {
		p := bad[0]
		at := fmt.Sprintf("%s line %d", plan.SumsName, p.Line)
		switch p.Kind {
		case plan.SumNotHex:
			return tampered("%s: malformed: the digest is not hex", at)
		case plan.SumDuplicate:
			return tampered("%s: %s listed twice", at, p.Path)
		default:
			return tampered("%s: malformed: want \"<sha256 hex>  <path>\"", at)
		}
	}
	listed := map[string]string{} // bundle path → sha256
	for _, sum := range sums {
		if err := ctx.Err(); err != nil {
			return err
		}
		name, want := sum.Path, sum.SHA256
		if err := cleanRel(name); err != nil {
			return tampered("%s line %d: %q: %v", plan.SumsName, sum.Line, name, err)
		}
		full, err := resolveIn(realDir, filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return tampered("%s: %v", name, err)
		}
		got, err := sha256File(full)
		if err != nil {
			return tampered("%s: %v", name, err)
		}
		if got != want {
			return tampered("%s: sha256 mismatch: %s says %s, the file has %s", name, plan.SumsName, want, got)
		}
		listed[name] = want
	}
	if _, ok := listed[plan.ManifestName]; !ok {
		return tampered("%s is not listed in %s", plan.ManifestName, plan.SumsName)
	}
	rootfs := filepath.Join(dir, plan.RootfsDir)
	err = filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == rootfs {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			if _, err := resolveIn(realDir, p); err != nil {
				return tampered("%s: %v", rel, err)
			}
			return tampered("%s: a symlink; a bundle's rootfs holds only directories and regular files", rel)
		case d.Type().IsRegular():
			if _, ok := listed[rel]; !ok {
				return tampered("%s: not listed in %s (added after the build?)", rel, plan.SumsName)
			}
		case !d.IsDir():
			return tampered("%s: not a regular file or directory", rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if m == nil {
		return nil
	}
	for i, f := range m.Files {
		sum, ok := listed[f.Source]
		switch {
		case !ok:
			return tampered("files[%d] %s: source %s is not listed in %s", i, f.Path, f.Source, plan.SumsName)
		case sum != strings.ToLower(f.SHA256):
			return tampered("files[%d] %s: %s says sha256 %s, %s says %s", i, f.Path, plan.ManifestName, f.SHA256, plan.SumsName, sum)
		}
	}
	return nil
}

// cleanRel accepts clean, relative, slash-separated paths with no "..".
func cleanRel(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || path.IsAbs(name) {
		return fmt.Errorf("absolute path: %w", ErrEscape)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return fmt.Errorf("contains \"..\": %w", ErrEscape)
		}
	}
	if path.Clean(name) != name {
		return fmt.Errorf("not a clean path")
	}
	return nil
}

// resolveIn resolves every symlink in p and refuses a result outside
// realBase (itself already resolved).
func resolveIn(realBase, p string) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	if !within(realBase, real) {
		if t, err := os.Readlink(p); err == nil {
			return "", fmt.Errorf("symlink to %s resolves outside %s: %w", t, realBase, ErrEscape)
		}
		return "", fmt.Errorf("resolves to %s, outside %s: %w", real, realBase, ErrEscape)
	}
	return real, nil
}

func within(base, p string) bool {
	rel, err := filepath.Rel(base, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

func sha256File(p string) (string, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Files makes one step per manifest file, in manifest order. A mode or
// owner firstboot cannot honour is an error here, before anything runs.
func Files(files []plan.File) ([]engine.Step, error) {
	var out []engine.Step
	for i, f := range files {
		mode, err := plan.ParseMode(f.Mode)
		if err != nil {
			return nil, fmt.Errorf("files[%d] %s: %w", i, f.Path, err)
		}
		uid, gid, err := parseOwner(f.Owner)
		if err != nil {
			return nil, fmt.Errorf("files[%d] %s: %w", i, f.Path, err)
		}
		if f.Secret && mode&0o077 != 0 {
			return nil, fmt.Errorf("files[%d] %s: secret with mode %s (want 0600 or tighter)", i, f.Path, f.Mode)
		}
		out = append(out, &fileStep{f: f, mode: mode, uid: uid, gid: gid})
	}
	return out, nil
}

// parseOwner accepts "root:root" and numeric "uid:gid"; "" is root.
func parseOwner(s string) (uid, gid int, err error) {
	if s == "" || s == "root:root" || s == "root" {
		return 0, 0, nil
	}
	u, g, ok := strings.Cut(s, ":")
	if ok {
		if uid, err = strconv.Atoi(u); err == nil {
			if gid, err = strconv.Atoi(g); err == nil && uid >= 0 && gid >= 0 {
				return uid, gid, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("owner %q: want root:root or a numeric uid:gid", s)
}

// fileStep installs one manifest file: content by sha256, mode, owner.
type fileStep struct {
	f        plan.File
	mode     uint32
	uid, gid int
	// wrote is the inode Apply renamed into place, after hashing every
	// byte it wrote to it; Verify trusts that hash while dst is still that
	// inode, unchanged (see Verify).
	wrote *inodeStamp
}

// inodeStamp identifies a file's inode and its last change: any write,
// chmod, chown or replacement changes one of these.
type inodeStamp struct {
	dev, ino, size   uint64
	mtimeNs, ctimeNs int64
	mode, uid, gid   uint32
}

func stampOf(st *syscall.Stat_t) inodeStamp {
	return inodeStamp{
		dev: uint64(st.Dev), ino: st.Ino, size: uint64(st.Size),
		mtimeNs: st.Mtim.Nano(), ctimeNs: st.Ctim.Nano(),
		mode: st.Mode, uid: st.Uid, gid: st.Gid,
	}
}

func (s *fileStep) ID() string { return "file/" + s.f.Path }

// dest maps the file's path into Root and refuses a destination whose
// existing parent chain resolves (through symlinks) outside Root: the
// kernel would follow such a link when we write.
func (s *fileStep) dest(env *engine.Env) (string, error) {
	dst, err := env.Path(s.f.Path)
	if err != nil {
		return "", err
	}
	realRoot, err := filepath.EvalSymlinks(env.Root)
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(dst)
	root := filepath.Clean(env.Root)
	for dir != root {
		if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		dir = filepath.Dir(dir)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("%s: %w", s.f.Path, err)
	}
	if real != realRoot && !within(realRoot, real) {
		rel, _ := filepath.Rel(env.Root, dir)
		return "", fmt.Errorf("%s: parent /%s resolves to %s, outside the root %s: %w", s.f.Path, filepath.ToSlash(rel), real, env.Root, ErrEscape)
	}
	return dst, nil
}

func (s *fileStep) Check(_ context.Context, env *engine.Env) (engine.Status, error) {
	dst, err := s.dest(env)
	if err != nil {
		return engine.Status{}, err
	}
	diff, err := s.diff(dst)
	if err != nil {
		return engine.Status{}, err
	}
	return engine.Status{Converged: len(diff) == 0, Diff: diff}, nil
}

func (s *fileStep) diff(dst string) ([]string, error) {
	fi, err := os.Lstat(dst)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return []string{fmt.Sprintf("create %s (%s root, %d bytes)", s.f.Path, plan.FormatMode(s.mode), s.f.Size)}, nil
	case err != nil:
		return nil, err
	case fi.IsDir():
		return nil, fmt.Errorf("%s: is a directory, want a regular file", s.f.Path)
	case !fi.Mode().IsRegular():
		return []string{fmt.Sprintf("replace %s (%s) with a regular file", s.f.Path, fi.Mode().Type())}, nil
	}
	var diff []string
	got, err := sha256File(dst)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.f.Path, err)
	}
	if got != strings.ToLower(s.f.SHA256) {
		if s.f.Secret {
			diff = append(diff, fmt.Sprintf("%s: content differs (secret)", s.f.Path))
		} else {
			diff = append(diff, fmt.Sprintf("%s: content differs (sha256 %.12s… → %.12s…)", s.f.Path, got, s.f.SHA256))
		}
	}
	st := fi.Sys().(*syscall.Stat_t)
	if m := st.Mode & 0o7777; m != s.mode {
		diff = append(diff, fmt.Sprintf("%s: mode %s → %s", s.f.Path, plan.FormatMode(m), plan.FormatMode(s.mode)))
	}
	if int(st.Uid) != s.uid || int(st.Gid) != s.gid {
		diff = append(diff, fmt.Sprintf("%s: owner %d:%d → %d:%d", s.f.Path, st.Uid, st.Gid, s.uid, s.gid))
	}
	return diff, nil
}

// Apply copies <Bundle>/<Source> to a temp file beside the destination,
// checking sha256 while copying, sets owner and mode, fsyncs and renames it
// into place. Parent directories are created 0755.
func (s *fileStep) Apply(_ context.Context, env *engine.Env) (err error) {
	if err := cleanRel(s.f.Source); err != nil {
		return fmt.Errorf("%s: source %q: %w", s.f.Path, s.f.Source, err)
	}
	realBundle, err := filepath.EvalSymlinks(env.Bundle)
	if err != nil {
		return fmt.Errorf("bundle directory: %w", err)
	}
	src, err := resolveIn(realBundle, filepath.Join(env.Bundle, filepath.FromSlash(s.f.Source)))
	if err != nil {
		return fmt.Errorf("%s: source %s: %w", s.f.Path, s.f.Source, err)
	}
	dst, err := s.dest(env)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("%s: %w", s.f.Path, err)
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("%s: source: %w", s.f.Path, err)
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".firstboot-*")
	if err != nil {
		return fmt.Errorf("%s: %w", s.f.Path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	if _, err = io.Copy(io.MultiWriter(tmp, h), in); err != nil {
		return fmt.Errorf("%s: copy: %w", s.f.Path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(s.f.SHA256) {
		return fmt.Errorf("%s: source %s: sha256 %s, manifest says %s: %w", s.f.Path, s.f.Source, got, s.f.SHA256, ErrTampered)
	}
	// chown first: it clears set-id bits that chmod then restores.
	if err = tmp.Chown(s.uid, s.gid); err != nil {
		return fmt.Errorf("%s: %w", s.f.Path, err)
	}
	if err = syscall.Fchmod(int(tmp.Fd()), s.mode); err != nil {
		return fmt.Errorf("%s: chmod: %w", s.f.Path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("%s: %w", s.f.Path, err)
	}
	if err = os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("%s: %w", s.f.Path, err)
	}
	// The stamp is taken through the open file after the rename: rename
	// itself changes the inode's ctime (ext4, xfs).
	var st syscall.Stat_t
	if err = syscall.Fstat(int(tmp.Fd()), &st); err != nil {
		return fmt.Errorf("%s: %w", s.f.Path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", s.f.Path, err)
	}
	if err = syncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	stamp := stampOf(&st)
	s.wrote = &stamp
	return nil
}

// Verify checks the installed file. When dst is still the inode Apply
// wrote and nothing touched it since, the content check is the hash Apply
// took of every byte on the way in: re-reading them right after fsync
// would read the page cache, not the disk, so it would prove nothing and
// cost a second pass over every byte (for kube-apiserver, ~119 MB: 40 s on
// a TCG guest). Anything else (no Apply in this run, a replaced or
// modified file) gets the full Check, hash included.
func (s *fileStep) Verify(ctx context.Context, env *engine.Env) error {
	if s.wrote != nil {
		dst, err := s.dest(env)
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(dst, &st); err == nil && stampOf(&st) == *s.wrote &&
			st.Mode&0o7777 == s.mode && int(st.Uid) == s.uid && int(st.Gid) == s.gid && st.Mode&syscall.S_IFMT == syscall.S_IFREG {
			return nil
		}
	}
	st, err := s.Check(ctx, env)
	if err != nil {
		return err
	}
	if !st.Converged {
		return fmt.Errorf("%s: still differs after install: %s", s.f.Path, strings.Join(st.Diff, "; "))
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}
