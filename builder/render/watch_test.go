package render

import (
	"reflect"
	"testing"

	"github.com/kubebake/kubebake/firstboot/plan"
)

func TestWatchUnits(t *testing.T) {
	files := map[string][]byte{
		UnitPath(UnitKubelet):     []byte("ExecStart=" + KubeletBin + " \\\n  --config=" + KubeletConfigFile + " \\\n  --kubeconfig=" + KubeletKubeconfig + "\n"),
		KubeletBin:                nil, // a binary: watched, not read
		KubeletConfigFile:         []byte("authentication:\n  x509:\n    clientCAFile: " + CACert + "\ntlsCertFile: " + KubeletServerCert + "\nresolvConf: /etc/resolv.conf\n"),
		KubeletKubeconfig:         []byte("client-certificate-data: LS0t\n"), // embeds its certificates
		CACert:                    []byte("-----BEGIN CERTIFICATE-----\n"),
		KubeletServerCert:         []byte("-----BEGIN CERTIFICATE-----\n"),
		CACert + ".bak":           []byte("not named: only a longer path mentions it\n"),
		KubeProxyConfigFile:       []byte("kubeconfig: " + KubeProxyKubeconfig + "\n"),
		NamedConf:                 []byte("options { directory \"" + NamedDir + "\"; };\nzone \"od.com\" { file \"od.com.zone\"; };\n"),
		NamedDir + "/od.com.zone": []byte("$ORIGIN od.com.\n"),
		UnitPath(UnitFlanneld):    []byte("ExecStart=" + FlanneldBin + " --subnet-file=" + FlannelSubnetEnv + "\n"),
		FlanneldBin:               nil,
		FlannelSubnetEnv:          []byte("FLANNEL_SUBNET=172.7.21.1/24\n"), // flanneld rewrites it: not watched
		// A loop: each names the other.
		UnitPath("a.service"): []byte("ExecStart=/opt/a/run /opt/a/conf\n"),
		"/opt/a/conf":         []byte("include /opt/a/more\n"),
		"/opt/a/more":         []byte("include /opt/a/conf\n"),
	}
	units := []plan.Unit{
		{Name: UnitKubelet, Start: true},
		{Name: UnitNamed, Start: true},
		{Name: "a.service", Start: true},
		{Name: UnitNginx, Start: true}, // packaged, its config not in this bundle
		{Name: UnitFlanneld, Start: true},
	}
	got := WatchUnits(units, files)
	want := [][]string{
		{UnitPath(UnitKubelet), KubeletBin, CACert, KubeletServerCert, KubeletConfigFile, KubeletKubeconfig}, // sorted
		{NamedConf, NamedDir + "/od.com.zone"},
		{UnitPath("a.service"), "/opt/a/conf", "/opt/a/more"},
		nil,
		{UnitPath(UnitFlanneld), FlanneldBin},
	}
	for i := range want {
		if !reflect.DeepEqual(got[i].Watch, want[i]) {
			t.Errorf("%s watches\n%q\nwant\n%q", got[i].Name, got[i].Watch, want[i])
		}
		if got[i].Name != units[i].Name || !got[i].Start {
			t.Errorf("unit %d: %+v, want name and start kept", i, got[i])
		}
	}
	if units[0].Watch != nil {
		t.Error("WatchUnits changed its argument")
	}
	if again := WatchUnits(units, files); !reflect.DeepEqual(again, got) {
		t.Error("two calls differ")
	}
}

func TestMentions(t *testing.T) {
	for _, tc := range []struct {
		text string
		want bool
	}{
		{"--config=/opt/a.pem", true},
		{"file: /opt/a.pem\n", true},
		{`"/opt/a.pem"`, true},
		{"/opt/a.pem", true},
		{"/opt/a.pem.bak", false},
		{"/x/opt/a.pem", false},
		{"/opt/a.pem-key and /opt/a.pem;", true}, // the second one counts
		{"/opt/a.pemx /opt/a.pem2", false},
	} {
		if got := mentions(tc.text, "/opt/a.pem"); got != tc.want {
			t.Errorf("mentions(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}
