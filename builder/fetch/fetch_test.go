package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPullAll(t *testing.T) {
	u := newUpstream(t)
	rel := makeRelease(t, u, "", u.srv.URL)
	store := t.TempDir()
	var mu sync.Mutex
	var last Progress
	res, err := Pull(context.Background(), store, rel.srcs, WithJobs(2), fast, WithProgress(func(p Progress) {
		mu.Lock()
		last = p
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rel, res)
	// 5 downloads (4 over HTTP, 1 file://) + 2 extracted members.
	if n := checkStore(t, store); n != 7 {
		t.Errorf("sha256/ holds %d files, want 7", n)
	}
	if res[1].SHA256 != res[1].Locked.SHA256 || res[1].Size == 0 {
		t.Errorf("etcd lock entry %+v", res[1].Locked)
	}
	if _, err := os.Stat(filepath.Join(store, "unpacked", res[1].SHA256+".json")); err != nil {
		t.Errorf("archive index: %v", err)
	}
	if last.Files != 5 || last.FilesDone != 5 {
		t.Errorf("last progress %+v, want 5 of 5 files done", last)
	}
}

func TestSecondPullIsOffline(t *testing.T) {
	u := newUpstream(t)
	rel := makeRelease(t, u, "", u.srv.URL)
	store := t.TempDir()
	first, err := Pull(context.Background(), store, rel.srcs, fast)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("with the lock: no request at all", func(t *testing.T) {
		u.reset()
		res, err := Pull(context.Background(), store, rel.srcs, fast, WithLock(locks(first), false))
		if err != nil {
			t.Fatal(err)
		}
		checkResults(t, rel, res)
		if r := u.requests(); len(r) != 0 {
			t.Errorf("second pull made %d requests: %v", len(r), r)
		}
	})
	t.Run("without a lock: only the checksum files", func(t *testing.T) {
		u.reset()
		res, err := Pull(context.Background(), store, rel.srcs, fast)
		if err != nil {
			t.Fatal(err)
		}
		checkResults(t, rel, res)
		for _, r := range u.requests() {
			if !rel.sumURL[u.srv.URL+r.Path] {
				t.Errorf("fetched %s again", r.Path)
			}
		}
	})
}

func TestMirrors(t *testing.T) {
	u := newUpstream(t)
	// The server holds the files only under the mirror's prefix.
	rel := makeRelease(t, u, "/mirror/dl.k8s.io", "https://dl.k8s.io")
	mirrors := []Mirror{
		{From: "https://dl.k8s.io", To: u.srv.URL + "/mirror/dl.k8s.io"},
		{From: "https://dl.k8s.io/rel", To: "http://127.0.0.1:1/nowhere"}, // not a whole segment of /release
		{From: "https://dl.k8s", To: "http://127.0.0.1:1/nowhere"},        // not a whole host name
	}
	res, err := Pull(context.Background(), t.TempDir(), rel.srcs, fast, WithMirrors(mirrors))
	if err != nil {
		t.Fatal(err)
	}
	checkResults(t, rel, res)
	if res[0].URL != "https://dl.k8s.io/release/v1.33.0/bin/linux/amd64/kubelet" {
		t.Errorf("locked URL %s, want the source's own URL", res[0].URL)
	}
	for _, r := range u.requests() {
		if !strings.HasPrefix(r.Path, "/mirror/dl.k8s.io/") {
			t.Errorf("request outside the mirror: %s", r.Path)
		}
	}
}

func TestRewrite(t *testing.T) {
	m := []Mirror{
		{From: "https://dl.k8s.io", To: "http://m/k8s"},
		{From: "https://dl.k8s.io/release/v1", To: "http://m/v1/"},
		{From: "https://github.com/", To: "http://m/gh/"},
	}
	for _, tc := range []struct{ name, in, want string }{
		{"prefix", "https://dl.k8s.io/x/kubelet", "http://m/k8s/x/kubelet"},
		{"longest wins", "https://dl.k8s.io/release/v1/kubelet", "http://m/v1/kubelet"},
		{"whole segments only", "https://dl.k8s.io/release/v12/kubelet", "http://m/k8s/release/v12/kubelet"},
		{"other host", "https://dl.k8s.io.example/kubelet", "https://dl.k8s.io.example/kubelet"},
		{"trailing slash", "https://github.com/flannel", "http://m/gh/flannel"},
		{"no match", "file:///tmp/x", "file:///tmp/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rewrite(m, tc.in); got != tc.want {
				t.Errorf("rewrite(%s) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestLockedStrict(t *testing.T) {
	u := newUpstream(t)
	rel := makeRelease(t, u, "", u.srv.URL)
	first, err := Pull(context.Background(), t.TempDir(), rel.srcs, fast)
	if err != nil {
		t.Fatal(err)
	}
	lock := locks(first)

	t.Run("unchanged: pulls without checksum files", func(t *testing.T) {
		u.reset()
		res, err := Pull(context.Background(), t.TempDir(), rel.srcs, fast, WithLock(lock, true))
		if err != nil {
			t.Fatal(err)
		}
		checkResults(t, rel, res)
		for _, r := range u.requests() {
			if rel.sumURL[u.srv.URL+r.Path] {
				t.Errorf("fetched checksum file %s under --locked", r.Path)
			}
		}
	})
	t.Run("upstream file changed: sha mismatch naming both", func(t *testing.T) {
		changed := gen(99, 300<<10)
		path := "/release/v1.33.0/bin/linux/amd64/kubelet"
		old := u.get(path)
		u.put(path, changed)
		u.put(path+".sha256", []byte(sum(changed)))
		defer func() { u.put(path, old); u.put(path+".sha256", []byte(sum(old))) }()
		u.reset()
		store := t.TempDir()
		_, err := Pull(context.Background(), store, rel.srcs[:1], fast, WithLock(lock, true))
		if !errors.Is(err, ErrChecksum) {
			t.Fatalf("err = %v, want ErrChecksum", err)
		}
		for _, s := range []string{"artifact kubelet", u.srv.URL + path, "got " + sum(changed), "want " + sum(old), "bundle-spec.lock"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q lacks %q", err, s)
			}
		}
		if n := len(u.requestsFor(path)); n != 2 {
			t.Errorf("%d downloads, want 2 (a mismatch is retried once)", n)
		}
		checkStore(t, store)
		if _, err := os.Stat(filepath.Join(store, "sha256", sum(changed))); err == nil {
			t.Error("the drifted bytes reached the store")
		}
	})
	for _, tc := range []struct {
		name   string
		change func(s *Source)
		lock   []Locked
		is     error
		says   []string
	}{
		{"url drifted", func(s *Source) { s.URL = strings.Replace(s.URL, "v1.33.0", "v1.33.1", 1) }, lock, ErrDrift,
			[]string{"artifact kubelet", "v1.33.1/bin", "v1.33.0/bin", "without --locked"}},
		{"pin drifted", func(s *Source) { s.SHA256 = sum([]byte("other")) }, lock, ErrDrift,
			[]string{sum([]byte("other")), first[0].SHA256}},
		{"not in the lock", func(*Source) {}, lock[1:], ErrNotLocked,
			[]string{"artifact kubelet", "without --locked"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := rel.srcs[0]
			tc.change(&src)
			u.reset()
			_, err := Pull(context.Background(), t.TempDir(), []Source{src}, fast, WithLock(tc.lock, true))
			if !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
			for _, s := range tc.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if r := u.requests(); len(r) != 0 {
				t.Errorf("refused pull made requests: %v", r)
			}
		})
	}
}

// TestResumeAfterDroppedConnection cuts the first response after n bytes;
// the retry must ask for the rest only, and the result verify.
func TestResumeAfterDroppedConnection(t *testing.T) {
	const n = 3 << 20
	u := newUpstream(t)
	big := gen(7, 8<<20)
	url := u.put("/big.bin", big)
	u.setHook(func(w http.ResponseWriter, r *http.Request, seen int, body []byte) bool {
		if seen > 1 {
			return false
		}
		w.Header().Set("ETag", `"`+sum(body)[:16]+`"`)
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body[:n])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	store := t.TempDir()
	res, err := Pull(context.Background(), store, []Source{{Name: "big", URL: url, SHA256: sum(big)}}, fast)
	if err != nil {
		t.Fatal(err)
	}
	reqs := u.requestsFor("/big.bin")
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2: %v", len(reqs), reqs)
	}
	if want := fmt.Sprintf("bytes=%d-", n); reqs[1].Range != want || reqs[1].IfRange != `"`+sum(big)[:16]+`"` {
		t.Errorf("second request Range %q If-Range %q, want %q and the ETag", reqs[1].Range, reqs[1].IfRange, want)
	}
	if res[0].SHA256 != sum(big) || res[0].Size != int64(len(big)) {
		t.Errorf("result %+v", res[0].Locked)
	}
	checkStore(t, store)
}

// TestResumeRestarts covers servers that will not resume: a 200 instead of
// a 206 and a 416 both restart from zero.
func TestResumeRestarts(t *testing.T) {
	for _, tc := range []struct {
		name   string
		second func(w http.ResponseWriter, r *http.Request, body []byte)
		reqs   int
	}{
		{"200 instead of 206", func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.Write(body) // ignores Range
		}, 2},
		{"416", func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUpstream(t)
			body := gen(8, 1<<20)
			url := u.put("/f", body)
			u.setHook(func(w http.ResponseWriter, r *http.Request, seen int, body []byte) bool {
				switch seen {
				case 1:
					w.Header().Set("Content-Length", fmt.Sprint(len(body)))
					w.Write(body[:1000])
					w.(http.Flusher).Flush()
					panic(http.ErrAbortHandler)
				case 2:
					tc.second(w, r, body)
					return true
				}
				return false
			})
			res, err := Pull(context.Background(), t.TempDir(), []Source{{Name: "f", URL: url, SHA256: sum(body)}}, fast)
			if err != nil {
				t.Fatal(err)
			}
			reqs := u.requestsFor("/f")
			if len(reqs) != tc.reqs || reqs[1].Range != "bytes=1000-" || reqs[len(reqs)-1].Range != "" && tc.reqs == 3 {
				t.Errorf("requests %v", reqs)
			}
			if res[0].SHA256 != sum(body) {
				t.Error("wrong digest")
			}
		})
	}
}

func TestRetriesExhausted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		reqs   int
		says   []string
	}{
		{"503 is retried", 503, 3, []string{"503", "gave up after 3 attempts", "re-run kubebake pull"}},
		{"404 is not", 404, 1, []string{"404", "check the URL and the mirrors:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUpstream(t)
			url := u.put("/kubelet", []byte("x"))
			u.setHook(func(w http.ResponseWriter, r *http.Request, _ int, _ []byte) bool {
				w.WriteHeader(tc.status)
				return true
			})
			_, err := Pull(context.Background(), t.TempDir(), []Source{{Name: "kubelet", URL: url, SHA256: sum([]byte("x"))}}, fast)
			if !errors.Is(err, ErrHTTP) {
				t.Fatalf("err = %v, want ErrHTTP", err)
			}
			for _, s := range append(tc.says, "artifact kubelet", url) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if n := len(u.requests()); n != tc.reqs {
				t.Errorf("%d requests, want %d", n, tc.reqs)
			}
		})
	}
}

