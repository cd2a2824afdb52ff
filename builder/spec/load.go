package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// positions maps logical paths (hosts[3].ip) to where they are in the file.
// Scalars are positioned at their value, mappings and lists at their key.
type positions map[string]Pos

// Load reads, decodes, defaults and validates the spec at path. The error is
// only for I/O; every mistake in the file is an entry of the Report. The Spec
// is nil only when the file is not YAML at all.
func Load(path string) (*Spec, Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Report{}, fmt.Errorf("load spec: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load on bytes; name is the file name used in positions (and
// becomes Spec.File).
func Parse(name string, data []byte) (s *Spec, r Report, err error) {
	s, r, quiet := decode(name, data)
	if s == nil {
		r.Sort()
		return nil, r, nil
	}
	bad := append(badPaths(r), quiet...)
	r.Entries = append(r.Entries, ApplyDefaults(s)...)
	v := Validate(s)
	for _, e := range v.Entries {
		if !under(e.Path, bad) {
			r.Entries = append(r.Entries, e)
		}
	}
	r.Sort()
	return s, r, nil
}

// Decode only decodes: syntax, unknown and duplicate keys, wrong types. It
// neither defaults nor validates. The Spec is nil only on a YAML syntax error
// or an empty file.
func Decode(name string, data []byte) (*Spec, Report) {
	s, r, _ := decode(name, data)
	r.Sort()
	return s, r
}

func decode(name string, data []byte) (s *Spec, r Report, quiet []string) {
	if name == "" {
		name = "bundle-spec.yaml"
	}
	defer func() {
		// yaml.v3 recovers its own panics; this is the last line of
		// defence so that no input ever crashes the builder.
		if p := recover(); p != nil {
			s, quiet = nil, nil
			r = Report{Entries: []Entry{{Kind: Error, Pos: Pos{File: name}, Msg: fmt.Sprintf("cannot read the file as YAML: %v", p)}}}
		}
	}()
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			r.Entries = append(r.Entries, Entry{Kind: Error, Pos: Pos{File: name, Line: 1, Col: 1},
				Msg: "the file is empty", Fix: "start from the documented bundle-spec.yaml in the kubebake repository"})
			return nil, r, nil
		}
		r.Entries = append(r.Entries, syntaxEntry(name, data, err))
		return nil, r, nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		r.Entries = append(r.Entries, Entry{Kind: Error, Pos: Pos{File: name, Line: extra.Line, Col: extra.Column},
			Msg: "a second YAML document follows the first", Fix: "keep one spec per file and remove the second document (after ---)"})
	} else if !errors.Is(err, io.EOF) {
		r.Entries = append(r.Entries, syntaxEntry(name, data, err))
	}

	s = &Spec{File: name, pos: positions{}}
	d := &decoder{file: name, pos: s.pos, r: &r}
	doc := &root
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			r.Entries = append(r.Entries, Entry{Kind: Error, Pos: Pos{File: name, Line: 1, Col: 1}, Msg: "the file is empty"})
			return nil, r, nil
		}
		doc = doc.Content[0]
	}
	s.pos[""] = Pos{File: name, Line: doc.Line, Col: doc.Column}
	d.value(doc, reflect.ValueOf(s).Elem(), "")
	return s, r, d.quiet
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxEntry turns a yaml.v3 error ("yaml: line 3: …") into file:line:col.
// yaml.v3 reports no column, so the column is that of the first non-blank
// character on the line.
func syntaxEntry(name string, data []byte, err error) Entry {
	msg := err.Error()
	e := Entry{Kind: Error, Pos: Pos{File: name, Line: 1, Col: 1}, Fix: "fix the YAML syntax (indent with spaces, not tabs; quote values that contain ': ' or start with special characters)"}
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		e.Pos.Line = line
		e.Pos.Col = firstNonBlank(data, line)
		msg = m[2]
		if strings.Contains(msg, "tab character") {
			if l, c, ok := findIndentTab(data, line); ok {
				e.Pos.Line, e.Pos.Col = l, c
			}
		}
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	e.Msg = "YAML syntax: " + msg
	return e
}

