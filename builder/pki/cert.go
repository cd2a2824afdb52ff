package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"github.com/cloudflare/cfssl/config"
	"github.com/cloudflare/cfssl/csr"
	"github.com/cloudflare/cfssl/helpers"
	"github.com/cloudflare/cfssl/initca"
	"github.com/cloudflare/cfssl/signer"
	"github.com/cloudflare/cfssl/signer/local"
)

// caConfigJSON is the seed's ca-config.json with the expiry filled in.
const caConfigJSON = `{
  "signing": {
    "default": {"expiry": %[1]q},
    "profiles": {
      "server": {"usages": ["signing", "key encipherment", "server auth"], "expiry": %[1]q},
      "client": {"usages": ["signing", "key encipherment", "client auth"], "expiry": %[1]q},
      "peer": {"usages": ["signing", "key encipherment", "server auth", "client auth"], "expiry": %[1]q}
    }
  }
}`

// profileEKU is what each profile puts in the extended key usage.
var profileEKU = map[string][]x509.ExtKeyUsage{
	ProfileServer: {x509.ExtKeyUsageServerAuth},
	ProfileClient: {x509.ExtKeyUsageClientAuth},
	ProfilePeer:   {x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
}

// SigningPolicy returns the seed's ca-config.json signing policy (profiles
// server, client, peer) with the given expiry, as cfssl parses it.
func SigningPolicy(expiry time.Duration) (*config.Signing, error) {
	c, err := config.LoadConfig(fmt.Appendf(nil, caConfigJSON, formatDuration(expiry)))
	if err != nil {
		return nil, err
	}
	return c.Signing, nil
}

type caSigner struct {
	ca *Cert
	s  *local.Signer
}

func newCASigner(c *Cert, cfg Config) (*caSigner, error) {
	priv, err := helpers.ParsePrivateKeyPEM(c.KeyPEM)
	if err != nil {
		return nil, err
	}
	policy, err := SigningPolicy(cfg.Expiry)
	if err != nil {
		return nil, err
	}
	s, err := local.NewSigner(priv, c.Cert, signer.DefaultSigAlgo(priv), policy)
	if err != nil {
		return nil, err
	}
	return &caSigner{ca: c, s: s}, nil
}

func caRecord(s Subject, key keySpec, expiry time.Duration) *record {
	return &record{
		CN:     s.CN,
		Names:  []csrName{{C: s.C, ST: s.ST, L: s.L, O: s.O, OU: s.OU}},
		Hosts:  []string{},
		Key:    key,
		CA:     &caSpec{Expiry: formatDuration(expiry)},
		Expiry: formatDuration(expiry),
	}
}

// leafRecord: a leaf takes C, ST and L from the CA subject and its own CN
// and O; cfssl spells several O values as several names.
func leafRecord(r Request, s Subject, key keySpec, expiry time.Duration) *record {
	base := csrName{C: s.C, ST: s.ST, L: s.L}
	var names []csrName
	for _, o := range r.O {
		n := base
		n.O = o
		names = append(names, n)
	}
	if len(names) == 0 && base != (csrName{}) {
		names = []csrName{base}
	}
	hosts := r.Hosts
	if hosts == nil {
		hosts = []string{}
	}
	return &record{
		CN:        r.CN,
		Names:     names,
		Hosts:     hosts,
		Key:       key,
		Signer:    r.CA,
		Profile:   r.Profile,
		Expiry:    formatDuration(expiry),
		Receivers: r.Receivers,
		Purpose:   r.Purpose,
	}
}

func (rec *record) csrRequest() *csr.CertificateRequest {
	req := &csr.CertificateRequest{
		CN:         rec.CN,
		Hosts:      rec.Hosts,
		KeyRequest: &csr.KeyRequest{A: rec.Key.Algo, S: rec.Key.Size},
	}
	for _, n := range rec.Names {
		req.Names = append(req.Names, csr.Name{C: n.C, ST: n.ST, L: n.L, O: n.O, OU: n.OU})
	}
	if rec.CA != nil {
		req.CA = &csr.CAConfig{Expiry: rec.CA.Expiry}
	}
	return req
}

// loaded is a certificate read back from the state directory.
type loaded struct {
	certPEM, keyPEM []byte
	cert            *x509.Certificate
	key             crypto.Signer
	rec             *record
}

// load reads <name>.pem, <name>-key.pem and <name>.json. It returns a reason
// to issue when any is missing, unreadable or the key does not match.
func (is *issuer) load(name string) (*loaded, string, error) {
	var l loaded
	var err error
	if l.certPEM, err = readOptional(is.path(name + ".pem")); err != nil {
		return nil, "", err
	}
	if l.keyPEM, err = readOptional(is.path(name + "-key.pem")); err != nil {
		return nil, "", err
	}
	if l.certPEM == nil || l.keyPEM == nil {
		return nil, "new", nil
	}
	if l.rec, err = readRecord(is.path(name + ".json")); err != nil {
		return nil, "record missing or unreadable", nil
	}
	if l.cert, err = helpers.ParseCertificatePEM(l.certPEM); err != nil {
		return nil, "certificate unreadable", nil
	}
	if l.key, err = helpers.ParsePrivateKeyPEM(l.keyPEM); err != nil {
		return nil, "key unreadable", nil
	}
	if !publicKeyEqual(l.cert.PublicKey, l.key) {
		return nil, "key does not match certificate", nil
	}
	return &l, "", nil
}

// staleReason returns why a loaded certificate cannot be reused, or "".
func (is *issuer) staleReason(l *loaded, want *record) string {
	switch {
	case !l.rec.sameInputs(want):
		return "inputs changed: " + diffInputs(l.rec, want)
	case !keyMatchesSpec(l.cert.PublicKey, want.Key):
		return "key algorithm changed"
	case l.cert.Subject.CommonName != want.CN:
		return "CN differs from record"
	case !slices.Equal(sortedSet(l.cert.Subject.Organization), sortedSet(wantOrgs(want))):
		return "O differs from record"
	case !slices.Equal(certHosts(l.cert), want.Hosts):
		return "SANs differ from record"
	case l.cert.NotAfter.Sub(is.now) < is.cfg.RenewBefore:
		return fmt.Sprintf("expires %s, within renew-before %s", l.cert.NotAfter.UTC().Format(time.RFC3339), is.cfg.RenewBefore)
	}
	return ""
}

func wantOrgs(r *record) []string {
	var o []string
	for _, n := range r.Names {
		if n.O != "" {
			o = append(o, n.O)
		}
	}
	return o
}

func diffInputs(old, want *record) string {
	switch {
	case old.CN != want.CN:
		return "CN"
	case !slices.Equal(old.Hosts, want.Hosts):
		return "SANs"
	case !slices.Equal(old.Names, want.Names):
		return "subject"
	case old.Key != want.Key:
		return "key algorithm"
	case old.Signer != want.Signer:
		return "CA"
	case old.Profile != want.Profile:
		return "profile"
	case old.Expiry != want.Expiry:
		return "expiry"
	}
	return "record"
}

func certHosts(c *x509.Certificate) []string {
	h := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		h = append(h, ip.String())
	}
	h = append(h, c.EmailAddresses...)
	for _, u := range c.URIs {
		h = append(h, u.String())
	}
	if s := sortedSet(h); s != nil {
		return s
	}
	return []string{}
}

