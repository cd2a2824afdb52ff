package render

// The edge hosts (role lb): nginx and keepalived, from CentOS 7's packages.
//
// Targets: nginx 1.20 from EPEL 7 with the stream module as the dynamic
// module nginx-mod-stream (it drops /usr/share/nginx/modules/mod-stream.conf,
// which nginx.conf includes), built against CentOS 7's OpenSSL 1.0.2k, so
// TLS 1.2 at most; keepalived 1.3.5 from CentOS 7's base repository. Both
// come from the site's yum mirror (the kickstart's %packages); firstboot
// only writes these files and enables the packages' units.
//
// Where kubebake differs from the seed:
//   - one whole nginx.conf instead of conf.d snippets, with the seed's typos
//     fixed: the upstream is default_backend_traefik everywhere (the seed
//     proxies to "defult_backend_traefik"), the redirect is "permanent" (not
//     "permannet"), the header value is $proxy_add_x_forwarded_for (not
//     $proxy_addx_forwarded_for) and the cipher list excludes !MD5 (not !MDS);
//   - the vrrp_script has no weight, so a failing check puts the instance in
//     FAULT and the VIP moves. The seed's "weight -20" only lowers the
//     MASTER's priority, which a BACKUP with nopreempt ignores: with the
//     seed's settings a dead nginx never gives up the VIP;
//   - scripts run as root with enable_script_security, which keepalived
//     (>= 1.3.0) otherwise warns about on every start.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"github.com/kubebake/kubebake/firstboot/plan"
)

// Edge files and units.
const (
	NginxConf             = "/etc/nginx/nginx.conf"
	KeepalivedConf        = "/etc/keepalived/keepalived.conf"
	KeepalivedCheckScript = "/etc/keepalived/check_port.sh"
	// EdgeCertDir holds the lb hosts' TLS certificate for *.<serviceDomain>
	// (pki's wildcard-<serviceDomain>, placed by builder/build).
	EdgeCertDir = "/etc/nginx/certs"
	// NginxModulesInclude is where CentOS's nginx-mod-* packages drop their
	// load_module lines (mod-stream.conf for the stream module).
	NginxModulesInclude = "/usr/share/nginx/modules/*.conf"

	UnitNginx      = "nginx.service"      // EPEL nginx
	UnitKeepalived = "keepalived.service" // CentOS 7 keepalived

	// TraefikHostPort is the port Traefik listens on on every node (the
	// seed's DaemonSet hostPort); nginx's L7 server proxies to it.
	TraefikHostPort = 81
	// NginxHealthPort serves GET /healthz on 127.0.0.1 only, for firstboot's
	// health gate (the plan's checks are HTTP; the L4 port is raw TCP).
	NginxHealthPort = 10080
	// NginxStreamUpstream and NginxTraefikUpstream name the two upstreams.
	NginxStreamUpstream  = "kube-apiserver"
	NginxTraefikUpstream = "default_backend_traefik"
)

// EdgeCert and EdgeKey are the wildcard certificate for *.<serviceDomain>
// and its key on lb hosts: /etc/nginx/certs/<serviceDomain>.pem and
// <serviceDomain>-key.pem.
func EdgeCert(serviceDomain string) string { return path.Join(EdgeCertDir, serviceDomain+".pem") }
func EdgeKey(serviceDomain string) string  { return path.Join(EdgeCertDir, serviceDomain+"-key.pem") }

// osServiceFiles renders the configuration of the services CentOS 7's
// packages run for roles lb (edge.go), dns (dns.go) and ops (nfs.go).
func (r *renderer) osServiceFiles() ([]File, error) {
	var files []File
	for _, g := range []struct {
		role   string
		render func() ([]File, error)
	}{{plan.RoleLB, r.edgeFiles}, {plan.RoleDNS, r.dnsFiles}, {plan.RoleOps, r.nfsFiles}} {
		if !r.h.HasRole(g.role) {
			continue
		}
		fs, err := g.render()
		if err != nil {
			return nil, fmt.Errorf("role %s: %w", g.role, err)
		}
		files = append(files, fs...)
	}
	return files, nil
}

