//go:build upstreamimages

// Command images builds the offline upstream's container images with
// go-containerregistry and pushes them into the local registry.
//
// It is its own module: scripts/upstream/build.sh copies this file into
// <cache>/images-tool/ next to a generated go.mod (go-containerregistry
// v0.22.1) and builds it with -tags upstreamimages, so the repo's module and
// its go.mod never see it (the build tag keeps `go vet ./...` away too).
//
//	images build -out DIR -name pause -version 3.10 -created RFC3339 \
//	    [-busybox /path/to/busybox] -file SRC:DST[:MODE] ... [-dir /etc/x] \
//	    -entrypoint /pause [-cmd arg] [-user 65535:65535] [-label k=v] ...
//	images push -layout DIR -ref 127.0.0.1:5001/pause:3.10
//
// build writes an OCI image layout holding an OCI image index with one
// linux/amd64 image (upstream publishes multi-arch indexes for all of these;
// this one carries the only platform built here). Every timestamp is
// -created, so the same inputs give the same digests.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func die(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "images: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		die("usage: images build|push [flags]")
	}
	switch os.Args[1] {
	case "build":
		build(os.Args[2:])
	case "push":
		push(os.Args[2:])
	default:
		die("unknown command %q (build or push)", os.Args[1])
	}
}

// tarBuilder writes a layer with fixed owners and times, parents first.
type tarBuilder struct {
	tw    *tar.Writer
	buf   bytes.Buffer
	mtime time.Time
	dirs  map[string]bool
}

func newTar(mtime time.Time) *tarBuilder {
	t := &tarBuilder{mtime: mtime, dirs: map[string]bool{}}
	t.tw = tar.NewWriter(&t.buf)
	return t
}

func (t *tarBuilder) dir(p string) {
	p = strings.Trim(path.Clean("/"+p), "/")
	if p == "" || p == "." || t.dirs[p] {
		return
	}
	t.dir(path.Dir(p))
	t.dirs[p] = true
	t.hdr(&tar.Header{Typeflag: tar.TypeDir, Name: p + "/", Mode: 0o755})
}

func (t *tarBuilder) hdr(h *tar.Header) {
	h.ModTime, h.Uid, h.Gid, h.Format = t.mtime, 0, 0, tar.FormatPAX
	if err := t.tw.WriteHeader(h); err != nil {
		die("tar: %v", err)
	}
}

func (t *tarBuilder) file(dst string, data []byte, mode int64) {
	dst = strings.TrimPrefix(path.Clean("/"+dst), "/")
	t.dir(path.Dir(dst))
	t.hdr(&tar.Header{Typeflag: tar.TypeReg, Name: dst, Mode: mode, Size: int64(len(data))})
	if _, err := t.tw.Write(data); err != nil {
		die("tar: %v", err)
	}
}

func (t *tarBuilder) symlink(dst, target string) {
	dst = strings.TrimPrefix(path.Clean("/"+dst), "/")
	t.dir(path.Dir(dst))
	t.hdr(&tar.Header{Typeflag: tar.TypeSymlink, Name: dst, Linkname: target, Mode: 0o777})
}

func (t *tarBuilder) layer() v1.Layer {
	if err := t.tw.Close(); err != nil {
		die("tar: %v", err)
	}
	b := t.buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		die("layer: %v", err)
	}
	return l
}

