package host

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/dbus"

	"github.com/kubebake/kubebake/firstboot/engine"
)

// ErrJob means a systemd start or restart job finished with a result other than "done"
// (canceled, timeout, failed, dependency, skipped) or did not finish before
// the deadline.
var ErrJob = errors.New("systemd job did not finish with result done")

// DefaultStartTimeout bounds how long Start waits for a job's result when
// the caller's context has no earlier deadline. systemd's own default start
// timeout is 90 s; TCG guests are slow, so allow more.
const DefaultStartTimeout = 5 * time.Minute

// manager is the part of *dbus.Conn that Systemd uses. Every method maps to
// a D-Bus call that exists in systemd 219 (CentOS 7): Manager.Reload,
// Manager.EnableUnitFiles, Manager.DisableUnitFiles, Manager.StartUnit and
// Manager.RestartUnit (with the JobRemoved signal for the result) and
// org.freedesktop.DBus.Properties.Get on a unit object (ActiveState,
// UnitFileState, ActiveEnterTimestamp). Avoided because they are newer than 219:
// Manager.ListUnitsByNames and ListUnitFilesByPatterns (230),
// Manager.AttachProcessesToUnit (238), Manager.EnqueueUnitJob (242),
// Unit.Freeze/Thaw (246).
type manager interface {
	ReloadContext(ctx context.Context) error
	EnableUnitFilesContext(ctx context.Context, files []string, runtime, force bool) (bool, []dbus.EnableUnitFileChange, error)
	DisableUnitFilesContext(ctx context.Context, files []string, runtime bool) ([]dbus.DisableUnitFileChange, error)
	GetUnitPropertyContext(ctx context.Context, unit, propertyName string) (*dbus.Property, error)
	StartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	RestartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	Close()
}

var _ manager = (*dbus.Conn)(nil)

// Systemd talks to PID 1 over D-Bus. It implements engine.Systemd and
// io.Closer.
type Systemd struct {
	m            manager
	startTimeout time.Duration
	journalctl   string
}

var _ engine.Systemd = (*Systemd)(nil)

// NewSystemd connects to systemd: first through the system bus
// (dbus-daemon), and, when that is not up yet at first boot and we are root,
// directly through systemd's private socket /run/systemd/private (present in
// 219). The connection lives until ctx is done (godbus closes it then) or
// Close is called: pass the run's context, not a short connect timeout.
// The result is an io.Closer.
func NewSystemd(ctx context.Context) (engine.Systemd, error) {
	conn, err := dbus.NewSystemConnectionContext(ctx)
	if err != nil {
		var err2 error
		conn, err2 = dbus.NewSystemdConnectionContext(ctx)
		if err2 != nil {
			return nil, fmt.Errorf("connect to systemd: system bus: %w; private socket: %w", err, err2)
		}
	}
	return newSystemd(conn), nil
}

func newSystemd(m manager) *Systemd {
	return &Systemd{m: m, startTimeout: DefaultStartTimeout, journalctl: "journalctl"}
}

// Close drops the D-Bus connection.
func (s *Systemd) Close() error {
	s.m.Close()
	return nil
}

// Reload is `systemctl daemon-reload`.
func (s *Systemd) Reload(ctx context.Context) error {
	if err := s.m.ReloadContext(ctx); err != nil {
		return fmt.Errorf("daemon-reload: %w", err)
	}
	return nil
}

// enabledStates are UnitFileState values that need no `enable`: "static"
// units have no [Install] section (EnableUnitFiles would change nothing, so
// treating them as not enabled would never converge); "generated" and
// "alias" do not occur in 219 but do on newer guests.
var enabledStates = map[string]bool{"enabled": true, "static": true, "generated": true, "alias": true}

// Enabled reports whether unit's UnitFileState says it is enabled (or needs
// no enabling, see enabledStates).
func (s *Systemd) Enabled(ctx context.Context, unit string) (bool, error) {
	v, err := s.property(ctx, unit, "UnitFileState")
	if err != nil {
		return false, err
	}
	return enabledStates[v], nil
}

