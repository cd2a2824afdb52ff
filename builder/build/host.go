package build

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strconv"

	"github.com/kubebake/kubebake/builder/bake"
	"github.com/kubebake/kubebake/builder/kubeconfig"
	"github.com/kubebake/kubebake/builder/pki"
	"github.com/kubebake/kubebake/builder/render"
	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/firstboot/plan"
)

// Edge TLS paths (nginx L7 and Harbor); their configs arrive with the
// add-ons issue, the certificates are issued and placed now.
const (
	EdgeCertDir   = "/etc/nginx/certs"
	HarborCertDir = "/opt/harbor/certs"
)

// binaries says where each artifact file (artifact.Key: "<artifact>/<file>")
// goes and which roles get it. A file missing here is an error, never a guess.
var binaries = map[string]struct {
	dest  string
	roles []string
}{
	"kube-apiserver/kube-apiserver":                   {render.KubeAPIServerBin, []string{plan.RoleMaster}},
	"kube-controller-manager/kube-controller-manager": {render.KubeControllerManagerBin, []string{plan.RoleMaster}},
	"kube-scheduler/kube-scheduler":                   {render.KubeSchedulerBin, []string{plan.RoleMaster}},
	"kubelet/kubelet":                                 {render.KubeletBin, []string{plan.RoleNode}},
	"kube-proxy/kube-proxy":                           {render.KubeProxyBin, []string{plan.RoleNode}},
	"kubectl/kubectl":                                 {render.KubectlBin, []string{plan.RoleMaster, plan.RoleOps}},
	"etcd/etcd":                                       {render.EtcdBin, []string{plan.RoleEtcd}},
	"etcd/etcdctl":                                    {render.EtcdctlBin, []string{plan.RoleEtcd}},
	"etcd/etcdutl":                                    {render.EtcdutlBin, []string{plan.RoleEtcd}},
	"flannel/flannel":                                 {render.FlanneldBin, []string{plan.RoleNode}},
	"flannel-cni-plugin/flannel":                      {path.Join(render.CNIBinDir, "flannel"), []string{plan.RoleNode}},
	"containerd/containerd":                           {render.ContainerdBin, []string{plan.RoleNode}},
	"containerd/containerd-shim-runc-v2":              {render.ShimBin, []string{plan.RoleNode}},
	"containerd/ctr":                                  {render.CtrBin, []string{plan.RoleNode}},
	"runc/runc":                                       {render.RuncBin, []string{plan.RoleNode}},
	"cni-plugins/bridge":                              {path.Join(render.CNIBinDir, "bridge"), []string{plan.RoleNode}},
	"cni-plugins/host-local":                          {path.Join(render.CNIBinDir, "host-local"), []string{plan.RoleNode}},
	"cni-plugins/loopback":                            {path.Join(render.CNIBinDir, "loopback"), []string{plan.RoleNode}},
	"cni-plugins/portmap":                             {path.Join(render.CNIBinDir, "portmap"), []string{plan.RoleNode}},
}

// file is one rootfs file on its way into a bundle.
type file struct {
	dest   string
	role   string // the role that needs it; "" when every host does
	mode   uint32
	secret bool
	data   []byte // or
	src    string // a file on disk (artifacts)
	sha    string
	size   int64
}

