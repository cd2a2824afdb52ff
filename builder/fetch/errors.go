package fetch

import (
	"errors"
	"time"
)

var (
	// ErrInvalidOption reports an option given an invalid value, or two
	// options that conflict.
	ErrInvalidOption = errors.New("invalid option")
	// ErrInvalidSource reports a Source that cannot be pulled as given (no
	// name, unsupported URL scheme, no checksum, bad extract map).
	ErrInvalidSource = errors.New("invalid source")
	// ErrChecksum reports bytes whose sha256 is not the expected one.
	ErrChecksum = errors.New("sha256 mismatch")
	// ErrDrift reports an artifact whose URL or sha256 differs from the lock
	// under WithLock(lock, true) (pull --locked).
	ErrDrift = errors.New("drifted from bundle-spec.lock")
	// ErrNotLocked reports an artifact the lock lacks under WithLock(lock,
	// true), or one Lookup cannot resolve offline.
	ErrNotLocked = errors.New("not in bundle-spec.lock")
	// ErrNotInStore reports an artifact Lookup did not find, whole, in the
	// store.
	ErrNotInStore = errors.New("not in the store")
	// ErrHTTP reports an HTTP status that is not a success; the error's text
	// carries the status. Match it with errors.Is, or errors.As to
	// *StatusError.
	ErrHTTP = errors.New("http error")
	// ErrBusy reports a partial download another process is writing.
	ErrBusy = errors.New("being downloaded by another pull")
	// ErrTooLarge reports a checksum file over its 1 MiB cap.
	ErrTooLarge = errors.New("checksum file too large")
)

// StatusError is an HTTP response status that ended an attempt.
type StatusError struct {
	URL    string
	Code   int
	Status string // "503 Service Unavailable"

	retryAfter time.Duration
}

func (e *StatusError) Error() string { return "HTTP " + e.Status }

// Is makes errors.Is(err, ErrHTTP) hold.
func (e *StatusError) Is(target error) bool { return target == ErrHTTP }

// Temporary reports whether a retry may succeed: 5xx, 408 and 429.
func (e *StatusError) Temporary() bool {
	return e.Code >= 500 || e.Code == 408 || e.Code == 429
}
