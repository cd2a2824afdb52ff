package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the static firstboot small and the contract one-way:
// firstboot never imports the builder, cfssl, registry code or the
// Kubernetes API modules (it drives kubectl; strict decoding is the builder's).
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/kubebake/kubebake/builder", "github.com/cloudflare/cfssl", "github.com/google/go-containerregistry", "k8s.io/", "sigs.k8s.io/"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("firstboot depends on %s", dep)
			}
		}
	}
	if !strings.Contains(string(out), "github.com/kubebake/kubebake/firstboot/plan") {
		t.Fatal("go list -deps did not list firstboot/plan; the check saw nothing")
	}
}