// hostBundle assembles host h's bundle: rendered files, its certificates and
// kubeconfigs, its binaries, firstboot, bundle.json and SHA256SUMS.
func hostBundle(d *data, h spec.Host, digest string, epoch int64) (bake.Bundle, error) {
	var files []file
	add := func(dest, role string, mode uint32, secret bool, b []byte) {
		files = append(files, file{dest: dest, role: role, mode: mode, secret: secret, data: b})
	}

	rendered, err := render.Host(d.s, h)
	if err != nil {
		return bake.Bundle{}, fmt.Errorf("render: %w", err)
	}
	for _, f := range rendered {
		add(f.Path, f.Role, f.Mode, f.Secret, f.Content)
	}
	secrets, err := hostSecrets(d, h)
	if err != nil {
		return bake.Bundle{}, err
	}
	files = append(files, secrets...)

	for _, key := range d.artifacts.Names() {
		a := d.artifacts[key]
		bin, ok := binaries[key]
		if !ok {
			return bake.Bundle{}, fmt.Errorf("artifact %s installs %q, which kubebake has no place for (see artifacts[].extract in bundle-spec.yaml)", a.Artifact, a.Name)
		}
		if i := slices.IndexFunc(bin.roles, h.HasRole); i >= 0 {
			files = append(files, file{dest: bin.dest, role: bin.roles[i], mode: 0o755, src: a.Path, sha: a.SHA256, size: a.Size})
		}
	}

	sort.Slice(files, func(i, j int) bool { return files[i].dest < files[j].dest })
	for i := 1; i < len(files); i++ {
		if files[i].dest == files[i-1].dest {
			return bake.Bundle{}, fmt.Errorf("two files for %s", files[i].dest)
		}
	}

	p, err := render.Plan(d.s, h)
	if err != nil {
		return bake.Bundle{}, fmt.Errorf("plan: %w", err)
	}
	// What restarts a running unit on an upgrade: needs every file of the
	// host, certificates and kubeconfigs included (binaries are not read).
	contents := make(map[string][]byte, len(files))
	for _, f := range files {
		contents[f.dest] = f.data
	}
	p.Units = render.WatchUnits(p.Units, contents)
	m := manifest(d, h, p, digest, epoch)
	imageFiles, imageRecs, err := hostImages(d, h)
	if err != nil {
		return bake.Bundle{}, err
	}
	m.Images = imageRecs
	var entries []bake.Entry
	for i := range files {
		f := &files[i]
		if f.data != nil {
			sum := sha256.Sum256(f.data)
			f.sha, f.size = hex.EncodeToString(sum[:]), int64(len(f.data))
		}
		if f.secret {
			f.mode = 0o600
		}
		m.Files = append(m.Files, plan.File{Path: f.dest, Source: plan.SourceFor(f.dest), Mode: plan.FormatMode(f.mode),
			Owner: "root:root", Size: f.size, SHA256: f.sha, Secret: f.secret, Role: f.role})
		entries = append(entries, bake.Entry{Name: plan.SourceFor(f.dest), Mode: f.mode, SHA256: f.sha, Size: f.size, Data: f.data, Path: f.src})
	}
	if err := m.Validate(); err != nil {
		return bake.Bundle{}, fmt.Errorf("manifest: %w", err)
	}
	mj, err := plan.Encode(m)
	if err != nil {
		return bake.Bundle{}, err
	}
	entries = append(entries, dataEntry(plan.ManifestName, 0o644, mj), dataEntry(plan.FirstbootName, 0o755, d.o.firstboot))
	entries = append(entries, imageFiles...)
	entries = append(entries, dataEntry(plan.SumsName, 0o644, sums(entries)))
	return bake.Bundle{Name: h.Name, Entries: entries}, nil
}

func dataEntry(name string, mode uint32, b []byte) bake.Entry {
	sum := sha256.Sum256(b)
	return bake.Entry{Name: name, Mode: mode, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b)), Data: b}
}

// sums renders SHA256SUMS over entries.
func sums(entries []bake.Entry) []byte {
	var ss []plan.Sum
	for _, e := range entries {
		ss = append(ss, plan.Sum{SHA256: e.SHA256, Path: e.Name})
	}
	return plan.FormatSums(ss)
}

