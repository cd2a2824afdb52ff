package verify

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// certFile is the certificates of one PEM file: the leaf first, then any
// intermediates.
type certFile struct {
	certs []*x509.Certificate
}

// hostServing are the serving certificates whose identity is the host:
// they must name its IP (and kubelet-server its FQDN).
var hostServing = map[string]bool{"etcd-server": true, "etcd-peer": true, "kubelet-server": true, "apiserver": true}

// parseCerts reads the CERTIFICATE blocks of a PEM file. hasKey reports a
// private key block among them.
func parseCerts(b []byte) (certs []*x509.Certificate, hasKey bool, err error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return certs, hasKey, nil
		}
		switch {
		case blk.Type == "CERTIFICATE":
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return nil, hasKey, err
			}
			certs = append(certs, c)
		case strings.Contains(blk.Type, "PRIVATE KEY"):
			hasKey = true
		}
	}
}

// parseKey reads a PEM private key (PKCS#1, SEC 1 or PKCS#8). Errors never
// quote the key.
func parseKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	if strings.Contains(blk.Headers["Proc-Type"], "ENCRYPTED") {
		return nil, errors.New("the key is encrypted; components need it in the clear")
	}
	var k any
	var err error
	switch blk.Type {
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", blk.Type)
	}
	if err != nil {
		return nil, errors.New("the private key does not parse")
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
	return s, nil
}

// parsePublicKey reads a PEM public key (PKIX or PKCS#1).
func parsePublicKey(b []byte) (crypto.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	switch blk.Type {
	case "PUBLIC KEY":
		return x509.ParsePKIXPublicKey(blk.Bytes)
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(blk.Bytes)
	}
	return nil, fmt.Errorf("PEM block %q is not a public key", blk.Type)
}

func keyMatches(k crypto.Signer, pub crypto.PublicKey) bool {
	e, ok := k.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(pub)
}

// pkiCheck holds what certificate checks share.
type pkiCheck struct {
	a       *archive
	host    *plan.Host // nil when bundle.json is unusable
	now     time.Time
	roots   *x509.CertPool // nil: nothing to chain to
	rootsIs string         // how Problems name roots
	fpRoots *x509.CertPool // front-proxy-ca.pem from the bundle
	count   int
	chained int // certificates that could not be chain-checked
}

// checkPKI checks every certificate, key and kubeconfig the scan kept and
// returns how many certificates it checked.
func checkPKI(a *archive, m *plan.Manifest, kcs map[string]kubeconfig, trusted []*certFile, now time.Time) int {
	c := &pkiCheck{a: a, now: now}
	if m != nil {
		c.host = &m.Host
	}
	names := make([]string, 0, len(a.kept))
	for n := range a.kept {
		if hostPath(n) != "" {
			names = append(names, n)
		}
	}
	slices.Sort(names)

	files := map[string]*certFile{}
	keys := map[string]crypto.Signer{}
	for _, n := range names {
		p := hostPath(n)
		switch {
		case isKeyName(p):
			k, err := parseKey(a.kept[n])
			if err != nil {
				a.problem(n, "not a usable private key: %v", err)
				continue
			}
			keys[n] = k
		case isCertName(p):
			cs, hasKey, err := parseCerts(a.kept[n])
			switch {
			case err != nil:
				a.problem(n, "certificate does not parse: %v", err)
				continue
			case hasKey:
				a.problem(n, "holds a private key: keep keys in *-key.pem files marked secret")
			}
			if len(cs) == 0 {
				if !hasKey {
					a.problem(n, "no PEM certificate in it")
				}
				continue
			}
			files[n] = &certFile{certs: cs}
		}
	}

	c.rootsIs = "the trusted CA"
	var rootFiles []*certFile
	if trusted != nil {
		rootFiles = trusted
	} else {
		c.rootsIs = "the bundle's ca.pem"
		for _, n := range names {
			if path.Base(n) == "ca.pem" && files[n] != nil {
				rootFiles = append(rootFiles, files[n])
			}
		}
	}
	if len(rootFiles) > 0 {
		c.roots = x509.NewCertPool()
		for _, f := range rootFiles {
			for _, ca := range f.certs {
				c.roots.AddCert(ca)
			}
		}
	}
	for _, n := range names {
		if path.Base(n) == "front-proxy-ca.pem" && files[n] != nil {
			if c.fpRoots == nil {
				c.fpRoots = x509.NewCertPool()
			}
			for _, ca := range files[n].certs {
				c.fpRoots.AddCert(ca)
			}
		}
	}

	for _, n := range names {
		if f := files[n]; f != nil {
			c.checkCertFile(n, f, keys)
		}
		if path.Base(n) == "sa.key" {
			c.checkSA(n)
		}
		if kc, ok := kcs[n]; ok {
			c.checkKubeconfig(n, kc)
		}
	}
	if c.chained > 0 {
		a.problem("", "no ca.pem in the bundle and no CA given: %d certificate(s) were not chain-checked; pass the cluster CA", c.chained)
	}
	return c.count
}

