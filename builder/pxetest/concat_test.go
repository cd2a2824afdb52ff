package pxetest

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubebake/kubebake/builder/pxe"
	"github.com/kubebake/kubebake/internal/qemutest"
)

// TestOverlayAfterInitrd is the fast, always-run part of the PXE path, no
// VM: an overlay written by builder/pxe, placed after a gzip'd installer
// initrd as pxelinux and GRUB load them (back to back, or with the next
// one 4-byte aligned and NUL-padded), is
//   - a second complete gzip member (each member decompresses alone;
//     NULs between members are skipped, as the kernel does);
//   - a newc archive GNU cpio lists and extracts on its own, and
//     extracting both members in order gives the union of their files;
//   - acceptable to the kernel's unpacker rules (init/initramfs.c): per
//     member, headers 4-byte aligned from the member's start, the member
//     ending right after TRAILER!!! and its NUL padding ("junk at the end
//     of compressed archive" otherwise).
//
// GNU cpio alone cannot show the concatenation: over the decompressed
// whole it stops at the first TRAILER!!! and lists the installer's files
// only (logged below). The kernel goes on; TestPXEBootInQEMU shows a real
// kernel doing it.
func TestOverlayAfterInitrd(t *testing.T) {
	for _, tool := range []string{"cpio", "gzip"} {
		if _, err := exec.LookPath(tool); err != nil {
			if qemutest.CI() {
				t.Fatalf("%s not installed; install with:\n  apt-get install -y --no-install-recommends cpio gzip", tool)
			}
			t.Skipf("%s not installed (apt-get install -y --no-install-recommends cpio gzip)", tool)
		}
	}
	work := t.TempDir()

	// The installer's initrd: GNU cpio, gzip, with directories the
	// overlay also has (usr/lib), as RHEL 7's has.
	inst := filepath.Join(work, "installer")
	mustWrite(t, filepath.Join(inst, "init"), []byte("#!/bin/sh\necho installer\n"))
	mustWrite(t, filepath.Join(inst, "usr", "lib", "os-release"), []byte("NAME=\"stand-in installer\"\n"))
	mustWrite(t, filepath.Join(inst, "etc", "cmdline.d", "01-test.conf"), []byte("rd.debug\n"))
	initrd := filepath.Join(work, "initrd.img")
	cpioGz(t, inst, initrd)

	ks := []byte("# kubebake: host=hdss7-21 ip=10.4.7.21 bundle-sha256=…\n")
	bundle := make([]byte, 256<<10) // incompressible, so it is not all one gzip block
	if _, err := rand.Read(bundle); err != nil {
		t.Fatal(err)
	}
	var ov bytes.Buffer
	if _, err := pxe.WriteOverlay(&ov, []pxe.OverlayEntry{
		{Path: "ks.cfg", Mode: 0o644, Data: ks},
		{Path: pxe.OverlayBundle, Mode: 0o644, Data: bundle},
	}, time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	ib, err := os.ReadFile(initrd)
	if err != nil {
		t.Fatal(err)
	}

	for _, align := range []int{1, 4} {
		t.Run(fmt.Sprintf("align-%d", align), func(t *testing.T) {
			cat := append([]byte(nil), ib...)
			for len(cat)%align != 0 {
				cat = append(cat, 0)
			}
			cat = append(cat, ov.Bytes()...)
			concat := filepath.Join(t.TempDir(), "initrds")
			mustWrite(t, concat, cat)

			members, err := gunzipMembers(cat)
			if err != nil {
				t.Fatal(err)
			}
			if len(members) != 2 {
				t.Fatalf("%d gzip members, want 2 (installer, overlay)", len(members))
			}
			wantInst := []string{".", "etc", "etc/cmdline.d", "etc/cmdline.d/01-test.conf", "init", "usr", "usr/lib", "usr/lib/os-release"}
			wantOv := []string{"kubebake", pxe.OverlayBundle, "ks.cfg"}
			for i, want := range [][]string{wantInst, wantOv} {
				got, err := walkNewc(members[i])
				if err != nil {
					t.Fatalf("member %d, as the kernel reads it: %v", i+1, err)
				}
				if i == 1 {
					if !bytes.Equal(got[pxe.OverlayBundle], bundle) || !bytes.Equal(got["ks.cfg"], ks) {
						t.Errorf("overlay: ks.cfg or the bundle differ after unpacking")
					}
				}
				names := gnuList(t, members[i])
				for _, n := range want {
					if !contains(names, n) {
						t.Errorf("member %d: GNU cpio -t lists no %s: %q", i+1, n, names)
					}
				}
			}

			// Both members extracted in order, as the kernel unpacks them.
			root := t.TempDir()
			for i, m := range members {
				cmd := exec.Command("cpio", "-idu", "--quiet", "--no-absolute-filenames")
				cmd.Dir, cmd.Stdin = root, bytes.NewReader(m)
				if b, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("GNU cpio -idu, member %d: %v\n%s", i+1, err, b)
				}
			}
			for _, p := range []string{"init", "usr/lib/os-release", "ks.cfg", pxe.OverlayBundle} {
				if _, err := os.Stat(filepath.Join(root, p)); err != nil {
					t.Errorf("after extracting both members: %v", err)
				}
			}

			// GNU cpio over the whole: the first archive only.
			out, err := exec.Command("sh", "-c", `gzip -dc "$0" 2>/dev/null | cpio -t --quiet`, concat).Output()
			if err != nil {
				t.Fatalf("gzip -dc | cpio -t: %v", err)
			}
			whole := strings.Fields(string(out))
			t.Logf("GNU cpio -t over the decompressed concatenation: %d names (the installer has %d), ks.cfg among them: %v",
				len(whole), len(wantInst), contains(whole, "ks.cfg"))
		})
	}
}

