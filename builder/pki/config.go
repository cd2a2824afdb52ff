package pki

import (
	"fmt"
	"net"
	"sort"
	"strings"
	"time"
)

// Names of the two certificate authorities kept in the state directory.
const (
	CA           = "ca"
	FrontProxyCA = "front-proxy-ca"
)

// Signing profiles, as in the seed's ca-config.json.
const (
	ProfileServer = "server" // signing, key encipherment, server auth
	ProfileClient = "client" // signing, key encipherment, client auth
	ProfilePeer   = "peer"   // signing, key encipherment, server auth, client auth
	// ProfileKeyPair asks for a bare key pair (<Name>.key, <Name>.pub), no
	// certificate and no CA: the service-account signing key.
	ProfileKeyPair = "keypair"
)

// ServiceAccount is the name of the service-account key pair in Matrix.
const ServiceAccount = "sa"

// Defaults applied to zero fields of Config.
const (
	DefaultAlgo        = "rsa"
	DefaultExpiry      = 175200 * time.Hour // the seed's 20 years
	DefaultRenewBefore = 30 * 24 * time.Hour
)

// Subject is an X.509 subject as cfssl's csr "names" spell it.
type Subject struct {
	CN, C, ST, L, O, OU string
}

// SeedSubject is the seed's CA subject (ca-csr.json).
var SeedSubject = Subject{CN: "zoneyet", C: "CN", ST: "henan", O: "zhengzhou", OU: "zoneyet"}

