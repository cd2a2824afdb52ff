package pki

// Member is one host as the certificate matrix sees it.
type Member struct {
	Name string // short host name: hdss7-21
	FQDN string // hdss7-21.host.com; default Name + "." + Cluster.HostDomain
	IP   string
}

// Cluster is the data Matrix needs, kept apart from the spec package.
type Cluster struct {
	Domain              string // cluster DNS domain: cluster.local
	ServiceDomain       string // edge services: od.com (harbor.od.com, *.od.com)
	HostDomain          string // hosts: host.com
	KubernetesServiceIP string // 192.168.0.1
	VIP                 string // apiserver VIP on the load balancers: 10.4.7.10

	LBHosts, EtcdHosts, Masters, Nodes, Ops []Member
}

func (c Cluster) fqdn(m Member) string {
	if m.FQDN != "" || c.HostDomain == "" {
		return m.FQDN
	}
	return m.Name + "." + c.HostDomain
}

func names(groups ...[]Member) []string {
	var out []string
	for _, g := range groups {
		for _, m := range g {
			out = append(out, m.Name)
		}
	}
	return out
}

func nonEmpty(in ...string) []string {
	var out []string
	for _, s := range in {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Matrix returns every certificate and key pair a cluster needs, in a fixed
// order. The names are a contract with the packages that place the files
// (kubeconfig, render):
//
//	etcd-server-<etcd host>, etcd-peer-<etcd host>
//	apiserver, apiserver-etcd-client, apiserver-kubelet-client
//	front-proxy-client (signed by front-proxy-ca)
//	admin, kube-controller-manager, kube-scheduler, kube-proxy, flannel
//	kubelet-client-<node>, kubelet-server-<node>
//	harbor, wildcard-<ServiceDomain>   (when ServiceDomain is set)
//	sa (key pair)
func Matrix(c Cluster) []Request {
	var reqs []Request
	masters := names(c.Masters)
	for _, h := range c.EtcdHosts {
		fqdn := c.fqdn(h)
		reqs = append(reqs,
			Request{
				// Peer profile (server and client auth), as the seed's
				// etcd cert: etcd 3.6's gRPC gateway dials its own client
				// URL with this cert, and --client-cert-auth refuses a
				// server-only one ("incompatible key usage").
				Name: "etcd-server-" + h.Name, CA: CA, Profile: ProfilePeer, CN: "etcd-server",
				Hosts:     nonEmpty(h.IP, fqdn, h.Name, "127.0.0.1", "localhost"),
				Receivers: []string{h.Name},
				Purpose:   "etcd server (client URLs; also its gateway's client) on " + h.Name,
			},
			Request{
				Name: "etcd-peer-" + h.Name, CA: CA, Profile: ProfilePeer, CN: "etcd-peer",
				Hosts:     nonEmpty(h.IP, fqdn, h.Name),
				Receivers: []string{h.Name},
				Purpose:   "etcd peer (server and client) on " + h.Name,
			})
	}

	apiHosts := nonEmpty(c.KubernetesServiceIP, "kubernetes", "kubernetes.default", "kubernetes.default.svc")
	if c.Domain != "" {
		apiHosts = append(apiHosts, "kubernetes.default.svc."+c.Domain)
	}
	apiHosts = append(apiHosts, nonEmpty(c.VIP)...)
	for _, m := range c.Masters {
		apiHosts = append(apiHosts, nonEmpty(m.IP, c.fqdn(m))...)
	}
	apiHosts = append(apiHosts, "127.0.0.1", "localhost")
	reqs = append(reqs,
		Request{Name: "apiserver", CA: CA, Profile: ProfileServer, CN: "kube-apiserver",
			Hosts: apiHosts, Receivers: masters,
			Purpose: "kube-apiserver serving (VIP, masters, kubernetes service)"},
		Request{Name: "apiserver-etcd-client", CA: CA, Profile: ProfileClient, CN: "kube-apiserver-etcd-client",
			Receivers: masters, Purpose: "kube-apiserver client to etcd"},
		Request{Name: "apiserver-kubelet-client", CA: CA, Profile: ProfileClient, CN: "kube-apiserver-kubelet-client",
			O: []string{"system:masters"}, Receivers: masters, Purpose: "kube-apiserver client to kubelets"},
		Request{Name: "front-proxy-client", CA: FrontProxyCA, Profile: ProfileClient, CN: "front-proxy-client",
			Receivers: masters, Purpose: "kube-apiserver aggregation-layer proxy client"},
		Request{Name: "admin", CA: CA, Profile: ProfileClient, CN: "admin",
			O: []string{"system:masters"}, Receivers: names(c.Masters, c.Ops),
			Purpose: "cluster-admin kubeconfig (kubectl)"},
		Request{Name: "kube-controller-manager", CA: CA, Profile: ProfileClient, CN: "system:kube-controller-manager",
			Receivers: masters, Purpose: "kube-controller-manager kubeconfig"},
		Request{Name: "kube-scheduler", CA: CA, Profile: ProfileClient, CN: "system:kube-scheduler",
			Receivers: masters, Purpose: "kube-scheduler kubeconfig"},
		Request{Name: "kube-proxy", CA: CA, Profile: ProfileClient, CN: "system:kube-proxy",
			Receivers: names(c.Nodes), Purpose: "kube-proxy kubeconfig"},
		Request{Name: "flannel", CA: CA, Profile: ProfileClient, CN: "flanneld",
			Receivers: names(c.Nodes), Purpose: "flanneld client to etcd"},
	)
	for _, n := range c.Nodes {
		fqdn := c.fqdn(n)
		reqs = append(reqs,
			Request{Name: "kubelet-client-" + n.Name, CA: CA, Profile: ProfileClient,
				CN: "system:node:" + fqdn, O: []string{"system:nodes"},
				Receivers: []string{n.Name}, Purpose: "kubelet client to kube-apiserver on " + n.Name},
			Request{Name: "kubelet-server-" + n.Name, CA: CA, Profile: ProfileServer, CN: fqdn,
				Hosts:     nonEmpty(n.IP, fqdn, n.Name),
				Receivers: []string{n.Name}, Purpose: "kubelet serving (:10250) on " + n.Name},
		)
	}
	if c.ServiceDomain != "" {
		reqs = append(reqs,
			Request{Name: "harbor", CA: CA, Profile: ProfileServer, CN: "harbor." + c.ServiceDomain,
				Hosts: []string{"harbor." + c.ServiceDomain}, Receivers: names(c.Ops),
				Purpose: "Harbor registry HTTPS (harbor." + c.ServiceDomain + ")"},
			Request{Name: "wildcard-" + c.ServiceDomain, CA: CA, Profile: ProfileServer, CN: "*." + c.ServiceDomain,
				Hosts: []string{"*." + c.ServiceDomain, c.ServiceDomain}, Receivers: names(c.LBHosts),
				Purpose: "nginx L7 TLS for *." + c.ServiceDomain},
		)
	}
	reqs = append(reqs, Request{Name: ServiceAccount, Profile: ProfileKeyPair, Receivers: masters,
		Purpose: "service-account token signing (apiserver, controller-manager)"})
	return reqs
}