// valid reports a certificate outside its validity at now.
func (c *pkiCheck) valid(at, what string, x *x509.Certificate) {
	switch {
	case c.now.Before(x.NotBefore):
		c.a.problem(at, "%snot valid until %s (checked at %s): check the build host's clock", what, x.NotBefore.UTC().Format(time.RFC3339), c.now.UTC().Format(time.RFC3339))
	case c.now.After(x.NotAfter):
		c.a.problem(at, "%sexpired on %s (checked at %s): re-issue it and rebuild", what, x.NotAfter.UTC().Format(time.RFC3339), c.now.UTC().Format(time.RFC3339))
	}
}

// chain verifies x against roots at now, clamped into x's own validity so
// an expired leaf is reported once, as expired, not again as a chain error.
func (c *pkiCheck) chain(x *x509.Certificate, inter []*x509.Certificate, roots *x509.CertPool) error {
	t := c.now
	if t.Before(x.NotBefore) {
		t = x.NotBefore
	}
	if t.After(x.NotAfter) {
		t = x.NotAfter
	}
	ip := x509.NewCertPool()
	for _, i := range inter {
		ip.AddCert(i)
	}
	_, err := x.Verify(x509.VerifyOptions{Roots: roots, Intermediates: ip, CurrentTime: t, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

// chainMsg turns a verification error into an actionable message.
func chainMsg(x *x509.Certificate, what string, err error) string {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		return fmt.Sprintf("not signed by %s (issuer %q): re-issue it from the cluster CA", what, x.Issuer.CommonName)
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return fmt.Sprintf("its chain to %s is outside its validity: the CA has expired or is not yet valid", what)
	}
	return fmt.Sprintf("does not chain to %s: %v", what, err)
}

func (c *pkiCheck) checkCertFile(n string, f *certFile, keys map[string]crypto.Signer) {
	base := path.Base(n)
	x := f.certs[0]
	c.count += len(f.certs)
	for _, y := range f.certs {
		c.valid(n, certLabel(y, y != x), y)
	}
	if base == "ca.pem" || strings.HasSuffix(base, "-ca.pem") {
		if !x.IsCA {
			c.a.problem(n, "named as a CA but not a CA certificate")
		}
		if base == "ca.pem" && c.roots != nil {
			if err := c.chain(x, nil, c.roots); err != nil {
				c.a.problem(n, "is not %s (subject %q): this bundle was built with another PKI", c.rootsIs, x.Subject.CommonName)
			}
		}
		return
	}
	if x.IsCA {
		c.a.problem(n, "a CA certificate where a leaf is expected: only ca.pem and *-ca.pem may be CAs")
	}
	c.chainLeaf(n, "", x, f.certs[1:], strings.HasPrefix(base, "front-proxy"))

	keyName := strings.TrimSuffix(n, ".pem") + "-key.pem"
	if k, ok := keys[keyName]; ok && !keyMatches(k, x.PublicKey) {
		c.a.problem(n, "does not match its private key %s: re-issue the pair", path.Base(keyName))
	}

	stem := strings.TrimSuffix(base, ".pem")
	if !hostServing[stem] || c.host == nil {
		return
	}
	if !slices.Contains(x.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		c.a.problem(n, "a serving certificate without the server auth usage: re-issue it with the server profile")
	}
	if ip, err := netip.ParseAddr(c.host.IP); err == nil && !slices.ContainsFunc(x.IPAddresses, func(a net.IP) bool {
		b, ok := netip.AddrFromSlice(a)
		return ok && b.Unmap() == ip.Unmap()
	}) {
		c.a.problem(n, "SANs lack this host's IP %s (IPs %s): re-issue it with the host's IP", c.host.IP, ipList(x))
	}
	if stem == "kubelet-server" && c.host.FQDN != "" && !slices.Contains(x.DNSNames, c.host.FQDN) {
		c.a.problem(n, "SANs lack this host's name %s (names %s): re-issue it with the host's FQDN", c.host.FQDN, strings.Join(x.DNSNames, ","))
	}
}

// chainLeaf chains a leaf to the roots; front-proxy certificates may
// instead chain to the bundle's front-proxy-ca.pem.
func (c *pkiCheck) chainLeaf(n, what string, x *x509.Certificate, inter []*x509.Certificate, frontProxy bool) {
	if c.roots == nil && !(frontProxy && c.fpRoots != nil) {
		c.chained++
		return
	}
	var err error = x509.UnknownAuthorityError{}
	if c.roots != nil {
		err = c.chain(x, inter, c.roots)
	}
	rootsIs := c.rootsIs
	if err != nil && frontProxy && c.fpRoots != nil {
		if err = c.chain(x, inter, c.fpRoots); err != nil {
			rootsIs += " or the bundle's front-proxy-ca.pem"
		}
	}
	if err != nil {
		c.a.problem(n, "%s%s", what, chainMsg(x, rootsIs, err))
	}
}

func (c *pkiCheck) checkSA(n string) {
	k, err := parseKey(c.a.kept[n])
	if err != nil {
		return // reported with the other keys
	}
	pubName := strings.TrimSuffix(n, ".key") + ".pub"
	b, ok := c.a.kept[pubName]
	if !ok {
		return
	}
	pub, err := parsePublicKey(b)
	if err != nil {
		c.a.problem(pubName, "not a PEM public key: %v", err)
		return
	}
	if !keyMatches(k, pub) {
		c.a.problem(n, "does not match %s: tokens signed with it would not verify; re-issue the pair", path.Base(pubName))
	}
}

func (c *pkiCheck) checkKubeconfig(n string, kc kubeconfig) {
	for _, set := range []struct {
		key string
		fs  []field
	}{{"certificate-authority-data", kc.ca}, {"client-certificate-data", kc.cert}, {"client-key-data", kc.key}} {
		for _, f := range set.fs {
			if f.err != nil {
				c.a.problem(n, "line %d: %s is not base64 on one line", f.line, set.key)
			}
		}
	}
	// The embedded CA must be the cluster's; if no CA is known at all, the
	// client certificate is checked against the embedded one.
	var embedded *x509.CertPool
	for _, f := range kc.ca {
		if f.err != nil {
			continue
		}
		cs, _, err := parseCerts(f.data)
		if err != nil || len(cs) == 0 {
			c.a.problem(n, "line %d: certificate-authority-data holds no certificate", f.line)
			continue
		}
		c.count++
		c.valid(n, "certificate-authority-data: ", cs[0])
		if c.roots != nil {
			if err := c.chain(cs[0], nil, c.roots); err != nil {
				c.a.problem(n, "certificate-authority-data is not %s (subject %q): rebuild the kubeconfig", c.rootsIs, cs[0].Subject.CommonName)
			}
		}
		if embedded == nil {
			embedded = x509.NewCertPool()
		}
		embedded.AddCert(cs[0])
	}
	for i, f := range kc.cert {
		if f.err != nil {
			continue
		}
		cs, _, err := parseCerts(f.data)
		if err != nil || len(cs) == 0 {
			c.a.problem(n, "line %d: client-certificate-data holds no certificate", f.line)
			continue
		}
		x := cs[0]
		c.count++
		c.valid(n, "client-certificate-data: ", x)
		if c.roots != nil {
			c.chainLeaf(n, "client-certificate-data: ", x, cs[1:], false)
		} else if embedded != nil {
			if err := c.chain(x, cs[1:], embedded); err != nil {
				c.a.problem(n, "client-certificate-data: %s", chainMsg(x, "its certificate-authority-data", err))
			}
		} else {
			c.chained++
		}
		if i < len(kc.key) && kc.key[i].err == nil {
			k, err := parseKey(kc.key[i].data)
			switch {
			case err != nil:
				c.a.problem(n, "line %d: client-key-data: %v", kc.key[i].line, err)
			case !keyMatches(k, x.PublicKey):
				c.a.problem(n, "client-certificate-data does not match client-key-data: rebuild the kubeconfig")
			}
		}
	}
}

func certLabel(x *x509.Certificate, intermediate bool) string {
	if intermediate {
		return fmt.Sprintf("intermediate %q ", x.Subject.CommonName)
	}
	return ""
}

func ipList(x *x509.Certificate) string {
	s := make([]string, len(x.IPAddresses))
	for i, ip := range x.IPAddresses {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}
