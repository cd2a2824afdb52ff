// Package build runs the builder's phases in order — pki, artifacts,
// render, bundle — from a validated spec to one bundle per host. Each phase
// is a function over a typed data struct, so each can be run and tested on
// its own; Bake runs them all, Certs runs pki alone.
package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kubebake/kubebake/builder/artifact"
	"github.com/kubebake/kubebake/builder/bake"
	"github.com/kubebake/kubebake/builder/firstbootbin"
	"github.com/kubebake/kubebake/builder/lock"
	"github.com/kubebake/kubebake/builder/pki"
	"github.com/kubebake/kubebake/builder/spec"
)

// Result is what a bake produced.
type Result struct {
	Bundles []bake.Result
	Issued  []string // certificates issued (not reused) by this run
	Sums    string   // path of out/SHA256SUMS
	// Stale lists bundles in the output directory for hosts the spec no
	// longer has. They are left alone (the directory may be shared) and
	// are not in SHA256SUMS.
	Stale []string
}

// data is what the phases share.
type data struct {
	s          *spec.Spec
	o          *options
	certs      *pki.Set
	artifacts  artifact.Set
	encConfig  []byte
	images     []lock.Image // pinned by bundle-spec.lock; none without a pull
	lockDigest string
	epoch      int64
	bundles    []bake.Bundle
	results    []bake.Result
}

type phase struct {
	name string
	run  func(context.Context, *data) error
}

// phases is the whole plan, in order.
var phases = []phase{
	{"pki", runPKI},
	{"artifacts", runArtifacts},
	{"render", runRender},
	{"bundle", runBundle},
}

// Bake builds every host's bundle into the output directory.
func Bake(ctx context.Context, s *spec.Spec, opts ...Option) (*Result, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	if o.firstboot == nil {
		if o.firstboot, err = firstbootbin.Binary(); err != nil {
			return nil, err
		}
	}
	d := &data{s: s, o: o}
	res := &Result{}
	for _, p := range phases {
		start := time.Now()
		o.progress(Event{Phase: p.name, Msg: "start"})
		if err := p.run(ctx, d); err != nil {
			return nil, fmt.Errorf("phase %s: %w", p.name, err)
		}
		o.logger.Info("phase done", "phase", p.name, "took", time.Since(start).Round(time.Millisecond))
		o.progress(Event{Phase: p.name, Msg: "done"})
		if p.name == "pki" {
			res.Issued = d.certs.Issued()
		}
	}
	res.Sums = filepath.Join(o.outDir, "SHA256SUMS")
	res.Bundles = d.results
	res.Stale, err = stale(o.outDir, d.results)
	return res, err
}

// stale lists *.tar.gz in dir that this bake did not write.
func stale(dir string, written []bake.Result) ([]string, error) {
	all, err := filepath.Glob(filepath.Join(dir, "*.tar.gz"))
	if err != nil {
		return nil, err
	}
	ours := map[string]bool{}
	for _, r := range written {
		ours[filepath.Base(r.Path)] = true
	}
	var out []string
	for _, p := range all {
		if !ours[filepath.Base(p)] {
			out = append(out, p)
		}
	}
	return out, nil
}

// Certs runs the pki phase alone: it issues what is missing or changed and
// returns the set; the ledger is read from PKIDir.
func Certs(ctx context.Context, s *spec.Spec, opts ...Option) (*pki.Set, error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	d := &data{s: s, o: o}
	if err := runPKI(ctx, d); err != nil {
		return nil, fmt.Errorf("phase pki: %w", err)
	}
	return d.certs, nil
}

// PKIDir is where the PKI lives inside a state directory.
func PKIDir(stateDir string) string { return filepath.Join(stateDir, "pki") }

func runPKI(ctx context.Context, d *data) error {
	cfg, cluster, err := pkiInputs(d.s)
	if err != nil {
		return err
	}
	set, err := pki.Issue(ctx, PKIDir(d.o.stateDir), cfg, pki.Matrix(cluster),
		pki.WithJobs(d.o.jobs), pki.WithLogger(d.o.logger),
		pki.WithProgress(func(done, total int) { d.o.progress(Event{Phase: "pki", Done: done, Total: total}) }))
	if err != nil {
		return err
	}
	d.certs = set
	d.encConfig, err = encryptionConfig(d.o.stateDir)
	return err
}

// runArtifacts finds every artifact: in --artifacts DIR when given (files
// downloaded by hand), else in the store as bundle-spec.lock pins them.
func runArtifacts(ctx context.Context, d *data) error {
	var set artifact.Set
	var err error
	if d.o.artifactsDir != "" {
		set, err = artifact.Resolve(ctx, d.s, d.o.artifactsDir, d.o.storeDir)
	} else {
		set, err = storeArtifacts(d.s, d.o)
	}
	if err != nil {
		return err
	}
	d.artifacts = set
	return d.loadImages()
}

func runRender(ctx context.Context, d *data) error {
	digest, err := specDigest(d.s)
	if err != nil {
		return err
	}
	epoch := d.s.Bundle.SourceDateEpoch
	if d.o.epoch > 0 {
		epoch = d.o.epoch
	}
	if epoch <= 0 {
		return errors.New("no fixed timestamp for bundle entries: set bundle.sourceDateEpoch in the spec or SOURCE_DATE_EPOCH in the environment")
	}
	d.epoch = epoch
	for i, h := range d.s.Hosts {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := hostBundle(d, h, digest, epoch)
		if err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
		d.bundles = append(d.bundles, b)
		d.o.progress(Event{Phase: "render", Done: i + 1, Total: len(d.s.Hosts), Msg: h.Name})
	}
	return nil
}

func runBundle(ctx context.Context, d *data) error {
	res, err := bake.Write(ctx, d.o.outDir, d.bundles,
		bake.WithMTime(time.Unix(d.epoch, 0)),
		bake.WithCacheDir(filepath.Join(d.o.stateDir, "cache", "bake")),
		bake.WithJobs(d.o.jobs),
		bake.WithLogger(d.o.logger),
		bake.WithProgress(func(p bake.Progress) { d.o.progress(bakeEvent(p)) }))
	if err != nil {
		return err
	}
	d.results = res
	return nil
}

// specDigest is the sha256 of the spec file as written.
func specDigest(s *spec.Spec) (string, error) {
	if s.File == "" {
		return "", errors.New("spec has no file name to digest")
	}
	b, err := os.ReadFile(s.File)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

func bakeEvent(p bake.Progress) Event {
	return Event{Phase: "bundle", Done: p.BundlesDone, Total: p.Bundles,
		Msg: fmt.Sprintf("members %d/%d (%d compressed, %d reused), %d/%d MiB",
			p.MembersDone, p.Members, p.Compressed, p.Reused, p.BytesDone>>20, p.Bytes>>20)}
}
