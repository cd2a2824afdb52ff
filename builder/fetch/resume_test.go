package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestChildPull is the body of the process TestKilledPullResumes kills; it
// does nothing when run on its own.
func TestChildPull(t *testing.T) {
	store, url, digest := os.Getenv("FETCH_CHILD_STORE"), os.Getenv("FETCH_CHILD_URL"), os.Getenv("FETCH_CHILD_SHA256")
	if store == "" {
		t.Skip("runs as the child of TestKilledPullResumes")
	}
	_, err := Pull(context.Background(), store, []Source{{Name: "big", URL: url, SHA256: digest}})
	t.Fatalf("the child pull returned (%v); it should have been killed", err)
}

// TestKilledPullResumes starts a pull in a child process, SIGKILLs it once
// the partial file has grown, then pulls again here: the second pull must
// resume with a Range request from where the child stopped and complete.
func TestKilledPullResumes(t *testing.T) {
	if os.Getenv("FETCH_CHILD_STORE") != "" {
		t.Skip("in the child")
	}
	const sent = 2 << 20
	u := newUpstream(t)
	big := gen(9, 8<<20)
	url := u.put("/big.bin", big)
	release := make(chan struct{})
	u.setHook(func(w http.ResponseWriter, r *http.Request, seen int, body []byte) bool {
		if seen > 1 {
			return false
		}
		// The child's request: part of the body, then hang until the child
		// is dead.
		w.Header().Set("ETag", `"`+sum(body)[:16]+`"`)
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body[:sent])
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		panic(http.ErrAbortHandler)
	})

	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildPull$", "-test.v")
	cmd.Env = append(os.Environ(), "FETCH_CHILD_STORE="+dir, "FETCH_CHILD_URL="+url, "FETCH_CHILD_SHA256="+sum(big))
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	part := (&store{dir: dir}).partial(url)
	// Wait for the child's bytes to land (a wait, not a timed assertion:
	// the bound only keeps a broken child from hanging the test).
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(5 * time.Millisecond) {
		if fi, err := os.Stat(part); err == nil && fi.Size() >= sent {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			close(release)
			t.Fatalf("the child never wrote %d bytes to %s; its output:\n%s", sent, part, out)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	close(release)
	fi, err := os.Stat(part)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sha256", sum(big))); err == nil {
		t.Fatal("the killed pull left a final name")
	}

	res, err := Pull(context.Background(), dir, []Source{{Name: "big", URL: url, SHA256: sum(big)}}, fast)
	if err != nil {
		t.Fatal(err)
	}
	reqs := u.requestsFor("/big.bin")
	if len(reqs) != 2 || reqs[1].Range != fmt.Sprintf("bytes=%d-", fi.Size()) {
		t.Fatalf("requests %v, want the second to resume at byte %d", reqs, fi.Size())
	}
	if res[0].SHA256 != sum(big) {
		t.Error("wrong digest")
	}
	checkStore(t, dir)
}

// TestBusyPartial: a partial download held by another pull is left alone.
func TestBusyPartial(t *testing.T) {
	u := newUpstream(t)
	body := gen(13, 10<<10)
	raw := u.put("/f", body)
	dir := t.TempDir()
	st, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(st.partial(raw), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := lockPartial(f); err != nil {
		t.Skip("no flock here:", err)
	}
	_, err = Pull(context.Background(), dir, []Source{{Name: "f", URL: raw, SHA256: sum(body)}}, fast)
	if !errors.Is(err, ErrBusy) || len(u.requests()) != 0 {
		t.Fatalf("err = %v after %d requests, want ErrBusy and none", err, len(u.requests()))
	}
}
