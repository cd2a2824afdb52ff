// Package pki issues a cluster's certificates once with cfssl, keeps them in
// a state directory and reuses them on rebuild.
//
// The state directory holds, per certificate, <name>.pem, <name>-key.pem
// (0600) and <name>.json, the cfssl-style record of the inputs it was issued
// from. A certificate is reused byte for byte while its inputs are unchanged,
// it chains to the current CA, its key matches and it is not within
// Config.RenewBefore of expiry; otherwise it is issued again. Every file is
// replaced atomically, the key before the certificate, so a crash never
// leaves a half-written file or a certificate next to someone else's key
// that is not caught on the next run.
package pki

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	cflog "github.com/cloudflare/cfssl/log"
)

// Set is what Issue returns: every CA, certificate and key pair in the state
// directory that the requests name, issued or reused.
type Set struct {
	CAs      map[string]*Cert // by name: "ca", "front-proxy-ca"
	Certs    map[string]*Cert // by Request.Name
	KeyPairs map[string]*KeyPair
	// ServiceAccount is KeyPairs["sa"], nil when no such request was given.
	ServiceAccount *KeyPair
}

// Issued returns the names of everything issued (not reused) by this run.
func (s *Set) Issued() []string {
	var out []string
	for _, m := range []map[string]*Cert{s.CAs, s.Certs} {
		for n, c := range m {
			if c.Issued {
				out = append(out, n)
			}
		}
	}
	for n, k := range s.KeyPairs {
		if k.Issued {
			out = append(out, n)
		}
	}
	return sortedSet(out)
}

// Cert is a certificate and its private key, PEM encoded.
type Cert struct {
	Name    string
	CertPEM []byte
	KeyPEM  []byte
	Cert    *x509.Certificate
	// Issued is true when this run issued the certificate, false when it
	// reused the one in the state directory.
	Issued bool
	// Reason says why it was issued ("new", "SANs changed", ...); empty
	// when reused.
	Reason string
}

// KeyPair is a bare key pair such as the service-account signing key:
// PrivatePEM is PKCS#1 (RSA) or SEC 1 (ECDSA), PublicPEM is PKIX.
type KeyPair struct {
	Name       string
	PrivatePEM []byte
	PublicPEM  []byte
	Issued     bool
	Reason     string
}

var quietCfssl sync.Once

// Issue makes sure dir holds a CA, a front-proxy CA and everything reqs ask
// for, issuing only what is missing, changed, broken or near expiry. Files
// for names no longer requested are left alone (and stay in the Ledger).
// Two Issue calls must not share a state directory at the same time.
func Issue(ctx context.Context, dir string, cfg Config, reqs []Request, opts ...Option) (_ *Set, err error) {
	o, err := makeOptions(opts...)
	if err != nil {
		return nil, err
	}
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	reqs, err = validate(reqs)
	if err != nil {
		return nil, err
	}
	if err := prepareDir(dir); err != nil {
		return nil, fmt.Errorf("pki state %s: %w", dir, err)
	}
	// Make this run's renames durable, also after a failure part way.
	defer func() {
		if serr := syncDir(dir); serr != nil && err == nil {
			err = fmt.Errorf("pki state %s: %w", dir, serr)
		}
	}()
	// cfssl logs every signature at info level to stderr through a
	// package-level logger; this library stays silent unless given a logger.
	quietCfssl.Do(func() { cflog.Level = cflog.LevelFatal })

	is := &issuer{dir: dir, cfg: cfg, o: o, now: cfg.Now()}
	set := &Set{CAs: map[string]*Cert{}, Certs: map[string]*Cert{}, KeyPairs: map[string]*KeyPair{}}
	total := 2 + len(reqs)
	var (
		mu   sync.Mutex
		done int
	)
	settle := func(store func()) {
		mu.Lock()
		defer mu.Unlock()
		store()
		done++
		o.progress(done, total)
	}

	// The CAs first: every certificate's reuse depends on its CA.
	cas := []caJob{
		{name: CA, subject: cfg.Subject},
		{name: FrontProxyCA, subject: frontProxySubject(cfg.Subject)},
	}
	err = parallel(ctx, o.jobs, len(cas), func(ctx context.Context, i int) error {
		c, err := is.ensureCA(cas[i].name, cas[i].subject)
		if err != nil {
			return fmt.Errorf("pki %s: %w", cas[i].name, err)
		}
		settle(func() { set.CAs[c.Name] = c })
		return nil
	})
	if err != nil {
		return nil, err
	}
	is.signers = map[string]*caSigner{}
	for name, c := range set.CAs {
		s, err := newCASigner(c, cfg)
		if err != nil {
			return nil, fmt.Errorf("pki %s: signer: %w", name, err)
		}
		is.signers[name] = s
	}

	err = parallel(ctx, o.jobs, len(reqs), func(ctx context.Context, i int) error {
		r := reqs[i]
		if r.Profile == ProfileKeyPair {
			k, err := is.ensureKeyPair(r)
			if err != nil {
				return fmt.Errorf("pki %s: %w", r.Name, err)
			}
			settle(func() { set.KeyPairs[k.Name] = k })
			return nil
		}
		c, err := is.ensureCert(r)
		if err != nil {
			return fmt.Errorf("pki %s: %w", r.Name, err)
		}
		settle(func() { set.Certs[c.Name] = c })
		return nil
	})
	if err != nil {
		return nil, err
	}
	set.ServiceAccount = set.KeyPairs[ServiceAccount]
	return set, nil
}

type caJob struct {
	name    string
	subject Subject
}

func frontProxySubject(s Subject) Subject {
	s.CN = FrontProxyCA
	return s
}

// parallel runs f(0..n-1) with at most jobs at once. The first error
// cancels the rest and is returned.
func parallel(ctx context.Context, jobs, n int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	fail := func(err error) {
		once.Do(func() { first = err; cancel(err) })
	}
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if ctx.Err() != nil {
				return
			}
			if err := f(ctx, i); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return context.Cause(ctx)
}

// issuer holds what one Issue run shares.
type issuer struct {
	dir     string
	cfg     Config
	o       *options
	now     time.Time
	signers map[string]*caSigner
}

func (is *issuer) path(name string) string { return filepath.Join(is.dir, name) }

func (is *issuer) log() *slog.Logger { return is.o.logger }

// validity is the not-before/not-after pair for anything issued now,
// backdated five minutes as cfssl does.
func (is *issuer) validity() (time.Time, time.Time) {
	nb := is.now.Add(-5 * time.Minute).Truncate(time.Second).UTC()
	return nb, nb.Add(is.cfg.Expiry)
}

func (is *issuer) keySpec() keySpec { return keySpec{Algo: is.cfg.Algo, Size: is.cfg.Size} }

// publicKeyEqual reports whether pub and priv's public half are the same.
func publicKeyEqual(pub crypto.PublicKey, priv crypto.Signer) bool {
	k, ok := priv.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(pub)
}
