package qemuhost

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubebake/kubebake/builder/spec"
	"github.com/kubebake/kubebake/e2e/bed"
)

// fakeAgent answers the guest agent's protocol on a unix socket: a stale
// answer and junk before the sync, guest-exec of one command that exits 3
// with output, one "still running" status first.
func fakeAgent(t *testing.T, sock string) {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		polls := 0
		for {
			if b, err := r.Peek(1); err == nil && b[0] == 0xff {
				r.ReadByte()
				continue
			}
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			var m struct {
				Execute   string          `json:"execute"`
				Arguments json.RawMessage `json:"arguments"`
			}
			if err := json.Unmarshal(line, &m); err != nil {
				continue
			}
			switch m.Execute {
			case "guest-sync-delimited":
				var a struct{ ID int64 }
				json.Unmarshal(m.Arguments, &a)
				c.Write([]byte("{\"return\": 7}\n\xff{\"return\": 1}\n\xff"))
				c.Write([]byte(`{"return": ` + jsonInt(a.ID) + "}\n"))
			case "guest-exec":
				var a struct {
					Path string
					Arg  []string
				}
				json.Unmarshal(m.Arguments, &a)
				if a.Path != "/bin/sh" || a.Arg[len(a.Arg)-1] != "hello" {
					c.Write([]byte(`{"error": {"class": "GenericError", "desc": "unexpected ` + a.Path + `"}}` + "\n"))
					continue
				}
				c.Write([]byte(`{"return": {"pid": 42}}` + "\n"))
			case "guest-exec-status":
				polls++
				if polls == 1 {
					c.Write([]byte(`{"return": {"exited": false}}` + "\n"))
					continue
				}
				out := base64.StdEncoding.EncodeToString([]byte("out\nerr\n"))
				c.Write([]byte(`{"return": {"exited": true, "exitcode": 3, "out-data": "` + out + `"}}` + "\n"))
			}
		}
	}()
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestExecThroughAgent(t *testing.T) {
	dir := t.TempDir()
	h, err := New(Config{Name: "hdss7-21", IP: "10.4.7.21", MAC: "52:54:00:04:07:15", Tap: "t", Guest: dir, Dir: dir,
		Network: bed.Network{NS: "ns", CIDR: "10.4.7.0/24", Gateway: "10.4.7.254"}})
	if err != nil {
		t.Fatal(err)
	}
	fakeAgent(t, h.sock())
	// A running QEMU, as far as Exec can tell.
	h.exited = make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := dialQGA(ctx, h.sock(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out, _, err := q.exec(ctx, []string{"/bin/sh", "-c", `exec "$@" 2>&1`, "sh", "hello"})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || string(out) != "out\nerr\n" {
		t.Fatalf("exec: out %q err %v, want out\\nerr\\n and exit status 3", out, err)
	}
}

func TestFromSpecAndCmdline(t *testing.T) {
	s, rep, err := spec.Load(filepath.Join(repoRoot, "bundle-spec.yaml"))
	if err != nil || rep.IsFatal() {
		t.Fatalf("%v\n%s", err, rep)
	}
	guest := t.TempDir()
	if err := os.WriteFile(filepath.Join(guest, "cmdline"), []byte("console=ttyS0 rw\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := FromSpec(s, "hdss7-22", bed.Seed(), "kbtap22", guest, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if c.IP != "10.4.7.22" || c.MAC != "52:54:00:04:07:16" || c.FQDN != "hdss7-22.host.com" || strings.Join(c.DNS, ",") != "10.4.7.11" {
		t.Fatalf("FromSpec: %+v", c)
	}
	h, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.cmdline()
	if err != nil {
		t.Fatal(err)
	}
	want := "console=ttyS0 rw kubebake.ip=10.4.7.22/24 kubebake.hostname=hdss7-22.host.com kubebake.gw=10.4.7.254 kubebake.dns=10.4.7.11"
	if os.Getenv("KUBEBAKE_E2E_QEMU_APPEND") == "" && got != want {
		t.Errorf("cmdline:\n got %s\nwant %s", got, want)
	}
	if _, err := FromSpec(s, "hdss7-99", bed.Seed(), "t", guest, "d"); err == nil {
		t.Error("FromSpec of an unknown host: no error")
	}
}
