package pki

import "errors"

var (
	// ErrInvalidOption is returned (wrapped) for an option with a bad value
	// or one that conflicts with another option.
	ErrInvalidOption = errors.New("invalid option")
	// ErrInvalidConfig is returned (wrapped) for a Config that cannot be used.
	ErrInvalidConfig = errors.New("invalid pki config")
	// ErrInvalidRequest is returned (wrapped) for a Request that cannot be
	// issued: unknown CA or profile, bad or duplicate name, missing CN.
	ErrInvalidRequest = errors.New("invalid certificate request")
)
