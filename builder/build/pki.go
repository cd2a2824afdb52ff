package build

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/renameio/v2"

	"github.com/kubebake/kubebake/builder/pki"
	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// pkiInputs maps the spec onto the PKI's own types.
func pkiInputs(s *spec.Spec) (pki.Config, pki.Cluster, error) {
	expiry, err := time.ParseDuration(s.PKI.Expiry)
	if err != nil {
		return pki.Config{}, pki.Cluster{}, fmt.Errorf("pki.expiry: %w", err)
	}
	var renew time.Duration
	if s.PKI.RenewBefore != "" {
		if renew, err = time.ParseDuration(s.PKI.RenewBefore); err != nil {
			return pki.Config{}, pki.Cluster{}, fmt.Errorf("pki.renewBefore: %w", err)
		}
	}
	sub := s.PKI.Subject
	cfg := pki.Config{Algo: s.PKI.Algo, Size: s.PKI.Size, Expiry: expiry, RenewBefore: renew,
		Subject: pki.Subject{CN: sub.CN, C: sub.C, ST: sub.ST, L: sub.L, O: sub.O, OU: sub.OU}}
	c := pki.Cluster{
		Domain: s.Cluster.ClusterDomain, ServiceDomain: s.Cluster.ServiceDomain, HostDomain: s.Cluster.HostDomain,
		KubernetesServiceIP: s.Cluster.KubernetesServiceIP, VIP: s.Cluster.VIP,
	}
	for _, h := range s.Hosts {
		m := pki.Member{Name: h.Name, FQDN: s.FQDN(h), IP: h.IP}
		for _, r := range []struct {
			role string
			to   *[]pki.Member
		}{{plan.RoleLB, &c.LBHosts}, {plan.RoleEtcd, &c.EtcdHosts}, {plan.RoleMaster, &c.Masters}, {plan.RoleNode, &c.Nodes}, {plan.RoleOps, &c.Ops}} {
			if h.HasRole(r.role) {
				*r.to = append(*r.to, m)
			}
		}
	}
	return cfg, c, nil
}

// encryptionConfig returns the apiserver's EncryptionConfiguration for
// Secrets, with a key generated once and kept in state/secrets. secretbox
// (XSalsa20-Poly1305) is the strongest local provider; identity stays last
// so Secrets written before encryption was on can still be read.
func encryptionConfig(stateDir string) ([]byte, error) {
	dir := filepath.Join(stateDir, "secrets")
	p := filepath.Join(dir, "encryption-key")
	key, err := os.ReadFile(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		key = []byte(base64.StdEncoding.EncodeToString(raw) + "\n")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := renameio.WriteFile(p, key, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", p, err)
		}
	case err != nil:
		return nil, err
	}
	k := strings.TrimSpace(string(key))
	if raw, err := base64.StdEncoding.DecodeString(k); err != nil || len(raw) != 32 {
		return nil, fmt.Errorf("%s: want 32 random bytes, base64 encoded (delete it to generate a new key — Secrets encrypted with the old one become unreadable)", p)
	}
	return []byte(`apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
    providers:
      - secretbox:
          keys:
            - name: key1
              secret: ` + k + `
      - identity: {}
`), nil
}
