package pxe

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// postSections returns the bodies of the kickstart's %post sections: the
// --nochroot one ("" without) and the chroot one.
func postSections(t *testing.T, ks []byte) (nochroot, chroot string) {
	t.Helper()
	var cur *strings.Builder
	var no, ch strings.Builder
	for _, l := range strings.Split(string(ks), "\n") {
		switch {
		case strings.HasPrefix(l, "%post"):
			cur = &ch
			if strings.Contains(l, "--nochroot") {
				cur = &no
			}
			if !strings.Contains(l, "--erroronfail") || !strings.Contains(l, "--interpreter=/bin/bash") {
				t.Errorf("%s: must fail the install and run in bash", l)
			}
		case l == "%end":
			cur = nil
		case cur != nil:
			cur.WriteString(l + "\n")
		}
	}
	return no.String(), ch.String()
}

// runPost runs a %post body with bash, its absolute paths moved under
// root (what the installer's chroot and /mnt/sysimage would be), a
// recording systemctl first in PATH, and httpBase pointed at base.
func runPost(t *testing.T, root, body, base string) (string, error) {
	t.Helper()
	r := strings.NewReplacer(
		"/mnt/sysimage/var/tmp/kubebake", root+"/var/tmp/kubebake",
		"/var/tmp/kubebake", root+"/var/tmp/kubebake",
		"/opt/kubebake/rootfs/etc/systemd/system/", root+"/opt/kubebake/rootfs/etc/systemd/system/",
		"/opt/kubebake", root+"/opt/kubebake",
		"/etc/systemd/system/", root+"/etc/systemd/system/",
		"/root/.ssh", root+"/root/.ssh",
		"/run/install/kubebake", root+"/run/install/kubebake",
		"http://10.4.7.200:8080", base,
	)
	body = r.Replace(body)
	if strings.Contains(body, "/mnt/sysimage") {
		t.Fatalf("unrewritten path in:\n%s", body)
	}
	bin := filepath.Join(root, "stub-bin")
	os.MkdirAll(bin, 0o755)
	os.MkdirAll(filepath.Join(root, "etc/systemd/system"), 0o755)
	stub := "#!/bin/sh\necho \"$*\" >>" + root + "/systemctl.log\n"
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "post.sh")
	os.WriteFile(script, []byte(body), 0o644)
	cmd := exec.Command("/bin/bash", script)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestPostInstallsBundle runs the kickstart's %post for real (bash, curl,
// sha256sum, tar) against a baked bundle served over HTTP, in a temp root.
func TestPostInstallsBundle(t *testing.T) {
	s, out := bakeSeed(t)
	res := generate(t, s, out)
	h := res.Hosts[2]
	bundle, err := os.ReadFile(filepath.Join(out, h.Name+".tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	ks, _ := os.ReadFile(h.Kickstart)
	no, ch := postSections(t, ks)
	if no != "" {
		t.Fatal("an http kickstart has a --nochroot post section")
	}
	var tries int
	for _, tc := range []struct {
		name  string
		serve func(w http.ResponseWriter, r *http.Request)
		fail  string
	}{
		{"good bundle", func(w http.ResponseWriter, _ *http.Request) { w.Write(bundle) }, ""},
		{"bad sum", func(w http.ResponseWriter, _ *http.Request) {
			b := bytes.Clone(bundle)
			b[len(b)/3] ^= 0x40
			w.Write(b)
		}, "FAILED"},
		{"not found", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusNotFound) }, "404"},
		// The connection drops halfway; the next try asks for the rest
		// (-C -), as kubebake serve's byte budget needs.
		{"cut then resumed", func(w http.ResponseWriter, r *http.Request) {
			tries++
			if tries == 1 {
				w.Header().Set("Content-Length", strconv.Itoa(len(bundle)))
				w.Write(bundle[:len(bundle)/2])
				panic(http.ErrAbortHandler)
			}
			if want := fmt.Sprintf("bytes=%d-", len(bundle)/2); r.Header.Get("Range") != want {
				t.Errorf("try %d: Range %q, want %q", tries, r.Header.Get("Range"), want)
			}
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(bundle))
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/bundles/"+h.Name+".tar.gz" {
					http.NotFound(w, r)
					return
				}
				tc.serve(w, r)
			}))
			defer srv.Close()
			root := t.TempDir()
			outs, err := runPost(t, root, ch, srv.URL)
			if tc.fail != "" {
				if err == nil || !strings.Contains(outs, tc.fail) {
					t.Fatalf("%%post passed or did not say %q: %v\n%s", tc.fail, err, outs)
				}
				for _, p := range []string{"opt/kubebake/" + plan.ManifestName, "systemctl.log", "etc/systemd/system/" + FirstbootSvc} {
					if _, err := os.Stat(filepath.Join(root, p)); err == nil {
						t.Errorf("%s exists after a failed %%post", p)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("%%post: %v\n%s", err, outs)
			}
			checkInstalled(t, root)
		})
	}
}

