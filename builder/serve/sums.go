package serve

import (
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// sumsCache holds the served directory's SHA256SUMS, re-read when it
// changes, for ETags.
type sumsCache struct {
	mu    sync.Mutex
	mtime time.Time
	size  int64
	sums  map[string]string // rel path → sha256 hex
}

// lookup returns the sha256 SHA256SUMS lists for the file (by its real path,
// else by the path asked for), or "" when it lists none or is older than the
// file (a stale sum must not become an ETag: a resumed download would mix
// two files' bytes).
func (c *sumsCache) lookup(root string, fi fs.FileInfo, rel, realRel string) string {
	st, err := os.Stat(filepath.Join(root, plan.SumsName))
	if err != nil || !st.Mode().IsRegular() || st.ModTime().Before(fi.ModTime()) {
		return ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sums == nil || !st.ModTime().Equal(c.mtime) || st.Size() != c.size {
		c.sums, c.mtime, c.size = map[string]string{}, st.ModTime(), st.Size()
		if b, err := os.ReadFile(filepath.Join(root, plan.SumsName)); err == nil {
			sums, _, _ := plan.ParseSums(b)
			for _, s := range sums {
				c.sums[s.Path] = s.SHA256
			}
		}
	}
	if s, ok := c.sums[realRel]; ok {
		return s
	}
	return c.sums[rel]
}