// edgeFiles renders nginx.conf, keepalived.conf and its check script.
func (r *renderer) edgeFiles() ([]File, error) {
	ng, err := r.nginxConf()
	if err != nil {
		return nil, fmt.Errorf("nginx.conf: %w", err)
	}
	ka, err := r.keepalivedConf()
	if err != nil {
		return nil, fmt.Errorf("keepalived.conf: %w", err)
	}
	if err := CheckKeepalived135(ka); err != nil {
		return nil, fmt.Errorf("keepalived.conf: %w", err)
	}
	return []File{
		{Path: NginxConf, Mode: 0o644, Content: ng, Role: plan.RoleLB},
		{Path: KeepalivedConf, Mode: 0o644, Content: ka, Role: plan.RoleLB},
		{Path: KeepalivedCheckScript, Mode: 0o755, Content: []byte(checkPortScript), Role: plan.RoleLB},
	}, nil
}

// confWriter writes an indented nginx/keepalived style configuration.
type confWriter struct {
	b     strings.Builder
	depth int
}

func (w *confWriter) line(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	if s == "" {
		w.b.WriteString("\n")
		return
	}
	if strings.HasPrefix(s, "}") {
		w.depth--
	}
	w.b.WriteString(strings.Repeat("    ", max(w.depth, 0)))
	w.b.WriteString(s)
	w.b.WriteString("\n")
	if strings.HasSuffix(s, "{") {
		w.depth++
	}
}

// serviceDomain is the L7 domain (od.com).
func (r *renderer) serviceDomain() (string, error) {
	d := r.s.Cluster.ServiceDomain
	if d == "" || strings.ContainsAny(d, " \t;{}\"'$*") {
		return "", fmt.Errorf("cluster.serviceDomain %q: want a DNS domain such as od.com", d)
	}
	return d, nil
}

// ipOf parses a host's IPv4 or IPv6 address.
func ipOf(name, ip string) (netip.Addr, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("host %s: ip %q: %v", name, ip, err)
	}
	return a, nil
}

