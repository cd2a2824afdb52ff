package pki

import (
	"slices"
	"testing"
)

func TestMatrixSeed(t *testing.T) {
	reqs := Matrix(seedCluster())
	var got []string
	for _, r := range reqs {
		got = append(got, r.Name)
	}
	want := []string{
		"etcd-server-hdss7-12", "etcd-peer-hdss7-12",
		"etcd-server-hdss7-21", "etcd-peer-hdss7-21",
		"etcd-server-hdss7-22", "etcd-peer-hdss7-22",
		"apiserver", "apiserver-etcd-client", "apiserver-kubelet-client", "front-proxy-client",
		"admin", "kube-controller-manager", "kube-scheduler", "kube-proxy", "flannel",
		"kubelet-client-hdss7-21", "kubelet-server-hdss7-21",
		"kubelet-client-hdss7-22", "kubelet-server-hdss7-22",
		"harbor", "wildcard-od.com", "sa",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("names:\n got %q\nwant %q", got, want)
	}
	if _, err := validate(reqs); err != nil {
		t.Fatalf("matrix does not validate: %v", err)
	}

	tests := []struct {
		name, ca, profile, cn string
		o, hosts, receivers   []string
	}{
		{"etcd-server-hdss7-12", CA, ProfilePeer, "etcd-server", nil,
			[]string{"10.4.7.12", "hdss7-12.host.com", "hdss7-12", "127.0.0.1", "localhost"}, []string{"hdss7-12"}},
		{"etcd-peer-hdss7-21", CA, ProfilePeer, "etcd-peer", nil,
			[]string{"10.4.7.21", "hdss7-21.host.com", "hdss7-21"}, []string{"hdss7-21"}},
		{"apiserver", CA, ProfileServer, "kube-apiserver", nil,
			[]string{"192.168.0.1", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
				"kubernetes.default.svc.cluster.local", "10.4.7.10",
				"10.4.7.21", "hdss7-21.host.com", "10.4.7.22", "hdss7-22.host.com", "127.0.0.1", "localhost"},
			[]string{"hdss7-21", "hdss7-22"}},
		{"apiserver-etcd-client", CA, ProfileClient, "kube-apiserver-etcd-client", nil, nil, []string{"hdss7-21", "hdss7-22"}},
		{"apiserver-kubelet-client", CA, ProfileClient, "kube-apiserver-kubelet-client", []string{"system:masters"}, nil, []string{"hdss7-21", "hdss7-22"}},
		{"front-proxy-client", FrontProxyCA, ProfileClient, "front-proxy-client", nil, nil, []string{"hdss7-21", "hdss7-22"}},
		{"admin", CA, ProfileClient, "admin", []string{"system:masters"}, nil, []string{"hdss7-21", "hdss7-22", "hdss7-200"}},
		{"kube-controller-manager", CA, ProfileClient, "system:kube-controller-manager", nil, nil, []string{"hdss7-21", "hdss7-22"}},
		{"kube-scheduler", CA, ProfileClient, "system:kube-scheduler", nil, nil, []string{"hdss7-21", "hdss7-22"}},
		{"kube-proxy", CA, ProfileClient, "system:kube-proxy", nil, nil, []string{"hdss7-21", "hdss7-22"}},
		{"flannel", CA, ProfileClient, "flanneld", nil, nil, []string{"hdss7-21", "hdss7-22"}},
		{"kubelet-client-hdss7-22", CA, ProfileClient, "system:node:hdss7-22.host.com", []string{"system:nodes"}, nil, []string{"hdss7-22"}},
		{"kubelet-server-hdss7-21", CA, ProfileServer, "hdss7-21.host.com", nil,
			[]string{"10.4.7.21", "hdss7-21.host.com", "hdss7-21"}, []string{"hdss7-21"}},
		{"harbor", CA, ProfileServer, "harbor.od.com", nil, []string{"harbor.od.com"}, []string{"hdss7-200"}},
		{"wildcard-od.com", CA, ProfileServer, "*.od.com", nil, []string{"*.od.com", "od.com"}, []string{"hdss7-11", "hdss7-12"}},
		{"sa", "", ProfileKeyPair, "", nil, nil, []string{"hdss7-21", "hdss7-22"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := findReq(t, reqs, tt.name)
			if r.CA != tt.ca || r.Profile != tt.profile || r.CN != tt.cn {
				t.Errorf("CA/profile/CN = %s/%s/%s, want %s/%s/%s", r.CA, r.Profile, r.CN, tt.ca, tt.profile, tt.cn)
			}
			if !slices.Equal(r.O, tt.o) {
				t.Errorf("O = %q, want %q", r.O, tt.o)
			}
			if !slices.Equal(r.Hosts, tt.hosts) {
				t.Errorf("hosts = %q, want %q", r.Hosts, tt.hosts)
			}
			if !slices.Equal(r.Receivers, tt.receivers) {
				t.Errorf("receivers = %q, want %q", r.Receivers, tt.receivers)
			}
			if r.Purpose == "" {
				t.Error("no purpose")
			}
		})
	}
}

func TestMatrixFQDNFromHostDomain(t *testing.T) {
	c := seedCluster()
	c.Nodes = []Member{{Name: "n1", IP: "10.0.0.1"}}
	r := findReq(t, Matrix(c), "kubelet-client-n1")
	if r.CN != "system:node:n1.host.com" {
		t.Errorf("CN = %s", r.CN)
	}
}
