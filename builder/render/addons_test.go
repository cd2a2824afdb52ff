package render

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"

	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// addonScheme holds every kind the add-on manifests may use.
func addonScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	sc := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(sc); err != nil {
			t.Fatal(err)
		}
	}
	return sc
}

// splitDocs splits a multi-document YAML file, dropping documents that
// hold only comments.
func splitDocs(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(b, []byte("\n---\n")) {
		if hasObject(d) {
			docs = append(docs, d)
		}
	}
	return docs
}

// decodeObjects decodes every object of a manifest into its k8s.io/api
// type with apimachinery's strict serializer (case-sensitive field names;
// unknown and duplicate fields are errors), as the apiserver decodes.
func decodeObjects(sc *runtime.Scheme, b []byte) ([]runtime.Object, error) {
	ser := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, sc, sc, kjson.SerializerOptions{Yaml: true, Strict: true})
	var objs []runtime.Object
	for i, doc := range splitDocs(b) {
		obj, gvk, err := ser.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d (%v): %w", i, gvk, err)
		}
		objs = append(objs, obj)
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("no object")
	}
	return objs, nil
}

func decodeStrict(t *testing.T, sc *runtime.Scheme, name string, b []byte) []runtime.Object {
	t.Helper()
	objs, err := decodeObjects(sc, b)
	if err != nil {
		t.Errorf("%s: %v", name, err)
	}
	return objs
}

// TestDecodeStrictCatches: the strict decoder the tests rely on refuses
// what the apiserver would drop or misread.
func TestDecodeStrictCatches(t *testing.T) {
	sc := addonScheme(t)
	for name, doc := range map[string]string{
		"unknown field":   "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\nspec:\n  clusterIp: 1.2.3.4\n",
		"duplicate field": "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  name: b\n",
		"unknown kind":    "apiVersion: v1\nkind: Servic\nmetadata:\n  name: a\n",
		"wrong type":      "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\nspec:\n  replicas: two\n",
	} {
		if _, err := decodeObjects(sc, []byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func privateSpec() *spec.Spec {
	s := seedSpec()
	s.Registry.Private = true
	return s
}

func TestAddonsDecodeStrict(t *testing.T) {
	sc := addonScheme(t)
	for _, tc := range []struct {
		name string
		s    *spec.Spec
	}{{"public", seedSpec()}, {"private", privateSpec()}} {
		t.Run(tc.name, func(t *testing.T) {
			files, err := Addons(tc.s)
			if err != nil {
				t.Fatal(err)
			}
			if tc.s.Registry.Private {
				f, err := PullSecret(tc.s, "robot$kubebake", "s3cret")
				if err != nil {
					t.Fatal(err)
				}
				files = append(files, f)
			}
			kinds := map[string]int{}
			for _, f := range files {
				for _, obj := range decodeStrict(t, sc, f.Path, f.Content) {
					gvk, _, err := sc.ObjectKinds(obj)
					if err != nil {
						t.Fatal(err)
					}
					kinds[gvk[0].Kind]++
					if spec := podSpec(obj); spec != nil {
						checkPodSpec(t, f.Path, tc.s, spec)
					}
				}
			}
			for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
				"ConfigMap", "Deployment", "DaemonSet", "Service", "IngressClass", "Ingress", "Secret"} {
				if kinds[k] == 0 {
					t.Errorf("no %s rendered", k)
				}
			}
		})
	}
}

func podSpec(obj runtime.Object) *corev1.PodSpec {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &o.Spec.Template.Spec
	case *appsv1.DaemonSet:
		return &o.Spec.Template.Spec
	}
	return nil
}

// checkPodSpec: every image is the site registry's, and a private registry
// has every pod pull with the Secret.
func checkPodSpec(t *testing.T, file string, s *spec.Spec, ps *corev1.PodSpec) {
	t.Helper()
	for _, c := range ps.Containers {
		if !strings.HasPrefix(c.Image, s.Registry.Host+"/"+s.Registry.Project+"/") {
			t.Errorf("%s: container %s: image %s is not the site registry's", file, c.Name, c.Image)
		}
	}
	want := 0
	if s.Registry.Private {
		want = 1
	}
	if len(ps.ImagePullSecrets) != want || (want == 1 && ps.ImagePullSecrets[0].Name != PullSecretName) {
		t.Errorf("%s: imagePullSecrets %v, want %d named %s", file, ps.ImagePullSecrets, want, PullSecretName)
	}
}

func TestAddonsSeedValues(t *testing.T) {
	sc := addonScheme(t)
	s := seedSpec()
	files, err := Addons(s)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string][]runtime.Object{}
	for _, f := range files {
		byName[path.Base(f.Path)] = decodeStrict(t, sc, f.Path, f.Content)
		if f.Mode != 0o644 || f.Secret || f.Role != plan.RoleMaster || path.Dir(f.Path) != AddonsDir {
			t.Errorf("%s: mode %o secret %t role %s", f.Path, f.Mode, f.Secret, f.Role)
		}
	}
	find := func(file, kind, name string) runtime.Object {
		for _, o := range byName[file] {
			gvk, _, _ := sc.ObjectKinds(o)
			if gvk[0].Kind == kind && o.(interface{ GetName() string }).GetName() == name {
				return o
			}
		}
		t.Fatalf("%s: no %s %s", file, kind, name)
		return nil
	}
	svc := find("20-coredns.yaml", "Service", "kube-dns").(*corev1.Service)
	if svc.Spec.ClusterIP != "192.168.0.2" || svc.Namespace != "kube-system" {
		t.Errorf("kube-dns: clusterIP %s namespace %s", svc.Spec.ClusterIP, svc.Namespace)
	}
	core := find("20-coredns.yaml", "ConfigMap", "coredns").(*corev1.ConfigMap).Data["Corefile"]
	for _, want := range []string{"kubernetes cluster.local in-addr.arpa ip6.arpa", "forward . 10.4.7.11", "cache 30", "loop", "reload", "health", "ready"} {
		if !strings.Contains(core, want) {
			t.Errorf("Corefile lacks %q:\n%s", want, core)
		}
	}
	ds := find("30-traefik.yaml", "DaemonSet", "traefik-ingress").(*appsv1.DaemonSet)
	var hostPort int32
	for _, p := range ds.Spec.Template.Spec.Containers[0].Ports {
		hostPort += p.HostPort
	}
	if hostPort != 81 {
		t.Errorf("traefik hostPort %d, want the seed's 81", hostPort)
	}
	for file, host := range map[string]string{"30-traefik.yaml": "traefik.od.com", "40-dashboard.yaml": "dashboard.od.com"} {
		var hosts []string
		for _, o := range byName[file] {
			if ing, ok := o.(*networkingv1.Ingress); ok {
				for _, r := range ing.Spec.Rules {
					hosts = append(hosts, r.Host)
				}
				if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "traefik" {
					t.Errorf("%s: ingress %s has no class traefik", file, ing.Name)
				}
			}
		}
		if len(hosts) != 1 || hosts[0] != host {
			t.Errorf("%s: ingress hosts %v, want [%s]", file, hosts, host)
		}
	}
	crb := find("40-dashboard.yaml", "ClusterRoleBinding", "dashboard-admin").(*rbacv1.ClusterRoleBinding)
	if crb.RoleRef.Name != "cluster-admin" || crb.Subjects[0].Name != "dashboard-admin" {
		t.Errorf("dashboard-admin binding: %+v", crb)
	}
	// No binding hands system:node to the nodes group: the Node authorizer does that job.
	for file, objs := range byName {
		for _, o := range objs {
			if b, ok := o.(*rbacv1.ClusterRoleBinding); ok && b.RoleRef.Name == "system:node" {
				t.Errorf("%s: %s binds system:node", file, b.Name)
			}
		}
	}
}

