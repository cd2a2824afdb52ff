package pki

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// File modes in the state directory.
const (
	dirMode    = 0o700
	keyMode    = 0o600
	publicMode = 0o644
)

// record is <name>.json: the inputs a certificate was issued from, in
// cfssl's CSR spelling, plus ledger data. Issue compares it with the request
// to decide whether to re-issue.
type record struct {
	CN      string    `json:"CN,omitempty"`
	Names   []csrName `json:"names,omitempty"`
	Hosts   []string  `json:"hosts"`
	Key     keySpec   `json:"key"`
	CA      *caSpec   `json:"ca,omitempty"`      // CAs only, as in ca-csr.json
	Signer  string    `json:"signer,omitempty"`  // issuing CA
	Profile string    `json:"profile,omitempty"` // server, client, peer, keypair; empty for a CA
	Expiry  string    `json:"expiry,omitempty"`

	Receivers []string `json:"receivers,omitempty"`
	Purpose   string   `json:"purpose,omitempty"`
}

type csrName struct {
	C  string `json:"C,omitempty"`
	ST string `json:"ST,omitempty"`
	L  string `json:"L,omitempty"`
	O  string `json:"O,omitempty"`
	OU string `json:"OU,omitempty"`
}

type keySpec struct {
	Algo string `json:"algo"`
	Size int    `json:"size"`
}

type caSpec struct {
	Expiry string `json:"expiry"`
}

// sameInputs reports whether two records would issue the same certificate.
// Receivers and Purpose do not count.
func (r *record) sameInputs(o *record) bool {
	a, b := *r, *o
	a.Receivers, a.Purpose, b.Receivers, b.Purpose = nil, "", nil, ""
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func (r *record) sameLedger(o *record) bool {
	return r.Purpose == o.Purpose && slices.Equal(r.Receivers, o.Receivers)
}

func (r *record) marshal() []byte {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		panic(err) // plain strings and ints only
	}
	return append(b, '\n')
}

func readRecord(path string) (*record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// readOptional returns nil, nil for a missing file.
func readOptional(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// writeAtomic writes data to path through a temporary file in the same
// directory: chmod, write, fsync, rename. A crash leaves either the old or
// the new content under path. The directory itself is synced once per Issue
// (syncDir): a rename lost in a crash brings back the old file, and a lost
// key or certificate rename is caught on the next run as a key mismatch.
func writeAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// prepareDir creates dir with mode 0700 (tightening an existing one) and
// removes temporary files a crashed run left behind.
func prepareDir(dir string) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	if err := os.Chmod(dir, dirMode); err != nil {
		return err
	}
	leftovers, err := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
	if err != nil {
		return err
	}
	for _, p := range leftovers {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}
