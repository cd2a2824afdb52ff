package pki

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLedger(t *testing.T) {
	dir := t.TempDir()
	issuedAt := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := seedConfig("ecdsa")
	cfg.Now = func() time.Time { return issuedAt }
	reqs := Matrix(seedCluster())
	mustIssue(t, dir, cfg, reqs)

	now := issuedAt.Add(365 * 24 * time.Hour)
	entries, err := Ledger(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(entries), 2+len(reqs); got != want {
		t.Fatalf("%d entries, want %d", got, want)
	}
	if entries[0].Name != CA || entries[1].Name != FrontProxyCA || entries[0].Profile != "ca" {
		t.Errorf("CAs not first: %s, %s", entries[0].Name, entries[1].Name)
	}
	byName := map[string]LedgerEntry{}
	for _, e := range entries {
		byName[e.Name] = e
	}
	e := byName["etcd-server-hdss7-12"]
	wantNotAfter := issuedAt.Add(-5 * time.Minute).Add(175200 * time.Hour)
	if e.File != "etcd-server-hdss7-12.pem" || e.CA != CA || e.Profile != ProfilePeer || e.CN != "etcd-server" ||
		!slices.Equal(e.SANs, []string{"10.4.7.12", "127.0.0.1", "hdss7-12", "hdss7-12.host.com", "localhost"}) ||
		!e.NotAfter.Equal(wantNotAfter) || !slices.Equal(e.Receivers, []string{"hdss7-12"}) || e.Purpose == "" {
		t.Errorf("etcd-server-hdss7-12 entry = %+v", e)
	}
	if want := int(wantNotAfter.Sub(now) / (24 * time.Hour)); e.DaysLeft != want {
		t.Errorf("days left = %d, want %d", e.DaysLeft, want)
	}
	if e := byName["admin"]; !slices.Equal(e.O, []string{"system:masters"}) ||
		!slices.Equal(e.Receivers, []string{"hdss7-200", "hdss7-21", "hdss7-22"}) {
		t.Errorf("admin entry = %+v", e)
	}
	if e := byName["sa"]; e.File != "sa.pub" || e.Profile != ProfileKeyPair || !e.NotAfter.IsZero() {
		t.Errorf("sa entry = %+v", e)
	}

	var buf bytes.Buffer
	if err := WriteLedger(&buf, entries); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(lines) != 1+len(entries) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), 1+len(entries), buf.String())
	}
	col := strings.Index(lines[0], "NOT AFTER")
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "sa.pub") {
			continue
		}
		if !strings.HasPrefix(l[col:], "2045-") && !strings.HasPrefix(l[col:], "2046-") {
			t.Errorf("NOT AFTER column not aligned in %q", l)
		}
	}
	if !strings.Contains(buf.String(), "etcd-server-hdss7-12.pem") || strings.Contains(buf.String(), "PRIVATE") {
		t.Errorf("ledger:\n%s", buf.String())
	}
	t.Logf("ledger:\n%s", buf.String())
}

func TestLedgerEmpty(t *testing.T) {
	entries, err := Ledger(t.TempDir(), time.Now())
	if err != nil || len(entries) != 0 {
		t.Fatalf("entries %v, err %v", entries, err)
	}
}
