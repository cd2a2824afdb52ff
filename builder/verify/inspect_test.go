package verify

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubebake/kubebake/firstboot/plan"
)

func TestInspect(t *testing.T) {
	p := newPKI(t)
	f := p.master()
	m, items, err := Inspect(f.write(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	if m.Host.Name != "hdss7-21" || len(items) != 22 {
		t.Fatalf("host %s, %d items", m.Host.Name, len(items))
	}
	got := map[string]Item{}
	for _, it := range items {
		got[it.Path] = it
	}
	for _, want := range []Item{
		{Role: RoleBundle, Path: plan.FirstbootName, Mode: "0755", Kind: KindBinary},
		{Role: RoleBundle, Path: plan.SumsName, Mode: "0644", Kind: KindConfig},
		{Role: RoleCommon, Path: "/opt/kubernetes/certs/ca.pem", Mode: "0644", Kind: KindCert},
		{Role: RoleCommon, Path: "/opt/kubernetes/certs/ca-key.pem", Mode: "0600", Kind: KindKey, Secret: true},
		{Role: RoleCommon, Path: "/root/.kube/config", Mode: "0600", Kind: KindKubeconfig, Secret: true},
		{Role: plan.RoleEtcd, Path: "/opt/etcd/certs/ca.pem", Mode: "0644", Kind: KindCert},
		{Role: plan.RoleEtcd, Path: "/opt/etcd/certs/etcd-server-key.pem", Mode: "0600", Kind: KindKey, Secret: true},
		{Role: plan.RoleMaster, Path: "/opt/kubernetes/certs/apiserver.pem", Mode: "0644", Kind: KindCert},
		{Role: plan.RoleMaster, Path: "/opt/kubernetes/certs/front-proxy-client-key.pem", Mode: "0600", Kind: KindKey, Secret: true},
		{Role: plan.RoleMaster, Path: "/opt/kubernetes/certs/sa.pub", Mode: "0644", Kind: KindKey},
		{Role: plan.RoleMaster, Path: "/opt/kubernetes/conf/encryption-config.yaml", Mode: "0600", Kind: KindConfig, Secret: true},
		{Role: plan.RoleNode, Path: "/opt/kubernetes/certs/kubelet-server.pem", Mode: "0644", Kind: KindCert},
		{Role: plan.RoleNode, Path: "/opt/kubernetes/conf/kube-proxy.kubeconfig", Mode: "0600", Kind: KindKubeconfig, Secret: true},
		{Role: plan.RoleNode, Path: "/opt/kubernetes/server/bin/kubelet", Mode: "0755", Kind: KindBinary, Size: 7 * 4096},
		{Role: plan.RoleNode, Path: "/etc/systemd/system/kubelet.service", Mode: "0644", Kind: KindUnit, Size: 27},
	} {
		it, ok := got[want.Path]
		if !ok {
			t.Errorf("no item %s", want.Path)
			continue
		}
		if want.Size == 0 {
			want.Size = it.Size
		}
		if it != want {
			t.Errorf("got %+v\nwant %+v", it, want)
		}
	}

	var b bytes.Buffer
	if err := WriteInspect(&b, m, items); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	// Groups appear in role order, each with a total.
	last := -1
	for _, g := range []string{"bundle total: 3 files", "common total: 3 files", "etcd total: 3 files", "master total: 8 files", "node total: 5 files", "total: 22 files, 9 secret"} {
		i := strings.Index(out, g)
		if i < 0 || i < last {
			t.Errorf("%q missing or out of order in:\n%s", g, out)
		}
		last = i
	}
	for _, s := range []string{"host hdss7-21 (10.4.7.21)  roles etcd,master,node", "28.0 KiB", "secret"} {
		if !strings.Contains(out, s) {
			t.Errorf("%q missing in:\n%s", s, out)
		}
	}
	if strings.Contains(out, "PRIVATE KEY") {
		t.Error("inspect output shows key material")
	}
	t.Logf("\n%s", out)
}

func TestInspectErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.tar.gz")
	if err := os.WriteFile(bad, []byte("not gzip"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Inspect(bad); !errors.Is(err, ErrCorrupt) {
		t.Errorf("not gzip: got %v", err)
	}
	f := newPKI(t).dns()
	f.manifest = func(m *plan.Manifest) { m.Format = "v0" }
	if _, _, err := Inspect(f.write(t, dir)); !errors.Is(err, plan.ErrFormat) {
		t.Errorf("bad format: got %v", err)
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 40 << 20: "40.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestInspectTakesManifestRoles: the builder knows why a file is there;
// its role in bundle.json wins over the path rules.
func TestInspectTakesManifestRoles(t *testing.T) {
	f := newPKI(t).master()
	f.manifest = func(m *plan.Manifest) {
		for i := range m.Files {
			if m.Files[i].Path == "/opt/kubernetes/certs/ca.pem" {
				m.Files[i].Role = plan.RoleMaster
			}
		}
	}
	_, items, err := Inspect(f.write(t, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range items {
		if it.Path == "/opt/kubernetes/certs/ca.pem" && it.Role != plan.RoleMaster {
			t.Fatalf("ca.pem role %q, want the manifest's %q", it.Role, plan.RoleMaster)
		}
		if it.Path == "/opt/kubernetes/certs/apiserver.pem" && it.Role != plan.RoleMaster {
			t.Fatalf("apiserver.pem role %q (path rule) changed", it.Role)
		}
	}
}