func manifest(d *data, h spec.Host, p plan.Plan, digest string, epoch int64) *plan.Manifest {
	s := d.s
	v := s.Versions
	return &plan.Manifest{
		Format: plan.Format,
		Cluster: plan.Cluster{
			Name: s.Cluster.Name, HostDomain: s.Cluster.HostDomain, ServiceDomain: s.Cluster.ServiceDomain,
			ClusterDomain: s.Cluster.ClusterDomain, NodeNetwork: s.Cluster.NodeNetwork, PodNetwork: s.Cluster.PodNetwork,
			ServiceNetwork: s.Cluster.ServiceNetwork, VIP: s.Cluster.VIP, APIServer: nodeServer(s),
		},
		Host: plan.Host{Name: h.Name, FQDN: s.FQDN(h), IP: h.IP, Roles: append([]string(nil), h.Roles...), PodSubnet: h.PodSubnet},
		Versions: map[string]string{
			"kubernetes": v.Kubernetes, "etcd": v.Etcd, "flannel": v.Flannel, "coredns": v.CoreDNS, "pause": v.Pause,
			"traefik": v.Traefik, "containerd": v.Containerd, "runc": v.Runc, "cniPlugins": v.CNIPlugins,
		},
		Plan:  p,
		Build: plan.Build{SpecDigest: digest, LockDigest: d.lockDigest, BuilderVersion: d.o.version, SourceDateEpoch: epoch},
	}
}

// hasLB reports whether the spec puts an nginx L4 in front of the apiservers.
func hasLB(s *spec.Spec) bool {
	if s.Cluster.VIP == "" {
		return false
	}
	for _, h := range s.Hosts {
		if h.HasRole(plan.RoleLB) {
			return true
		}
	}
	return false
}

// nodeServer is the apiserver address node components and admins use: the
// VIP through the nginx L4 when there is one, else the first master.
func nodeServer(s *spec.Spec) string {
	if hasLB(s) {
		return "https://" + hostPort(s.Cluster.VIP, s.Cluster.LBPort)
	}
	for _, h := range s.Hosts {
		if h.HasRole(plan.RoleMaster) {
			return "https://" + hostPort(h.IP, s.Cluster.APIServerPort)
		}
	}
	return ""
}

// localServer is what control-plane components on a master use.
func localServer(s *spec.Spec) string {
	return "https://" + hostPort("127.0.0.1", s.Cluster.APIServerPort)
}

func hostPort(ip string, port int) string {
	if a, err := netip.ParseAddr(ip); err == nil {
		return netip.AddrPortFrom(a, uint16(port)).String()
	}
	return ip + ":" + strconv.Itoa(port)
}

