package faultproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// origin serves /small (100 bytes) and /big (64 KiB) under /base.
func origin(t *testing.T) (*url.URL, map[string][]byte) {
	t.Helper()
	files := map[string][]byte{
		"/base/small": bytes.Repeat([]byte("s"), 100),
		"/base/big":   bytes.Repeat([]byte("0123456789abcdef"), 4096),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL + "/base")
	return u, files
}

// client never reuses connections, so the transport never retries a reset
// request behind the test's back.
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// outcome classifies one GET: "5xx", "error", "short", or a digest of the body.
func outcome(t *testing.T, raw string, want []byte) string {
	t.Helper()
	resp, err := client.Get(raw)
	if err != nil {
		return "error"
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 500 {
		return "5xx"
	}
	got, err := io.ReadAll(resp.Body)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "short"
	}
	if err != nil {
		return "error"
	}
	if resp.ContentLength != int64(len(want)) {
		t.Errorf("Content-Length %d, want %d", resp.ContentLength, len(want))
	}
	if bytes.Equal(got, want) {
		return "ok"
	}
	return "corrupt"
}

func TestKinds(t *testing.T) {
	target, files := origin(t)
	for _, tc := range []struct {
		kind       Kind
		big, small string
	}{
		{Status5xx, "5xx", "5xx"},
		{Reset, "error", "error"},
		{Truncate, "short", "ok"},
		{Corrupt, "corrupt", "ok"},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			p := New(target, Faults{Rate: 1, Seed: 1, Kinds: []Kind{tc.kind}})
			defer p.Close()
			if got := outcome(t, p.URL()+"/big", files["/base/big"]); got != tc.big {
				t.Errorf("big body: %s, want %s", got, tc.big)
			}
			if got := outcome(t, p.URL()+"/small", files["/base/small"]); got != tc.small {
				t.Errorf("small body: %s, want %s", got, tc.small)
			}
			want := 2
			if tc.small == "ok" {
				want = 1
			}
			if n := p.Counts()[tc.kind]; n != want {
				t.Errorf("Counts()[%v] = %d, want %d", tc.kind, n, want)
			}
		})
	}
}

func TestCorruptFlipsOneByte(t *testing.T) {
	target, files := origin(t)
	p := New(target, Faults{Rate: 1, Seed: 7, Kinds: []Kind{Corrupt}})
	defer p.Close()
	resp, err := client.Get(p.URL() + "/big")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := files["/base/big"]
	diff := 0
	for i := range want {
		if got[i] != want[i] {
			diff++
		}
	}
	if len(got) != len(want) || diff != 1 {
		t.Errorf("%d bytes, %d differ; want %d bytes, 1 differing", len(got), diff, len(want))
	}
}

func TestPassThrough(t *testing.T) {
	target, files := origin(t)
	p := New(target, Faults{Rate: 0, Seed: 1})
	defer p.Close()
	if got := outcome(t, p.URL()+"/big", files["/base/big"]); got != "ok" {
		t.Errorf("big: %s", got)
	}
	req, _ := http.NewRequest(http.MethodGet, p.URL()+"/big", nil)
	req.Header.Set("Range", "bytes=10-19")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(b) != string(files["/base/big"][10:20]) {
		t.Errorf("range: %s %q", resp.Status, b)
	}
	if resp, err := client.Get(p.URL() + "/none"); err != nil || resp.StatusCode != 404 {
		t.Errorf("missing file: %v %v", resp, err)
	}
	if len(p.Counts()) != 0 || p.Requests() != 3 {
		t.Errorf("counts %v, requests %d", p.Counts(), p.Requests())
	}
}

// run sends the same sequence of requests (each path several times) and
// returns the outcomes.
func run(t *testing.T, seed int64) (string, map[Kind]int) {
	target, files := origin(t)
	p := New(target, Faults{Rate: 0.3, Seed: seed})
	defer p.Close()
	var out []string
	for i := range 40 {
		path := []string{"/big", "/small"}[i%2]
		out = append(out, outcome(t, p.URL()+path, files["/base"+path]))
	}
	return strings.Join(out, " "), p.Counts()
}

func TestDeterministic(t *testing.T) {
	a, ca := run(t, 42)
	b, cb := run(t, 42)
	c, _ := run(t, 43)
	if a != b || fmt.Sprint(ca) != fmt.Sprint(cb) {
		t.Errorf("same seed, different runs:\n%s %v\n%s %v", a, ca, b, cb)
	}
	if a == c {
		t.Errorf("seeds 42 and 43 gave the same run: %s", a)
	}
	if !strings.Contains(a, "ok") || len(ca) == 0 {
		t.Errorf("rate 0.3 gave %s %v", a, ca)
	}
}

// TestConcurrent hammers the proxy from many goroutines (run with -race);
// every injected fault is seen by exactly one client.
func TestConcurrent(t *testing.T) {
	target, files := origin(t)
	p := New(target, Faults{Rate: 0.5, Seed: 3})
	defer p.Close()
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			path := fmt.Sprintf("/big?i=%d", i)
			o := outcome(t, p.URL()+path, files["/base/big"])
			mu.Lock()
			got[o]++
			mu.Unlock()
		})
	}
	wg.Wait()
	c := p.Counts()
	if got["5xx"] != c[Status5xx] || got["error"] != c[Reset] || got["short"] != c[Truncate] || got["corrupt"] != c[Corrupt] {
		t.Errorf("clients saw %v, proxy counted %v", got, c)
	}
	if p.Requests() != 64 {
		t.Errorf("%d requests, want 64", p.Requests())
	}
}

func TestBadFaultsPanic(t *testing.T) {
	target, _ := origin(t)
	for _, f := range []Faults{{Rate: 1.5}, {Rate: -0.1}, {Rate: 0.1, Kinds: []Kind{9}}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%+v) did not panic", f)
				}
			}()
			New(target, f).Close()
		}()
	}
}
