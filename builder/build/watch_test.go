package build

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubebake/kubebake/builder/verify"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestUnitWatch pins what an upgrade restarts: each seed host's units and
// the files of its bundle that restart them (plan.Unit.Watch), certificates
// and kubeconfigs included. Paths only, so the golden does not depend on the
// keys of a run. Every watched path is a file of the bundle (Validate checks
// that too, when baking).
func TestUnitWatch(t *testing.T) {
	b := newBed(t, 0)
	out := filepath.Join(b.root, "out")
	b.bake(t, filepath.Join(b.root, "state"), out)
	var got bytes.Buffer
	for _, p := range bundles(t, out) {
		m, _, err := verify.Inspect(p)
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]bool{}
		for _, f := range m.Files {
			files[f.Path] = true
		}
		got.WriteString("# " + m.Host.Name + "\n")
		for _, u := range m.Plan.Units {
			got.WriteString(u.Name + "\n")
			for _, w := range u.Watch {
				if !files[w] {
					t.Errorf("%s: %s watches %s, not a file of the bundle", m.Host.Name, u.Name, w)
				}
				got.WriteString("  " + w + "\n")
			}
		}
	}
	// The bug this fixes: a new kubelet config, certificate or binary must
	// restart the running kubelet.
	for _, want := range []string{
		"kubelet.service\n  /etc/systemd/system/kubelet.service\n  /opt/kubernetes/bin/kubelet\n  /opt/kubernetes/certs/ca.pem\n" +
			"  /opt/kubernetes/certs/kubelet-server-key.pem\n  /opt/kubernetes/certs/kubelet-server.pem\n" +
			"  /opt/kubernetes/conf/kubelet-config.yaml\n  /opt/kubernetes/conf/kubelet.kubeconfig\n",
	} {
		if !strings.Contains(got.String(), want) {
			t.Errorf("watch lists lack\n%s", want)
		}
	}
	p := filepath.Join("testdata", "watch.golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("%s differs (run go test -run TestUnitWatch -update and review the diff):\n%s", p, got.String())
	}
}
