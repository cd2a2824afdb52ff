package nspawnhost

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestVethName(t *testing.T) {
	for _, name := range []string{"hdss7-11", "hdss7-200", "a-very-long-host-name-indeed"} {
		v := vethName(name)
		if len(v) > 15 || !strings.HasPrefix(v, "vb-") {
			t.Errorf("vethName(%q) = %q: want vb-…, at most 15 bytes", name, v)
		}
	}
	if vethName("hdss7-200") != "vb-hdss7-200" {
		t.Errorf("vethName(hdss7-200) = %q", vethName("hdss7-200"))
	}
	if a, b := vethName("a-very-long-host-name-1"), vethName("a-very-long-host-name-2"); a == b {
		t.Errorf("long names collide: %q", a)
	}
}

// TestShellQuote runs the quoted words through sh and checks they come back
// as the same argv.
func TestShellQuote(t *testing.T) {
	words := []string{"systemd-nspawn", "--directory=/a b/c", "it's", "", "--setenv=X=$HOME", "a\"b"}
	var q []string
	for _, w := range words {
		q = append(q, shellQuote(w))
	}
	out, err := exec.Command("sh", "-c", `for a in `+strings.Join(q, " ")+`; do printf '%s\n' "[$a]"; done`).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, w := range words {
		want.WriteString("[" + w + "]\n")
	}
	if string(out) != want.String() {
		t.Errorf("got\n%s\nwant\n%s", out, want.String())
	}
}

// TestContainerInitNone: the test process has no descendant that is PID 1
// of a namespace.
func TestContainerInitNone(t *testing.T) {
	if pid := containerInit(os.Getpid()); pid != 0 {
		t.Errorf("containerInit(self) = %d, want 0", pid)
	}
}
