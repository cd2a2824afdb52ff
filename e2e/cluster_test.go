package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// The cluster assertions run once both nodes' firstboot is done. kubectl
// runs on the ops host (hdss7-200) with the admin kubeconfig from its
// bundle, whose server is the VIP (10.4.7.10:7443): every call goes
// through keepalived's address and nginx's L4 proxy to an apiserver.

const (
	kubectlBin  = "/opt/kubernetes/bin/kubectl"
	adminConfig = "/root/.kube/config"
	testNS      = "kb-e2e"
)

// kubectl runs kubectl on the ops host through the VIP.
func (r *run) kubectl(ctx context.Context, timeout time.Duration, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	argv := append([]string{kubectlBin, "--kubeconfig", adminConfig, "--request-timeout=60s"}, args...)
	return r.ops.Exec(ctx, argv...)
}

// kubectlRetry runs kubectl until check accepts its output or timeout
// passes; it returns the last output and error.
func (r *run) kubectlRetry(ctx context.Context, timeout time.Duration, check func(string) error, args ...string) (string, error) {
	var out []byte
	err := retry(timeout, func() error {
		var err error
		out, err = r.kubectl(ctx, 90*time.Second, args...)
		if err == nil && check != nil {
			err = check(string(out))
		}
		if err != nil {
			time.Sleep(4 * time.Second)
		}
		return err
	})
	return strings.TrimSpace(string(out)), err
}

// nodeName is a node's name in the cluster: the kubelet's
// --hostname-override, the host's FQDN.
func (r *run) nodeName(host string) string { return host + "." + r.spec.Cluster.HostDomain }

// testWorkload is one web pod per node (busybox's httpd answering with its
// node and pod IP, from the site's Harbor), a ClusterIP Service over them
// and an Ingress for web.od.com through Traefik. Pods are placed with a
// nodeSelector, so the scheduler binds them.
func (r *run) testWorkload() string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", testNS)
	for _, h := range nodeHosts {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Pod
metadata:
  name: web-%[1]s
  namespace: %[2]s
  labels: {app: web}
spec:
  nodeSelector: {kubernetes.io/hostname: %[3]s}
  terminationGracePeriodSeconds: 1
  containers:
    - name: web
      image: %[4]s
      command: ["/bin/sh", "-c", "mkdir -p /www && echo \"web on $NODE_NAME at $POD_IP\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
      env:
        - name: NODE_NAME
          valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
        - name: POD_IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
      ports: [{containerPort: 8080}]
      readinessProbe:
        httpGet: {path: /, port: 8080}
        periodSeconds: 5
`, strings.TrimPrefix(h, "hdss7-"), testNS, r.nodeName(h), r.env["KUBEBAKE_E2E_TEST_IMAGE"])
	}
	fmt.Fprintf(&b, `---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: %[1]s
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: %[1]s
spec:
  ingressClassName: traefik
  rules:
    - host: web.%[2]s
      http:
        paths:
          - path: /
            pathType: Prefix
            backend: {service: {name: web, port: {number: 80}}}
`, testNS, r.spec.Cluster.ServiceDomain)
	return b.String()
}

// controlPlanePhases assert the control plane through the VIP and the
// nodes Ready. They run in every make e2e, while firstboot on the node may
// still be applying the add-ons; each phase stops the rest when what they
// need is not there.
func (r *run) controlPlanePhases(ctx context.Context) bool {
	ok := true
	fail := func(format string, a ...any) {
		ok = false
		r.assertFail(format, a...)
	}

	r.phase("kubectl through the VIP", func() {
		out, err := r.kubectlRetry(ctx, r.budget(5*time.Minute), wantExact("ok"), "get", "--raw", "/readyz")
		if err != nil {
			fail("kubectl get --raw /readyz from hdss7-200 through the VIP: %v %s", err, out)
			return
		}
		r.assertOK("kubectl get --raw /readyz = ok (ops host hdss7-200, admin kubeconfig from its bundle, through the VIP %s:7443 and nginx L4)", r.spec.Cluster.VIP)
		// The controller-manager and the scheduler answer their own
		// health endpoints (bound to 127.0.0.1 on each master) and hold
		// their leases.
		for _, name := range nodeHosts {
			for _, c := range []struct{ name, port string }{{"kube-controller-manager", "10257"}, {"kube-scheduler", "10259"}} {
				var out []byte
				err := retry(r.budget(3*time.Minute), func() error {
					cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					var err error
					out, err = r.nodes[name].Exec(cctx, "curl", "-ksS", "--max-time", "20", "https://127.0.0.1:"+c.port+"/healthz")
					if err == nil && strings.TrimSpace(string(out)) != "ok" {
						err = fmt.Errorf("healthz %q", out)
					}
					if err != nil {
						time.Sleep(3 * time.Second)
					}
					return err
				})
				if err != nil {
					fail("%s /healthz on %s: %v", c.name, name, err)
					continue
				}
				r.assertOK("%s healthy on %s (https://127.0.0.1:%s/healthz = ok)", c.name, name, c.port)
			}
		}
		for _, lease := range []string{"kube-controller-manager", "kube-scheduler"} {
			out, err := r.kubectlRetry(ctx, r.budget(2*time.Minute), nonEmpty, "-n", "kube-system", "get", "lease", lease, "-o", "jsonpath={.spec.holderIdentity}")
			if err != nil {
				fail("lease kube-system/%s: %v %s", lease, err, out)
				continue
			}
			r.assertOK("%s holds its leader lease: %s", lease, out)
		}
	})
	if !ok {
		return false
	}

	r.phase("nodes Ready", func() {
		ready := map[string]string{}
		var out string
		err := retry(r.budget(15*time.Minute), func() error {
			var err error
			out, err = r.kubectlRetry(ctx, time.Minute, nil, "get", "nodes", "-o",
				`jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
			if err != nil {
				return err
			}
			for _, l := range strings.Split(out, "\n") {
				f := strings.Fields(l)
				for _, h := range nodeHosts {
					if len(f) == 2 && f[0] == r.nodeName(h) && f[1] == "True" && ready[h] == "" {
						ready[h] = r.since(h)
					}
				}
			}
			if len(ready) < len(nodeHosts) {
				time.Sleep(5 * time.Second)
				return fmt.Errorf("not Ready yet: %q", out)
			}
			return nil
		})
		if err != nil {
			fail("nodes Ready: %v", err)
			return
		}
		for _, h := range nodeHosts {
			// When it became Ready, by the node's own condition: the
			// phase may start after that (it waits for the apiserver).
			became := ""
			if ts, err := r.kubectlRetry(ctx, time.Minute, nonEmpty, "get", "node", r.nodeName(h), "-o",
				`jsonpath={.status.conditions[?(@.type=="Ready")].lastTransitionTime}`); err == nil {
				if at, err := time.Parse(time.RFC3339, ts); err == nil {
					became = fmt.Sprintf("; Ready since %s, +%.0fs after qemu start", ts, at.Sub(r.nodes[h].Started()).Seconds())
				}
			}
			r.assertOK("node %s Ready (seen %s%s)", r.nodeName(h), ready[h], became)
		}
		wide, _ := r.kubectl(ctx, time.Minute, "get", "nodes", "-o", "wide")
		r.t.Logf("kubectl get nodes -o wide:\n%s", wide)
	})
	return ok
}