// nginxConf is the whole /etc/nginx/nginx.conf of an lb host.
func (r *renderer) nginxConf() ([]byte, error) {
	dom, err := r.serviceDomain()
	if err != nil {
		return nil, err
	}
	masters := r.s.HostsWithRole(plan.RoleMaster)
	nodes := r.s.HostsWithRole(plan.RoleNode)
	if len(masters) == 0 {
		return nil, fmt.Errorf("%w: no host has role master for the apiserver upstream", ErrHost)
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%w: no host has role node for the Traefik upstream", ErrHost)
	}
	lbPort := orInt(r.s.Cluster.LBPort, 7443)

	w := &confWriter{}
	w.line("# /etc/nginx/nginx.conf for %s (role lb). Rendered by kubebake from", r.h.Name)
	w.line("# bundle-spec.yaml. Do not edit: rebuild the bundle. Target: nginx 1.20 from")
	w.line("# EPEL 7 with nginx-mod-stream. Add sites in /etc/nginx/conf.d/*.conf.")
	w.line("user nginx;")
	w.line("worker_processes auto;")
	w.line("error_log /var/log/nginx/error.log;")
	w.line("pid /run/nginx.pid;")
	w.line("")
	w.line("# Dynamic modules: nginx-mod-stream's mod-stream.conf loads the stream module.")
	w.line("include %s;", NginxModulesInclude)
	w.line("")
	w.line("events {")
	w.line("worker_connections 1024;")
	w.line("}")
	w.line("")
	w.line("# L4: the apiservers behind the VIP %s:%d (node kubeconfigs point here).", r.s.Cluster.VIP, lbPort)
	w.line("stream {")
	w.line("log_format proxy '$remote_addr [$time_local] $protocol $status $bytes_sent $bytes_received $session_time \"$upstream_addr\"';")
	w.line("access_log /var/log/nginx/kube-apiserver.log proxy;")
	w.line("")
	w.line("upstream %s {", NginxStreamUpstream)
	for _, m := range masters {
		a, err := ipOf(m.Name, m.IP)
		if err != nil {
			return nil, err
		}
		w.line("server %s max_fails=3 fail_timeout=30s;", hostPort(a.String(), r.apiPort()))
	}
	w.line("}")
	w.line("server {")
	w.line("listen %d;", lbPort)
	w.line("proxy_connect_timeout 2s;")
	w.line("proxy_timeout 900s;")
	w.line("proxy_pass %s;", NginxStreamUpstream)
	w.line("}")
	w.line("}")
	w.line("")
	w.line("http {")
	w.line("log_format main '$remote_addr - $remote_user [$time_local] \"$request\" '")
	w.line("                '$status $body_bytes_sent \"$http_referer\" '")
	w.line("                '\"$http_user_agent\" \"$http_x_forwarded_for\"';")
	w.line("access_log /var/log/nginx/access.log main;")
	w.line("sendfile on;")
	w.line("tcp_nopush on;")
	w.line("tcp_nodelay on;")
	w.line("keepalive_timeout 65;")
	w.line("types_hash_max_size 4096;")
	w.line("server_tokens off;")
	w.line("include /etc/nginx/mime.types;")
	w.line("default_type application/octet-stream;")
	w.line("")
	w.line("# WebSocket upgrades (the dashboard's exec shell) pass through.")
	w.line("map $http_upgrade $connection_upgrade {")
	w.line("default upgrade;")
	w.line("'' close;")
	w.line("}")
	w.line("")
	w.line("# L7: Traefik on every node's host port %d.", TraefikHostPort)
	w.line("upstream %s {", NginxTraefikUpstream)
	for _, n := range nodes {
		a, err := ipOf(n.Name, n.IP)
		if err != nil {
			return nil, err
		}
		w.line("server %s max_fails=3 fail_timeout=10s;", hostPort(a.String(), TraefikHostPort))
	}
	w.line("}")
	w.line("")
	w.line("# Every *.%s name goes to the ingress.", dom)
	w.line("server {")
	w.line("listen 80;")
	w.line("server_name *.%s;", dom)
	w.line("location / {")
	r.proxyHeaders(w, "$scheme")
	w.line("}")
	w.line("}")
	w.line("")
	w.line("# dashboard.%s: HTTPS only; TLS ends here, Traefik gets plain HTTP.", dom)
	w.line("server {")
	w.line("listen 80;")
	w.line("server_name dashboard.%s;", dom)
	w.line("rewrite ^(.*)$ https://${server_name}$1 permanent;")
	w.line("}")
	w.line("server {")
	w.line("listen 443 ssl;")
	w.line("server_name dashboard.%s;", dom)
	w.line("ssl_certificate %s;", EdgeCert(dom))
	w.line("ssl_certificate_key %s;", EdgeKey(dom))
	w.line("ssl_session_cache shared:SSL:1m;")
	w.line("ssl_session_timeout 10m;")
	w.line("# CentOS 7's OpenSSL 1.0.2k has no TLS 1.3.")
	w.line("ssl_protocols TLSv1.2;")
	w.line("ssl_ciphers HIGH:!aNULL:!MD5;")
	w.line("ssl_prefer_server_ciphers on;")
	w.line("location / {")
	r.proxyHeaders(w, "https")
	w.line("}")
	w.line("}")
	w.line("")
	w.line("# firstboot's health gate; loopback only.")
	w.line("server {")
	w.line("listen 127.0.0.1:%d;", NginxHealthPort)
	w.line("access_log off;")
	w.line("location = /healthz {")
	w.line("default_type text/plain;")
	w.line("return 200 \"ok\\n\";")
	w.line("}")
	w.line("location / {")
	w.line("return 404;")
	w.line("}")
	w.line("}")
	w.line("")
	w.line("include /etc/nginx/conf.d/*.conf;")
	w.line("}")
	return []byte(w.b.String()), nil
}

// proxyHeaders writes the L7 proxy_pass to Traefik and its headers.
func (r *renderer) proxyHeaders(w *confWriter, proto string) {
	w.line("proxy_pass http://%s;", NginxTraefikUpstream)
	w.line("proxy_http_version 1.1;")
	w.line("proxy_set_header Host $http_host;")
	w.line("proxy_set_header X-Real-IP $remote_addr;")
	w.line("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;")
	w.line("proxy_set_header X-Forwarded-Proto %s;", proto)
	w.line("proxy_set_header Upgrade $http_upgrade;")
	w.line("proxy_set_header Connection $connection_upgrade;")
}

// vrrp describes this host's part in the VRRP group.
type vrrp struct {
	state    string // MASTER (first lb host) or BACKUP
	priority int
}

// vrrpRole is MASTER with priority 100 for the first lb host in the spec,
// BACKUP with 90, 80, … (at least 1) for the others, as the seed's 100/90.
func (r *renderer) vrrpRole() (vrrp, error) {
	for i, h := range r.s.HostsWithRole(plan.RoleLB) {
		if h.Name != r.h.Name {
			continue
		}
		if i == 0 {
			return vrrp{"MASTER", 100}, nil
		}
		return vrrp{"BACKUP", max(100-10*i, 1)}, nil
	}
	return vrrp{}, fmt.Errorf("%w: %s is not an lb host", ErrHost, r.h.Name)
}

