// Package standin writes small executable stand-ins for a spec's artifacts,
// laid out as `kubebake bake --artifacts DIR` reads them (DIR/<name>/<file>
// plus the published checksum file beside it). They let the demo and the
// tests bake the seed's cluster on a machine that reaches no release site;
// `kubebake pull` (next issue) fetches the real binaries into the same shape.
// Every stand-in says what it is when run and exits non-zero, so one can
// never pass for the real component.
package standin

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/google/renameio/v2"

	"github.com/kubebake/kubebake/builder/spec"
)

// Generate writes a stand-in for every artifact of s under dir. Pad adds
// that many bytes of filler to each binary (benchmarks want realistic sizes).
func Generate(s *spec.Spec, dir string, pad int) error {
	for _, a := range s.Artifacts {
		if err := one(a, dir, pad); err != nil {
			return fmt.Errorf("stand-in %s: %w", a.Name, err)
		}
	}
	return nil
}

func script(name string, pad int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "#!/bin/sh\necho '%s: kubebake stand-in, not the real binary; run kubebake pull for it' >&2\nexit 1\n", name)
	if pad > 0 {
		b.WriteString("# ")
		for i := 0; b.Len() < pad; i++ {
			fmt.Fprintf(&b, "%s-%d ", name, i)
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

func one(a spec.Artifact, dir string, pad int) error {
	u, err := url.Parse(a.URL)
	if err != nil {
		return err
	}
	var data []byte
	if len(a.Extract) == 0 {
		data = script(a.Name, pad)
	} else if data, err = archive(a.Extract, pad); err != nil {
		return err
	}
	d := filepath.Join(dir, a.Name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	base := path.Base(u.Path)
	if err := writeFile(filepath.Join(d, base), data, 0o755); err != nil {
		return err
	}
	if a.SHA256URL == "" {
		return nil // pinned by sha256 in the spec: a stand-in cannot match it
	}
	su, err := url.Parse(a.SHA256URL)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	line := hex.EncodeToString(sum[:]) + "  " + base + "\n"
	return writeFile(filepath.Join(d, path.Base(su.Path)), []byte(line), 0o644)
}

func archive(members map[string]string, pad int) ([]byte, error) {
	var names []string
	for m := range members {
		names = append(names, m)
	}
	sort.Strings(names)
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for _, m := range names {
		body := script(members[m], pad)
		if err := tw.WriteHeader(&tar.Header{Name: m, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func writeFile(p string, data []byte, mode os.FileMode) error {
	return renameio.WriteFile(p, data, mode)
}
