package render

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"text/template"

	"github.com/kubebake/kubebake/builder/image"
	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/firstboot/plan"
	"github.com/kubebake/kubebake/overlays"
)

// Cluster add-ons: manifests rendered from overlays/addons and shipped to
// the first master only (the first host with role master, in spec order),
// whose firstboot applies them with kubectl once its apiserver is ready.
// They live beside the rest of Kubernetes' files, under /opt/kubernetes,
// as the on-host layout has it.
const (
	AddonsDir = "/opt/kubernetes/addons"
	// PullSecretName is the kubernetes.io/dockerconfigjson Secret, in every
	// add-on namespace, that add-on pods pull with when registry.private
	// (the seed's tip 3 names it after Harbor).
	PullSecretName = "harbor"
	// addonsApplyAttempts × addonsApplyInterval bounds how long firstboot
	// waits for the apiserver to accept the add-ons after its health gate.
	addonsApplyAttempts = 60
	addonsApplyInterval = "5s"
)

var (
	// AddonsKubeconfig is the admin kubeconfig firstboot applies add-ons
	// with: the admin certificate against https://127.0.0.1:<apiServerPort>
	// (the local apiserver its health gate just passed), not the VIP, whose
	// nginx pair may not be up when the first master boots.
	AddonsKubeconfig = path.Join(KubeConfDir, "kubebake-addons.kubeconfig")
	// PullSecretFile holds the pull Secret; secret, placed by the builder
	// (it needs the registry login from the environment).
	PullSecretFile = path.Join(AddonsDir, "01-pull-secret.yaml")
)

// addon is one template of overlays/addons and the spec images it runs.
// An optional add-on whose images the spec does not list is left out (the
// images are what the site mirrors, so the add-on could not start); a
// required one is an error.
type addon struct {
	file     string
	images   []string
	optional bool
}

// addons are the templates in apply order; the namespaces come first.
var addons = []addon{
	{file: "00-namespaces.yaml"},
	{file: "10-rbac.yaml"},
	{file: "20-coredns.yaml", images: []string{"coredns"}},
	{file: "30-traefik.yaml", images: []string{"traefik"}, optional: true},
	{file: "40-dashboard.yaml", images: []string{"dashboard", "dashboard-metrics-scraper"}, optional: true},
}

// addonData is what the templates see.
type addonData struct {
	ClusterDomain   string
	ServiceDomain   string
	DNSServiceIP    string
	Upstreams       []string // CoreDNS forwards here (cluster.dnsServers)
	CoreDNSReplicas int
	TraefikVersion  string
	TraefikHostPort int
	Namespaces      []string // created by 00-namespaces.yaml
	PullSecret      string   // the Secret's name when registry.private, else ""
}

// pullSecretsTmpl is shared by every template: a pod spec's
// imagePullSecrets (at the pod spec's indentation) when the registry is
// private.
const pullSecretsTmpl = `{{define "pullSecrets"}}{{if .PullSecret}}
      imagePullSecrets:
        - name: {{.PullSecret}}{{end}}{{end}}`

// FirstMaster is the host that applies the add-ons: the first host with
// role master, in spec order.
func FirstMaster(s *spec.Spec) (spec.Host, bool) {
	for _, h := range s.Hosts {
		if h.HasRole(plan.RoleMaster) {
			return h, true
		}
	}
	return spec.Host{}, false
}

func isFirstMaster(s *spec.Spec, h spec.Host) bool {
	m, ok := FirstMaster(s)
	return ok && m.Name == h.Name
}

// hasImages reports whether the spec lists every named image.
func hasImages(s *spec.Spec, names []string) bool {
	for _, n := range names {
		if _, ok := s.Image(n); !ok {
			return false
		}
	}
	return true
}

// AddonNamespaces are the namespaces the rendered add-ons run pods in; the
// pull Secret goes into each.
func AddonNamespaces(s *spec.Spec) []string {
	ns := []string{"kube-system"}
	if dashboardOn(s) {
		ns = append(ns, "kubernetes-dashboard")
	}
	return ns
}

func dashboardOn(s *spec.Spec) bool { return hasImages(s, addons[4].images) }

// ImageRef is the name nodes pull spec image name by: the site registry's
// name for it (registry.host/registry.project/<upstream path>:<tag>, as
// kubebake mirrors it), or the upstream reference when the spec has no
// registry.
func ImageRef(s *spec.Spec, name string) (string, error) {
	im, ok := s.Image(name)
	if !ok {
		return "", fmt.Errorf("images: no image named %s", name)
	}
	if s.Registry.Host == "" {
		return im.Ref, nil
	}
	ref, err := image.TargetRef(im.Ref, image.Target{Registry: s.Registry.Host, Project: s.Registry.Project})
	if err != nil {
		return "", fmt.Errorf("images: %s: %w", name, err)
	}
	return ref, nil
}