func keyMatchesSpec(pub crypto.PublicKey, k keySpec) bool {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return k.Algo == "rsa" && p.N.BitLen() == k.Size
	case *ecdsa.PublicKey:
		return k.Algo == "ecdsa" && p.Curve.Params().BitSize == k.Size
	}
	return false
}

// ensureCA reuses or issues the self-signed CA name.
func (is *issuer) ensureCA(name string, subject Subject) (*Cert, error) {
	want := caRecord(subject, is.keySpec(), is.cfg.Expiry)
	l, reason, err := is.load(name)
	if err != nil {
		return nil, err
	}
	if l != nil {
		switch {
		case !l.cert.IsCA:
			reason = "not a CA"
		case l.cert.CheckSignatureFrom(l.cert) != nil:
			reason = "not self-signed"
		default:
			reason = is.staleReason(l, want)
		}
	}
	if reason == "" {
		return is.reuse(name, l, want)
	}
	csrPEM, keyPEM, err := csr.ParseRequest(want.csrRequest())
	if err != nil {
		return nil, fmt.Errorf("generate key and CSR: %w", err)
	}
	priv, err := helpers.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, err
	}
	policy := initca.CAPolicy()
	policy.Default.Expiry = is.cfg.Expiry
	policy.Default.ExpiryString = formatDuration(is.cfg.Expiry)
	s, err := local.NewSigner(priv, nil, signer.DefaultSigAlgo(priv), policy)
	if err != nil {
		return nil, fmt.Errorf("self-signer: %w", err)
	}
	nb, na := is.validity()
	certPEM, err := s.Sign(signer.SignRequest{Request: string(csrPEM), NotBefore: nb, NotAfter: na})
	if err != nil {
		return nil, fmt.Errorf("self-sign: %w", err)
	}
	return is.store(name, certPEM, keyPEM, want, reason)
}

