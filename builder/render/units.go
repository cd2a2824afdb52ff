package render

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// unitHeader opens every rendered unit; systemd ignores comment lines.
const unitHeader = "# Rendered by kubebake from bundle-spec.yaml. Do not edit: rebuild the bundle.\n"

// unitFile is one systemd unit: its file name and options in file order.
type unitFile struct {
	name string
	role string // the role that runs it, or plan.RoleCommon
	opts []*unit.UnitOption
	err  error // set by a builder that met a bad value
}

func (u *unitFile) add(section, name, value string) *unitFile {
	u.opts = append(u.opts, unit.NewUnitOption(section, name, value))
	return u
}

func (u *unitFile) unit(name, value string) *unitFile    { return u.add("Unit", name, value) }
func (u *unitFile) service(name, value string) *unitFile { return u.add("Service", name, value) }
func (u *unitFile) install(name, value string) *unitFile { return u.add("Install", name, value) }

// serialize checks the unit against systemd 219 and renders it.
func (u *unitFile) serialize() ([]byte, error) {
	if u.err != nil {
		return nil, u.err
	}
	if err := Check219(u.opts); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(unit.Serialize(u.opts))
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(unitHeader)
	b.Write(body)
	return b.Bytes(), nil
}

// execLine renders a command with one argument per continuation line.
// Arguments must not contain whitespace or '$' (systemd would split or
// expand them); execLine refuses them rather than quoting.
func execLine(bin string, args ...string) string {
	var b strings.Builder
	b.WriteString(bin)
	for _, a := range args {
		b.WriteString(" \\\n  ")
		b.WriteString(a)
	}
	return b.String()
}

// checkArgs reports an argument systemd would split or expand.
func checkArgs(args []string) error {
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n$\\\"'") {
			return fmt.Errorf("argument %q: empty or needs quoting", a)
		}
	}
	return nil
}

func arg(name, value string) string { return "--" + name + "=" + value }