// findIndentTab finds the first tab in a line's indentation at or after line.
func findIndentTab(data []byte, from int) (line, col int, ok bool) {
	for i, l := range bytes.Split(data, []byte("\n")) {
		if i+1 < from {
			continue
		}
		for j, c := range l {
			if c == '\t' {
				return i + 1, j + 1, true
			}
			if c != ' ' {
				break
			}
		}
	}
	return 0, 0, false
}

func firstNonBlank(data []byte, line int) int {
	lines := bytes.Split(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return 1
	}
	for i, c := range lines[line-1] {
		if c != ' ' {
			return i + 1
		}
	}
	return 1
}

type decoder struct {
	file string
	pos  positions
	r    *Report
	// quiet lists paths validation should not report again: the field a
	// misspelt key was probably meant to be.
	quiet []string
}

func (d *decoder) at(n *yaml.Node) Pos { return Pos{File: d.file, Line: n.Line, Col: n.Column} }

func (d *decoder) errAt(n *yaml.Node, path, fix, format string, args ...any) {
	d.r.Entries = append(d.r.Entries, Entry{Kind: Error, Path: path, Pos: d.at(n), Msg: fmt.Sprintf(format, args...), Fix: fix})
}

// describe names a node's type for messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.ShortTag() {
	case "!!int":
		return "the number " + n.Value
	case "!!float":
		return "the number " + n.Value
	case "!!bool":
		return "the boolean " + n.Value
	case "!!null":
		return "nothing"
	}
	return strconv.Quote(n.Value)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// value decodes n into v, recording positions under path.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		d.errAt(n, path, "write the value out instead of *"+n.Value, "YAML aliases are not supported in a bundle spec")
		return
	}
	if isNull(n) {
		return // leave the zero value; defaults or validation deal with it
	}
	t := v.Type()
	switch {
	case t.Kind() == reflect.Struct:
		d.mapping(n, v, path)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errAt(n, path, "write it as a YAML list, one \"- item\" per line", "expected a list, got %s", describe(n))
			return
		}
		sl := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.pos[p] = d.at(c)
			d.value(c, sl.Index(i), p)
		}
		v.Set(sl)
	case t.Kind() == reflect.Map:
		d.stringMap(n, v, path)
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Bool:
		var b bool
		if d.boolean(n, &b, path) {
			v.Set(reflect.ValueOf(&b))
		}
	case t.Kind() == reflect.Pointer:
		// Optional values (a robot, a duration): present means set, so an
		// explicit 0 stays distinguishable from "left out".
		p := reflect.New(t.Elem())
		d.value(n, p.Elem(), path)
		v.Set(p)
	case t.Kind() == reflect.Bool:
		var b bool
		if d.boolean(n, &b, path) {
			v.SetBool(b)
		}
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			fix := "write a whole number"
			if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
				if _, err := strconv.ParseInt(strings.TrimSpace(n.Value), 10, 64); err == nil {
					fix = "remove the quotes"
				}
			}
			d.errAt(n, path, fix, "expected a whole number, got %s", describe(n))
			return
		}
		var i int64
		if err := n.Decode(&i); err != nil || (t.Kind() == reflect.Int && int64(int(i)) != i) {
			d.errAt(n, path, "write a smaller whole number", "%s does not fit in a whole number", n.Value)
			return
		}
		v.SetInt(i)
	case t.Kind() == reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errAt(n, path, "write a single value", "expected a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	default:
		d.errAt(n, path, "", "internal: cannot decode into %s", t)
	}
}

func (d *decoder) boolean(n *yaml.Node, b *bool, path string) bool {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		d.errAt(n, path, "write true or false", "expected true or false, got %s", describe(n))
		return false
	}
	if err := n.Decode(b); err != nil {
		d.errAt(n, path, "write true or false", "expected true or false, got %s", describe(n))
		return false
	}
	return true
}

