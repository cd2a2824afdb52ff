// Package faultproxy is a reverse proxy for tests that injects faults into a
// share of the requests it forwards: 5xx statuses, connection resets,
// truncated bodies and corrupted bodies.
//
// Whether a request gets a fault, and which, is a pure function of the seed,
// the request (method, URI, Range header) and how many times that same
// request was seen before, so a run is reproducible for a seed however
// concurrent requests interleave, and a retried request draws again.
package faultproxy

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
)

// Kind is a kind of fault.
type Kind int

const (
	// Status5xx answers 500, 502, 503 or 504 without asking the target.
	Status5xx Kind = iota
	// Reset hijacks the connection and closes it (RST) before any byte.
	Reset
	// Truncate sends the target's headers with the full Content-Length,
	// half the body, then closes the connection.
	Truncate
	// Corrupt flips one byte of the body, keeping its length.
	Corrupt
)

// AllKinds lists every Kind.
var AllKinds = []Kind{Status5xx, Reset, Truncate, Corrupt}

func (k Kind) String() string {
	switch k {
	case Status5xx:
		return "5xx"
	case Reset:
		return "reset"
	case Truncate:
		return "truncate"
	case Corrupt:
		return "corrupt"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Faults says how often and which faults to inject.
type Faults struct {
	Rate  float64 // share of requests that get a fault, 0..1
	Seed  int64
	Kinds []Kind // default: AllKinds
}

// minBody: only bodies of at least this many bytes are truncated or
// corrupted; a request drawing such a fault for a smaller (or unknown-length)
// body passes through untouched and is not counted.
const minBody = 1024

// Proxy forwards to a target URL through an httptest.Server.
type Proxy struct {
	srv    *httptest.Server
	target *url.URL
	faults Faults
	tr     *http.Transport

	mu       sync.Mutex
	seen     map[string]int
	counts   map[Kind]int
	requests int
}

// New starts a plain-HTTP proxy in front of target (scheme, host and an
// optional path prefix; an https target's certificate is not verified). It panics if Rate is outside 0..1 or a Kind is unknown: it is a
// test helper, and a bad setup is the test's bug.
func New(target *url.URL, f Faults) *Proxy {
	if f.Rate < 0 || f.Rate > 1 {
		panic(fmt.Sprintf("faultproxy: rate %v outside 0..1", f.Rate))
	}
	if len(f.Kinds) == 0 {
		f.Kinds = AllKinds
	}
	for _, k := range f.Kinds {
		if k < Status5xx || k > Corrupt {
			panic(fmt.Sprintf("faultproxy: unknown kind %d", int(k)))
		}
	}
	f.Kinds = append([]Kind(nil), f.Kinds...)
	p := &Proxy{
		target: target,
		faults: f,
		tr:     http.DefaultTransport.(*http.Transport).Clone(),
		seen:   map[string]int{},
		counts: map[Kind]int{},
	}
	p.tr.DisableCompression = true
	// A test proxy: the target is a local server, often with a throwaway
	// certificate (the test registry's), which is not what is under test.
	p.tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	return p
}

// URL is the proxy's base URL, "http://127.0.0.1:port".
func (p *Proxy) URL() string { return p.srv.URL }

// Close stops the proxy.
func (p *Proxy) Close() {
	p.srv.CloseClientConnections()
	p.srv.Close()
	p.tr.CloseIdleConnections()
}

// Counts returns how many faults of each kind were injected so far.
func (p *Proxy) Counts() map[Kind]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[Kind]int, len(p.counts))
	for k, n := range p.counts {
		out[k] = n
	}
	return out
}

// Requests returns how many requests the proxy received.
func (p *Proxy) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

// draw decides the fault for r: ok false means none.
func (p *Proxy) draw(r *http.Request) (Kind, uint64, bool) {
	key := r.Method + " " + r.URL.RequestURI() + " " + r.Header.Get("Range")
	p.mu.Lock()
	n := p.seen[key]
	p.seen[key] = n + 1
	p.requests++
	p.mu.Unlock()

	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(p.faults.Seed))
	h.Write(b[:])
	binary.LittleEndian.PutUint64(b[:], uint64(n))
	h.Write(b[:])
	io.WriteString(h, key)
	x := mix(h.Sum64())
	// 53 high bits → [0, 1)
	if float64(x>>11)/(1<<53) >= p.faults.Rate {
		return 0, 0, false
	}
	y := mix(x)
	return p.faults.Kinds[y%uint64(len(p.faults.Kinds))], mix(y), true
}

// mix is splitmix64's finaliser.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (p *Proxy) count(k Kind) {
	p.mu.Lock()
	p.counts[k]++
	p.mu.Unlock()
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	kind, rnd, fault := p.draw(r)
	if fault {
		switch kind {
		case Status5xx:
			p.count(kind)
			codes := []int{500, 502, 503, 504}
			http.Error(w, "faultproxy: injected", codes[rnd%uint64(len(codes))])
			return
		case Reset:
			p.count(kind)
			reset(w)
			return
		}
	}

	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme = p.target.Scheme
	out.URL.Host = p.target.Host
	out.URL.Path = strings.TrimSuffix(p.target.Path, "/") + r.URL.Path
	out.URL.RawPath = ""
	// Keep the client's Host, as a reverse proxy in front of a registry
	// does (nginx: proxy_set_header Host $http_host): the registry builds
	// upload Location URLs from it, so clients come back through the proxy.
	out.Host = r.Host
	for _, h := range []string{"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade"} {
		out.Header.Del(h)
	}
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		http.Error(w, "faultproxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	size := resp.ContentLength
	if fault && (kind == Truncate || kind == Corrupt) && size >= minBody && r.Method != http.MethodHead {
		p.count(kind)
		w.Header().Set("Content-Length", fmt.Sprint(size))
		w.WriteHeader(resp.StatusCode)
		if kind == Truncate {
			io.CopyN(w, resp.Body, size/2)
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // closes the connection mid-body
		}
		at := int64(rnd % uint64(size))
		io.CopyN(w, resp.Body, at)
		var one [1]byte
		if _, err := io.ReadFull(resp.Body, one[:]); err == nil {
			one[0] ^= 0x20
			w.Write(one[:])
		}
		io.Copy(w, resp.Body)
		return
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// reset closes the client's connection with a TCP RST, before any byte.
func reset(w http.ResponseWriter) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}