// vrrpAuthPass is the VRRP PASS authentication string: 8 characters (the
// most VRRPv2 carries), derived from the cluster's name, VIP and router id
// so every lb host agrees. It is not a secret (PASS travels in clear text);
// it keeps two clusters' VRRP groups on one network from mixing.
func vrrpAuthPass(cluster, vip string, routerID int) string {
	sum := sha256.Sum256([]byte("kubebake vrrp\x00" + cluster + "\x00" + vip + "\x00" + strconv.Itoa(routerID)))
	return hex.EncodeToString(sum[:])[:8]
}

// keepalivedConf is /etc/keepalived/keepalived.conf of an lb host.
func (r *renderer) keepalivedConf() ([]byte, error) {
	c := r.s.Cluster
	vip, err := netip.ParseAddr(c.VIP)
	if err != nil || !vip.Is4() {
		return nil, fmt.Errorf("%w: cluster.vip %q: keepalived needs an IPv4 VIP", ErrHost, c.VIP)
	}
	self, err := ipOf(r.h.Name, r.h.IP)
	if err != nil {
		return nil, err
	}
	iface := or(c.VIPInterface, "eth0")
	if strings.ContainsAny(iface, " \t\"'{}!#/") || len(iface) > 15 {
		return nil, fmt.Errorf("%w: cluster.vipInterface %q: not an interface name", ErrHost, iface)
	}
	rid := orInt(c.VRRPRouterID, 251)
	if rid < 1 || rid > 255 {
		return nil, fmt.Errorf("%w: cluster.vrrpRouterID %d: want 1-255", ErrHost, rid)
	}
	role, err := r.vrrpRole()
	if err != nil {
		return nil, err
	}
	lbPort := orInt(c.LBPort, 7443)

	w := &confWriter{}
	w.line("! /etc/keepalived/keepalived.conf for %s (role lb). Rendered by kubebake", r.h.Name)
	w.line("! from bundle-spec.yaml. Do not edit: rebuild the bundle. Target: keepalived")
	w.line("! 1.3.5 (CentOS 7). The VIP %s follows a working nginx (port %d).", vip, lbPort)
	w.line("global_defs {")
	w.line("router_id %s", self)
	w.line("script_user root")
	w.line("enable_script_security")
	w.line("}")
	w.line("")
	w.line("! No weight: a failing check puts the instance in FAULT, so the VIP")
	w.line("! moves even to a BACKUP with nopreempt.")
	w.line("vrrp_script chk_nginx {")
	w.line("script \"%s %d\"", KeepalivedCheckScript, lbPort)
	w.line("interval 2")
	w.line("fall 2")
	w.line("rise 2")
	w.line("}")
	w.line("")
	w.line("vrrp_instance VI_1 {")
	w.line("state %s", role.state)
	w.line("interface %s", iface)
	w.line("virtual_router_id %d", rid)
	w.line("priority %d", role.priority)
	w.line("advert_int 1")
	w.line("mcast_src_ip %s", self)
	if role.state == "BACKUP" {
		w.line("! Once master, stay master until this host fails (the seed's nopreempt).")
		w.line("nopreempt")
	}
	w.line("authentication {")
	w.line("auth_type PASS")
	w.line("auth_pass %s", vrrpAuthPass(c.Name, vip.String(), rid))
	w.line("}")
	w.line("track_script {")
	w.line("chk_nginx")
	w.line("}")
	w.line("virtual_ipaddress {")
	w.line("%s", vip)
	w.line("}")
	w.line("}")
	return []byte(w.b.String()), nil
}

// checkPortScript is the seed's /etc/keepalived/check_port.sh: success
// while something listens on TCP port $1. iproute's ss is in CentOS 7's
// @core.
const checkPortScript = `#!/bin/sh
# /etc/keepalived/check_port.sh PORT. Rendered by kubebake. keepalived's
# vrrp_script chk_nginx: exit 0 while a socket listens on TCP PORT (nginx's
# L4 port), 1 otherwise.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
port=$1
case $port in
'' | *[!0-9]*)
	echo "usage: $0 PORT" >&2
	exit 2
	;;
esac
if ss -ltn "sport = :$port" | grep -q LISTEN; then
	exit 0
fi
echo "port $port: nothing listens" >&2
exit 1
`