// keys checks a mapping's keys for duplicates and non-scalars and calls f
// for each first occurrence.
func (d *decoder) keys(n *yaml.Node, path string, f func(k, val *yaml.Node)) {
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errAt(k, path, "use a plain name as the key", "a key must be a plain name, got %s", describe(k))
			continue
		}
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			d.errAt(k, path, "write the keys out", "YAML merge keys (<<) are not supported in a bundle spec")
			continue
		}
		if prev, ok := seen[k.Value]; ok {
			d.errAt(k, join(path, k.Value), "remove one of them",
				"duplicate key %q (first at line %d)", k.Value, prev.Line)
			continue
		}
		seen[k.Value] = k
		f(k, val)
	}
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errAt(n, path, "write it as a mapping of \"key: value\" lines", "expected a mapping, got %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	d.keys(n, path, func(k, val *yaml.Node) {
		idx, ok := fields[k.Value]
		p := join(path, k.Value)
		if !ok {
			fix, meant := unknownFix(k.Value, fields)
			d.errAt(k, p, fix, "unknown field %q", k.Value)
			if meant != "" {
				d.quiet = append(d.quiet, join(path, meant))
			}
			return
		}
		if val.Kind == yaml.ScalarNode && !(isNull(val) && val.Value == "") {
			d.pos[p] = d.at(val)
		} else {
			d.pos[p] = d.at(k)
		}
		d.value(val, v.Field(idx), p)
	})
}

// stringMapFix is how to write a map's entries: an artifact's extract
// (member: installed-name) or a component's extraArgs (flag: value).
func stringMapFix(path string) (mapping, value string) {
	if strings.HasPrefix(path, "extraArgs.") {
		return "write it as a mapping of \"flag-name: value\" lines, e.g. leader-elect-lease-duration: 60s", "give the flag's value"
	}
	return "write it as a mapping of \"member: installed-name\" lines", "give the installed file name"
}

func (d *decoder) stringMap(n *yaml.Node, v reflect.Value, path string) {
	mapFix, valueFix := stringMapFix(path)
	if n.Kind != yaml.MappingNode {
		d.errAt(n, path, mapFix, "expected a mapping, got %s", describe(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	d.keys(n, path, func(k, val *yaml.Node) {
		p := path + "[" + k.Value + "]"
		d.pos[p] = d.at(k)
		if val.Kind != yaml.ScalarNode || isNull(val) {
			d.errAt(val, p, valueFix, "expected a string, got %s", describe(val))
			return
		}
		m.SetMapIndex(reflect.ValueOf(k.Value), reflect.ValueOf(val.Value))
	})
	v.Set(m)
}

// fieldsOf maps yaml tag names to field indexes.
func fieldsOf(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if tag == "-" {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		out[tag] = i
	}
	return out
}

// unknownFix suggests the field a misspelt key meant, if one is close.
func unknownFix(key string, fields map[string]int) (fix, meant string) {
	best, bestD := "", 1<<30
	for name := range fields {
		dd := editDistance(strings.ToLower(key), strings.ToLower(name))
		if dd < bestD || (dd == bestD && name < best) {
			best, bestD = name, dd
		}
	}
	if best != "" && (bestD <= 2 || strings.EqualFold(key, best)) {
		return "did you mean " + strconv.Quote(best) + "?", best
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	sortStrings(names)
	return "remove it; known fields here: " + strings.Join(names, ", "), ""
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// parent strips the last element of a logical path: hosts[3].ip → hosts[3]
// → hosts → "".
func parent(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i >= 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}

// Pos returns where path is in the file. A path that is not in the file (a
// field left out) is positioned at its closest ancestor that is.
func (s *Spec) Pos(path string) Pos {
	for p := path; ; p = parent(p) {
		if pos, ok := s.pos[p]; ok {
			return pos
		}
		if p == "" {
			break
		}
	}
	return Pos{File: s.fileName(), Line: 1, Col: 1}
}

func (s *Spec) fileName() string {
	if s.File == "" {
		return "bundle-spec.yaml"
	}
	return s.File
}

// badPaths lists the paths of decode errors so that validation does not
// repeat them as, say, "missing".
func badPaths(r Report) []string {
	var out []string
	for _, e := range r.Entries {
		if e.Kind == Error && e.Path != "" {
			out = append(out, e.Path)
		}
	}
	return out
}

func under(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") {
			return true
		}
	}
	return false
}
