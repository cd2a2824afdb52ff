package host

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubebake/kubebake/firstboot/engine"
)

// DefaultCtr is where the bundle installs containerd's ctr.
const DefaultCtr = "/opt/containerd/bin/ctr"

// CRINamespace is the containerd namespace the kubelet's CRI plugin reads.
const CRINamespace = "k8s.io"

// ErrLayout means a directory is not an OCI image layout firstboot can import.
var ErrLayout = errors.New("not an OCI image layout")

// Images drives containerd through its ctr binary. It implements
// engine.Images.
type Images struct {
	ctr string
}

var _ engine.Images = (*Images)(nil)

// NewImages returns an engine.Images that runs ctr (DefaultCtr when empty)
// against containerd's default socket, in the k8s.io namespace.
func NewImages(ctr string) engine.Images {
	if ctr == "" {
		ctr = DefaultCtr
	}
	return &Images{ctr: ctr}
}

// Present reports whether `ctr -n k8s.io images ls` lists ref, and, when
// digest is set, with that target digest. It fails when containerd is not
// reachable (ctr exits non-zero).
func (i *Images) Present(ctx context.Context, ref, digest string) (bool, error) {
	out, err := i.run(ctx, nil, "images", "ls")
	if err != nil {
		return false, err
	}
	// REF TYPE DIGEST SIZE PLATFORMS LABELS; SIZE holds a space ("1.2 MiB"),
	// but the first three columns never do.
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] == "REF" || f[0] != ref {
			continue
		}
		return digest == "" || f[2] == digest, nil
	}
	return false, sc.Err()
}

// Import streams the OCI layout in layoutDir as a tar to `ctr -n k8s.io
// images import -`. ctr names the images after each index entry's
// io.containerd.image.name annotation (no --base-name, so the builder's
// names are kept) and imports the host's platform only (ctr's default).
func (i *Images) Import(ctx context.Context, layoutDir string) error {
	for _, name := range []string{"oci-layout", "index.json"} {
		if fi, err := os.Stat(filepath.Join(layoutDir, name)); err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: %w: no regular file %s", layoutDir, ErrLayout, name)
		}
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeLayoutTar(pw, layoutDir)) }()
	// If ctr exits early, unblock the writer.
	defer pr.CloseWithError(errors.New("ctr exited"))
	if _, err := i.run(ctx, pr, "images", "import", "-"); err != nil {
		return fmt.Errorf("import %s: %w", layoutDir, err)
	}
	return nil
}

func (i *Images) run(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	args = append([]string{"-n", CRINamespace}, args...)
	cmd := exec.CommandContext(ctx, i.ctr, args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", i.ctr, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// layoutEpoch is the fixed mtime of every entry, so the stream depends only
// on the layout's content.
var layoutEpoch = time.Unix(0, 0).UTC()

// writeLayoutTar writes dir as an uncompressed tar, entries relative to dir
// in lexical order, uid/gid 0, fixed mtime. Only directories and regular
// files belong in an OCI layout; anything else (a symlink could point out of
// the bundle) is an error.
func writeLayoutTar(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		name := filepath.ToSlash(rel)
		hdr := &tar.Header{Name: name, ModTime: layoutEpoch, Format: tar.FormatPAX}
		switch {
		case d.IsDir():
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, name+"/", 0o755
			return tw.WriteHeader(hdr)
		case d.Type().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, 0o644, fi.Size()
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			_, err = io.Copy(tw, f)
			return err
		default:
			return fmt.Errorf("%s: %w: %s is %s, want a regular file or directory", dir, ErrLayout, name, d.Type())
		}
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