func TestFirstErrorStopsTheRest(t *testing.T) {
	u := newUpstream(t)
	rel := makeRelease(t, u, "", u.srv.URL)
	srcs := append([]Source{{Name: "missing", URL: u.srv.URL + "/nope", SHA256: sum(nil)}}, rel.srcs...)
	_, err := Pull(context.Background(), t.TempDir(), srcs, fast, WithJobs(1))
	if err == nil || !strings.Contains(err.Error(), "artifact missing") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "artifact kubelet") {
		t.Errorf("error mentions stopped artifacts: %v", err)
	}
}

func TestLookup(t *testing.T) {
	u := newUpstream(t)
	rel := makeRelease(t, u, "", u.srv.URL)
	store := t.TempDir()
	pulled, err := Pull(context.Background(), store, rel.srcs, fast)
	if err != nil {
		t.Fatal(err)
	}
	u.srv.Close() // offline from here on

	t.Run("everything present", func(t *testing.T) {
		res, err := Lookup(store, rel.srcs, locks(pulled))
		if err != nil {
			t.Fatal(err)
		}
		checkResults(t, rel, res)
	})
	t.Run("empty store names every artifact", func(t *testing.T) {
		_, err := Lookup(t.TempDir(), rel.srcs, locks(pulled))
		if !errors.Is(err, ErrNotInStore) {
			t.Fatalf("err = %v", err)
		}
		for _, s := range []string{"artifact kubelet", "artifact etcd", "artifact pause", "run kubebake pull"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q lacks %q", err, s)
			}
		}
	})
	t.Run("no lock entry for a checksum-URL artifact", func(t *testing.T) {
		_, err := Lookup(store, rel.srcs, nil)
		if !errors.Is(err, ErrNotLocked) || !strings.Contains(err.Error(), "artifact kubelet") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a damaged store file is missing", func(t *testing.T) {
		p := pulled[3].Files[0].Path // cni, small: re-hashed
		data, _ := os.ReadFile(p)
		data[0] ^= 1
		os.WriteFile(p, data, 0o644)
		_, err := Lookup(store, rel.srcs, locks(pulled))
		if !errors.Is(err, ErrNotInStore) || !strings.Contains(err.Error(), "artifact cni") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestInvalid(t *testing.T) {
	good := Source{Name: "a", URL: "https://x/a", SHA256: sum(nil)}
	for _, tc := range []struct {
		name string
		srcs []Source
		opts []Option
		is   error
	}{
		{"jobs 0", []Source{good}, []Option{WithJobs(0)}, ErrInvalidOption},
		{"retry 0", []Source{good}, []Option{WithRetry(0, time.Second)}, ErrInvalidOption},
		{"nil client", []Source{good}, []Option{WithHTTPClient(nil)}, ErrInvalidOption},
		{"mirror without to", []Source{good}, []Option{WithMirrors([]Mirror{{From: "https://x"}})}, ErrInvalidOption},
		{"lock twice", []Source{good}, []Option{WithLock(nil, false), WithLock(nil, true)}, ErrInvalidOption},
		{"bad lock digest", []Source{good}, []Option{WithLock([]Locked{{Name: "a", URL: "https://x/a", SHA256: "zz"}}, false)}, ErrInvalidOption},
		{"no checksum", []Source{{Name: "a", URL: "https://x/a"}}, nil, ErrInvalidSource},
		{"scheme", []Source{{Name: "a", URL: "ftp://x/a", SHA256: sum(nil)}}, nil, ErrInvalidSource},
		{"duplicate", []Source{good, good}, nil, ErrInvalidSource},
		{"two members one name", []Source{{Name: "a", URL: "https://x/a", SHA256: sum(nil), Extract: map[string]string{"x": "n", "y": "n"}}}, nil, ErrInvalidSource},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Pull(context.Background(), t.TempDir(), tc.srcs, tc.opts...)
			if !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
		})
	}
}

