package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// fakeManager stands in for *dbus.Conn: PID 1 here is not systemd, so the
// real D-Bus path runs in the VM test.
type fakeManager struct {
	calls  []string
	props  map[string]string // "unit/Prop" → value
	stamps map[string]uint64 // unit → ActiveEnterTimestamp (µs)
	result string            // job result sent on StartUnit's channel; "" sends nothing
	err    error
}

func (f *fakeManager) ReloadContext(context.Context) error {
	f.calls = append(f.calls, "reload")
	return f.err
}

func (f *fakeManager) EnableUnitFilesContext(_ context.Context, files []string, runtime, force bool) (bool, []dbus.EnableUnitFileChange, error) {
	f.calls = append(f.calls, "enable "+strings.Join(files, ",")+" runtime="+boolStr(runtime)+" force="+boolStr(force))
	return false, nil, f.err
}

func (f *fakeManager) DisableUnitFilesContext(_ context.Context, files []string, runtime bool) ([]dbus.DisableUnitFileChange, error) {
	f.calls = append(f.calls, "disable "+strings.Join(files, ",")+" runtime="+boolStr(runtime))
	return nil, f.err
}

func (f *fakeManager) GetUnitPropertyContext(_ context.Context, unit, name string) (*dbus.Property, error) {
	if f.err != nil {
		return nil, f.err
	}
	if name == "ActiveEnterTimestamp" {
		return &dbus.Property{Name: name, Value: godbus.MakeVariant(f.stamps[unit])}, nil
	}
	p := dbus.PropDescription(f.props[unit+"/"+name]) // a string-valued property
	p.Name = name
	return &p, nil
}

func (f *fakeManager) StartUnitContext(_ context.Context, name, mode string, ch chan<- string) (int, error) {
	f.calls = append(f.calls, "start "+name+" "+mode)
	if f.err != nil {
		return 0, f.err
	}
	if f.result != "" {
		ch <- f.result // must not block: Start passes a buffered channel
	}
	return 1, nil
}

func (f *fakeManager) RestartUnitContext(_ context.Context, name, mode string, ch chan<- string) (int, error) {
	f.calls = append(f.calls, "restart "+name+" "+mode)
	if f.err != nil {
		return 0, f.err
	}
	if f.result != "" {
		ch <- f.result
	}
	return 1, nil
}

func (f *fakeManager) Close() {}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func TestSystemdStartWaitsForJobResult(t *testing.T) {
	for _, tc := range []struct {
		name, result string
		wantErr      bool
	}{
		{"done", "done", false},
		{"failed", "failed", true},
		{"dependency", "dependency", true},
		{"canceled", "canceled", true},
		{"skipped", "skipped", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeManager{result: tc.result}
			err := newSystemd(f).Start(context.Background(), "etcd.service")
			if (err != nil) != tc.wantErr {
				t.Fatalf("Start: %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr && (!errors.Is(err, ErrJob) || !strings.Contains(err.Error(), tc.result) || !strings.Contains(err.Error(), "etcd.service")) {
				t.Errorf("error %q: want ErrJob naming the unit and the result", err)
			}
			if want := []string{"start etcd.service replace"}; !reflect.DeepEqual(f.calls, want) {
				t.Errorf("calls %q, want %q", f.calls, want)
			}
		})
	}
}

func TestSystemdRestartWaitsForJobResult(t *testing.T) {
	f := &fakeManager{result: "done"}
	s := newSystemd(f)
	if err := s.Restart(context.Background(), "kubelet.service"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"restart kubelet.service replace"}; !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls %q, want %q", f.calls, want)
	}
	f.result = "failed"
	err := s.Restart(context.Background(), "kubelet.service")
	if !errors.Is(err, ErrJob) || !strings.Contains(err.Error(), `restart kubelet.service: job result "failed"`) {
		t.Errorf("Restart: %v, want ErrJob naming the verb, unit and result", err)
	}
	f.result = ""
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Restart(ctx, "kubelet.service"); !errors.Is(err, ErrJob) || !errors.Is(err, context.Canceled) {
		t.Errorf("Restart with no result: %v, want ErrJob and context.Canceled", err)
	}
}

