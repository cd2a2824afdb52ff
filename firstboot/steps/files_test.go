package steps

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubebake/kubebake/firstboot/engine"
	"github.com/kubebake/kubebake/firstboot/plan"
)

type testFile struct {
	dest, content, mode string
	secret              bool
}

// makeBundle writes an unpacked bundle as the builder lays it out:
// rootfs/<dest>, bundle.json, SHA256SUMS over every other regular file.
func makeBundle(t *testing.T, files []testFile) (string, *plan.Manifest) {
	t.Helper()
	dir := t.TempDir()
	m := &plan.Manifest{Format: plan.Format, Host: plan.Host{Name: "n1", IP: "10.4.7.21"}}
	sums := map[string]string{}
	for _, f := range files {
		src := plan.SourceFor(f.dest)
		p := filepath.Join(dir, src)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.content), 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(f.content))
		sums[src] = hex.EncodeToString(sum[:])
		m.Files = append(m.Files, plan.File{Path: f.dest, Source: src, Mode: f.mode, Owner: "root:root",
			Size: int64(len(f.content)), SHA256: sums[src], Secret: f.secret})
	}
	mj, err := plan.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, plan.ManifestName), mj, 0o644)
	sum := sha256.Sum256(mj)
	sums[plan.ManifestName] = hex.EncodeToString(sum[:])
	writeSums(t, dir, sums)
	return dir, m
}

func writeSums(t *testing.T, dir string, sums map[string]string) {
	t.Helper()
	var names []string
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", sums[n], n)
	}
	if err := os.WriteFile(filepath.Join(dir, plan.SumsName), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

var sample = []testFile{
	{dest: "/etc/kubernetes/kubelet.conf", content: "kubelet config\n", mode: "0644"},
	{dest: "/etc/kubernetes/pki/node-key.pem", content: "-----BEGIN PRIVATE KEY-----\nsecretstuff\n", mode: "0600", secret: true},
	{dest: "/opt/kubernetes/bin/kubelet", content: "#!/bin/sh\necho kubelet\n", mode: "0755"},
}

func fileEnv(t *testing.T, files []testFile) *engine.Env {
	t.Helper()
	bundle, m := makeBundle(t, files)
	return &engine.Env{Root: t.TempDir(), Bundle: bundle, Manifest: m}
}

func installSteps(t *testing.T, env *engine.Env) []engine.Step {
	t.Helper()
	fs, err := Files(env.Manifest.Files)
	if err != nil {
		t.Fatal(err)
	}
	return append([]engine.Step{Integrity()}, fs...)
}

func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
}