// Config holds what every certificate shares.
type Config struct {
	// Algo is "rsa" or "ecdsa". Default "rsa".
	Algo string
	// Size is the RSA modulus (2048..8192) or the ECDSA curve (256, 384,
	// 521). Default 2048 for rsa, 256 for ecdsa.
	Size int
	// Expiry is the validity of CAs and certificates. Default 175200h.
	Expiry time.Duration
	// RenewBefore re-issues a certificate when not-after minus now is less
	// than this. Default 720h (30 days).
	RenewBefore time.Duration
	// Subject is the CA subject; CN is required. front-proxy-ca uses it
	// with CN "front-proxy-ca". Leaf certificates take C, ST and L from it
	// and their own CN and O.
	Subject Subject
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() (Config, error) {
	if c.Algo == "" {
		c.Algo = DefaultAlgo
	}
	switch c.Algo {
	case "rsa":
		if c.Size == 0 {
			c.Size = 2048
		}
		if c.Size < 2048 || c.Size > 8192 {
			return c, fmt.Errorf("rsa size %d: want 2048..8192: %w", c.Size, ErrInvalidConfig)
		}
	case "ecdsa":
		if c.Size == 0 {
			c.Size = 256
		}
		if c.Size != 256 && c.Size != 384 && c.Size != 521 {
			return c, fmt.Errorf("ecdsa size %d: want 256, 384 or 521: %w", c.Size, ErrInvalidConfig)
		}
	default:
		return c, fmt.Errorf("algo %q: want rsa or ecdsa: %w", c.Algo, ErrInvalidConfig)
	}
	if c.Expiry == 0 {
		c.Expiry = DefaultExpiry
	}
	if c.Expiry < time.Hour {
		return c, fmt.Errorf("expiry %s: want at least 1h: %w", c.Expiry, ErrInvalidConfig)
	}
	if c.RenewBefore == 0 {
		c.RenewBefore = DefaultRenewBefore
	}
	if c.RenewBefore < 0 || c.RenewBefore >= c.Expiry {
		return c, fmt.Errorf("renew-before %s: want between 0 and expiry %s: %w", c.RenewBefore, c.Expiry, ErrInvalidConfig)
	}
	if c.Subject.CN == "" {
		return c, fmt.Errorf("CA subject: CN is empty: %w", ErrInvalidConfig)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Request is one certificate (or key pair) to keep in the state directory.
type Request struct {
	// Name is the state file base name: <Name>.pem and <Name>-key.pem, or
	// <Name>.key and <Name>.pub for ProfileKeyPair.
	Name string
	// CA is the issuer: CA or FrontProxyCA. Empty for ProfileKeyPair.
	CA string
	// Profile is ProfileServer, ProfileClient, ProfilePeer or ProfileKeyPair.
	Profile string
	// CN is the subject common name (required for certificates).
	CN string
	// O lists subject organisations (Kubernetes groups).
	O []string
	// Hosts are the SANs: IP addresses and DNS names.
	Hosts []string
	// Receivers are the hosts that get this certificate; ledger only.
	Receivers []string
	// Purpose is a human description; ledger only.
	Purpose string
}

func isCA(name string) bool { return name == CA || name == FrontProxyCA }

func validName(name string) bool {
	if name == "" || strings.HasPrefix(name, ".") || len(name) > 200 {
		return false
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '-' || r == '_' || r == '.':
		default:
			return false
		}
	}
	return true
}

// validate checks reqs and returns them normalised (sorted, de-duplicated
// hosts, organisations and receivers; IPs in canonical form).
func validate(reqs []Request) ([]Request, error) {
	seen := map[string]bool{}
	out := make([]Request, 0, len(reqs))
	for i, r := range reqs {
		bad := func(format string, a ...any) error {
			return fmt.Errorf("request %d (%s): %s: %w", i, r.Name, fmt.Sprintf(format, a...), ErrInvalidRequest)
		}
		if !validName(r.Name) {
			return nil, bad("name must be letters, digits, '-', '_' or '.'")
		}
		if isCA(r.Name) {
			return nil, bad("name is reserved for a CA")
		}
		// Both name spaces share the directory: "x" (cert) owns x.pem,
		// x-key.pem and x.json; "x" (key pair) owns x.key, x.pub, x.json.
		if seen[r.Name] {
			return nil, bad("duplicate name")
		}
		seen[r.Name] = true
		switch r.Profile {
		case ProfileServer, ProfileClient, ProfilePeer:
			if !isCA(r.CA) {
				return nil, bad("CA %q: want %q or %q", r.CA, CA, FrontProxyCA)
			}
			if r.CN == "" {
				return nil, bad("CN is empty")
			}
		case ProfileKeyPair:
			if r.CA != "" || r.CN != "" || len(r.O) > 0 || len(r.Hosts) > 0 {
				return nil, bad("a key pair has no CA, CN, O or hosts")
			}
		default:
			return nil, bad("profile %q: want server, client, peer or keypair", r.Profile)
		}
		hosts := make([]string, 0, len(r.Hosts))
		for _, h := range r.Hosts {
			if ip := net.ParseIP(h); ip != nil {
				hosts = append(hosts, ip.String()) // the form x509 gives back
				continue
			}
			if h == "" || strings.ContainsAny(h, " /:@") {
				return nil, bad("host %q is neither an IP nor a DNS name", h)
			}
			hosts = append(hosts, h)
		}
		r.Hosts = sortedSet(hosts)
		r.Receivers = sortedSet(r.Receivers)
		r.O = sortedSet(r.O)
		out = append(out, r)
	}
	// x and x-key would collide: x-key.pem is x's key file.
	for name := range seen {
		if strings.HasSuffix(name, "-key") && seen[strings.TrimSuffix(name, "-key")] {
			return nil, fmt.Errorf("request %s: collides with the key file of %s: %w", name, strings.TrimSuffix(name, "-key"), ErrInvalidRequest)
		}
	}
	return out, nil
}

func sortedSet(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := append([]string(nil), in...)
	sort.Strings(out)
	j := 0
	for i, s := range out {
		if i > 0 && s == out[j-1] {
			continue
		}
		out[j] = s
		j++
	}
	return out[:j]
}

// formatDuration prints whole hours the way cfssl configs do ("175200h").
func formatDuration(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}
