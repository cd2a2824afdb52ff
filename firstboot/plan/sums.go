package plan

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
)

// Sum is one line of a bundle's SHA256SUMS: sha256sum(1)'s format,
// "<64 hex>  <path>" ("<64 hex> *<path>" in binary mode).
type Sum struct {
	Line   int    // 1-based line number (0 when not read from a file)
	SHA256 string // lower-case hex
	Path   string // bundle path, "./" dropped
}

// SumProblem kinds.
const (
	SumMalformed = iota // not "<sha256 hex>  <path>"
	SumNotHex           // the digest is not hex
	SumDuplicate        // the path was listed before (on FirstLine)
)

// SumProblem is a line ParseSums could not accept.
type SumProblem struct {
	Line      int
	Kind      int
	Path      string // for SumDuplicate
	FirstLine int    // for SumDuplicate
}

// ParseSums reads SHA256SUMS. Blank lines are skipped; malformed lines and
// repeated paths are returned as problems, in line order, and left out of
// the sums.
func ParseSums(b []byte) ([]Sum, []SumProblem, error) {
	var sums []Sum
	var probs []SumProblem
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		if strings.TrimSpace(l) == "" {
			continue
		}
		if len(l) < 67 || l[64] != ' ' || (l[65] != ' ' && l[65] != '*') {
			probs = append(probs, SumProblem{Line: n, Kind: SumMalformed})
			continue
		}
		sum := strings.ToLower(l[:64])
		if _, err := hex.DecodeString(sum); err != nil {
			probs = append(probs, SumProblem{Line: n, Kind: SumNotHex})
			continue
		}
		path := strings.TrimPrefix(l[66:], "./")
		if first, dup := seen[path]; dup {
			probs = append(probs, SumProblem{Line: n, Kind: SumDuplicate, Path: path, FirstLine: first})
			continue
		}
		seen[path] = n
		sums = append(sums, Sum{Line: n, SHA256: sum, Path: path})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", SumsName, err)
	}
	return sums, probs, nil
}

// FormatSums renders sums as SHA256SUMS, sorted by path.
func FormatSums(sums []Sum) []byte {
	sorted := append([]Sum(nil), sums...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	var b bytes.Buffer
	for _, s := range sorted {
		fmt.Fprintf(&b, "%s  %s\n", s.SHA256, s.Path)
	}
	return b.Bytes()
}
