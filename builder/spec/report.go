package spec

import (
	"fmt"
	"sort"
	"strings"
)

// EntryKind is how serious an Entry is.
type EntryKind int

// Entry kinds. Only Error makes a Report fatal.
const (
	Error EntryKind = iota
	Warning
	Info
)

func (k EntryKind) String() string {
	switch k {
	case Error:
		return "error"
	case Warning:
		return "warning"
	case Info:
		return "info"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Pos is a place in the spec file; Line and Col count from 1, 0 means unknown.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	file := p.File
	if file == "" {
		file = "bundle-spec.yaml"
	}
	if p.Line <= 0 {
		return file
	}
	if p.Col <= 0 {
		return fmt.Sprintf("%s:%d", file, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", file, p.Line, p.Col)
}

// Entry is one finding: a mistake, a doubt, or a note about a default.
type Entry struct {
	Kind EntryKind
	Path string // logical path: hosts[3].ip, cluster.podNetwork; "" for the whole file
	Pos  Pos
	Msg  string
	Fix  string // what to do about it; may be empty
}

// String renders
//
//	bundle-spec.yaml:42:7: hosts[3].ip: 10.4.8.22 is outside nodeNetwork 10.4.7.0/24 — give the host …
//
// Warnings and infos carry "warning: " / "info: " after the position.
func (e Entry) String() string {
	var b strings.Builder
	b.WriteString(e.Pos.String())
	b.WriteString(": ")
	switch e.Kind {
	case Warning:
		b.WriteString("warning: ")
	case Info:
		b.WriteString("info: ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Fix != "" {
		b.WriteString(" — ")
		b.WriteString(e.Fix)
	}
	return b.String()
}

// Report is the outcome of Load, ApplyDefaults and Validate.
type Report struct {
	Entries []Entry
}

// IsFatal reports whether any entry is an Error.
func (r Report) IsFatal() bool {
	for _, e := range r.Entries {
		if e.Kind == Error {
			return true
		}
	}
	return false
}

// Count returns how many entries are of kind k.
func (r Report) Count(k EntryKind) int {
	n := 0
	for _, e := range r.Entries {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// Filter returns the entries of kind k, in report order.
func (r Report) Filter(k EntryKind) []Entry {
	var out []Entry
	for _, e := range r.Entries {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// String renders every entry, one per line.
func (r Report) String() string {
	var b strings.Builder
	for _, e := range r.Entries {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Err returns nil unless the report is fatal; then an error that wraps
// ErrInvalid and lists the error entries, one per line.
func (r Report) Err() error {
	if !r.IsFatal() {
		return nil
	}
	return &ReportError{Report: r}
}

// ReportError is a fatal Report as an error.
type ReportError struct {
	Report Report
}

func (e *ReportError) Error() string {
	errs := e.Report.Filter(Error)
	lines := make([]string, 0, len(errs)+1)
	lines = append(lines, fmt.Sprintf("%s: %d error(s)", ErrInvalid, len(errs)))
	for _, x := range errs {
		lines = append(lines, x.String())
	}
	return strings.Join(lines, "\n")
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ReportError) Unwrap() error { return ErrInvalid }

// Merge appends o's entries.
func (r *Report) Merge(o Report) { r.Entries = append(r.Entries, o.Entries...) }

// Sort orders entries by file, line, column, then path, kind and message.
func (r *Report) Sort() {
	sort.SliceStable(r.Entries, func(i, j int) bool {
		a, b := r.Entries[i], r.Entries[j]
		if a.Pos.File != b.Pos.File {
			return a.Pos.File < b.Pos.File
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		if a.Pos.Col != b.Pos.Col {
			return a.Pos.Col < b.Pos.Col
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.Msg < b.Msg
	})
}

func (r *Report) add(k EntryKind, path, fix, format string, args ...any) {
	r.Entries = append(r.Entries, Entry{Kind: k, Path: path, Msg: fmt.Sprintf(format, args...), Fix: fix})
}

// errorf, warnf and infof add an entry whose position is filled in later
// (positions are correlated after validating, from the path).
func (r *Report) errorf(path, fix, format string, args ...any) {
	r.add(Error, path, fix, format, args...)
}

func (r *Report) warnf(path, fix, format string, args ...any) {
	r.add(Warning, path, fix, format, args...)
}

func (r *Report) infof(path, fix, format string, args ...any) {
	r.add(Info, path, fix, format, args...)
}
