package pxe

import "errors"

var (
	// ErrNoPXE means the spec has no pxe: section.
	ErrNoPXE = errors.New("the spec has no pxe: section")
	// ErrRootHash means the root password hash is missing or not a crypt(3)
	// hash. Its message never contains the value.
	ErrRootHash = errors.New("root password hash")
	// ErrBundle means a host's bundle is missing or does not match
	// out/SHA256SUMS.
	ErrBundle = errors.New("bundle")
)