func TestFilesInstallIdempotent(t *testing.T) {
	needRoot(t)
	env := fileEnv(t, sample)
	var log bytes.Buffer
	res, err := engine.Run(context.Background(), env, installSteps(t, env), engine.RunOptions{Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count(engine.OutcomeChanged) != 3 || res.Count(engine.OutcomeConverged) != 1 {
		t.Errorf("first run: %+v", res.Steps)
	}
	for _, f := range sample {
		p := filepath.Join(env.Root, f.dest)
		b, err := os.ReadFile(p)
		if err != nil || string(b) != f.content {
			t.Errorf("%s: %q, %v", f.dest, b, err)
		}
		fi, _ := os.Stat(p)
		st := fi.Sys().(*syscall.Stat_t)
		if got := plan.FormatMode(st.Mode); got != f.mode || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s: mode %s owner %d:%d, want %s 0:0", f.dest, got, st.Uid, st.Gid, f.mode)
		}
		ents, _ := os.ReadDir(filepath.Dir(p))
		for _, e := range ents {
			if strings.Contains(e.Name(), ".firstboot-") {
				t.Errorf("temp file left: %s", e.Name())
			}
		}
	}
	if fi, _ := os.Stat(filepath.Join(env.Root, "etc/kubernetes/pki")); fi.Mode().Perm() != 0o755 {
		t.Errorf("parent dir mode %v, want 0755", fi.Mode())
	}
	if strings.Contains(log.String(), "secretstuff") {
		t.Error("secret content logged")
	}

	// Re-run: every step converged, bytes unchanged.
	before, _ := os.ReadFile(filepath.Join(env.Root, sample[2].dest))
	res, err = engine.Run(context.Background(), env, installSteps(t, env), engine.RunOptions{})
	if err != nil || res.Count(engine.OutcomeConverged) != 4 {
		t.Errorf("re-run: %+v %v", res.Steps, err)
	}
	after, _ := os.ReadFile(filepath.Join(env.Root, sample[2].dest))
	if !bytes.Equal(before, after) {
		t.Error("re-run changed bytes")
	}
}

func TestFilesDrift(t *testing.T) {
	needRoot(t)
	env := fileEnv(t, sample)
	steps := installSteps(t, env)
	if _, err := engine.Run(context.Background(), env, steps, engine.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	kubelet := filepath.Join(env.Root, sample[2].dest)
	os.Chmod(kubelet, 0o644)
	os.Chown(kubelet, 1000, 1000)
	key := filepath.Join(env.Root, sample[1].dest)
	os.WriteFile(key, []byte("other"), 0o600)
	conf := filepath.Join(env.Root, sample[0].dest)
	os.Remove(conf)
	os.Symlink("/etc/hostname", conf)

	for _, tc := range []struct {
		step int
		want []string
	}{
		{1, []string{"replace /etc/kubernetes/kubelet.conf (L---------) with a regular file"}},
		{2, []string{"/etc/kubernetes/pki/node-key.pem: content differs (secret)"}},
		{3, []string{"/opt/kubernetes/bin/kubelet: mode 0644 → 0755", "/opt/kubernetes/bin/kubelet: owner 1000:1000 → 0:0"}},
	} {
		st, err := steps[tc.step].Check(context.Background(), env)
		if err != nil {
			t.Fatal(err)
		}
		if st.Converged || strings.Join(st.Diff, "|") != strings.Join(tc.want, "|") {
			t.Errorf("step %d diff %q, want %q", tc.step, st.Diff, tc.want)
		}
	}
	if _, err := engine.Run(context.Background(), env, steps, engine.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(conf); !fi.Mode().IsRegular() {
		t.Error("symlink not replaced by a regular file")
	}
	if b, _ := os.ReadFile("/etc/hostname"); strings.Contains(string(b), "kubelet config") {
		t.Fatal("wrote through the symlink to the real /etc/hostname")
	}
	for _, s := range steps {
		if st, err := s.Check(context.Background(), env); err != nil || !st.Converged {
			t.Errorf("%s after fix: %+v %v", s.ID(), st, err)
		}
	}
}

// installed lists what a run left under Root, besides firstboot's state.
func installed(t *testing.T, root string) []string {
	var got []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, p)
		if rel == "." || strings.HasPrefix(rel, "var") {
			return nil
		}
		got = append(got, rel)
		return nil
	})
	return got
}

func TestTamperedBundleRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, bundle string)
		want   string // the error after "step [1/4] bundle/integrity: check: bundle integrity: "
	}{
		{"one byte changed", func(t *testing.T, b string) {
			p := filepath.Join(b, "rootfs/opt/kubernetes/bin/kubelet")
			c, _ := os.ReadFile(p)
			c[0] ^= 1
			os.WriteFile(p, c, 0o644)
		}, "rootfs/opt/kubernetes/bin/kubelet: sha256 mismatch: SHA256SUMS says 52e1390e2b3e61a174df43682f9ebc918dfd64ab2b75ed6579cb4a80ae304d8f, the file has 905c820ce4e76bd057b10c223b8aedfeb6301b06301e4df59d0cf799f02610c6: bundle refused, nothing installed"},
		{"../ entry", func(t *testing.T, b string) {
			f, _ := os.OpenFile(filepath.Join(b, plan.SumsName), os.O_APPEND|os.O_WRONLY, 0)
			fmt.Fprintf(f, "%064x  ../../etc/passwd\n", 0)
			f.Close()
		}, `SHA256SUMS line 5: "../../etc/passwd": contains "..": path escapes its root: bundle refused, nothing installed`},
		{"absolute entry", func(t *testing.T, b string) {
			f, _ := os.OpenFile(filepath.Join(b, plan.SumsName), os.O_APPEND|os.O_WRONLY, 0)
			fmt.Fprintf(f, "%064x  /etc/passwd\n", 0)
			f.Close()
		}, `SHA256SUMS line 5: "/etc/passwd": absolute path: path escapes its root: bundle refused, nothing installed`},
		{"escaping symlink", func(t *testing.T, b string) {
			p := filepath.Join(b, "rootfs/etc/kubernetes/kubelet.conf")
			os.Remove(p)
			os.Symlink("/etc/passwd", p)
		}, "rootfs/etc/kubernetes/kubelet.conf: symlink to /etc/passwd resolves outside BUNDLE: path escapes its root: bundle refused, nothing installed"},
		{"unlisted symlink in rootfs", func(t *testing.T, b string) {
			os.Symlink("/etc/shadow", filepath.Join(b, "rootfs/etc/shadow"))
		}, "rootfs/etc/shadow: symlink to /etc/shadow resolves outside BUNDLE: path escapes its root: bundle refused, nothing installed"},
		{"unlisted file", func(t *testing.T, b string) {
			os.WriteFile(filepath.Join(b, "rootfs/etc/extra"), []byte("x"), 0o644)
		}, "rootfs/etc/extra: not listed in SHA256SUMS (added after the build?): bundle refused, nothing installed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := fileEnv(t, sample)
			tc.tamper(t, env.Bundle)
			var log bytes.Buffer
			_, err := engine.Run(context.Background(), env, installSteps(t, env), engine.RunOptions{Log: &log})
			var se *engine.StepError
			if !errors.As(err, &se) || se.Index != 1 || se.ID != "bundle/integrity" || !errors.Is(err, ErrTampered) {
				t.Fatalf("err %v", err)
			}
			realBundle, _ := filepath.EvalSymlinks(env.Bundle)
			want := "step [1/4] bundle/integrity: check: bundle integrity: " + strings.ReplaceAll(tc.want, "BUNDLE", realBundle)
			if err.Error() != want {
				t.Errorf("error\n got %s\nwant %s", err, want)
			}
			if got := installed(t, env.Root); len(got) != 0 {
				t.Errorf("installed %v from a tampered bundle", got)
			}
		})
	}
}

func TestFileSourceEscapeRefused(t *testing.T) {
	env := fileEnv(t, sample[:1])
	outside := t.TempDir()
	os.MkdirAll(filepath.Join(outside, "kubernetes"), 0o755)
	os.WriteFile(filepath.Join(outside, "kubernetes/kubelet.conf"), []byte("kubelet config\n"), 0o644)
	// The rootfs directory itself is a symlink out of the bundle.
	os.RemoveAll(filepath.Join(env.Bundle, "rootfs/etc"))
	os.Symlink(outside, filepath.Join(env.Bundle, "rootfs/etc"))
	steps, _ := Files(env.Manifest.Files)
	err := steps[0].Apply(context.Background(), env)
	if !errors.Is(err, ErrEscape) {
		t.Fatalf("err %v, want ErrEscape", err)
	}
	f := env.Manifest.Files[0]
	f.Source = "rootfs/../../x"
	steps, _ = Files([]plan.File{f})
	if err := steps[0].Apply(context.Background(), env); !errors.Is(err, ErrEscape) || !strings.Contains(err.Error(), `source "rootfs/../../x": contains ".."`) {
		t.Errorf("err %v", err)
	}
	if got := installed(t, env.Root); len(got) != 0 {
		t.Errorf("installed %v", got)
	}
}

