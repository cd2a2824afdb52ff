package serve

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/google/renameio/v2"
)

// budget counts the bytes of each counted file that have left the server.
// A fetch is the file's size in bytes, so a download cut short and resumed
// with Range costs one fetch in all, and no sequence of Range requests
// (bytes=0-, or the file in pieces) gets a copy without paying for it.
type budget struct {
	max  int64  // copies per file; 0 = unlimited
	file string // counts file, or ""

	mu        sync.Mutex
	delivered map[string]int64 // rel path → bytes written to clients, ever
	reserved  map[string]int64 // rel path → bytes promised to requests in flight
	active    map[string]int   // rel path → requests in flight
}

// countsFile is the counts file's format.
type countsFile struct {
	// Delivered maps a file (relative to the served directory) to the bytes
	// of it written to clients.
	Delivered map[string]int64 `json:"delivered"`
}

func newBudget(max int, file string) (*budget, error) {
	b := &budget{max: int64(max), file: file, delivered: map[string]int64{}, reserved: map[string]int64{}, active: map[string]int{}}
	if file == "" {
		return b, nil
	}
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("counts file: %w", err)
	}
	var c countsFile
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("counts file %s: %w", file, err)
	}
	for k, v := range c.Delivered {
		if v < 0 {
			return nil, fmt.Errorf("counts file %s: %s: negative count %d", file, k, v)
		}
		b.delivered[k] = v
	}
	return b, nil
}

// grant is one request's share of a file's budget.
type grant struct {
	b     *budget
	key   string
	limit int64 // max × size
	left  int64 // reserved and not yet written
	spent int64 // written by this request
}

// refusal says why a request gets no grant.
type refusal struct {
	status int
	reason string
}

// reserve promises want bytes of key (size bytes long) to one request.
func (b *budget) reserve(key string, size, want int64) (*grant, *refusal) {
	b.mu.Lock()
	defer b.mu.Unlock()
	limit := b.max * size
	d, r := b.delivered[key], b.reserved[key]
	// A HEAD (want 0) costs nothing but tells the truth: once the budget
	// is spent it answers 410 too, so a kickstart's %pre can refuse to
	// reinstall a host before it erases the disk.
	if want == 0 && d >= limit {
		return nil, &refusal{http.StatusGone, fmt.Sprintf("fetch budget spent: %s of %d fetches delivered; restart kubebake serve%s to allow a reinstall",
			copies(d, size), b.max, b.hint())}
	}
	if d+r+want <= limit {
		b.reserved[key] += want
		b.active[key]++
		return &grant{b: b, key: key, limit: limit, left: want}, nil
	}
	switch {
	case b.active[key] > 0:
		return nil, &refusal{http.StatusServiceUnavailable, fmt.Sprintf("another download of this file is in flight (%s of %d fetches delivered, %d bytes promised); retry when it ends",
			copies(d, size), b.max, r)}
	case d >= limit:
		return nil, &refusal{http.StatusGone, fmt.Sprintf("fetch budget spent: %s of %d fetches delivered; restart kubebake serve%s to allow a reinstall",
			copies(d, size), b.max, b.hint())}
	default:
		return nil, &refusal{http.StatusGone, fmt.Sprintf("fetch budget short: %s of %d fetches delivered, %d bytes left, %d asked; only a Range request for the rest can be served",
			copies(d, size), b.max, limit-d, want)}
	}
}

func (b *budget) hint() string {
	if b.file != "" {
		return " after removing it from " + b.file
	}
	return ""
}

// take charges n bytes about to be written, from the grant's reservation
// first, then from what is left of the budget.
func (g *grant) take(n int64) bool {
	b := g.b
	b.mu.Lock()
	defer b.mu.Unlock()
	from := min(n, g.left)
	extra := n - from
	if extra > 0 && b.delivered[g.key]+b.reserved[g.key]+extra > g.limit {
		return false
	}
	g.left -= from
	b.reserved[g.key] -= from
	b.delivered[g.key] += n
	g.spent += n
	return true
}

// refund gives back bytes charged by take that were not written.
func (g *grant) refund(n int64) {
	b := g.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.delivered[g.key] -= n
	g.spent -= n
}

// done releases what the request did not use and saves the counts. It
// returns the bytes of the file delivered so far, for the log.
func (g *grant) done() (int64, error) {
	b := g.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reserved[g.key] -= g.left
	g.left = 0
	if b.active[g.key]--; b.active[g.key] == 0 {
		delete(b.active, g.key)
		delete(b.reserved, g.key)
	}
	d := b.delivered[g.key]
	if b.file == "" || g.spent == 0 {
		return d, nil
	}
	c := countsFile{Delivered: b.delivered}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return d, err
	}
	if err := renameio.WriteFile(b.file, append(data, '\n'), 0o600); err != nil {
		return d, fmt.Errorf("counts file: %w", err)
	}
	return d, nil
}

// copies renders delivered bytes as copies of a size-byte file: "1.5".
func copies(delivered, size int64) string {
	if size == 0 {
		return "0"
	}
	s := strconv.FormatFloat(float64(delivered)/float64(size), 'f', 2, 64)
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}
