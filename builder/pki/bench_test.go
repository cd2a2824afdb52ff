package pki

import (
	"context"
	"fmt"
	"testing"
)

func benchIssue(b *testing.B, c Cluster, algo string) {
	reqs := Matrix(c)
	cfg := seedConfig(algo)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		b.StartTimer()
		if _, err := Issue(context.Background(), dir, cfg, reqs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(reqs)+2), "certs/op")
}

func BenchmarkIssueSeed(b *testing.B) {
	for _, algo := range []string{"rsa", "ecdsa"} {
		b.Run(algo, func(b *testing.B) { benchIssue(b, seedCluster(), algo) })
	}
}

func BenchmarkIssue1000Nodes(b *testing.B) {
	c := seedCluster()
	c.Nodes = nil
	for i := 0; i < 1000; i++ {
		name := fmt.Sprintf("node-%04d", i)
		c.Nodes = append(c.Nodes, Member{Name: name, FQDN: name + ".host.com", IP: fmt.Sprintf("10.%d.%d.%d", 4+i/65536, i/256%256, i%256)})
	}
	for _, algo := range []string{"ecdsa", "rsa"} {
		b.Run(algo, func(b *testing.B) { benchIssue(b, c, algo) })
	}
}

func BenchmarkReuseSeed(b *testing.B) {
	dir := b.TempDir()
	cfg := seedConfig("rsa")
	reqs := Matrix(seedCluster())
	mustIssue(b, dir, cfg, reqs)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if set := mustIssue(b, dir, cfg, reqs); len(set.Issued()) != 0 {
			b.Fatal("reissued")
		}
	}
}