// Enable is `systemctl enable` (persistent, force=true replaces conflicting
// symlinks), followed by a daemon-reload as systemctl does, so that systemd
// picks up the new dependencies and the cached UnitFileState.
func (s *Systemd) Enable(ctx context.Context, units ...string) error {
	if len(units) == 0 {
		return nil
	}
	if _, _, err := s.m.EnableUnitFilesContext(ctx, units, false, true); err != nil {
		return fmt.Errorf("enable %s: %w", strings.Join(units, " "), err)
	}
	return s.Reload(ctx)
}

// Disable is `systemctl disable` (persistent), followed by a daemon-reload.
func (s *Systemd) Disable(ctx context.Context, units ...string) error {
	if len(units) == 0 {
		return nil
	}
	if _, err := s.m.DisableUnitFilesContext(ctx, units, false); err != nil {
		return fmt.Errorf("disable %s: %w", strings.Join(units, " "), err)
	}
	return s.Reload(ctx)
}

// Active reports whether unit's ActiveState is "active".
func (s *Systemd) Active(ctx context.Context, unit string) (bool, error) {
	v, err := s.property(ctx, unit, "ActiveState")
	if err != nil {
		return false, err
	}
	return v == "active", nil
}

// Start enqueues a start job (mode "replace") and waits for its result.
// Only "done" is success; anything else, or no result before the deadline
// (the caller's if it set one, else DefaultStartTimeout), is an error
// wrapping ErrJob.
func (s *Systemd) Start(ctx context.Context, unit string) error {
	return s.job(ctx, "start", unit, s.m.StartUnitContext)
}

// Restart is `systemctl restart`: a restart job (mode "replace"; stop, then
// start, or just start when the unit is not running), waited for as Start
// waits.
func (s *Systemd) Restart(ctx context.Context, unit string) error {
	return s.job(ctx, "restart", unit, s.m.RestartUnitContext)
}

// job enqueues a job with call and waits for its result, until the
// caller's deadline or, when the caller set none, DefaultStartTimeout.
func (s *Systemd) job(ctx context.Context, verb, unit string, call func(ctx context.Context, name, mode string, ch chan<- string) (int, error)) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.startTimeout)
		defer cancel()
	}
	// Buffered: go-systemd blocks its signal handling until the result is
	// read, so a result arriving after we gave up must not block it.
	ch := make(chan string, 1)
	if _, err := call(ctx, unit, "replace", ch); err != nil {
		return fmt.Errorf("%s %s: %w", verb, unit, err)
	}
	select {
	case r := <-ch:
		if r != "done" {
			return fmt.Errorf("%s %s: job result %q: %w", verb, unit, r, ErrJob)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s %s: no job result: %w: %w", verb, unit, ErrJob, ctx.Err())
	}
}

// ActiveSince reads the unit's ActiveEnterTimestamp (microseconds since
// the epoch, CLOCK_REALTIME; 0 when it never became active).
func (s *Systemd) ActiveSince(ctx context.Context, unit string) (time.Time, error) {
	p, err := s.m.GetUnitPropertyContext(ctx, unit, "ActiveEnterTimestamp")
	if err != nil {
		return time.Time{}, fmt.Errorf("%s ActiveEnterTimestamp: %w", unit, err)
	}
	us, ok := p.Value.Value().(uint64)
	if !ok {
		return time.Time{}, fmt.Errorf("%s ActiveEnterTimestamp: not a uint64: %s", unit, p.Value.String())
	}
	if us == 0 {
		return time.Time{}, nil
	}
	return time.UnixMicro(int64(us)), nil
}

// JournalTail returns the unit's last lines from `journalctl -u unit -n N
// --no-pager` (journalctl exists on CentOS 7 and on the Debian test guest).
func (s *Systemd) JournalTail(ctx context.Context, unit string, lines int) (string, error) {
	out, err := exec.CommandContext(ctx, s.journalctl, "-u", unit, "-n", strconv.Itoa(lines), "--no-pager").CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("journalctl -u %s: %w", unit, err)
	}
	return string(out), nil
}

func (s *Systemd) property(ctx context.Context, unit, name string) (string, error) {
	p, err := s.m.GetUnitPropertyContext(ctx, unit, name)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", unit, name, err)
	}
	v, ok := p.Value.Value().(string)
	if !ok {
		return "", fmt.Errorf("%s %s: not a string: %s", unit, name, p.Value.String())
	}
	return v, nil
}
