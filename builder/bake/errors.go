package bake

import "errors"

var (
	// ErrInvalidOption reports an option given an invalid value.
	ErrInvalidOption = errors.New("invalid option")
	// ErrInvalidBundle reports a bundle or entry that cannot be written
	// (bad name, duplicate, missing content, bad mode).
	ErrInvalidBundle = errors.New("invalid bundle")
	// ErrChecksum reports entry content whose sha256 differs from Entry.SHA256.
	ErrChecksum = errors.New("sha256 mismatch")
	// ErrSize reports entry content whose length differs from Entry.Size.
	ErrSize = errors.New("size mismatch")
	// ErrBusy reports an output or cache directory used by another bake.
	ErrBusy = errors.New("directory in use by another bake")
)