func TestAddonsFirstMasterOnly(t *testing.T) {
	s := seedSpec()
	for _, h := range s.Hosts {
		files, err := Host(s, h)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range files {
			if strings.HasPrefix(f.Path, AddonsDir+"/") {
				n++
			}
		}
		p, err := Plan(s, h)
		if err != nil {
			t.Fatal(err)
		}
		first := h.Name == "hdss7-21"
		if first != (n == 5) || first != (p.Addons != nil) {
			t.Errorf("%s: %d add-on files, plan.addons %+v; want them on hdss7-21 only", h.Name, n, p.Addons)
		}
	}
}

func TestAddonsOptionalImages(t *testing.T) {
	s := seedSpec()
	var kept []spec.Image
	for _, im := range s.Images {
		if im.Name == "pause" || im.Name == "coredns" {
			kept = append(kept, im)
		}
	}
	s.Images = kept
	files, err := Addons(s)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, path.Base(f.Path))
	}
	if got := strings.Join(names, " "); got != "10-rbac.yaml 20-coredns.yaml" {
		t.Errorf("without traefik and dashboard images: %s", got)
	}
	if ns := AddonNamespaces(s); len(ns) != 1 {
		t.Errorf("namespaces %v", ns)
	}

	s.Images = kept[:1] // no coredns
	if _, err := Addons(s); err == nil || !strings.Contains(err.Error(), "images") || !strings.Contains(err.Error(), "coredns") {
		t.Errorf("no coredns image: %v", err)
	}
}

func TestPullSecret(t *testing.T) {
	s := privateSpec()
	f, err := PullSecret(s, "robot$kubebake", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if f.Path != PullSecretFile || f.Mode != 0o600 || !f.Secret {
		t.Errorf("%s mode %o secret %t", f.Path, f.Mode, f.Secret)
	}
	objs := decodeStrict(t, addonScheme(t), f.Path, f.Content)
	var ns []string
	for _, o := range objs {
		sec := o.(*corev1.Secret)
		ns = append(ns, sec.Namespace)
		if sec.Type != corev1.SecretTypeDockerConfigJson || sec.Name != PullSecretName {
			t.Errorf("secret %s/%s type %s", sec.Namespace, sec.Name, sec.Type)
		}
		var cfg struct {
			Auths map[string]struct{ Username, Password, Auth string } `json:"auths"`
		}
		if err := json.Unmarshal(sec.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
			t.Fatal(err)
		}
		a := cfg.Auths["harbor.od.com"]
		if a.Username != "robot$kubebake" || a.Password != "s3cret" || a.Auth != base64.StdEncoding.EncodeToString([]byte("robot$kubebake:s3cret")) {
			t.Errorf("auths: %+v", cfg.Auths)
		}
	}
	if fmt.Sprint(ns) != "[kube-system kubernetes-dashboard]" {
		t.Errorf("namespaces %v", ns)
	}
	if _, err := PullSecret(s, "", "x"); err == nil {
		t.Error("empty username accepted")
	}
	golden(t, "addons-private/01-pull-secret.yaml", f.Content)
}
