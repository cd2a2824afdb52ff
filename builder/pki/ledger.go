package pki

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cloudflare/cfssl/helpers"
)

// LedgerEntry describes one CA, certificate or key pair in a state
// directory: which file, who it is for and when it expires.
type LedgerEntry struct {
	Name      string
	File      string // cert.pem, or <name>.pub for a key pair
	CA        string // issuer name; empty for a CA and a key pair
	Profile   string // server, client, peer, keypair; "ca" for a CA
	CN        string
	O         []string
	SANs      []string
	NotAfter  time.Time // zero for a key pair
	DaysLeft  int       // whole days from now to NotAfter; 0 for a key pair
	Receivers []string
	Purpose   string
}

// Ledger reads every record in dir (as Issue wrote them) and returns one
// entry per CA, certificate and key pair: the CAs first, then by name. The
// facts come from the certificates themselves; receivers and purpose from
// the records.
func Ledger(dir string, now time.Time) ([]LedgerEntry, error) {
	recs, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []LedgerEntry
	for _, p := range recs {
		name := strings.TrimSuffix(filepath.Base(p), ".json")
		rec, err := readRecord(p)
		if err != nil {
			return nil, fmt.Errorf("ledger %s: %w", name, err)
		}
		e := LedgerEntry{Name: name, CA: rec.Signer, Profile: rec.Profile,
			Receivers: rec.Receivers, Purpose: rec.Purpose}
		if rec.Profile == ProfileKeyPair {
			e.File = name + ".pub"
			if _, err := os.Stat(filepath.Join(dir, e.File)); err != nil {
				return nil, fmt.Errorf("ledger %s: %w", name, err)
			}
			out = append(out, e)
			continue
		}
		e.File = name + ".pem"
		b, err := os.ReadFile(filepath.Join(dir, e.File))
		if err != nil {
			return nil, fmt.Errorf("ledger %s: %w", name, err)
		}
		c, err := helpers.ParseCertificatePEM(b)
		if err != nil {
			return nil, fmt.Errorf("ledger %s: %s: %w", name, e.File, err)
		}
		if rec.CA != nil {
			e.Profile = "ca"
			if e.Purpose == "" {
				e.Purpose = caPurpose(name)
			}
		}
		e.CN = c.Subject.CommonName
		e.O = c.Subject.Organization
		e.SANs = certHosts(c)
		e.NotAfter = c.NotAfter.UTC()
		e.DaysLeft = int(c.NotAfter.Sub(now) / (24 * time.Hour))
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		ci, cj := out[i].Profile == "ca", out[j].Profile == "ca"
		if ci != cj {
			return ci
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func caPurpose(name string) string {
	switch name {
	case CA:
		return "cluster root CA (etcd, apiserver, kubelets, clients, edge TLS)"
	case FrontProxyCA:
		return "aggregation-layer front-proxy CA"
	}
	return "CA"
}

// WriteLedger prints entries as an aligned table, SANs last since they are
// the longest column.
func WriteLedger(w io.Writer, entries []LedgerEntry) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tCA\tPROFILE\tCN\tO\tNOT AFTER\tDAYS\tRECEIVERS\tPURPOSE\tSANS")
	for _, e := range entries {
		notAfter, days := "-", "-"
		if !e.NotAfter.IsZero() {
			notAfter = e.NotAfter.Format("2006-01-02")
			days = fmt.Sprint(e.DaysLeft)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			e.File, dash(e.CA), e.Profile, dash(e.CN), list(e.O),
			notAfter, days, list(e.Receivers), dash(e.Purpose), list(e.SANs))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func list(s []string) string { return dash(strings.Join(s, ",")) }
