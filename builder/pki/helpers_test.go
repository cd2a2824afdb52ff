package pki

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// seedCluster is the seed's five hosts.
func seedCluster() Cluster {
	m := func(n, ip string) Member { return Member{Name: n, FQDN: n + ".host.com", IP: ip} }
	h11, h12 := m("hdss7-11", "10.4.7.11"), m("hdss7-12", "10.4.7.12")
	h21, h22 := m("hdss7-21", "10.4.7.21"), m("hdss7-22", "10.4.7.22")
	h200 := m("hdss7-200", "10.4.7.200")
	return Cluster{
		Domain: "cluster.local", ServiceDomain: "od.com", HostDomain: "host.com",
		KubernetesServiceIP: "192.168.0.1", VIP: "10.4.7.10",
		LBHosts:   []Member{h11, h12},
		EtcdHosts: []Member{h12, h21, h22},
		Masters:   []Member{h21, h22},
		Nodes:     []Member{h21, h22},
		Ops:       []Member{h200},
	}
}

func seedConfig(algo string) Config {
	return Config{Algo: algo, Expiry: 175200 * time.Hour, Subject: SeedSubject}
}

func mustIssue(t testing.TB, dir string, cfg Config, reqs []Request, opts ...Option) *Set {
	t.Helper()
	set, err := Issue(context.Background(), dir, cfg, reqs, opts...)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	return set
}

// snapshot reads every file in dir.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// changed lists the files whose content differs between two snapshots.
func changed(a, b map[string]string) []string {
	var out []string
	for k, v := range b {
		if a[k] != v {
			out = append(out, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, k)
		}
	}
	return sortedSet(out)
}

func findReq(t testing.TB, reqs []Request, name string) *Request {
	t.Helper()
	for i := range reqs {
		if reqs[i].Name == name {
			return &reqs[i]
		}
	}
	t.Fatalf("no request %s", name)
	return nil
}

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
