package cmd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// lockedBuffer is stdout/stderr of a command running in another goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serveCmd runs the serve command as the root command would, until ctx ends.
func serveCmd(ctx context.Context, stdout, stderr *lockedBuffer, args ...string) error {
	c := newServe(&globals{stdout: stdout, stderr: stderr})
	c.SilenceUsage, c.SilenceErrors = true, true
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	c.SetOut(stdout)
	c.SetErr(stderr)
	c.SetArgs(args)
	return c.ExecuteContext(ctx)
}

// loopbackSeed writes the seed spec with its 10.4.7.x addresses moved to
// 127.0.0.x, so curl can bind a host's address on loopback.
func loopbackSeed(t *testing.T, dir string) string {
	t.Helper()
	seed, err := os.ReadFile("../../bundle-spec.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "bundle-spec.yaml")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(seed), "10.4.7.", "127.0.0.")), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestServeHelpAndUsage(t *testing.T) {
	var out, errb lockedBuffer
	if err := serveCmd(context.Background(), &out, &errb, "--help"); err != nil ||
		!strings.Contains(out.String(), "Examples:") || !strings.Contains(out.String(), "kubebake serve") ||
		!strings.Contains(out.String(), "X-Forwarded-For") || !strings.Contains(out.String(), "Threat model") {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, args := range [][]string{
		{"--max-fetches", "-1"},
		{"--counts", "c.json"},
		{"--no-such-flag"},
		{"extra-arg"},
	} {
		err := serveCmd(context.Background(), &out, &errb, args...)
		if args[0] == "extra-arg" {
			// cobra.NoArgs: Main reports it as a failure, like the other commands.
			if err == nil {
				t.Errorf("%v: no error", args)
			}
			continue
		}
		if !isUsage(err) {
			t.Errorf("%v: %v, want a usage error (exit 2)", args, err)
		}
	}
}

// TestServeCurl runs the command on a real listener and fetches with curl
// from two hosts' addresses: the owner resumes its bundle with -C -, the
// other host is refused, SHA256SUMS is public, and SIGINT's path (the
// context) stops the server cleanly.
func TestServeCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	dir := t.TempDir()
	specFile := loopbackSeed(t, dir)
	httpDir := filepath.Join(dir, "out/pxe/http")
	bundle := bytes.Repeat([]byte("kubebake bundle bytes\n"), 50000)
	for name, b := range map[string][]byte{
		"bundles/hdss7-21.tar.gz": bundle,
		"ks/hdss7-21.cfg":         []byte("rootpw --iscrypted $6$x$y\n"),
		"SHA256SUMS":              []byte("public\n"),
	} {
		p := filepath.Join(httpDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- serveCmd(ctx, &out, &errb, "-f", specFile, "--dir", httpDir, "--listen", "127.0.0.1:0", "--max-fetches", "1")
	}()
	re := regexp.MustCompile(`on (http://127\.0\.0\.1:\d+) for 5 hosts, at most 1 fetch`)
	var url string
	for deadline := time.Now().Add(10 * time.Second); url == ""; time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no URL printed; stdout %q stderr %q", out.String(), errb.String())
		}
	}
	curl := func(from string, args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command("curl", append([]string{"-fsS", "--interface", from}, args...)...)
		b, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(b)
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, string(b)
	}
	// hdss7-21 gets the first 100000 bytes (a download cut short), then
	// resumes with -C -.
	got := filepath.Join(dir, "got.tar.gz")
	if code, msg := curl("127.0.0.21", "-r", "0-99999", "-o", got, url+"/bundles/hdss7-21.tar.gz"); code != 0 {
		t.Fatalf("owner's first part: curl exit %d: %s", code, msg)
	}
	if code, msg := curl("127.0.0.21", "-C", "-", "-o", got, url+"/bundles/hdss7-21.tar.gz"); code != 0 {
		t.Fatalf("owner's resume: curl exit %d: %s", code, msg)
	}
	b, _ := os.ReadFile(got)
	if sha256.Sum256(b) != sha256.Sum256(bundle) {
		t.Fatalf("resumed bundle differs (%d bytes)", len(b))
	}
	if code, msg := curl("127.0.0.22", "-o", os.DevNull, url+"/bundles/hdss7-21.tar.gz"); code != 22 || !strings.Contains(msg, "403") {
		t.Fatalf("other host: curl exit %d: %s", code, msg)
	}
	if code, msg := curl("127.0.0.22", url+"/SHA256SUMS"); code != 0 || msg != "public\n" {
		t.Fatalf("SHA256SUMS: curl exit %d: %s", code, msg)
	}
	// The resume completed the owner's one copy: a whole second one is refused.
	if code, msg := curl("127.0.0.21", "-o", os.DevNull, url+"/bundles/hdss7-21.tar.gz"); code != 22 || !strings.Contains(msg, "410") {
		t.Fatalf("second fetch: curl exit %d: %s", code, msg)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v\n%s", err, errb.String())
	}
	log := errb.String()
	t.Logf("stdout: %sstderr:\n%s", out.String(), log)
	for _, want := range []string{
		" 127.0.0.21 GET /bundles/hdss7-21.tar.gz 206 100000B ",
		" 127.0.0.21 GET /bundles/hdss7-21.tar.gz 206 1000000B ",
		"host=hdss7-21 fetches=1/1",
		` 127.0.0.22 GET /bundles/hdss7-21.tar.gz 403 `,
		`asked by 127.0.0.22 (hdss7-22)`,
		` 127.0.0.22 GET /SHA256SUMS 200 7B `,
		`410 5B`, `fetch budget spent: 1 of 1 fetches delivered`,
		"stopped",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
}
