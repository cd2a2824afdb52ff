package kubeconfig

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	in := Config{Cluster: "kubernetes", Server: "https://10.4.7.10:7443", User: "system:node:hdss7-21.host.com",
		CA:   []byte("-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"),
		Cert: []byte("cert"), Key: []byte("key")}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"apiVersion: v1\n", "kind: Config\n", "current-context: system:node:hdss7-21.host.com@kubernetes\n", "server: https://10.4.7.10:7443\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("missing %q in\n%s", want, b)
		}
	}
	out, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if out.Server != in.Server || out.User != in.User || !bytes.Equal(out.CA, in.CA) || !bytes.Equal(out.Key, in.Key) || !bytes.Equal(out.Cert, in.Cert) {
		t.Fatalf("round trip: got %+v", out)
	}
	again, _ := Marshal(in)
	if !bytes.Equal(b, again) {
		t.Fatal("not deterministic")
	}
}

func TestRequiredFields(t *testing.T) {
	for name, c := range map[string]Config{
		"no server": {Cluster: "k", User: "u", CA: []byte("a"), Cert: []byte("b"), Key: []byte("c")},
		"no key":    {Cluster: "k", Server: "https://x", User: "u", CA: []byte("a"), Cert: []byte("b")},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Marshal(c); err == nil {
				t.Fatal("want error")
			}
		})
	}
}

// TestKubectlReads checks the output against the real kubectl: it is the
// reader that matters.
func TestKubectlReads(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kubectl not on PATH; .ci/run installs it (Debian's kubernetes-client)")
		}
		t.Skip("kubectl not on PATH (apt-get install kubernetes-client)")
	}
	b, err := Marshal(Config{Cluster: "kubernetes", Server: "https://10.4.7.10:7443", User: "admin", CA: []byte("x"), Cert: []byte("y"), Key: []byte("z")})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "kc")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kubectl, "--kubeconfig", p, "config", "view", "-o", "jsonpath={.clusters[0].cluster.server}").CombinedOutput()
	if err != nil || string(out) != "https://10.4.7.10:7443" {
		t.Fatalf("kubectl config view: %v: %s", err, out)
	}
}
