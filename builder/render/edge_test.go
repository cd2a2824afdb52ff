package render

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubebake/kubebake/builder/pki"
	"github.com/kubebake/kubebake/builder/spec"
)

// needValidator returns the path of a real program a test checks rendered
// files with (Debian's nginx, keepalived, bind9-utils, nfs-kernel-server).
// It skips when the program is missing, and fails under CI=true, where
// .ci/run installs it.
func needValidator(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (CI=true: .ci/run must install %s)", name, pkg)
		}
		t.Skipf("%s not installed: apt-get install --no-install-recommends %s", name, pkg)
	}
	return p
}

// run runs a validator and returns its combined output.
func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return string(out), err
}

// substitute applies test-bed substitutions, each of which must match:
// a rendered file that no longer contains what a substitution expects
// fails the test instead of being checked half-adapted.
func substitute(t *testing.T, file string, b []byte, subs [][2]string) []byte {
	t.Helper()
	s := string(b)
	for _, sub := range subs {
		if !strings.Contains(s, sub[0]) {
			t.Fatalf("%s: no %q to adapt for the Debian test bed", file, sub[0])
		}
		s = strings.ReplaceAll(s, sub[0], sub[1])
	}
	return []byte(s)
}

// edgeTLS issues the seed's wildcard-od.com certificate with builder/pki,
// as a build does, and writes it under dir as builder/build places it
// (EdgeCert, EdgeKey).
func edgeTLS(t *testing.T, dir string) {
	t.Helper()
	m := func(n, ip string) pki.Member { return pki.Member{Name: n, IP: ip} }
	c := pki.Cluster{
		Domain: "cluster.local", ServiceDomain: "od.com", HostDomain: "host.com",
		KubernetesServiceIP: "192.168.0.1", VIP: "10.4.7.10",
		LBHosts: []pki.Member{m("hdss7-11", "10.4.7.11"), m("hdss7-12", "10.4.7.12")},
	}
	var reqs []pki.Request
	for _, r := range pki.Matrix(c) {
		if r.Name == "wildcard-od.com" {
			reqs = append(reqs, r)
		}
	}
	if len(reqs) != 1 {
		t.Fatalf("pki.Matrix has %d wildcard-od.com requests, want 1", len(reqs))
	}
	set, err := pki.Issue(context.Background(), filepath.Join(dir, "state"),
		pki.Config{Algo: "ecdsa", Subject: pki.SeedSubject}, reqs)
	if err != nil {
		t.Fatal(err)
	}
	cert := set.Certs["wildcard-od.com"]
	if cert == nil {
		t.Fatal("wildcard-od.com not issued")
	}
	certs := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certs, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		filepath.Base(EdgeCert("od.com")): cert.CertPEM,
		filepath.Base(EdgeKey("od.com")):  cert.KeyPEM,
	} {
		if err := os.WriteFile(filepath.Join(certs, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// debianStreamModule is libnginx-mod-stream's module on Debian 12.
const debianStreamModule = "/usr/lib/nginx/modules/ngx_stream_module.so"

// TestNginxConfReal checks each lb host's nginx.conf with Debian's nginx
// (1.22) and its stream module: nginx -t parses the whole file, loads the
// stream module and the real kubebake certificate and key. The CentOS 7
// parts are adapted by the documented substitutions below and nothing else.
func TestNginxConfReal(t *testing.T) {
	nginx := needValidator(t, "nginx", "nginx libnginx-mod-stream")
	if _, err := os.Stat(debianStreamModule); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: .ci/run must install libnginx-mod-stream)", err)
		}
		t.Skipf("%v: apt-get install libnginx-mod-stream", err)
	}
	s := seedSpec()
	for _, host := range []string{"hdss7-11", "hdss7-12"} {
		t.Run(host, func(t *testing.T) {
			dir := t.TempDir()
			edgeTLS(t, dir)
			for _, d := range []string{"log", "conf.d"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			conf := substitute(t, NginxConf, renderFile(t, s, host, NginxConf), [][2]string{
				// CentOS: nginx-mod-stream's /usr/share/nginx/modules/mod-stream.conf
				// holds this load_module line; Debian keeps the module here.
				{"include " + NginxModulesInclude + ";", "load_module " + debianStreamModule + ";"},
				// CentOS's nginx package creates the nginx user; Debian runs www-data.
				{"user nginx;", "user www-data;"},
				// Where builder/build places the certificate: a real one, issued above.
				{EdgeCertDir + "/", filepath.Join(dir, "certs") + "/"},
				// Logs, pid and drop-ins inside the test's directory.
				{"/var/log/nginx/", filepath.Join(dir, "log") + "/"},
				{"/run/nginx.pid", filepath.Join(dir, "nginx.pid")},
				{"/etc/nginx/conf.d/", filepath.Join(dir, "conf.d") + "/"},
			})
			p := filepath.Join(dir, "nginx.conf")
			if err := os.WriteFile(p, conf, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := run(t, nginx, "-t", "-c", p, "-e", filepath.Join(dir, "log", "startup.log"))
			t.Logf("nginx -t -c %s:\n%s", p, out)
			if err != nil || !strings.Contains(out, "test is successful") {
				t.Fatalf("nginx -t: %v", err)
			}
			if strings.Contains(out, "[warn]") || strings.Contains(out, "[emerg]") {
				t.Errorf("nginx -t warns")
			}
		})
	}
}

// TestNginxConfSeedTyposFixed: the seed's conf.d snippets proxy to an
// upstream that does not exist (defult_backend_traefik), redirect with
// "permannet", send $proxy_addx_forwarded_for and exclude !MDS. None of it
// survives, and every proxy_pass names a declared upstream.
func TestNginxConfSeedTyposFixed(t *testing.T) {
	conf := string(renderFile(t, seedSpec(), "hdss7-11", NginxConf))
	for _, typo := range []string{"defult_backend", "permannet", "proxy_addx", "!MDS", "ngixn"} {
		if strings.Contains(conf, typo) {
			t.Errorf("seed typo %q survives", typo)
		}
	}
	for _, want := range []string{
		"rewrite ^(.*)$ https://${server_name}$1 permanent;",
		"proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
		"proxy_set_header Host $http_host;",
		"proxy_set_header X-Real-IP $remote_addr;",
		"upstream kube-apiserver {",
		"upstream default_backend_traefik {",
		"server 10.4.7.21:6443 max_fails=3 fail_timeout=30s;",
		"server 10.4.7.22:6443 max_fails=3 fail_timeout=30s;",
		"server 10.4.7.21:81 max_fails=3 fail_timeout=10s;",
		"listen 7443;",
		"server_name *.od.com;",
		"ssl_certificate /etc/nginx/certs/od.com.pem;",
		"ssl_certificate_key /etc/nginx/certs/od.com-key.pem;",
		"ssl_ciphers HIGH:!aNULL:!MD5;",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("nginx.conf lacks %q", want)
		}
	}
	upstreams := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*upstream (\S+) \{`).FindAllStringSubmatch(conf, -1) {
		upstreams[m[1]] = true
	}
	passes := regexp.MustCompile(`(?m)^\s*proxy_pass (?:http://)?([^;]+);`).FindAllStringSubmatch(conf, -1)
	if len(passes) != 3 {
		t.Errorf("%d proxy_pass lines, want 3 (L4, *.od.com, dashboard)", len(passes))
	}
	for _, m := range passes {
		if !upstreams[m[1]] {
			t.Errorf("proxy_pass %s: no such upstream (have %v)", m[1], upstreams)
		}
	}
}

// TestKeepalivedConfReal checks each lb host's keepalived.conf with
// Debian's keepalived (2.2.7) config test, and against the 1.3.5 list.
func TestKeepalivedConfReal(t *testing.T) {
	keepalived := needValidator(t, "keepalived", "keepalived")
	s := seedSpec()
	for _, host := range []string{"hdss7-11", "hdss7-12"} {
		t.Run(host, func(t *testing.T) {
			conf := renderFile(t, s, host, KeepalivedConf)
			if err := CheckKeepalived135(conf); err != nil {
				t.Error(err)
			}
			// keepalived disables a track script it cannot find, and with
			// enable_script_security refuses one in a directory others may
			// write: the rendered script goes to a private directory.
			dir := t.TempDir()
			script := filepath.Join(dir, "check_port.sh")
			if err := os.WriteFile(script, renderFile(t, s, host, KeepalivedCheckScript), 0o755); err != nil {
				t.Fatal(err)
			}
			conf = substitute(t, KeepalivedConf, conf, [][2]string{{KeepalivedCheckScript, script}})
			p := filepath.Join(dir, "keepalived.conf")
			if err := os.WriteFile(p, conf, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := run(t, keepalived, "--config-test", "--log-console", "--use-file", p)
			t.Logf("keepalived --config-test --use-file %s: exit %v\n%s", p, err, out)
			if err != nil || strings.TrimSpace(out) != "" {
				t.Fatalf("keepalived config test: %v\n%s", err, out)
			}
		})
	}
}

// TestKeepalivedConfigTestCatches makes sure the config test above fails
// on what it is there to catch.
func TestKeepalivedConfigTestCatches(t *testing.T) {
	keepalived := needValidator(t, "keepalived", "keepalived")
	p := filepath.Join(t.TempDir(), "bad.conf")
	bad := strings.Replace(string(renderFile(t, seedSpec(), "hdss7-12", KeepalivedConf)), "    nopreempt\n", "    nopreempt\n    no_such_keyword 1\n", 1)
	if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, keepalived, "--config-test", "--log-console", "--use-file", p)
	if err == nil || !strings.Contains(out, "Unknown keyword 'no_such_keyword'") {
		t.Errorf("keepalived accepted an unknown keyword: %v\n%s", err, out)
	}
}

func TestCheckKeepalived135(t *testing.T) {
	good := renderFile(t, seedSpec(), "hdss7-11", KeepalivedConf)
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"2.x global keyword", "    enable_script_security\n", "    enable_script_security\n    max_auto_priority 10\n", "max_auto_priority in global_defs"},
		{"2.x tracker", "vrrp_script chk_nginx {", "vrrp_track_process nginx {\n}\nvrrp_script chk_nginx {", "vrrp_track_process at top level"},
		{"keyword in the wrong block", "    advert_int 1\n", "    advert_int 1\n    interval 2\n", "interval in vrrp_instance"},
		{"unbalanced", "    virtual_ipaddress {\n", "    virtual_ipaddress {\n    {\n", "unclosed block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(strings.Replace(string(good), tc.from, tc.to, 1))
			err := CheckKeepalived135(b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
			if tc.name != "unbalanced" && !errors.Is(err, ErrKeepalived135) {
				t.Errorf("err = %v, want ErrKeepalived135", err)
			}
		})
	}
	if err := CheckKeepalived135(good); err != nil {
		t.Errorf("rendered keepalived.conf: %v", err)
	}
}

// TestKeepalivedRoles: the first lb host is MASTER (priority 100), the
// others BACKUP with nopreempt; all share router id, VIP, interface and
// auth; each advertises from its own address.
func TestKeepalivedRoles(t *testing.T) {
	s := seedSpec()
	s.Cluster.VIPInterface = "ens33"
	m := string(renderFile(t, s, "hdss7-11", KeepalivedConf))
	b := string(renderFile(t, s, "hdss7-12", KeepalivedConf))
	for _, tc := range []struct {
		conf string
		want []string
		not  []string
	}{
		{m, []string{"state MASTER", "priority 100", "mcast_src_ip 10.4.7.11", "router_id 10.4.7.11"}, []string{"\n    nopreempt\n", "\n    weight "}},
		{b, []string{"state BACKUP", "priority 90", "mcast_src_ip 10.4.7.12", "\n    nopreempt\n"}, []string{"\n    weight "}},
	} {
		for _, w := range append(tc.want, "interface ens33", "virtual_router_id 251", "        10.4.7.10\n",
			`script "/etc/keepalived/check_port.sh 7443"`, "auth_type PASS") {
			if !strings.Contains(tc.conf, w) {
				t.Errorf("lacks %q:\n%s", w, tc.conf)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(tc.conf, w) {
				t.Errorf("has %q:\n%s", w, tc.conf)
			}
		}
	}
	pass := regexp.MustCompile(`auth_pass (\S+)`)
	pm, pb := pass.FindStringSubmatch(m), pass.FindStringSubmatch(b)
	if pm == nil || pb == nil || pm[1] != pb[1] || len(pm[1]) != 8 {
		t.Errorf("auth_pass %v and %v: want the same 8 characters", pm, pb)
	}
}

// TestCheckPortScript runs the rendered check_port.sh against a real
// listening socket and a closed port.
func TestCheckPortScript(t *testing.T) {
	needValidator(t, "ss", "iproute2")
	script := filepath.Join(t.TempDir(), "check_port.sh")
	if err := os.WriteFile(script, renderFile(t, seedSpec(), "hdss7-11", KeepalivedCheckScript), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := l.Addr().(*net.TCPAddr).Port
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l2.Addr().(*net.TCPAddr).Port
	l2.Close()
	defer l.Close()
	for _, tc := range []struct {
		name string
		arg  string
		code int
	}{
		{"listening", strconv.Itoa(open), 0},
		{"closed", strconv.Itoa(closed), 1},
		{"no port", "", 2},
		{"not a port", "74x3", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(script, tc.arg).CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("check_port.sh %q: exit %d, want %d\n%s", tc.arg, code, tc.code, out)
			}
		})
	}
}

// TestEdgeNeedsMastersAndNodes: an lb host in a spec without masters or
// nodes has nothing to balance, and says so.
func TestEdgeNeedsMastersAndNodes(t *testing.T) {
	s := seedSpec()
	var hosts []spec.Host
	for _, h := range s.Hosts {
		if h.Name != "hdss7-21" && h.Name != "hdss7-22" {
			hosts = append(hosts, h)
		}
	}
	s.Hosts = hosts
	_, err := Host(s, s.Hosts[0])
	if !errors.Is(err, ErrHost) || !strings.Contains(err.Error(), "role master") {
		t.Errorf("err = %v, want ErrHost naming role master", err)
	}
}