// withExtraArgs applies the spec's extraArgs for a component: a flag
// kubebake already sets gets the spec's value in its place; the rest follow
// in name order, so the unit is the same bytes whatever the map's order.
func withExtraArgs(args []string, extra map[string]string) []string {
	if len(extra) == 0 {
		return args
	}
	out := slices.Clone(args)
	done := map[string]bool{}
	for i, a := range out {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if v, ok := extra[name]; ok {
			out[i] = arg(name, v)
			done[name] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(extra)) {
		if !done[name] {
			out = append(out, arg(name, extra[name]))
		}
	}
	return out
}

// units lists the units host h runs, in no particular order.
func (r *renderer) units() []*unitFile {
	var us []*unitFile
	// add renders the units only when the host holds role (or it is RoleCommon).
	add := func(role string, render ...func() *unitFile) {
		if role != plan.RoleCommon && !r.h.HasRole(role) {
			return
		}
		for _, f := range render {
			u := f()
			u.role = role
			us = append(us, u)
		}
	}
	add(plan.RoleNode, r.containerdUnit)
	add(plan.RoleEtcd, r.etcdUnit, r.flannelNetConfUnit)
	add(plan.RoleNode, r.flanneldUnit)
	add(plan.RoleMaster, r.apiServerUnit, r.controllerManagerUnit, r.schedulerUnit)
	add(plan.RoleNode, r.kubeletUnit, r.kubeProxyUnit)
	add(plan.RoleCommon, r.firstbootUnit)
	if role := r.networkRole(); role != "" {
		add(role, r.networkUnit)
	}
	return us
}

// daemon fills what every long-running component shares.
func daemon(u *unitFile, bin string, args []string) *unitFile {
	if err := checkArgs(args); err != nil {
		// Spec values reach here unquoted; the validator should have
		// caught a value that needs quoting.
		u.err = fmt.Errorf("%s: %w", bin, err)
	}
	u.service("ExecStart", execLine(bin, args...)).
		service("Restart", "always").
		service("RestartSec", "5").
		service("StartLimitInterval", "0").
		service("LimitNOFILE", "65536")
	return u
}

func (r *renderer) containerdUnit() *unitFile {
	u := &unitFile{name: UnitContainerd}
	u.unit("Description", "containerd container runtime").
		unit("Documentation", "https://containerd.io").
		unit("After", "network.target local-fs.target").
		service("Environment", "PATH="+ContainerdBinDir+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").
		service("ExecStartPre", "-/sbin/modprobe overlay").
		service("ExecStart", execLine(ContainerdBin, arg("config", ContainerdConfig))).
		service("Type", "notify").
		service("Delegate", "yes").
		service("KillMode", "process").
		service("Restart", "always").
		service("RestartSec", "5").
		service("StartLimitInterval", "0").
		// infinity would exceed fs.nr_open on some kernels; 1048576 is
		// the kernel's default nr_open.
		service("LimitNOFILE", "1048576").
		service("LimitNPROC", "infinity").
		service("LimitCORE", "infinity").
		service("OOMScoreAdjust", "-999").
		install("WantedBy", "multi-user.target")
	return u
}

func (r *renderer) etcdUnit() *unitFile {
	h := r.h
	var cluster []string
	for _, m := range r.s.HostsWithRole(plan.RoleEtcd) {
		cluster = append(cluster, m.Name+"=https://"+hostPort(m.IP, 2380))
	}
	token := or(r.s.Cluster.Name, "kubebake") + "-etcd"
	args := []string{
		arg("name", h.Name),
		arg("data-dir", EtcdDataDir),
		arg("listen-peer-urls", "https://"+hostPort(h.IP, 2380)),
		arg("listen-client-urls", "https://"+hostPort(h.IP, 2379)+",https://127.0.0.1:2379"),
		arg("advertise-client-urls", "https://"+hostPort(h.IP, 2379)),
		arg("initial-advertise-peer-urls", "https://"+hostPort(h.IP, 2380)),
		arg("initial-cluster", strings.Join(cluster, ",")),
		arg("initial-cluster-state", "new"),
		arg("initial-cluster-token", token),
		arg("client-cert-auth", "true"),
		arg("trusted-ca-file", EtcdCACert),
		arg("cert-file", EtcdServerCert),
		arg("key-file", EtcdServerKey),
		arg("peer-client-cert-auth", "true"),
		arg("peer-trusted-ca-file", EtcdCACert),
		arg("peer-cert-file", EtcdPeerCert),
		arg("peer-key-file", EtcdPeerKey),
	}
	u := &unitFile{name: UnitEtcd}
	u.unit("Description", "etcd key-value store").
		unit("Documentation", "https://etcd.io/docs/").
		unit("After", "network-online.target").
		unit("Wants", "network-online.target").
		service("Type", "notify")
	daemon(u, EtcdBin, withExtraArgs(args, r.s.ExtraArgs.Etcd))
	u.service("TimeoutStartSec", "0").
		install("WantedBy", "multi-user.target")
	return u
}

// flannelNetConfUnit writes flannel's net-conf into etcd. It runs on every
// etcd member (where etcdctl and a client-capable peer certificate are) so
// the write does not depend on any one host; the put is idempotent and the
// script retries until the cluster has quorum.
func (r *renderer) flannelNetConfUnit() *unitFile {
	u := &unitFile{name: UnitFlannelNetConf}
	u.unit("Description", "Write flannel's network configuration to etcd").
		unit("After", UnitEtcd+" network-online.target").
		unit("Wants", UnitEtcd+" network-online.target").
		unit("Before", UnitFlanneld).
		unit("ConditionPathExists", FlannelNetConf).
		service("Type", "oneshot").
		service("RemainAfterExit", "yes").
		service("ExecStart", "/bin/sh "+FlannelNetConfSh).
		service("TimeoutStartSec", "900").
		install("WantedBy", "multi-user.target")
	return u
}

func (r *renderer) flanneldUnit() *unitFile {
	h := r.h
	args := []string{
		arg("etcd-endpoints", etcdClientURLs(r.s)),
		arg("etcd-prefix", r.etcdPrefix()),
		arg("etcd-cafile", FlannelCACert),
		arg("etcd-certfile", FlannelCert),
		arg("etcd-keyfile", FlannelKey),
		arg("public-ip", h.IP),
		arg("iface", h.IP),
		arg("subnet-file", FlannelSubnetEnv),
		// The SNAT rule is firstboot's (see Plan), as the seed optimises it.
		arg("ip-masq", "false"),
	}
	u := &unitFile{name: UnitFlanneld}
	u.unit("Description", "flannel overlay network agent").
		unit("Documentation", "https://github.com/flannel-io/flannel").
		unit("After", "network-online.target "+UnitFlannelNetConf).
		unit("Wants", "network-online.target").
		unit("Before", UnitKubelet).
		service("Type", "notify")
	daemon(u, FlanneldBin, args)
	u.install("WantedBy", "multi-user.target")
	return u
}

func (r *renderer) apiServerUnit() *unitFile {
	h := r.h
	c := r.s.Cluster
	args := []string{
		arg("advertise-address", h.IP),
		// 0.0.0.0: the local health check uses 127.0.0.1, the L4 LB the host IP.
		arg("bind-address", "0.0.0.0"),
		arg("secure-port", strconv.Itoa(r.apiPort())),
		arg("allow-privileged", "true"),
		arg("authorization-mode", "Node,RBAC"),
		arg("enable-admission-plugins", "NodeRestriction"),
		arg("client-ca-file", CACert),
		arg("tls-cert-file", APIServerCert),
		arg("tls-private-key-file", APIServerKey),
		arg("etcd-servers", etcdClientURLs(r.s)),
		arg("etcd-cafile", CACert),
		arg("etcd-certfile", APIServerEtcdClientCert),
		arg("etcd-keyfile", APIServerEtcdClientKey),
		arg("kubelet-certificate-authority", CACert),
		arg("kubelet-client-certificate", APIServerKubeletClientCert),
		arg("kubelet-client-key", APIServerKubeletClientKey),
		arg("kubelet-preferred-address-types", "InternalIP,Hostname,ExternalIP"),
		arg("service-cluster-ip-range", c.ServiceNetwork),
		arg("service-node-port-range", or(c.NodePortRange, defaultNodePortRange)),
		arg("service-account-issuer", "https://kubernetes.default.svc."+r.clusterDomain()),
		arg("service-account-key-file", ServiceAccountPub),
		arg("service-account-signing-key-file", ServiceAccountKey),
		arg("requestheader-client-ca-file", FrontProxyCACert),
		arg("requestheader-allowed-names", "front-proxy-client"),
		arg("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
		arg("requestheader-group-headers", "X-Remote-Group"),
		arg("requestheader-username-headers", "X-Remote-User"),
		arg("proxy-client-cert-file", FrontProxyClientCert),
		arg("proxy-client-key-file", FrontProxyClientKey),
		arg("enable-aggregator-routing", "true"),
		arg("encryption-provider-config", EncryptionConfigFile),
		arg("audit-policy-file", AuditPolicyFile),
		arg("audit-log-path", AuditLogFile),
		arg("audit-log-maxage", "30"),
		arg("audit-log-maxbackup", "10"),
		arg("audit-log-maxsize", "100"),
	}
	u := &unitFile{name: UnitAPIServer}
	u.unit("Description", "Kubernetes API server").
		unit("Documentation", "https://kubernetes.io/docs/reference/command-line-tools-reference/kube-apiserver/").
		unit("After", "network-online.target "+UnitEtcd).
		unit("Wants", "network-online.target")
	daemon(u, KubeAPIServerBin, withExtraArgs(args, r.s.ExtraArgs.KubeAPIServer))
	u.install("WantedBy", "multi-user.target")
	return u
}

func (r *renderer) controllerManagerUnit() *unitFile {
	c := r.s.Cluster
	args := []string{
		arg("kubeconfig", ControllerManagerKubeconfig),
		arg("authentication-kubeconfig", ControllerManagerKubeconfig),
		arg("authorization-kubeconfig", ControllerManagerKubeconfig),
		arg("bind-address", "127.0.0.1"),
		arg("cluster-name", or(c.Name, "kubernetes")),
		arg("cluster-cidr", c.PodNetwork),
		// flannel (etcd subnet manager) assigns each node its /24.
		arg("allocate-node-cidrs", "false"),
		arg("service-cluster-ip-range", c.ServiceNetwork),
		arg("root-ca-file", CACert),
		arg("requestheader-client-ca-file", FrontProxyCACert),
		arg("service-account-private-key-file", ServiceAccountKey),
		arg("use-service-account-credentials", "true"),
		arg("leader-elect", "true"),
	}
	if r.s.PKI.CAKeyOnMasters {
		args = append(args,
			arg("cluster-signing-cert-file", CACert),
			arg("cluster-signing-key-file", CAKey))
	}
	u := &unitFile{name: UnitControllerManager}
	u.unit("Description", "Kubernetes controller manager").
		unit("Documentation", "https://kubernetes.io/docs/reference/command-line-tools-reference/kube-controller-manager/").
		unit("After", "network-online.target "+UnitAPIServer).
		unit("Wants", "network-online.target")
	daemon(u, KubeControllerManagerBin, withExtraArgs(args, r.s.ExtraArgs.KubeControllerManager))
	u.install("WantedBy", "multi-user.target")
	return u
}

func (r *renderer) schedulerUnit() *unitFile {
	args := []string{
		arg("kubeconfig", SchedulerKubeconfig),
		arg("authentication-kubeconfig", SchedulerKubeconfig),
		arg("authorization-kubeconfig", SchedulerKubeconfig),
		arg("bind-address", "127.0.0.1"),
		arg("leader-elect", "true"),
	}
	u := &unitFile{name: UnitScheduler}
	u.unit("Description", "Kubernetes scheduler").
		unit("Documentation", "https://kubernetes.io/docs/reference/command-line-tools-reference/kube-scheduler/").
		unit("After", "network-online.target "+UnitAPIServer).
		unit("Wants", "network-online.target")
	daemon(u, KubeSchedulerBin, withExtraArgs(args, r.s.ExtraArgs.KubeScheduler))
	u.install("WantedBy", "multi-user.target")
	return u
}

func (r *renderer) kubeletUnit() *unitFile {
	h := r.h
	args := []string{
		arg("config", KubeletConfigFile),
		arg("kubeconfig", KubeletKubeconfig),
		arg("hostname-override", r.s.FQDN(h)),
		arg("node-ip", h.IP),
	}
	u := &unitFile{name: UnitKubelet}
	u.unit("Description", "Kubernetes node agent").
		unit("Documentation", "https://kubernetes.io/docs/reference/command-line-tools-reference/kubelet/").
		unit("After", UnitContainerd+" "+UnitFlanneld).
		unit("Requires", UnitContainerd).
		unit("Wants", UnitFlanneld)
	daemon(u, KubeletBin, args)
	u.install("WantedBy", "multi-user.target")
	return u
}

func (r *renderer) kubeProxyUnit() *unitFile {
	u := &unitFile{name: UnitKubeProxy}
	u.unit("Description", "Kubernetes service proxy").
		unit("Documentation", "https://kubernetes.io/docs/reference/command-line-tools-reference/kube-proxy/").
		unit("After", "network-online.target").
		unit("Wants", "network-online.target")
	daemon(u, KubeProxyBin, []string{arg("config", KubeProxyConfigFile)})
	u.install("WantedBy", "multi-user.target")
	return u
}

// networkRole is the first of the host's roles whose plan holds routes or
// iptables ops (node: host-gw routes and the SNAT rule; master, etcd: the
// REJECT removal), or "" when none does.
func (r *renderer) networkRole() string {
	for _, role := range []string{plan.RoleNode, plan.RoleMaster, plan.RoleEtcd} {
		if r.h.HasRole(role) {
			return role
		}
	}
	return ""
}

// networkUnit re-applies the routes and iptables rules at every boot: they
// live only in the kernel, and on CentOS 7 iptables.service (iptables-
// services, as the seed installs it) restores /etc/sysconfig/iptables with
// its REJECT rules at boot. Ordered after iptables.service and firewalld and
// before the components that need the rules; on the first boot firstboot
// itself applies them and then starts this unit, which finds them in place.
func (r *renderer) networkUnit() *unitFile {
	u := &unitFile{name: UnitNetwork}
	u.unit("Description", "kubebake: re-apply this host's routes and iptables rules").
		unit("After", "network-online.target iptables.service firewalld.service").
		unit("Wants", "network-online.target").
		unit("Before", UnitFlanneld+" "+UnitKubelet+" "+UnitKubeProxy).
		service("Type", "oneshot").
		service("RemainAfterExit", "yes").
		service("ExecStart", FirstbootBin+" network --bundle "+KubebakeDir).
		install("WantedBy", "multi-user.target")
	return u
}

func (r *renderer) firstbootUnit() *unitFile {
	u := &unitFile{name: UnitFirstboot}
	u.unit("Description", "kubebake first boot: turn this host into its cluster role").
		unit("After", "network-online.target").
		unit("Wants", "network-online.target").
		unit("ConditionPathExists", "!"+FirstbootDone).
		service("Type", "oneshot").
		service("RemainAfterExit", "yes").
		service("ExecStart", FirstbootBin+" run --bundle "+KubebakeDir).
		service("TimeoutStartSec", "0").
		install("WantedBy", "multi-user.target")
	return u
}