func build(args []string) {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	out := fs.String("out", "", "OCI layout directory to write")
	comp := fs.String("name", "", "component name (for labels)")
	version := fs.String("version", "", "component version (for labels)")
	created := fs.String("created", "", "RFC 3339 time for the config and every file")
	bb := fs.String("busybox", "", "a static busybox to install as /bin/busybox with its applets")
	entrypoint := fs.String("entrypoint", "", "entrypoint, space separated")
	cmd := fs.String("cmd", "", "cmd, space separated")
	user := fs.String("user", "", "user[:group]")
	workdir := fs.String("workdir", "", "working directory")
	var files, dirs, labels, env multi
	fs.Var(&files, "file", "SRC:DST[:MODE] (octal mode, default 0755)")
	fs.Var(&dirs, "dir", "an empty directory to create")
	fs.Var(&labels, "label", "key=value")
	fs.Var(&env, "env", "KEY=value (PATH is always set)")
	_ = fs.Parse(args)
	if *out == "" || *comp == "" || *version == "" || *created == "" || *entrypoint == "" {
		die("build needs -out, -name, -version, -created and -entrypoint")
	}
	ts, err := time.Parse(time.RFC3339, *created)
	if err != nil {
		die("-created: %v", err)
	}
	ts = ts.UTC()

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	var adds []mutate.Addendum
	hist := func(by string) v1.History {
		return v1.History{Created: v1.Time{Time: ts}, CreatedBy: by, Comment: "kubebake offline upstream"}
	}
	if *bb != "" {
		data, err := os.ReadFile(*bb)
		if err != nil {
			die("busybox: %v", err)
		}
		list, err := exec.Command(*bb, "--list-full").Output()
		if err != nil {
			die("busybox --list-full: %v", err)
		}
		t := newTar(ts)
		t.file("bin/busybox", data, 0o755)
		applets := strings.Fields(string(list))
		sort.Strings(applets)
		for _, a := range applets {
			if a == "bin/busybox" {
				continue
			}
			rel := strings.Repeat("../", strings.Count(a, "/")) + "bin/busybox"
			t.symlink(a, rel)
		}
		for _, d := range []string{"tmp", "etc", "root", "var", "run"} {
			t.dir(d)
		}
		t.file("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), 0o644)
		t.file("etc/group", []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644)
		adds = append(adds, mutate.Addendum{Layer: t.layer(), History: hist("busybox-static (Debian) with its applets")})
	}
	t := newTar(ts)
	var what []string
	for _, f := range files {
		parts := strings.Split(f, ":")
		if len(parts) < 2 || len(parts) > 3 {
			die("-file %q: want SRC:DST[:MODE]", f)
		}
		mode := int64(0o755)
		if len(parts) == 3 {
			if mode, err = strconv.ParseInt(parts[2], 8, 64); err != nil {
				die("-file %q: mode: %v", f, err)
			}
		}
		data, err := os.ReadFile(parts[0])
		if err != nil {
			die("%v", err)
		}
		t.file(parts[1], data, mode)
		what = append(what, parts[1])
	}
	for _, d := range dirs {
		t.dir(d)
	}
	adds = append(adds, mutate.Addendum{Layer: t.layer(), History: hist("COPY " + strings.Join(what, " "))})
	if img, err = mutate.Append(img, adds...); err != nil {
		die("append: %v", err)
	}

	cf, err := img.ConfigFile()
	if err != nil {
		die("config: %v", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: ts}
	cf.Config.Entrypoint = strings.Fields(*entrypoint)
	cf.Config.Cmd = strings.Fields(*cmd)
	cf.Config.User = *user
	cf.Config.WorkingDir = *workdir
	cf.Config.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":       *comp,
		"org.opencontainers.image.version":     *version,
		"org.opencontainers.image.created":     ts.Format(time.RFC3339),
		"org.opencontainers.image.description": fmt.Sprintf("kubebake offline upstream build of %s %s", *comp, *version),
		"org.kubebake.upstream":                fmt.Sprintf("kubebake offline upstream build of %s %s", *comp, *version),
	}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			die("-label %q: want key=value", l)
		}
		cf.Config.Labels[k] = v
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		die("config: %v", err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
		Add:        img,
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}},
	})
	if err := os.RemoveAll(*out); err != nil {
		die("%v", err)
	}
	p, err := layout.Write(*out, empty.Index)
	if err != nil {
		die("layout: %v", err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": *version,
	})); err != nil {
		die("layout: %v", err)
	}
	id, _ := idx.Digest()
	md, _ := img.Digest()
	var size int64
	ls, _ := img.Layers()
	for _, l := range ls {
		n, _ := l.Size()
		size += n
	}
	fmt.Printf("built %s %s: index %s, linux/amd64 image %s (%d layer(s), %d bytes compressed) → %s\n",
		*comp, *version, id, md, len(ls), size, *out)
}

func push(args []string) {
	fs := flag.NewFlagSet("push", flag.ExitOnError)
	dir := fs.String("layout", "", "OCI layout written by build")
	ref := fs.String("ref", "", "where to push, e.g. 127.0.0.1:5001/pause:3.10")
	_ = fs.Parse(args)
	if *dir == "" || *ref == "" {
		die("push needs -layout and -ref")
	}
	r, err := name.ParseReference(*ref, name.Insecure)
	if err != nil {
		die("%v", err)
	}
	p, err := layout.FromPath(*dir)
	if err != nil {
		die("%v", err)
	}
	root, err := p.ImageIndex()
	if err != nil {
		die("%v", err)
	}
	im, err := root.IndexManifest()
	if err != nil || len(im.Manifests) == 0 {
		die("%s: empty layout (%v)", *dir, err)
	}
	idx, err := root.ImageIndex(im.Manifests[len(im.Manifests)-1].Digest)
	if err != nil {
		die("%v", err)
	}
	want, _ := idx.Digest()
	if d, err := remote.Head(r); err == nil && d.Digest == want {
		fmt.Printf("present %s@%s\n", r, want)
		return
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		die("push %s: %v", r, err)
	}
	d, err := remote.Head(r)
	if err != nil {
		die("verify %s: %v", r, err)
	}
	if d.Digest != want {
		die("verify %s: registry has %s, pushed %s", r, d.Digest, want)
	}
	fmt.Printf("pushed %s@%s\n", r, want)
}