func TestSystemdActiveSince(t *testing.T) {
	at := time.Date(2025, 3, 4, 5, 6, 7, 123456000, time.UTC)
	s := newSystemd(&fakeManager{stamps: map[string]uint64{"kubelet.service": uint64(at.UnixMicro())}})
	got, err := s.ActiveSince(context.Background(), "kubelet.service")
	if err != nil || !got.Equal(at) {
		t.Errorf("ActiveSince = %v, %v; want %v", got, err, at)
	}
	if got, err := s.ActiveSince(context.Background(), "never.service"); err != nil || !got.IsZero() {
		t.Errorf("ActiveSince of a never active unit = %v, %v; want the zero time", got, err)
	}
}

func TestSystemdStartNoResultTimesOut(t *testing.T) {
	s := newSystemd(&fakeManager{}) // never sends a result
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Start(ctx, "kubelet.service")
	if !errors.Is(err, ErrJob) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Start: %v, want ErrJob and context.Canceled", err)
	}
	s.startTimeout = time.Nanosecond
	if err := s.Start(context.Background(), "kubelet.service"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start with the default timeout elapsed: %v, want DeadlineExceeded", err)
	}
	// A caller's deadline replaces the default (etcd waits for its peers
	// longer than the default allows).
	start := time.Now()
	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Start(ctx, "etcd.service"); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("Start with the caller's deadline: %v after %v, want DeadlineExceeded after ~200ms, not the 1ns default", err, time.Since(start))
	}
}

func TestSystemdEnableDisableReload(t *testing.T) {
	f := &fakeManager{}
	s := newSystemd(f)
	ctx := context.Background()
	if err := s.Enable(ctx, "etcd.service", "kubelet.service"); err != nil {
		t.Fatal(err)
	}
	if err := s.Disable(ctx, "kubebake-firstboot.service"); err != nil {
		t.Fatal(err)
	}
	if err := s.Enable(ctx); err != nil { // nothing to do, no call
		t.Fatal(err)
	}
	want := []string{
		"enable etcd.service,kubelet.service runtime=false force=true", "reload",
		"disable kubebake-firstboot.service runtime=false", "reload",
	}
	if !reflect.DeepEqual(f.calls, want) {
		t.Errorf("calls\n%q\nwant\n%q", f.calls, want)
	}
	f.err = errors.New("access denied")
	if err := s.Enable(ctx, "etcd.service"); err == nil || !strings.Contains(err.Error(), "enable etcd.service") {
		t.Errorf("Enable error %v: want it to name the unit", err)
	}
}

func TestSystemdStates(t *testing.T) {
	f := &fakeManager{props: map[string]string{
		"a.service/UnitFileState": "enabled",
		"b.service/UnitFileState": "disabled",
		"c.service/UnitFileState": "static",
		"d.service/UnitFileState": "enabled-runtime",
		"a.service/ActiveState":   "active",
		"b.service/ActiveState":   "activating",
		"c.service/ActiveState":   "failed",
	}}
	s := newSystemd(f)
	ctx := context.Background()
	for unit, want := range map[string]bool{"a.service": true, "b.service": false, "c.service": true, "d.service": false, "x.service": false} {
		if got, err := s.Enabled(ctx, unit); err != nil || got != want {
			t.Errorf("Enabled(%s) = %v, %v; want %v", unit, got, err, want)
		}
	}
	for unit, want := range map[string]bool{"a.service": true, "b.service": false, "c.service": false} {
		if got, err := s.Active(ctx, unit); err != nil || got != want {
			t.Errorf("Active(%s) = %v, %v; want %v", unit, got, err, want)
		}
	}
}

func TestSystemdJournalTailArgs(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "args")
	script := filepath.Join(dir, "journalctl")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\n' \"$*\" > "+log+"\necho 'etcd[1]: bind: address already in use'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := newSystemd(&fakeManager{})
	s.journalctl = script
	out, err := s.JournalTail(context.Background(), "etcd.service", 20)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "address already in use") {
		t.Errorf("tail %q", out)
	}
	args, _ := os.ReadFile(log)
	if got, want := strings.TrimSpace(string(args)), "-u etcd.service -n 20 --no-pager"; got != want {
		t.Errorf("journalctl args %q, want %q", got, want)
	}
}