// ensureCert reuses or issues the leaf certificate r.
func (is *issuer) ensureCert(r Request) (*Cert, error) {
	cs := is.signers[r.CA]
	want := leafRecord(r, is.cfg.Subject, is.keySpec(), is.cfg.Expiry)
	l, reason, err := is.load(r.Name)
	if err != nil {
		return nil, err
	}
	if l != nil {
		ca := cs.ca.Cert
		switch {
		case cs.ca.Issued:
			reason = "CA " + r.CA + " re-issued"
		case !bytes.Equal(l.cert.RawIssuer, ca.RawSubject) || l.cert.CheckSignatureFrom(ca) != nil:
			reason = "not signed by the current " + r.CA
		case !slices.Equal(l.cert.ExtKeyUsage, profileEKU[r.Profile]):
			reason = "key usage differs from profile " + r.Profile
		default:
			reason = is.staleReason(l, want)
		}
	}
	if reason == "" {
		return is.reuse(r.Name, l, want)
	}
	csrPEM, keyPEM, err := csr.ParseRequest(want.csrRequest())
	if err != nil {
		return nil, fmt.Errorf("generate key and CSR: %w", err)
	}
	nb, na := is.validity()
	certPEM, err := cs.s.Sign(signer.SignRequest{
		Hosts:     want.Hosts,
		Request:   string(csrPEM),
		Profile:   r.Profile,
		NotBefore: nb,
		NotAfter:  na,
	})
	if err != nil {
		return nil, fmt.Errorf("sign with %s: %w", r.CA, err)
	}
	return is.store(r.Name, certPEM, keyPEM, want, reason)
}

// reuse keeps the files as they are, rewriting only the record when the
// ledger fields (receivers, purpose) changed.
func (is *issuer) reuse(name string, l *loaded, want *record) (*Cert, error) {
	if !l.rec.sameLedger(want) {
		if err := writeAtomic(is.path(name+".json"), want.marshal(), publicMode); err != nil {
			return nil, err
		}
		is.log().Info("certificate record updated", "name", name)
	} else {
		is.log().Debug("certificate reused", "name", name)
	}
	return &Cert{Name: name, CertPEM: l.certPEM, KeyPEM: l.keyPEM, Cert: l.cert}, nil
}

// store writes key, then certificate, then record. A crash between the
// first two leaves a key that does not match the certificate, which the
// next run re-issues.
func (is *issuer) store(name string, certPEM, keyPEM []byte, rec *record, reason string) (*Cert, error) {
	cert, err := helpers.ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("parse issued certificate: %w", err)
	}
	if err := writeAtomic(is.path(name+"-key.pem"), keyPEM, keyMode); err != nil {
		return nil, err
	}
	if err := writeAtomic(is.path(name+".pem"), certPEM, publicMode); err != nil {
		return nil, err
	}
	if err := writeAtomic(is.path(name+".json"), rec.marshal(), publicMode); err != nil {
		return nil, err
	}
	is.log().Info("certificate issued", "name", name, "reason", reason,
		"not_after", cert.NotAfter.UTC().Format(time.RFC3339))
	return &Cert{Name: name, CertPEM: certPEM, KeyPEM: keyPEM, Cert: cert, Issued: true, Reason: reason}, nil
}
