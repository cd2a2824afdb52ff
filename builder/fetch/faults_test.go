package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubebake/kubebake/internal/faultproxy"
)

// TestPullThroughFaults pulls 30 files, a tarball and their checksum files
// through a proxy that injects every kind of fault into 10% of requests:
// the pull finishes, every digest verifies, and no corrupt byte reaches
// sha256/.
func TestPullThroughFaults(t *testing.T) {
	seen := map[faultproxy.Kind]int{}
	for _, tc := range []struct {
		seed int64
		rate float64
	}{{1, 0.10}, {2, 0.10}, {3, 0.10}, {4, 0.30}} {
		t.Run(fmt.Sprintf("seed %d rate %.2f", tc.seed, tc.rate), func(t *testing.T) {
			u := newUpstream(t)
			rel := makeRelease(t, u, "", "https://up.example")
			var sums strings.Builder
			for i := range 30 {
				body := gen(uint64(100+i), 2<<10+i*37<<10) // 2 KiB .. 1 MiB
				name := fmt.Sprintf("f%02d.bin", i)
				u.put("/many/"+name, body)
				src := Source{Name: name, URL: "https://up.example/many/" + name}
				if i%2 == 0 {
					u.put("/many/"+name+".sha256", []byte(sum(body)))
					src.SHA256URL = src.URL + ".sha256"
				} else {
					fmt.Fprintf(&sums, "%s *%s\n", sum(body), name)
					src.SHA256URL = "https://up.example/many/SHA256SUMS" // over 1 KiB: may be corrupted
				}
				rel.srcs = append(rel.srcs, src)
				rel.want[name] = map[string][]byte{name: body}
			}
			u.put("/many/SHA256SUMS", []byte(sums.String()))
			// The file:// source stays local; everything else crosses the proxy.
			target, _ := url.Parse(u.srv.URL)
			proxy := faultproxy.New(target, faultproxy.Faults{Rate: tc.rate, Seed: tc.seed})
			defer proxy.Close()

			store := t.TempDir()
			res, err := Pull(context.Background(), store, rel.srcs,
				WithMirrors([]Mirror{{From: "https://up.example", To: proxy.URL()}}),
				WithRetry(8, time.Millisecond), WithJobs(4))
			if err != nil {
				t.Fatalf("%v\nfaults: %v", err, proxy.Counts())
			}
			checkResults(t, rel, res)
			checkStore(t, store)
			total := 0
			for k, n := range proxy.Counts() {
				total += n
				seen[k] += n
			}
			if total == 0 {
				t.Errorf("no fault injected in %d requests", proxy.Requests())
			}
			t.Logf("%d requests, faults %v", proxy.Requests(), proxy.Counts())
		})
	}
	for _, k := range faultproxy.AllKinds {
		if seen[k] == 0 {
			t.Errorf("no %v fault was injected in any run: %v", k, seen)
		}
	}
}

// TestCorruptNeverStored: a server whose bytes never match fails loudly
// after one retry and stores nothing.
func TestCorruptNeverStored(t *testing.T) {
	u := newUpstream(t)
	good := gen(11, 64<<10)
	raw := u.put("/kubelet", good)
	u.setHook(func(w http.ResponseWriter, r *http.Request, _ int, body []byte) bool {
		bad := append([]byte(nil), body...)
		bad[len(bad)/2] ^= 1
		w.Write(bad)
		return true
	})
	store := t.TempDir()
	_, err := Pull(context.Background(), store, []Source{{Name: "kubelet", URL: raw, SHA256: sum(good)}}, fast)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("err = %v, want ErrChecksum", err)
	}
	for _, s := range []string{"artifact kubelet", raw, "want " + sum(good), "re-run kubebake pull"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
	if n := len(u.requests()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
	entries, _ := os.ReadDir(filepath.Join(store, "sha256"))
	if len(entries) != 0 {
		t.Errorf("sha256/ holds %d files", len(entries))
	}
	checkStore(t, store)
}
