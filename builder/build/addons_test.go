package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubebake/kubebake/builder/render"
	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/builder/verify"
	"github.com/kubebake/kubebake/firstboot/plan"
	"github.com/kubebake/kubebake/internal/bundletest"
)

// TestAddonsBundle: the first master's bundle carries the add-on
// manifests, kubectl, an admin kubeconfig for the local apiserver and the
// add-ons step; no other bundle does.
func TestAddonsBundle(t *testing.T) {
	b := newBed(t, 0)
	out := filepath.Join(b.root, "out")
	b.bake(t, filepath.Join(b.root, "state"), out)
	for _, host := range []string{"hdss7-21", "hdss7-22"} {
		m, _, err := verify.Inspect(filepath.Join(out, host+".tar.gz"))
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]plan.File{}
		var manifests []string
		for _, f := range m.Files {
			files[f.Path] = f
			if filepath.Dir(f.Path) == render.AddonsDir {
				manifests = append(manifests, filepath.Base(f.Path))
				if f.Mode != "0644" || f.Secret || f.Role != plan.RoleMaster {
					t.Errorf("%s: %s mode %s secret %t role %s", host, f.Path, f.Mode, f.Secret, f.Role)
				}
			}
		}
		if host == "hdss7-22" {
			if len(manifests) != 0 || m.Plan.Addons != nil {
				t.Errorf("hdss7-22 is not the first master: %v, %+v", manifests, m.Plan.Addons)
			}
			continue
		}
		if got := strings.Join(manifests, " "); got != "00-namespaces.yaml 10-rbac.yaml 20-coredns.yaml 30-traefik.yaml 40-dashboard.yaml" {
			t.Errorf("manifests: %s", got)
		}
		a := m.Plan.Addons
		if a == nil || a.Dir != render.AddonsDir || a.Kubectl != render.KubectlBin {
			t.Fatalf("plan.addons %+v", a)
		}
		if _, ok := files[a.Kubectl]; !ok {
			t.Errorf("kubectl %s not in the bundle", a.Kubectl)
		}
		kc, ok := files[a.Kubeconfig]
		if !ok || !kc.Secret || kc.Mode != "0600" {
			t.Fatalf("kubeconfig %s: %+v", a.Kubeconfig, kc)
		}
		body := string(bundletest.File(t, filepath.Join(out, host+".tar.gz"), plan.SourceFor(a.Kubeconfig)))
		if !strings.Contains(body, "server: https://127.0.0.1:6443") || !strings.Contains(body, "client-key-data:") {
			t.Errorf("add-ons kubeconfig does not target the local apiserver as admin:\n%s", firstLines(body, 8))
		}
	}
}

func firstLines(s string, n int) string {
	l := strings.SplitN(s, "\n", n+1)
	return strings.Join(l[:min(n, len(l))], "\n")
}

// TestAddonsPullSecret: a private registry gets a pull Secret from the
// login in the environment, as a secret file; without the login the bake
// fails naming the spec field and the variables, never a value.
func TestAddonsPullSecret(t *testing.T) {
	const user, pass = "robot$kubebake+addons", "s3cret-Pa55"
	env := func(vars map[string]string) Option {
		return WithLookupEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	}
	cred := spec.Credential{Registry: "harbor.od.com", UsernameEnv: "KB_TEST_HARBOR_USER", PasswordEnv: "KB_TEST_HARBOR_PASS"}
	for _, tc := range []struct {
		name  string
		creds []spec.Credential
		vars  map[string]string
		want  string // error substring; "" for success
	}{
		{"no credentials entry", nil, nil, "credentials has no entry for it"},
		{"variables unset", []spec.Credential{cred}, map[string]string{"KB_TEST_HARBOR_USER": user}, "set KB_TEST_HARBOR_USER and KB_TEST_HARBOR_PASS in the environment (credentials[0].usernameEnv"},
		{"login set", []spec.Credential{cred}, map[string]string{"KB_TEST_HARBOR_USER": user, "KB_TEST_HARBOR_PASS": pass}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBed(t, 0)
			b.spec.Registry.Private = true
			b.spec.Credentials = tc.creds
			out, state := filepath.Join(b.root, "out"), filepath.Join(b.root, "state")
			fb, err := os.ReadFile(firstbootBin)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Bake(context.Background(), b.spec, WithArtifactsDir(b.artifacts), WithStateDir(state),
				WithStoreDir(filepath.Join(state, "store")), WithOutDir(out), WithFirstboot(fb), env(tc.vars))
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "registry.private") {
					t.Fatalf("err = %v, want %q", err, tc.want)
				}
				if strings.Contains(err.Error(), user) {
					t.Errorf("error shows the username: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			bundle := filepath.Join(out, "hdss7-21.tar.gz")
			m, _, err := verify.Inspect(bundle)
			if err != nil {
				t.Fatal(err)
			}
			var found bool
			for _, f := range m.Files {
				if f.Path == render.PullSecretFile {
					found = true
					if !f.Secret || f.Mode != "0600" {
						t.Errorf("pull secret: secret %t mode %s", f.Secret, f.Mode)
					}
				}
			}
			if !found {
				t.Fatal("no pull secret in hdss7-21's bundle")
			}
			if mj := bundletest.File(t, bundle, plan.ManifestName); strings.Contains(string(mj), pass) {
				t.Error("bundle.json holds the password")
			}
			sec := string(bundletest.File(t, bundle, plan.SourceFor(render.PullSecretFile)))
			if !strings.Contains(sec, "kubernetes.io/dockerconfigjson") || strings.Contains(sec, pass) {
				t.Errorf("pull secret: want base64 data, no plain password:\n%s", firstLines(sec, 12))
			}
			coredns := string(bundletest.File(t, bundle, plan.SourceFor(render.AddonsDir+"/20-coredns.yaml")))
			if !strings.Contains(coredns, "imagePullSecrets:\n        - name: harbor") {
				t.Error("CoreDNS does not pull with the secret")
			}
		})
	}
}