// TestWalkNewcRejects: the kernel-rules reader fails where the kernel would.
func TestWalkNewcRejects(t *testing.T) {
	var ov bytes.Buffer
	if _, err := pxe.WriteOverlay(&ov, []pxe.OverlayEntry{{Path: "ks.cfg", Mode: 0o644, Data: []byte("x\n")}}, time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	m, err := gunzipMembers(ov.Bytes())
	if err != nil || len(m) != 1 {
		t.Fatalf("overlay: %d members, %v", len(m), err)
	}
	good := m[0]
	if _, err := walkNewc(good); err != nil {
		t.Fatalf("overlay as written: %v", err)
	}
	for name, b := range map[string][]byte{
		"junk after the trailer":    append(append([]byte(nil), good...), 'x', 'y'),
		"misaligned second archive": append(append(append([]byte(nil), good...), 0, 0), good...),
		"no trailer":                good[:len(good)-124],
	} {
		if _, err := walkNewc(b); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if _, err := gunzipMembers(append(append([]byte(nil), ov.Bytes()...), 'x')); err == nil {
		t.Error("junk between gzip members: accepted")
	}
}

// gunzipMembers splits concatenated gzip members as the kernel does with
// an initrd list: NUL bytes between members are skipped, anything else
// must start a member. It returns each member's uncompressed bytes.
func gunzipMembers(b []byte) ([][]byte, error) {
	var out [][]byte
	for off := 0; off < len(b); {
		if b[off] == 0 {
			off++
			continue
		}
		br := bytes.NewReader(b[off:])
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("at byte %d: not a gzip member: %w", off, err)
		}
		zr.Multistream(false)
		m, err := io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("gzip member %d at byte %d: %w", len(out)+1, off, err)
		}
		out = append(out, m)
		// A bytes.Reader is an io.ByteReader, so gzip reads it without a
		// buffer: the member ends where the reader is.
		off = len(b) - br.Len()
	}
	return out, nil
}

// walkNewc reads one decompressed initrd member as the kernel's unpacker
// does: newc headers ("070701") 4-byte aligned from the member's start,
// name and data padded to 4, any number of archives separated by NULs,
// and nothing but NULs after the last TRAILER!!!. It returns the regular
// files' contents by name.
func walkNewc(b []byte) (map[string][]byte, error) {
	files := map[string][]byte{}
	align := func(n int) int { return (n + 3) &^ 3 }
	trailer := false
	for off := 0; off < len(b); {
		if b[off] == 0 && trailer {
			off++
			continue
		}
		if off&3 != 0 {
			return nil, fmt.Errorf("header at %d: broken padding (not 4-byte aligned)", off)
		}
		if len(b)-off < 110 || string(b[off:off+6]) != "070701" {
			return nil, fmt.Errorf("at %d: no newc header (junk at the end of the archive)", off)
		}
		field := func(i int) (int, error) {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			return int(v), err
		}
		mode, err1 := field(1)
		size, err2 := field(6)
		nameSize, err3 := field(11)
		if err := errors.Join(err1, err2, err3); err != nil || nameSize < 1 {
			return nil, fmt.Errorf("header at %d: %v (namesize %d)", off, err, nameSize)
		}
		nameEnd := off + 110 + nameSize
		dataEnd := align(nameEnd) + size
		if dataEnd > len(b) {
			return nil, fmt.Errorf("entry at %d runs past the end", off)
		}
		name := string(b[off+110 : nameEnd-1])
		trailer = name == "TRAILER!!!"
		if !trailer && mode&0o170000 == 0o100000 {
			files[name] = b[align(nameEnd):dataEnd]
		}
		off = align(dataEnd)
	}
	if !trailer {
		return nil, errors.New("no TRAILER!!! at the end")
	}
	return files, nil
}

// gnuList is GNU cpio -t's listing of a newc archive, sorted.
func gnuList(t *testing.T, archive []byte) []string {
	t.Helper()
	cmd := exec.Command("cpio", "-t", "--quiet")
	cmd.Stdin = bytes.NewReader(archive)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("GNU cpio -t: %v", err)
	}
	names := strings.Fields(string(out))
	sort.Strings(names)
	return names
}
