package qemuhost

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"time"
)

// The QEMU guest agent's protocol (docs/interop/qemu-ga-ref in QEMU): JSON
// commands over the virtio-serial port, one connection at a time on QEMU's
// side of the chardev socket. A new connection may find a half-read answer
// of an old one in the stream, so every session starts with
// guest-sync-delimited: the agent answers it after a 0xFF byte, everything
// before that byte is stale.

// ErrAgent is the guest agent not answering (guest not up yet, or gone).
var ErrAgent = errors.New("guest agent not answering")

// qga is one session with the guest agent.
type qga struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialQGA connects to the agent's socket and syncs; it fails with ErrAgent
// when the agent does not answer within wait.
func dialQGA(ctx context.Context, sock string, wait time.Duration) (*qga, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrAgent, err)
	}
	q := &qga{conn: conn, r: bufio.NewReader(conn)}
	if err := q.sync(ctx, wait); err != nil {
		conn.Close()
		return nil, err
	}
	return q, nil
}

func (q *qga) Close() error { return q.conn.Close() }

func (q *qga) deadline(ctx context.Context, d time.Duration) {
	t := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(t) {
		t = dl
	}
	_ = q.conn.SetDeadline(t)
}

func (q *qga) sync(ctx context.Context, wait time.Duration) error {
	id := rand.Int64N(1 << 40)
	q.deadline(ctx, wait)
	// 0xFF first: it resets the agent's JSON parser after a partial command.
	if _, err := q.conn.Write([]byte{0xff}); err != nil {
		return fmt.Errorf("%w: %v", ErrAgent, err)
	}
	if err := q.send("guest-sync-delimited", map[string]any{"id": id}); err != nil {
		return fmt.Errorf("%w: %v", ErrAgent, err)
	}
	for {
		// Skip to the delimiter, then read the answer; an answer to an
		// older sync (another id) means: skip to the next delimiter.
		if _, err := q.r.ReadBytes(0xff); err != nil {
			return fmt.Errorf("%w: guest-sync-delimited: %v", ErrAgent, err)
		}
		line, err := q.r.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("%w: guest-sync-delimited: %v", ErrAgent, err)
		}
		var resp struct {
			Return int64 `json:"return"`
		}
		if json.Unmarshal(bytes.TrimSpace(line), &resp) == nil && resp.Return == id {
			return nil
		}
	}
}

func (q *qga) send(cmd string, args any) error {
	m := map[string]any{"execute": cmd}
	if args != nil {
		m["arguments"] = args
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = q.conn.Write(append(b, '\n'))
	return err
}

// call runs one command and decodes its "return" into out.
func (q *qga) call(ctx context.Context, cmd string, args, out any) error {
	q.deadline(ctx, 30*time.Second)
	if err := q.send(cmd, args); err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	line, err := q.r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	var resp struct {
		Return json.RawMessage `json:"return"`
		Error  *struct {
			Class string `json:"class"`
			Desc  string `json:"desc"`
		} `json:"error"`
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		return fmt.Errorf("%s: answer %q: %w", cmd, line, err)
	}
	if resp.Error != nil {
		return fmt.Errorf("%s: %s: %s", cmd, resp.Error.Class, resp.Error.Desc)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(resp.Return, out)
}

// execStatus is guest-exec-status's answer.
type execStatus struct {
	Exited       bool   `json:"exited"`
	ExitCode     *int   `json:"exitcode"`
	Signal       *int   `json:"signal"`
	OutData      string `json:"out-data"`
	ErrData      string `json:"err-data"`
	OutTruncated bool   `json:"out-truncated"`
	ErrTruncated bool   `json:"err-truncated"`
}

// ExitError is a command that ran in the guest and did not exit 0.
type ExitError struct {
	Argv   []string
	Code   int // -1 when killed by a signal
	Signal int
}

func (e *ExitError) Error() string {
	if e.Code < 0 {
		return fmt.Sprintf("%q: killed by signal %d", e.Argv, e.Signal)
	}
	return fmt.Sprintf("%q: exit status %d", e.Argv, e.Code)
}

// exec runs argv in the guest (guest-exec, then guest-exec-status until it
// exited) and returns its stdout and stderr, decoded from base64.
func (q *qga) exec(ctx context.Context, argv []string) (stdout, stderr []byte, err error) {
	var started struct {
		PID int `json:"pid"`
	}
	if err := q.call(ctx, "guest-exec", map[string]any{
		"path": argv[0], "arg": argv[1:], "capture-output": true,
	}, &started); err != nil {
		return nil, nil, err
	}
	wait := 20 * time.Millisecond
	for {
		var st execStatus
		if err := q.call(ctx, "guest-exec-status", map[string]any{"pid": started.PID}, &st); err != nil {
			return nil, nil, err
		}
		if st.Exited {
			out, err1 := base64.StdEncoding.DecodeString(st.OutData)
			errb, err2 := base64.StdEncoding.DecodeString(st.ErrData)
			if err := errors.Join(err1, err2); err != nil {
				return nil, nil, fmt.Errorf("guest-exec-status: output: %w", err)
			}
			if st.OutTruncated || st.ErrTruncated {
				out = append(out, "\n[output truncated by the guest agent]\n"...)
			}
			switch {
			case st.Signal != nil:
				return out, errb, &ExitError{Argv: argv, Code: -1, Signal: *st.Signal}
			case st.ExitCode != nil && *st.ExitCode != 0:
				return out, errb, &ExitError{Argv: argv, Code: *st.ExitCode}
			}
			return out, errb, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%q (guest pid %d) still running: %w", argv, started.PID, ctx.Err())
		case <-time.After(wait):
		}
		if wait < 500*time.Millisecond {
			wait *= 2
		}
	}
}
