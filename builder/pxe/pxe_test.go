package pxe

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kubebake/kubebake/builder/spec"
)

func generate(t *testing.T, s *spec.Spec, out string, opts ...Option) *Result {
	t.Helper()
	res, err := Generate(context.Background(), s, append([]Option{WithOutDir(out), WithLookupEnv(testEnv)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// tree reads every regular file under dir: relative path → bytes.
func tree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		m[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// extract gunzips an overlay and unpacks it with GNU cpio -idv in a new
// directory; it returns the directory and cpio's listing.
func extract(t *testing.T, overlay string) (string, []string) {
	t.Helper()
	cpioBin := needTool(t, "cpio")
	dir := t.TempDir()
	raw := filepath.Join(t.TempDir(), "overlay.cpio")
	gz, err := exec.Command("gzip", "-dc", overlay).Output()
	if err != nil {
		t.Fatalf("gunzip %s: %v", overlay, err)
	}
	if len(gz)%4 != 0 {
		t.Errorf("uncompressed overlay is %d bytes, not 4-byte aligned", len(gz))
	}
	if !bytes.Contains(gz[len(gz)-128:], []byte("TRAILER!!!\x00")) {
		t.Error("overlay does not end with TRAILER!!!")
	}
	if err := os.WriteFile(raw, gz, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", cpioBin+" -idv --no-absolute-filenames < "+raw)
	cmd.Dir = dir
	outb, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -idv: %v\n%s", err, outb)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(outb)), "\n") {
		if !strings.HasSuffix(l, " blocks") {
			names = append(names, l)
		}
	}
	return dir, names
}

func TestGenerateHTTP(t *testing.T) {
	s, out := bakeSeed(t)
	var logs bytes.Buffer
	res := generate(t, s, out, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	root := filepath.Join(out, "pxe")
	files := tree(t, root)
	// pxelinux.cfg/default and grub.cfg: machines without an entry boot
	// their disk.
	want := []string{"dnsmasq.conf", "http/SHA256SUMS", "tftp/pxelinux.cfg/default", "tftp/grub.cfg"}
	for _, h := range s.Hosts {
		want = append(want, "ks/"+h.Name+".cfg", "http/bundles/"+h.Name+".tar.gz", "http/ks/"+h.Name+".cfg",
			"http/ipxe/"+h.Name+".ipxe", "tftp/overlay/"+h.Name+".cpio.gz",
			"tftp/pxelinux.cfg/"+PXELinuxName(h.MACs[0]), "tftp/"+GrubName(h.MACs[0]))
	}
	sort.Strings(want)
	if got := keys(files); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("out/pxe holds:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	sums, err := bundleSums(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range res.Hosts {
		ks := files["ks/"+h.Name+".cfg"]
		if !bytes.Equal(ks, files["http/ks/"+h.Name+".cfg"]) {
			t.Errorf("%s: ks and http/ks differ", h.Name)
		}
		if line := HeaderLine(h.Name, h.IP, sums[h.Name+".tar.gz"]); !bytes.HasPrefix(ks, []byte(line+"\n")) {
			t.Errorf("%s: kickstart does not start with %q", h.Name, line)
		}
		a, _ := os.Stat(filepath.Join(out, h.Name+".tar.gz"))
		b, _ := os.Stat(filepath.Join(root, "http/bundles", h.Name+".tar.gz"))
		if !h.Linked || !os.SameFile(a, b) {
			t.Errorf("%s: http bundle is not a hard link to out/", h.Name)
		}
		dir, names := extract(t, h.Overlay)
		if strings.Join(names, " ") != "ks.cfg" {
			t.Errorf("%s: http overlay lists %v, want only ks.cfg", h.Name, names)
		}
		if got, _ := os.ReadFile(filepath.Join(dir, "ks.cfg")); !bytes.Equal(got, ks) {
			t.Errorf("%s: overlay ks.cfg differs from ks/%s.cfg", h.Name, h.Name)
		}
	}
	// http/SHA256SUMS checks with sha256sum(1) itself.
	cmd := exec.Command("sha256sum", "--strict", "-c", "SHA256SUMS")
	cmd.Dir = filepath.Join(root, "http")
	if b, err := cmd.CombinedOutput(); err != nil || strings.Count(string(b), ": OK") != 3*len(s.Hosts) {
		t.Errorf("sha256sum -c: %v\n%s", err, b)
	}
	// The root hash is only in the kickstarts and the overlays that carry
	// them; never in the logs.
	for p, b := range files {
		has := bytes.Contains(b, []byte(testHash))
		ks := strings.HasPrefix(p, "ks/") || strings.HasPrefix(p, "http/ks/")
		if ks != has && !strings.HasSuffix(p, ".cpio.gz") {
			t.Errorf("%s: holds the root hash: %t", p, has)
		}
	}
	if bytes.Contains(logs.Bytes(), []byte("$6$")) || logs.Len() == 0 {
		t.Errorf("logs (%d bytes) hold the hash or nothing:\n%s", logs.Len(), logs.String())
	}

	// A second run gives the same bytes; a run for fewer hosts prunes.
	generate(t, s, out)
	again := tree(t, root)
	for _, p := range keys(files) {
		if !bytes.Equal(files[p], again[p]) {
			t.Errorf("%s differs on a second run", p)
		}
	}
	s.Hosts = s.Hosts[:4]
	res = generate(t, s, out)
	if len(res.Pruned) != 7 {
		t.Errorf("pruned %v, want hdss7-200's 7 files", res.Pruned)
	}
}

func TestGenerateInitrd(t *testing.T) {
	s, out := bakeSeed(t, "\n  bundleDelivery: http", "\n  bundleDelivery: initrd")
	res := generate(t, s, out)
	h := res.Hosts[2]
	dir, names := extract(t, h.Overlay)
	want := "ks.cfg kubebake kubebake/bundle.tar.gz usr usr/lib usr/lib/dracut usr/lib/dracut/hooks usr/lib/dracut/hooks/pre-pivot usr/lib/dracut/hooks/pre-pivot/90-kubebake-bundle.sh"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("cpio lists:\n%s\nwant:\n%s", got, want)
	}
	bundle, _ := os.ReadFile(filepath.Join(out, h.Name+".tar.gz"))
	if got, _ := os.ReadFile(filepath.Join(dir, "kubebake/bundle.tar.gz")); !bytes.Equal(got, bundle) {
		t.Error("the overlay's bundle differs from out/<host>.tar.gz")
	}
	ks, _ := os.ReadFile(h.Kickstart)
	if got, _ := os.ReadFile(filepath.Join(dir, "ks.cfg")); !bytes.Equal(got, ks) {
		t.Error("the overlay's ks.cfg differs")
	}
	if !bytes.Contains(ks, []byte("%post --nochroot")) || bytes.Contains(ks, []byte("curl -")) {
		t.Error("an initrd kickstart must take the bundle from the overlay, without HTTP")
	}
	// The listing is in archive order: GNU cpio -tv shows owners and times.
	raw, _ := exec.Command("sh", "-c", "gzip -dc "+h.Overlay+" | cpio -tv --quiet").Output()
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 || f[2] != "root" || f[3] != "root" {
			t.Errorf("entry not owned by root: %s", l)
		}
	}

	// Byte-identical: again in place, and from a copy of out/ elsewhere.
	first := tree(t, filepath.Join(out, "pxe"))
	out2 := filepath.Join(t.TempDir(), "out")
	if err := os.MkdirAll(out2, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"SHA256SUMS"} {
		b, _ := os.ReadFile(filepath.Join(out, f))
		os.WriteFile(filepath.Join(out2, f), b, 0o644)
	}
	for _, x := range s.Hosts {
		b, _ := os.ReadFile(filepath.Join(out, x.Name+".tar.gz"))
		os.WriteFile(filepath.Join(out2, x.Name+".tar.gz"), b, 0o644)
	}
	generate(t, s, out2)
	second := tree(t, filepath.Join(out2, "pxe"))
	for _, p := range keys(first) {
		if !bytes.Equal(first[p], second[p]) {
			t.Errorf("%s differs between two builds", p)
		}
	}
	// A different epoch changes the overlays' bytes (mtimes) and nothing else.
	generate(t, s, out2, WithSourceDateEpoch(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Unix()))
	third := tree(t, filepath.Join(out2, "pxe"))
	for _, p := range keys(first) {
		if same := bytes.Equal(first[p], third[p]); same == strings.HasSuffix(p, ".cpio.gz") {
			t.Errorf("%s: same bytes under another epoch: %t", p, same)
		}
	}
}

func TestGenerateRefusesBadBundle(t *testing.T) {
	s, out := bakeSeed(t, "\n  bundleDelivery: http", "\n  bundleDelivery: initrd")
	p := filepath.Join(out, "hdss7-12.tar.gz")
	b, _ := os.ReadFile(p)
	b[len(b)/2] ^= 1
	os.Remove(p)
	os.WriteFile(p, b, 0o644)
	_, err := Generate(context.Background(), s, WithOutDir(out), WithLookupEnv(testEnv))
	if !errors.Is(err, ErrBundle) {
		t.Fatalf("err = %v, want ErrBundle", err)
	}
	if m, _ := filepath.Glob(filepath.Join(out, "pxe/tftp/overlay/.*")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
	if _, err := os.Stat(filepath.Join(out, "pxe/tftp/overlay/hdss7-12.cpio.gz")); err == nil {
		t.Error("an overlay was written for a bundle that does not match SHA256SUMS")
	}
}

func TestReadSecrets(t *testing.T) {
	dir := t.TempDir()
	s := seedWithPXE(t, dir, "\n  rootPasswordHashEnv: KUBEBAKE_ROOT_HASH", "\n  rootPasswordHashFile: secrets/root.hash\n  sshAuthorizedKeysFile: keys.pub")
	os.MkdirAll(filepath.Join(dir, "secrets"), 0o700)
	for _, tc := range []struct {
		name, hash, keys, want string
	}{
		{"ok", testHash + "\n", "# ops\n" + s.PXE.SSHAuthorizedKeys[0] + "\n\n", ""},
		{"plaintext refused", "hunter2-plaintext\n", "", "does not hold a crypt(3) hash"},
		{"short digest refused", "$6$salt$abc\n", "", "does not hold a crypt(3) hash"},
		{"bad key line", testHash, "ssh-rsa AAAA\n", "keys.pub:1: the key data is not base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(filepath.Join(dir, "secrets/root.hash"), []byte(tc.hash), 0o600)
			os.WriteFile(filepath.Join(dir, "keys.pub"), []byte(tc.keys), 0o644)
			sec, err := ReadSecrets(s, testEnv)
			if tc.want == "" {
				if err != nil || sec.RootHash != testHash || len(sec.AuthorizedKeys) != 2 {
					t.Fatalf("ReadSecrets = %+v, %v", sec, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), strings.TrimSpace(tc.hash)) {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
	s.PXE.RootPasswordHashFile, s.PXE.RootPasswordHashEnv = "", "NOT_SET_ANYWHERE"
	if _, err := ReadSecrets(s, testEnv); !errors.Is(err, ErrRootHash) {
		t.Errorf("unset variable: %v", err)
	}
}

func TestOverlayRefusesLib(t *testing.T) {
	var b bytes.Buffer
	_, err := WriteOverlay(&b, []OverlayEntry{{Path: "lib/dracut/hooks/x.sh", Mode: 0o755, Data: []byte("x")}}, time.Unix(1, 0))
	if err == nil || !strings.Contains(err.Error(), "would create lib/") {
		t.Fatalf("err = %v", err)
	}
	if _, err := WriteOverlay(&b, []OverlayEntry{{Path: "/ks.cfg", Data: []byte("x")}}, time.Unix(1, 0)); err == nil {
		t.Fatal("absolute path accepted")
	}
}

func TestDnsmasqAccepts(t *testing.T) {
	bin := needTool(t, "dnsmasq")
	s := seedWithPXE(t, t.TempDir())
	dm, err := Dnsmasq(s, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "dnsmasq.conf")
	os.WriteFile(p, dm, 0o644)
	out, err := exec.Command(bin, "--test", "-C", p).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "syntax check OK") {
		t.Fatalf("dnsmasq --test: %v\n%s", err, out)
	}
}
