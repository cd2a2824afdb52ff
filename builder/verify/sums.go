package verify

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// sumLine is one parsed sha256sum(1) line.
type sumLine struct {
	line int
	hex  string
	name string
}

// parseSums reads sha256sum(1) output (plan.ParseSums) and reports
// malformed and repeated lines with file:line paths.
func parseSums(file string, b []byte) ([]sumLine, []Problem) {
	sums, bad, err := plan.ParseSums(b)
	var probs []Problem
	if err != nil {
		probs = append(probs, Problem{file, err.Error()})
	}
	for _, p := range bad {
		at := fmt.Sprintf("%s:%d", file, p.Line)
		switch p.Kind {
		case plan.SumMalformed:
			probs = append(probs, Problem{at, "malformed line: want \"<sha256 hex>  <path>\""})
		case plan.SumNotHex:
			probs = append(probs, Problem{at, "malformed line: the digest is not hex"})
		case plan.SumDuplicate:
			probs = append(probs, Problem{at, fmt.Sprintf("%s is listed twice (first on line %d)", p.Path, p.FirstLine)})
		}
	}
	var out []sumLine
	for _, s := range sums {
		out = append(out, sumLine{line: s.Line, hex: s.SHA256, name: s.Path})
	}
	return out, probs
}

// checkSums compares the bundle's SHA256SUMS with what the scan hashed.
func checkSums(a *archive) {
	b, ok := a.kept[plan.SumsName]
	if !ok {
		if _, there := a.entries[plan.SumsName]; !there {
			a.problem(plan.SumsName, "missing: the bundle cannot be checked on the host; rebuild it")
		}
		return
	}
	lines, probs := parseSums(plan.SumsName, b)
	a.problems = append(a.problems, probs...)
	listed := map[string]bool{}
	for _, l := range lines {
		listed[l.name] = true
		e, ok := a.entries[l.name]
		switch {
		case !ok:
			a.problem(l.name, "listed in %s but not in the bundle", plan.SumsName)
		case e.sha256 == "":
			a.problem(l.name, "listed in %s but not a regular file", plan.SumsName)
		case e.sha256 != l.hex:
			a.problem(l.name, "sha256 %s does not match %s (%s): the file changed after the bundle was built; rebuild it", e.sha256, plan.SumsName, l.hex)
		}
	}
	for _, name := range a.order {
		if name != plan.SumsName && !listed[name] {
			a.problem(name, "not listed in %s: it would go unchecked; rebuild the bundle", plan.SumsName)
		}
	}
}

// VerifySums checks outDir/SHA256SUMS against the files it lists, and that
// every outDir/*.tar.gz is listed. Problem paths are relative to outDir.
// The error is for I/O failures only; a missing SHA256SUMS is a Problem.
func VerifySums(outDir string) ([]Problem, error) {
	b, err := os.ReadFile(filepath.Join(outDir, plan.SumsName))
	if errors.Is(err, fs.ErrNotExist) {
		return []Problem{{plan.SumsName, "missing: run kubebake bake to write it"}}, nil
	}
	if err != nil {
		return nil, err
	}
	lines, probs := parseSums(plan.SumsName, b)
	listed := map[string]bool{}
	for _, l := range lines {
		listed[l.name] = true
		if path.IsAbs(l.name) || !filepath.IsLocal(filepath.FromSlash(l.name)) {
			probs = append(probs, Problem{fmt.Sprintf("%s:%d", plan.SumsName, l.line), fmt.Sprintf("%s is outside %s", l.name, outDir)})
			continue
		}
		sum, err := fileSHA256(filepath.Join(outDir, filepath.FromSlash(l.name)))
		if errors.Is(err, fs.ErrNotExist) {
			probs = append(probs, Problem{l.name, fmt.Sprintf("listed in %s but missing", plan.SumsName)})
			continue
		}
		if err != nil {
			return nil, err
		}
		if sum != l.hex {
			probs = append(probs, Problem{l.name, fmt.Sprintf("sha256 %s does not match %s (%s): the file changed or was truncated after the build; copy or rebuild it", sum, plan.SumsName, l.hex)})
		}
	}
	bundles, err := filepath.Glob(filepath.Join(outDir, "*.tar.gz"))
	if err != nil {
		return nil, err
	}
	for _, p := range bundles {
		if name := filepath.Base(p); !listed[name] {
			probs = append(probs, Problem{name, fmt.Sprintf("not listed in %s: it is not part of this build", plan.SumsName)})
		}
	}
	sortProblems(probs)
	return probs, nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Path != ps[j].Path {
			return ps[i].Path < ps[j].Path
		}
		return ps[i].Msg < ps[j].Msg
	})
}