func TestFileDestinationSymlinkOutsideRoot(t *testing.T) {
	env := fileEnv(t, sample[:1])
	outside := t.TempDir()
	os.Symlink(outside, filepath.Join(env.Root, "etc"))
	steps, _ := Files(env.Manifest.Files)
	_, err := steps[0].Check(context.Background(), env)
	if !errors.Is(err, ErrEscape) || !strings.Contains(err.Error(), "/etc/kubernetes/kubelet.conf: parent /etc resolves to "+outside+", outside the root") {
		t.Fatalf("check err %v", err)
	}
	if err := steps[0].Apply(context.Background(), env); !errors.Is(err, ErrEscape) {
		t.Fatalf("apply err %v", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("wrote outside the root: %v", ents)
	}
	// A symlink that stays inside Root is followed.
	os.Remove(filepath.Join(env.Root, "etc"))
	os.MkdirAll(filepath.Join(env.Root, "real-etc"), 0o755)
	os.Symlink("real-etc", filepath.Join(env.Root, "etc"))
	if _, err := steps[0].Check(context.Background(), env); err != nil {
		t.Errorf("inside symlink refused: %v", err)
	}
}

func TestFilesRejectsBadOwnerAndSecretMode(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    plan.File
		want string
	}{
		{"named owner", plan.File{Path: "/a", Mode: "0644", Owner: "etcd:etcd"}, `files[0] /a: owner "etcd:etcd": want root:root or a numeric uid:gid`},
		{"secret world readable", plan.File{Path: "/a", Mode: "0644", Secret: true}, "files[0] /a: secret with mode 0644 (want 0600 or tighter)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Files([]plan.File{tc.f}); err == nil || err.Error() != tc.want {
				t.Errorf("err %v, want %s", err, tc.want)
			}
		})
	}
}

// Verify after Apply trusts Apply's hash only while the destination is the
// inode Apply wrote, untouched: a same-size rewrite, a replacement or a
// chmod in between is caught.
func TestFileVerifyAfterApply(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		meddle func(p string) error
	}{
		{"untouched", nil},
		{"same-size rewrite", func(p string) error {
			time.Sleep(10 * time.Millisecond) // a new ctime even on coarse clocks
			return os.WriteFile(p, []byte("#!/bin/sh\necho kubeXet\n"), 0o755)
		}},
		{"replaced", func(p string) error {
			if err := os.WriteFile(p+".new", []byte("#!/bin/sh\necho kubelet\n"), 0o755); err != nil {
				return err
			}
			return os.Rename(p+".new", p)
		}},
		{"chmod", func(p string) error { return os.Chmod(p, 0o700) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := fileEnv(t, sample[2:])
			steps, err := Files(env.Manifest.Files)
			if err != nil {
				t.Fatal(err)
			}
			s := steps[0]
			if err := s.Apply(ctx, env); err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(env.Root, sample[2].dest)
			// The fast path is taken only while the stamp matches: it
			// must match right after Apply, or Verify always re-hashes
			// (rename changes ctime, so a stamp taken before it never
			// matches).
			var st syscall.Stat_t
			if err := syscall.Lstat(dst, &st); err != nil {
				t.Fatal(err)
			}
			if fs := s.(*fileStep); fs.wrote == nil || *fs.wrote != stampOf(&st) {
				t.Fatalf("Apply's stamp %+v does not match the installed file's %+v", fs.wrote, stampOf(&st))
			}
			if tc.meddle != nil {
				if err := tc.meddle(dst); err != nil {
					t.Fatal(err)
				}
			}
			err = s.Verify(ctx, env)
			switch {
			case tc.name == "untouched" && err != nil:
				t.Errorf("Verify: %v", err)
			case tc.name == "replaced" && err != nil:
				t.Errorf("Verify of an identical replacement (full check): %v", err)
			case tc.name != "untouched" && tc.name != "replaced" && err == nil:
				t.Error("Verify passed after the file changed")
			}
		})
	}
}