// Addons renders the add-on manifests (0644, role master) for the cluster,
// in apply order under AddonsDir. The pull Secret is not among them: see
// PullSecret.
func Addons(s *spec.Spec) ([]File, error) {
	d := addonData{
		ClusterDomain:   or(s.Cluster.ClusterDomain, defaultClusterDomain),
		ServiceDomain:   s.Cluster.ServiceDomain,
		DNSServiceIP:    s.Cluster.DNSServiceIP,
		Upstreams:       s.Cluster.DNSServers,
		CoreDNSReplicas: min(max(len(s.HostsWithRole(plan.RoleNode)), 1), 2),
		TraefikVersion:  s.Versions.Traefik,
		TraefikHostPort: TraefikHostPort, // edge.go: nginx's L7 upstream port
	}
	if dashboardOn(s) {
		d.Namespaces = append(d.Namespaces, "kubernetes-dashboard")
	}
	if s.Registry.Private {
		d.PullSecret = PullSecretName
	}
	if d.DNSServiceIP == "" {
		return nil, fmt.Errorf("addons: cluster.dnsServiceIP is empty (CoreDNS's Service needs it)")
	}
	funcs := template.FuncMap{
		"image": func(name string) (string, error) { return ImageRef(s, name) },
		"join":  strings.Join,
	}
	var files []File
	for _, a := range addons {
		if !hasImages(s, a.images) {
			if a.optional {
				continue
			}
			return nil, fmt.Errorf("addons: %s: images: the spec lists no image %s, which it runs (add {name: %s, ref: …} to images)",
				a.file, strings.Join(a.images, ", "), a.images[0])
		}
		src, err := fs.ReadFile(overlays.Addons, "addons/"+a.file)
		if err != nil {
			return nil, fmt.Errorf("addons: %w", err)
		}
		t, err := template.New(a.file).Funcs(funcs).Option("missingkey=error").Parse(pullSecretsTmpl)
		if err == nil {
			_, err = t.Parse(string(src))
		}
		if err != nil {
			return nil, fmt.Errorf("addons: %s: %w", a.file, err)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, d); err != nil {
			return nil, fmt.Errorf("addons: %w", err)
		}
		if !hasObject(b.Bytes()) {
			continue // nothing to apply (no extra namespaces)
		}
		files = append(files, File{Path: path.Join(AddonsDir, a.file), Mode: 0o644, Content: b.Bytes(), Role: plan.RoleMaster})
	}
	return files, nil
}

// hasObject reports whether a rendered manifest holds an object, not only
// comments and separators.
func hasObject(b []byte) bool {
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "kind:") {
			return true
		}
	}
	return false
}

// PullSecret renders the kubernetes.io/dockerconfigjson Secret named
// PullSecretName in every add-on namespace, holding the registry login
// (username, password) for registry.host. It is a secret file (0600): the
// caller reads the login from the environment variables the spec's
// credentials name, and never prints it.
func PullSecret(s *spec.Spec, username, password string) (File, error) {
	reg := s.Registry.Host
	if reg == "" {
		return File{}, fmt.Errorf("pull secret: registry.host is empty")
	}
	if username == "" || password == "" {
		return File{}, fmt.Errorf("pull secret for %s: empty username or password", reg)
	}
	type auth struct {
		Username string `json:"username"`
		Password string `json:"password"`
		Auth     string `json:"auth"`
	}
	cfg, err := json.Marshal(map[string]map[string]auth{"auths": {reg: {
		Username: username, Password: password,
		Auth: base64.StdEncoding.EncodeToString([]byte(username + ":" + password)),
	}}})
	if err != nil {
		return File{}, err
	}
	data := base64.StdEncoding.EncodeToString(cfg)
	var b strings.Builder
	b.WriteString("# Rendered by kubebake from bundle-spec.yaml and the registry login in the\n# environment. Secret: do not copy.\n")
	ns := AddonNamespaces(s)
	sort.Strings(ns)
	for _, n := range ns {
		fmt.Fprintf(&b, "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n  labels:\n    app.kubernetes.io/managed-by: kubebake\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: %s\n",
			PullSecretName, n, data)
	}
	return File{Path: PullSecretFile, Mode: 0o600, Content: []byte(b.String()), Secret: true, Role: plan.RoleMaster}, nil
}

// addonsPlan is the first master's add-on step; nil on other hosts.
func (r *renderer) addonsPlan() *plan.Addons {
	if !isFirstMaster(r.s, r.h) {
		return nil
	}
	return &plan.Addons{
		Dir: AddonsDir, Kubeconfig: AddonsKubeconfig, Kubectl: KubectlBin,
		Attempts: addonsApplyAttempts, Interval: addonsApplyInterval,
	}
}
