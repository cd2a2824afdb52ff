package spec

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse: no input may panic, and every entry must carry a position.
func FuzzParse(f *testing.F) {
	if data, err := os.ReadFile(realSpec); err == nil {
		f.Add(data)
	}
	f.Add([]byte(baseSpec))
	f.Add([]byte("hosts: [{name: a, ip: 1.2.3.4, roles: [node], podSubnet: 10.0.0.0/8}]\ncluster: {podNetwork: 10.0.0.0/8}"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("cluster:\n  serviceNetwork: 0.0.0.0/0\n  nodeNetwork: 255.255.255.255/32\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, r, err := Parse("f.yaml", data)
		if err != nil {
			t.Fatalf("Parse returned an I/O error: %v", err)
		}
		for _, e := range r.Entries {
			if e.Pos.File != "f.yaml" {
				t.Fatalf("entry without file: %s", e)
			}
			if !strings.HasPrefix(e.String(), "f.yaml") {
				t.Fatalf("bad rendering: %s", e)
			}
		}
		if s != nil {
			_ = s.Masters()
			_ = s.Pos("hosts[0].ip")
			Validate(s) // again, on the defaulted spec
		}
	})
}