func TestChecksumFileCapped(t *testing.T) {
	u := newUpstream(t)
	url := u.put("/a", []byte("a"))
	sums := u.put("/SUMS", make([]byte, maxChecksumFile+10))
	_, err := Pull(context.Background(), t.TempDir(), []Source{{Name: "a", URL: url, SHA256URL: sums}}, fast)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestSharedChecksumAndArchive(t *testing.T) {
	// Two artifacts from one tarball and one SHA256SUMS: one download each.
	u := newUpstream(t)
	rel := makeRelease(t, u, "", u.srv.URL)
	etcd := rel.srcs[1]
	a, b := etcd, etcd
	a.Name, a.Extract = "etcd-server", map[string]string{"etcd-v3/etcd": "etcd"}
	b.Name, b.Extract = "etcd-client", map[string]string{"etcd-v3/etcdctl": "etcdctl"}
	res, err := Pull(context.Background(), t.TempDir(), []Source{a, b}, fast)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, r := range u.requests() {
		counts[r.Path]++
	}
	if counts["/etcd/v3/etcd-v3-linux-amd64.tar.gz"] != 1 || counts["/etcd/v3/SHA256SUMS"] != 1 {
		t.Errorf("requests %v, want one of each", counts)
	}
	var names []string
	for _, r := range res {
		for _, f := range r.Files {
			names = append(names, r.Name+"/"+f.Name)
		}
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "etcd-client/etcdctl etcd-server/etcd" {
		t.Errorf("files %v", names)
	}
}

// TestRepublishedWithoutLocked: without --locked the lock is a hint; when
// upstream republished a file, its checksum URL is asked again and the new
// bytes are taken (the caller then updates the lock).
func TestRepublishedWithoutLocked(t *testing.T) {
	u := newUpstream(t)
	rel := makeRelease(t, u, "", u.srv.URL)
	first, err := Pull(context.Background(), t.TempDir(), rel.srcs[:1], fast)
	if err != nil {
		t.Fatal(err)
	}
	path := "/release/v1.33.0/bin/linux/amd64/kubelet"
	changed := gen(98, 100<<10)
	u.put(path, changed)
	u.put(path+".sha256", []byte(sum(changed)))
	u.reset()
	res, err := Pull(context.Background(), t.TempDir(), rel.srcs[:1], fast, WithLock(locks(first), false))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].SHA256 != sum(changed) {
		t.Errorf("sha256 %s, want the republished %s", res[0].SHA256, sum(changed))
	}
	if n, m := len(u.requestsFor(path)), len(u.requestsFor(path+".sha256")); n != 1 || m != 1 {
		t.Errorf("%d downloads and %d checksum fetches, want 1 and 1", n, m)
	}
}

// TestErrorText prints the messages users see (go test -v -run ErrorText).
func TestErrorText(t *testing.T) {
	u := newUpstream(t)
	rel := makeRelease(t, u, "", u.srv.URL)
	first, err := Pull(context.Background(), t.TempDir(), rel.srcs, fast)
	if err != nil {
		t.Fatal(err)
	}
	bad := rel.srcs[3]
	bad.SHA256 = sum([]byte("nope"))
	moved := rel.srcs[0]
	moved.URL += "-v2"
	for _, tc := range []struct {
		name string
		srcs []Source
		opts []Option
	}{
		{"mismatch", []Source{bad}, nil},
		{"drift", []Source{moved}, []Option{WithLock(locks(first), true)}},
		{"404", []Source{{Name: "x", URL: u.srv.URL + "/x", SHA256: sum(nil)}}, nil},
		{"checksum lacks the file", []Source{{Name: "x", URL: u.srv.URL + "/x", SHA256URL: rel.srcs[1].SHA256URL}}, nil},
		{"invalid", []Source{{Name: "x", URL: "x"}}, nil},
	} {
		_, err := Pull(context.Background(), t.TempDir(), tc.srcs, append(tc.opts, fast)...)
		if err == nil {
			t.Fatalf("%s: no error", tc.name)
		}
		t.Logf("%s:\n%v", tc.name, err)
	}
	_, err = Lookup(t.TempDir(), rel.srcs[:2], locks(first))
	t.Logf("lookup:\n%v", err)
}

func TestFileSourceWithChecksumFile(t *testing.T) {
	dir := t.TempDir()
	body := gen(12, 10<<10)
	os.WriteFile(filepath.Join(dir, "runc.amd64"), body, 0o644)
	os.WriteFile(filepath.Join(dir, "runc.sha256sum"), []byte(sum(body)+"  runc.amd64\n"), 0o644)
	src := Source{Name: "runc", URL: "file://" + dir + "/runc.amd64", SHA256URL: "file://" + dir + "/runc.sha256sum"}
	store := t.TempDir()
	res, err := Pull(context.Background(), store, []Source{src})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].SHA256 != sum(body) || res[0].Files[0].Path != filepath.Join(store, "sha256", sum(body)) {
		t.Errorf("result %+v", res[0])
	}
	checkStore(t, store)
}