// TestPostInitrd runs both %post sections of an initrd kickstart: the
// bundle the dracut hook left in /run/install/kubebake is copied into the
// new system, checked and unpacked, with no HTTP at all.
func TestPostInitrd(t *testing.T) {
	s, out := bakeSeed(t, "\n  bundleDelivery: http", "\n  bundleDelivery: initrd")
	res := generate(t, s, out)
	h := res.Hosts[0]
	ks, _ := os.ReadFile(h.Kickstart)
	no, ch := postSections(t, ks)

	root := t.TempDir()
	if outs, err := runPost(t, root, no, "http://unused.invalid"); err == nil || !strings.Contains(outs, "is missing") {
		t.Fatalf("nochroot %%post without the bundle: %v\n%s", err, outs)
	}
	// What the overlay's hook would have done.
	dir, _ := extract(t, h.Overlay)
	os.MkdirAll(filepath.Join(root, "run/install/kubebake"), 0o755)
	if err := os.Rename(filepath.Join(dir, OverlayBundle), filepath.Join(root, "run/install/kubebake/bundle.tar.gz")); err != nil {
		t.Fatal(err)
	}
	if outs, err := runPost(t, root, no, "http://unused.invalid"); err != nil {
		t.Fatalf("nochroot %%post: %v\n%s", err, outs)
	}
	if outs, err := runPost(t, root, ch, "http://unused.invalid"); err != nil {
		t.Fatalf("chroot %%post: %v\n%s", err, outs)
	}
	checkInstalled(t, root)
}

func checkInstalled(t *testing.T, root string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(root, "opt/kubebake", plan.ManifestName)); err != nil {
		t.Errorf("bundle not unpacked: %v", err)
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system", FirstbootSvc))
	want, _ := os.ReadFile(filepath.Join(root, "opt/kubebake/rootfs/etc/systemd/system", FirstbootSvc))
	if err != nil || len(want) == 0 || !bytes.Equal(unit, want) {
		t.Errorf("unit not installed from the bundle: %v", err)
	}
	if log, _ := os.ReadFile(filepath.Join(root, "systemctl.log")); string(log) != "enable "+FirstbootSvc+"\n" {
		t.Errorf("systemctl calls: %q", log)
	}
	if m, _ := filepath.Glob(filepath.Join(root, "var/tmp/kubebake/*")); len(m) != 0 {
		t.Errorf("staged bundle left: %v", m)
	}
	st, err := os.Stat(filepath.Join(root, "root/.ssh/authorized_keys"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("authorized_keys: %v %v", st, err)
	}
}

// preSection returns the body of the kickstart's %pre section, "" if none.
func preSection(ks []byte) string {
	var b strings.Builder
	in := false
	for _, l := range strings.Split(string(ks), "\n") {
		switch {
		case strings.HasPrefix(l, "%pre"):
			in = true
		case l == "%end":
			in = false
		case in:
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestPreGuardsTheDisk runs the kickstart's %pre for real: it asks for the
// bundle with HEAD before the installer erases the disk, and stops the
// install when the server says the bundle is not this host's to take (403),
// missing (404) or already taken (410: kubebake serve --max-fetches).
func TestPreGuardsTheDisk(t *testing.T) {
	s, out := bakeSeed(t)
	res := generate(t, s, out)
	h := res.Hosts[2]
	ks, _ := os.ReadFile(h.Kickstart)
	pre := preSection(ks)
	if pre == "" || !strings.Contains(string(ks), "%pre --erroronfail --interpreter=/bin/bash") {
		t.Fatalf("no %%pre --erroronfail section in:\n%s", ks)
	}
	for _, status := range []int{200, 403, 404, 410} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			var methods []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				methods = append(methods, r.Method)
				if r.URL.Path != "/bundles/"+h.Name+".tar.gz" {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(status)
			}))
			defer srv.Close()
			outs, err := runPost(t, t.TempDir(), pre, srv.URL)
			if status == 200 {
				if err != nil {
					t.Fatalf("%%pre failed on 200: %v\n%s", err, outs)
				}
			} else if err == nil || !strings.Contains(outs, fmt.Sprintf("answers HTTP %d: not installing", status)) {
				t.Fatalf("%%pre on %d: %v\n%s", status, err, outs)
			}
			if len(methods) != 1 || methods[0] != http.MethodHead {
				t.Errorf("%%pre asked %v, want one HEAD (a final answer is not retried)", methods)
			}
		})
	}
}
