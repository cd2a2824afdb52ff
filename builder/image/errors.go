package image

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrNotInStore means the store's layout has no entry for a reference.
	ErrNotInStore = errors.New("image not in store")
	// ErrDrift means a tag resolves to another digest than the lock says.
	ErrDrift = errors.New("image drifted from lock")
	// ErrUnauthorized means a registry refused the credentials.
	ErrUnauthorized = errors.New("registry refused credentials")
	// ErrPlatform means the image has none of the requested platforms.
	ErrPlatform = errors.New("platform not available")
)

// DriftError says a tag moved since the lock was written.
type DriftError struct {
	Ref, Locked, Current string
}

func (e *DriftError) Error() string {
	return fmt.Sprintf("%s: tag moved: lock has %s, registry now has %s (re-lock with `kubebake pull` without --locked, or pin the digest)", e.Ref, e.Locked, e.Current)
}

func (e *DriftError) Unwrap() error { return ErrDrift }

// AuthError is returned when a registry answers 401/403. It names the
// registry and how to log in, never a credential value.
type AuthError struct {
	Registry string
	Status   int
	// UsernameEnv and PasswordEnv are the variables WithCreds named for this
	// registry ("" when none).
	UsernameEnv, PasswordEnv string
	Err                      error
}

func (e *AuthError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "registry %s refused the credentials (HTTP %d)", e.Registry, e.Status)
	if e.UsernameEnv != "" {
		fmt.Fprintf(&b, ": check the environment variables %s and %s", e.UsernameEnv, e.PasswordEnv)
		fmt.Fprintf(&b, ", or log in with `docker login %s`", e.Registry)
	} else {
		fmt.Fprintf(&b, ": log in with `docker login %s` (kubebake reads ~/.docker/config.json)", e.Registry)
		fmt.Fprintf(&b, " or name username/password environment variables for %s in the spec's credentials", e.Registry)
	}
	return b.String()
}

func (e *AuthError) Unwrap() []error { return []error{ErrUnauthorized, e.Err} }