// workloadPhases are the workload assertions (KUBEBAKE_E2E_CLUSTER=1), in
// dependency order, after firstboot has applied the add-ons; each phase
// stops the rest when what they need is not there.
func (r *run) workloadPhases(ctx context.Context) bool {
	ok := true
	fail := func(format string, a ...any) {
		ok = false
		r.assertFail(format, a...)
	}

	pods := map[string]string{} // node host → its web pod's IP
	r.phase("test pods on both nodes", func() {
		manifest := "/root/kb-e2e-workload.yaml"
		if out, err := r.ops.Exec(ctx, "sh", "-c", `printf '%s' "$1" > "$2"`, "sh", r.testWorkload(), manifest); err != nil {
			fail("write the test workload on hdss7-200: %v %s", err, out)
			return
		}
		// Under TCG the apiserver can take minutes to admit a pod.
		if out, err := r.kubectlRetry(ctx, r.budget(10*time.Minute), nil, "apply", "-f", manifest); err != nil {
			fail("kubectl apply the test workload: %v %s", err, out)
			return
		}
		var podNames []string
		for _, h := range nodeHosts {
			podNames = append(podNames, "pod/web-"+strings.TrimPrefix(h, "hdss7-"))
		}
		args := append([]string{"-n", testNS, "wait", "--for=condition=Ready", "--timeout=60s"}, podNames...)
		if out, err := r.kubectlRetry(ctx, r.budget(15*time.Minute), nil, args...); err != nil {
			desc, _ := r.kubectl(ctx, time.Minute, "-n", testNS, "describe", "pods")
			fail("test pods Ready: %v %s\n%s", err, out, desc)
			return
		}
		out, err := r.kubectl(ctx, time.Minute, "-n", testNS, "get", "pods", "-o",
			`jsonpath={range .items[*]}{.spec.nodeName} {.status.podIP}{"\n"}{end}`)
		if err != nil {
			fail("test pods' IPs: %v %s", err, out)
			return
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(l)
			for _, h := range nodeHosts {
				if len(f) == 2 && f[0] == r.nodeName(h) {
					pods[h] = f[1]
				}
			}
		}
		for _, h := range nodeHosts {
			// The seed's pod networks: 172.7.<host octet>.0/24 per node.
			_, want, _ := net.ParseCIDR("172.7." + strings.TrimPrefix(h, "hdss7-") + ".0/24")
			ip := net.ParseIP(pods[h])
			if ip == nil || !want.Contains(ip) {
				fail("web pod on %s has IP %q, want one in %s (its flannel subnet)", h, pods[h], want)
				continue
			}
			r.assertOK("pod web-%s Running and Ready on %s, IP %s (in %s), image %s from the site's Harbor", strings.TrimPrefix(h, "hdss7-"), r.nodeName(h), ip, want, r.env["KUBEBAKE_E2E_TEST_IMAGE"])
		}
	})
	if !ok {
		return false
	}

	// exec runs a command in a test pod (kubectl exec: apiserver → the
	// kubelet's TLS port with the apiserver's kubelet client certificate).
	podExec := func(fromHost string, timeout time.Duration, want string, argv ...string) (string, error) {
		args := append([]string{"-n", testNS, "exec", "web-" + strings.TrimPrefix(fromHost, "hdss7-"), "--"}, argv...)
		return r.kubectlRetry(ctx, timeout, wantContains(want), args...)
	}

	r.phase("pod to pod across nodes (flannel host-gw)", func() {
		if len(nodeHosts) < 2 {
			r.t.Logf("SKIP: pod to pod across nodes: only %s boots (a second TCG control-plane guest starves both on this machine: see nodeHosts; KUBEBAKE_E2E_NODES=hdss7-21,hdss7-22 tries it)", strings.Join(nodeHosts, ", "))
		}
		for i, from := range nodeHosts {
			if len(nodeHosts) < 2 {
				break
			}
			to := nodeHosts[(i+1)%len(nodeHosts)]
			want := "web on " + r.nodeName(to) + " at " + pods[to]
			out, err := podExec(from, r.budget(3*time.Minute), want, "wget", "-qO-", "-T", "10", "http://"+pods[to]+":8080/")
			if err != nil {
				fail("pod on %s → pod on %s (%s:8080): %v %q", from, to, pods[to], err, out)
				continue
			}
			r.assertOK("pod on %s reached the pod on %s at %s:8080 across nodes: %q", from, to, pods[to], out)
		}
		for _, h := range nodeHosts {
			out, err := r.nodes[h].Exec(ctx, "ip", "route", "show", "172.7.0.0/16")
			if err != nil {
				fail("routes on %s: %v", h, err)
				continue
			}
			r.assertOK("host-gw routes on %s: %s", h, strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", "; "))
		}
	})

	r.phase("CoreDNS and the Service through kube-proxy (ipvs)", func() {
		if out, err := r.kubectlRetry(ctx, r.budget(10*time.Minute), nil, "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=60s"); err != nil {
			fail("CoreDNS rollout: %v %s", err, out)
			return
		}
		kubeSvc, err := r.kubectlRetry(ctx, time.Minute, nonEmpty, "get", "service", "kubernetes", "-o", "jsonpath={.spec.clusterIP}")
		if err != nil {
			fail("the kubernetes Service: %v", err)
			return
		}
		out, err := podExec(nodeHosts[0], r.budget(3*time.Minute), kubeSvc, "nslookup", "kubernetes.default.svc.cluster.local")
		if err != nil {
			fail("CoreDNS from a pod: nslookup kubernetes.default.svc.cluster.local: %v %q", err, out)
		} else {
			r.assertOK("CoreDNS answers kubernetes.default.svc.cluster.local → %s from a pod on %s", kubeSvc, nodeHosts[0])
		}
		webSvc, err := r.kubectlRetry(ctx, time.Minute, nonEmpty, "-n", testNS, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
		if err != nil {
			fail("the web Service: %v", err)
			return
		}
		for _, h := range nodeHosts {
			var out []byte
			err := retry(r.budget(2*time.Minute), func() error {
				var err error
				out, err = r.nodes[h].Exec(ctx, "ipvsadm", "-Ln", "-t", webSvc+":80")
				if err == nil && strings.Count(string(out), ":8080") < len(nodeHosts) {
					err = fmt.Errorf("fewer than %d real servers", len(nodeHosts))
				}
				if err != nil {
					time.Sleep(3 * time.Second)
				}
				return err
			})
			if err != nil {
				fail("ipvsadm -Ln on %s lacks the web Service %s:80 with both pods: %v\n%s", h, webSvc, err, out)
				continue
			}
			r.assertOK("kube-proxy (ipvs) on %s: ipvsadm -Ln -t %s:80 →\n%s", h, webSvc, strings.TrimSpace(string(out)))
		}
		name := "web." + testNS + ".svc.cluster.local"
		from := nodeHosts[len(nodeHosts)-1]
		out, err = podExec(from, r.budget(3*time.Minute), "web on ", "wget", "-qO-", "-T", "10", "http://"+name+"/")
		if err != nil {
			fail("Service by name from a pod (%s): %v %q", name, err, out)
			return
		}
		r.assertOK("a pod on %s reached http://%s/ (CoreDNS → ClusterIP %s → ipvs): %q", from, name, webSvc, out)
	})

	r.phase("ingress through nginx L7 and Traefik", func() {
		// Traefik does not build from the Go module proxy (README, "What
		// cannot run here"): when the site's Harbor has no Traefik image,
		// the ingress path cannot run and the log says so.
		image, _ := r.kubectl(ctx, time.Minute, "-n", "kube-system", "get", "daemonset", "traefik", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
		repo, tag, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(string(image)), "harbor."+r.spec.Cluster.ServiceDomain+"/"), ":")
		if tags, err := r.curlHarbor(ctx, "/v2/"+repo+"/tags/list"); repo == "" || err != nil || !strings.Contains(string(tags), `"`+tag+`"`) {
			r.t.Logf("SKIP: the ingress path (VIP → nginx L7 → Traefik :81 → Service): Traefik's image %q is not in the site's Harbor (it cannot be built offline here: README, What cannot run here); the DaemonSet is applied but cannot pull", strings.TrimSpace(string(image)))
			return
		}
		out, err := r.kubectlRetry(ctx, r.budget(8*time.Minute), nil, "-n", "kube-system", "rollout", "status", "daemonset/traefik", "--timeout=60s")
		if err != nil {
			events, _ := r.kubectl(ctx, time.Minute, "-n", "kube-system", "get", "pods", "-l", "app.kubernetes.io/name=traefik", "-o", "wide")
			fail("Traefik's DaemonSet not ready: %v %s\n%s", err, out, events)
			return
		}
		host := "web." + r.spec.Cluster.ServiceDomain
		var body []byte
		err = retry(r.budget(3*time.Minute), func() error {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			var err error
			body, err = r.ops.Exec(cctx, "curl", "-fsS", "--max-time", "20", "-H", "Host: "+host, "http://"+r.spec.Cluster.VIP+"/")
			if err == nil && !strings.Contains(string(body), "web on ") {
				err = fmt.Errorf("body %q", body)
			}
			if err != nil {
				time.Sleep(3 * time.Second)
			}
			return err
		})
		if err != nil {
			fail("http://%s/ with Host: %s (VIP → nginx L7 → Traefik :81 → Service web): %v %s", r.spec.Cluster.VIP, host, err, body)
			return
		}
		r.assertOK("http://%s/ with Host: %s answered through the VIP, nginx L7 (*.%s), Traefik on :81 and the Service: %q", r.spec.Cluster.VIP, host, r.spec.Cluster.ServiceDomain, strings.TrimSpace(string(body)))
	})
	return ok
}

// nodesSecondBoot reboots hdss7-12 (nspawn) and the QEMU nodes at once:
// firstboot must be a no-op on each, and the cluster must come back on its
// own (etcd quorum, the nodes Ready, the apiserver through the VIP).
func (r *run) nodesSecondBoot(ctx context.Context) {
	r.phase("second boot of the etcd and node hosts", func() {
		var wg sync.WaitGroup
		for _, name := range append([]string{"hdss7-12"}, nodeHosts...) {
			wg.Go(func() { r.secondBoot(ctx, name) })
		}
		wg.Wait()
		out, err := r.kubectlRetry(ctx, r.budget(15*time.Minute), func(s string) error {
			if strings.Count(s, " True") < len(nodeHosts) {
				return fmt.Errorf("not all Ready: %q", s)
			}
			return nil
		}, "get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
		if err != nil {
			r.assertFail("nodes Ready after the second boot: %v %s", err, out)
			return
		}
		r.assertOK("after the second boot: both nodes Ready again through the VIP (%s), %s", strings.ReplaceAll(out, "\n", ", "), r.since(nodeHosts[0]))
	})
}

func wantExact(want string) func(string) error {
	return func(s string) error {
		if strings.TrimSpace(s) != want {
			return fmt.Errorf("got %q, want %q", s, want)
		}
		return nil
	}
}

func wantContains(want string) func(string) error {
	return func(s string) error {
		if !strings.Contains(s, want) {
			return fmt.Errorf("got %q, want it to contain %q", s, want)
		}
		return nil
	}
}

func nonEmpty(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("empty")
	}
	return nil
}
