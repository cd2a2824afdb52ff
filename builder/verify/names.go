package verify

import (
	"path"
	"strings"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// Roles an Inspect item may carry besides plan.Roles.
const (
	RoleCommon = plan.RoleCommon // every host: CA certs, kubectl, admin kubeconfig
	RoleBundle = "bundle"        // bundle.json, SHA256SUMS, firstboot
	RoleImages = "images"        // the OCI layout under images/
)

// Kinds of Inspect items.
const (
	KindBinary     = "binary"
	KindCert       = "cert"
	KindKey        = "key"
	KindKubeconfig = "kubeconfig"
	KindUnit       = "unit"
	KindConfig     = "config"
	KindImage      = "image"
)

// roleOrder is the order WriteInspect prints groups in.
var roleOrder = []string{RoleBundle, RoleCommon, plan.RoleDNS, plan.RoleLB, plan.RoleEtcd, plan.RoleMaster, plan.RoleNode, plan.RoleOps, RoleImages}

// hostPath is the destination of a bundle entry under rootfs/, or "".
func hostPath(name string) string {
	if strings.HasPrefix(name, plan.RootfsDir+"/") {
		return strings.TrimPrefix(name, plan.RootfsDir)
	}
	return ""
}

// roleOf names the role a bundle entry belongs to, from its path alone.
// The first matching rule wins, so master names (apiserver-kubelet-client,
// apiserver-etcd-client) are tested before the node and etcd ones.
func roleOf(name string) string {
	switch {
	case name == plan.ManifestName || name == plan.SumsName || name == plan.FirstbootName:
		return RoleBundle
	case strings.HasPrefix(name, plan.ImagesDir+"/"):
		return RoleImages
	}
	p := strings.ToLower(hostPath(name))
	if p == "" {
		return RoleCommon
	}
	base := path.Base(p)
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(p, s) {
				return true
			}
		}
		return false
	}
	switch {
	case strings.HasPrefix(p, "/opt/etcd/") || strings.HasPrefix(p, "/etc/etcd/"):
		return plan.RoleEtcd
	case has("flannel", "/cni/", "containerd", "runc", "crictl", "docker"):
		return plan.RoleNode
	case has("apiserver", "controller-manager", "scheduler", "front-proxy", "encryption-config") || base == "sa.key" || base == "sa.pub":
		return plan.RoleMaster
	case has("kubelet", "kube-proxy"):
		return plan.RoleNode
	case has("etcd"):
		return plan.RoleEtcd
	case has("nginx", "keepalived"):
		return plan.RoleLB
	case has("/named", "/var/named"):
		return plan.RoleDNS
	case has("harbor", "nfs"):
		return plan.RoleOps
	}
	return RoleCommon
}

// isKubeconfig reports whether a host path is a kubeconfig by name.
func isKubeconfig(p string) bool {
	base := path.Base(p)
	return strings.HasSuffix(base, ".kubeconfig") || base == "kubeconfig" || p == "/root/.kube/config"
}

// isKeyName reports whether a host path names a private key.
func isKeyName(p string) bool {
	base := path.Base(p)
	return strings.HasSuffix(base, "-key.pem") || base == "sa.key"
}

// isCertName reports whether a host path names a PEM certificate file.
func isCertName(p string) bool {
	return strings.HasSuffix(p, ".pem") && !isKeyName(p)
}

// isSecretName reports whether a host path is a secret by name alone.
// Kubeconfigs are secret when they hold client-key-data or a token, which
// needs their content; see kubeconfig.secret.
func isSecretName(p string) bool {
	return isKeyName(p) || path.Base(p) == "encryption-config.yaml"
}

// kindOf names what a bundle entry is.
func kindOf(name string, mode int64) string {
	if strings.HasPrefix(name, plan.ImagesDir+"/") {
		return KindImage
	}
	if name == plan.FirstbootName {
		return KindBinary
	}
	p := hostPath(name)
	base := path.Base(p)
	switch {
	case p == "":
		return KindConfig
	case isKeyName(p) || base == "sa.pub":
		return KindKey
	case strings.HasSuffix(base, ".pem"):
		return KindCert
	case isKubeconfig(p):
		return KindKubeconfig
	case strings.Contains(p, "/systemd/system/") && unitSuffix(base):
		return KindUnit
	case mode&0o111 != 0:
		return KindBinary
	}
	return KindConfig
}

func unitSuffix(base string) bool {
	for _, s := range []string{".service", ".socket", ".timer", ".mount", ".target", ".path", ".slice"} {
		if strings.HasSuffix(base, s) {
			return true
		}
	}
	return false
}