// hostSecrets places certificates, keys and kubeconfigs by role. This table
// is the secrets matrix: a host gets a private key only when a role of its
// runs the component that uses it.
func hostSecrets(d *data, h spec.Host) ([]file, error) {
	set := d.certs
	ca := set.CAs[pki.CA].CertPEM
	var files []file
	var errs []error
	cert := func(name string) *pki.Cert {
		c := set.Certs[name]
		if c == nil {
			errs = append(errs, fmt.Errorf("certificate %s was not issued", name))
			return &pki.Cert{}
		}
		return c
	}
	var role string // the role of the block below: every file it places is for that role
	pub := func(dest string, b []byte) { files = append(files, file{dest: dest, role: role, mode: 0o644, data: b}) }
	sec := func(dest string, b []byte) {
		files = append(files, file{dest: dest, role: role, mode: 0o600, secret: true, data: b})
	}
	pair := func(certDest, keyDest, name string) {
		c := cert(name)
		pub(certDest, c.CertPEM)
		sec(keyDest, c.KeyPEM)
	}
	kc := func(dest, name, user, server string) {
		c := cert(name)
		b, err := kubeconfig.Marshal(kubeconfig.Config{Cluster: d.s.Cluster.Name, Server: server, User: user, CA: ca, Cert: c.CertPEM, Key: c.KeyPEM})
		if err != nil {
			errs = append(errs, err)
		}
		sec(dest, b)
	}
	node, local := nodeServer(d.s), localServer(d.s)
	fq := d.s.FQDN(h)

	if role = plan.RoleEtcd; h.HasRole(role) {
		pub(render.EtcdCACert, ca)
		pair(render.EtcdServerCert, render.EtcdServerKey, "etcd-server-"+h.Name)
		pair(render.EtcdPeerCert, render.EtcdPeerKey, "etcd-peer-"+h.Name)
	}
	if role = plan.RoleMaster; h.HasRole(role) {
		pub(render.CACert, ca)
		if d.s.PKI.CAKeyOnMasters {
			sec(render.CAKey, set.CAs[pki.CA].KeyPEM)
		}
		pair(render.APIServerCert, render.APIServerKey, "apiserver")
		pair(render.APIServerEtcdClientCert, render.APIServerEtcdClientKey, "apiserver-etcd-client")
		pair(render.APIServerKubeletClientCert, render.APIServerKubeletClientKey, "apiserver-kubelet-client")
		pub(render.FrontProxyCACert, set.CAs[pki.FrontProxyCA].CertPEM)
		pair(render.FrontProxyClientCert, render.FrontProxyClientKey, "front-proxy-client")
		if set.ServiceAccount == nil {
			errs = append(errs, fmt.Errorf("service-account key pair was not issued"))
		} else {
			sec(render.ServiceAccountKey, set.ServiceAccount.PrivatePEM)
			pub(render.ServiceAccountPub, set.ServiceAccount.PublicPEM)
		}
		kc(render.ControllerManagerKubeconfig, "kube-controller-manager", "system:kube-controller-manager", local)
		kc(render.SchedulerKubeconfig, "kube-scheduler", "system:kube-scheduler", local)
		sec(render.EncryptionConfigFile, d.encConfig)
	}
	if m, ok := render.FirstMaster(d.s); ok && m.Name == h.Name {
		// The add-ons: firstboot applies them as admin through the local
		// apiserver (127.0.0.1 is in its certificate's SANs).
		role = plan.RoleMaster
		kc(render.AddonsKubeconfig, "admin", "admin", local)
		if d.s.Registry.Private {
			f, err := pullSecret(d)
			if err != nil {
				return nil, err
			}
			sec(f.Path, f.Content)
		}
	}
	if role = plan.RoleMaster; !h.HasRole(role) {
		role = plan.RoleOps
	}
	if h.HasRole(role) {
		kc(render.AdminKubeconfig, "admin", "admin", node)
	}
	if role = plan.RoleNode; h.HasRole(role) {
		if !h.HasRole(plan.RoleMaster) {
			pub(render.CACert, ca)
		}
		pair(render.KubeletServerCert, render.KubeletServerKey, "kubelet-server-"+h.Name)
		kc(render.KubeletKubeconfig, "kubelet-client-"+h.Name, "system:node:"+fq, node)
		kc(render.KubeProxyKubeconfig, "kube-proxy", "system:kube-proxy", node)
		pub(render.FlannelCACert, ca)
		pair(render.FlannelCert, render.FlannelKey, "flannel")
		if d.s.Registry.Host != "" {
			pub(render.RegistryCA(d.s.Registry.Host), ca)
		}
	}
	if role = plan.RoleLB; h.HasRole(role) {
		name := "wildcard-" + d.s.Cluster.ServiceDomain
		pair(path.Join(EdgeCertDir, d.s.Cluster.ServiceDomain+".pem"), path.Join(EdgeCertDir, d.s.Cluster.ServiceDomain+"-key.pem"), name)
	}
	if role = plan.RoleOps; h.HasRole(role) {
		harbor := "harbor." + d.s.Cluster.ServiceDomain
		pub(path.Join(HarborCertDir, "ca.pem"), ca)
		pair(path.Join(HarborCertDir, harbor+".pem"), path.Join(HarborCertDir, harbor+"-key.pem"), "harbor")
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("secrets: %v", errs)
	}
	return files, nil
}
