// Package lock reads and writes bundle-spec.lock: every artifact's resolved
// URL and sha256 and every image's tag → digest (per platform), so a build
// on another machine, or next year, gets the same bytes.
package lock

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/google/renameio/v2"
	"go.yaml.in/yaml/v3"
)

// FileName is the lock's name beside the spec.
const FileName = "bundle-spec.lock"

// Version is the lock format this kubebake reads and writes.
const Version = 1

// Lock is bundle-spec.lock.
type Lock struct {
	Version   int        `yaml:"version"`
	Artifacts []Artifact `yaml:"artifacts"`
	Images    []Image    `yaml:"images"`
}

// Artifact pins one downloaded file.
type Artifact struct {
	Name   string `yaml:"name"`
	URL    string `yaml:"url"` // as resolved, before site mirrors
	SHA256 string `yaml:"sha256"`
	Size   int64  `yaml:"size"`
}

// Image pins one image: the digest of what the tag pointed at, and of each
// platform's manifest kept.
type Image struct {
	Name      string            `yaml:"name"`
	Ref       string            `yaml:"ref"`
	Digest    string            `yaml:"digest"` // what the tag resolved to upstream
	Platforms map[string]string `yaml:"platforms,omitempty"`
	// Stored is what kubebake keeps and pushes: Digest, or the one kept
	// platform's manifest, or an index of the kept platforms (Index true).
	Stored string `yaml:"stored,omitempty"`
	Index  bool   `yaml:"index,omitempty"`
}

// PathFor is the lock's path for a spec file.
func PathFor(specFile string) string {
	if i := strings.LastIndexByte(specFile, '/'); i >= 0 {
		return specFile[:i+1] + FileName
	}
	return FileName
}

// Read loads a lock; a missing file is (nil, nil): nothing is pinned yet.
func Read(path string) (*Lock, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var l Lock
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("%s: %w (delete it and run kubebake pull to write a new one)", path, err)
	}
	if l.Version != Version {
		return nil, fmt.Errorf("%s: lock format %d, this kubebake reads %d (run kubebake pull to rewrite it)", path, l.Version, Version)
	}
	return &l, nil
}

// Encode renders l sorted by name, so equal locks are equal bytes.
func (l *Lock) Encode() ([]byte, error) {
	c := Lock{Version: Version, Artifacts: slices.Clone(l.Artifacts), Images: slices.Clone(l.Images)}
	slices.SortFunc(c.Artifacts, func(a, b Artifact) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(c.Images, func(a, b Image) int { return strings.Compare(a.Name, b.Name) })
	var b bytes.Buffer
	b.WriteString("# bundle-spec.lock: written by kubebake pull. Commit it beside bundle-spec.yaml;\n" +
		"# kubebake pull --locked refuses anything that drifts from it.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Write stores l at path atomically.
func Write(path string, l *Lock) error {
	b, err := l.Encode()
	if err != nil {
		return err
	}
	return renameio.WriteFile(path, b, 0o644)
}

// Digest is "sha256:<hex>" of the encoded lock, recorded in bundle.json.
func (l *Lock) Digest() (string, error) {
	b, err := l.Encode()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
