package plan

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func valid() *Manifest {
	return &Manifest{
		Format: Format,
		Host:   Host{Name: "hdss7-21", FQDN: "hdss7-21.host.com", IP: "10.4.7.21", Roles: []string{RoleNode}},
		Files: []File{{Path: "/opt/kubernetes/certs/kubelet-server-key.pem", Source: "rootfs/opt/kubernetes/certs/kubelet-server-key.pem",
			Mode: "0600", Owner: "root:root", Size: 3, SHA256: strings.Repeat("a", 64), Secret: true}},
		Plan: Plan{Routes: []Route{{Dst: "172.7.22.0/24", Via: "10.4.7.22"}}, Units: []Unit{{Name: "kubelet.service", Start: true}}},
	}
}

func TestRoundTrip(t *testing.T) {
	b, err := Encode(valid())
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Encode(m)
	if !bytes.Equal(b, again) {
		t.Fatalf("round trip changed the bytes:\n%s\n%s", b, again)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Manifest)
		raw  string
		want string
	}{
		{name: "other format", edit: func(m *Manifest) { m.Format = "kubebake.io/bundle/v0" }, want: `format "kubebake.io/bundle/v0": unsupported bundle format`},
		{name: "relative dest", edit: func(m *Manifest) { m.Files[0].Path = "opt/x" }, want: `files[0].path: "opt/x": want a clean absolute path`},
		{name: "dest escapes", edit: func(m *Manifest) { m.Files[0].Path = "/opt/../etc/shadow" }, want: "want a clean absolute path"},
		{name: "source outside rootfs", edit: func(m *Manifest) { m.Files[0].Source = "rootfs/../firstboot" }, want: "want a clean path under rootfs/"},
		{name: "secret readable", edit: func(m *Manifest) { m.Files[0].Mode = "0644" }, want: "secret with mode 0644"},
		{name: "bad mode", edit: func(m *Manifest) { m.Files[0].Mode = "0x1ff" }, want: `mode "0x1ff": want octal`},
		{name: "duplicate", edit: func(m *Manifest) { m.Files = append(m.Files, m.Files[0]) }, want: "listed twice"},
		{name: "bad route", edit: func(m *Manifest) { m.Plan.Routes[0].Via = "node22" }, want: "plan.routes[0].via"},
		{name: "bad ip", edit: func(m *Manifest) { m.Host.IP = "10.4.7" }, want: `host.ip "10.4.7"`},
		{name: "unknown field", raw: `{"format":"kubebake.io/bundle/v1","extra":1}`, want: `unknown field "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := []byte(tc.raw)
			if tc.edit != nil {
				m := valid()
				tc.edit(m)
				var err error
				if raw, err = Encode(m); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Decode(bytes.NewReader(raw))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	m := valid()
	m.Format = "x"
	if err := m.Validate(); !errors.Is(err, ErrFormat) {
		t.Fatalf("errors.Is(ErrFormat) = false: %v", err)
	}
}

func TestModes(t *testing.T) {
	for s, want := range map[string]uint32{"0644": 0o644, "600": 0o600, "4755": 0o4755} {
		if got, err := ParseMode(s); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %o, %v", s, got, err)
		}
	}
	if FormatMode(0o600) != "0600" {
		t.Error(FormatMode(0o600))
	}
}

func TestDescribe(t *testing.T) {
	var b bytes.Buffer
	if err := valid().Describe(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hdss7-21.host.com (10.4.7.21) roles node", "172.7.22.0/24 via 10.4.7.22", "kubelet-server-key.pem secret", "7 units"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
}

func TestAddons(t *testing.T) {
	ok := func() *Addons {
		return &Addons{Dir: "/opt/kubernetes/addons", Kubeconfig: "/opt/kubernetes/conf/kubebake-addons.kubeconfig",
			Kubectl: "/opt/kubernetes/bin/kubectl", Attempts: 60, Interval: "5s"}
	}
	m := valid()
	m.Plan.Addons = ok()
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(bytes.NewReader(b))
	if err != nil || *back.Plan.Addons != *ok() {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	// Without addons the manifest reads as before: no "addons" key.
	if b, _ := Encode(valid()); strings.Contains(string(b), "addons") {
		t.Errorf("addons written when nil:\n%s", b)
	}
	var d bytes.Buffer
	m.Files = append(m.Files, File{Path: "/opt/kubernetes/addons/20-coredns.yaml"})
	if err := m.Describe(&d); err != nil || !strings.Contains(d.String(), "9 addons") || !strings.Contains(d.String(), "(20-coredns.yaml)") {
		t.Errorf("describe: %v\n%s", err, d.String())
	}
	for _, tc := range []struct {
		name string
		edit func(*Addons)
		want string
	}{
		{"relative dir", func(a *Addons) { a.Dir = "addons" }, "plan.addons.dir"},
		{"unclean kubeconfig", func(a *Addons) { a.Kubeconfig = "/opt/../root/.kube/config" }, "plan.addons.kubeconfig"},
		{"no kubectl", func(a *Addons) { a.Kubectl = "" }, "plan.addons.kubectl"},
		{"no attempts", func(a *Addons) { a.Attempts = 0 }, "plan.addons.attempts 0"},
		{"bad interval", func(a *Addons) { a.Interval = "5" }, `plan.addons.interval "5"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := valid()
			m.Plan.Addons = ok()
			tc.edit(m.Plan.Addons)
			if err := m.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestUnitWatch(t *testing.T) {
	key := "/opt/kubernetes/certs/kubelet-server-key.pem"
	m := valid()
	m.Plan.Units[0].Watch = []string{key}
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(bytes.NewReader(b))
	if err != nil || len(back.Plan.Units[0].Watch) != 1 || back.Plan.Units[0].Watch[0] != key {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	// Without a watch list the manifest reads as before: no "watch" key.
	if b, _ := Encode(valid()); strings.Contains(string(b), "watch") {
		t.Errorf("watch written when empty:\n%s", b)
	}
	for _, tc := range []struct {
		name  string
		watch string
		files bool // the manifest lists its files
		want  string
	}{
		{"relative", "opt/x", true, `plan.units[0].watch[0]: "opt/x": want a clean absolute path`},
		{"unclean", "/opt/../etc/shadow", true, "plan.units[0].watch[0]"},
		{"not a file of the bundle", "/opt/kubernetes/conf/kubelet-config.yaml", true, "plan.units[0].watch[0] /opt/kubernetes/conf/kubelet-config.yaml: not a file of the bundle"},
		{"plan before its files", "/opt/kubernetes/conf/kubelet-config.yaml", false, ""},
		{"plan before its files, relative", "x", false, "plan.units[0].watch[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := valid()
			if !tc.files {
				m.Files = nil
			}
			m.Plan.Units[0].Watch = []string{tc.watch}
			err := m.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestUnitStartTimeout(t *testing.T) {
	for _, tc := range []struct{ val, want string }{
		{"1h", ""},
		{"", ""},
		{"forever", `plan.units[0].startTimeout "forever": want a positive Go duration`},
		{"0s", `plan.units[0].startTimeout "0s": want a positive Go duration`},
	} {
		m := valid()
		m.Plan.Units[0].StartTimeout = tc.val
		err := m.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("startTimeout %q: err = %v, want %q", tc.val, err, tc.want)
		}
	}
}
