package serve

import "errors"

var (
	// ErrInvalidOption reports an option given an invalid value, or two
	// options that conflict.
	ErrInvalidOption = errors.New("invalid option")
	// ErrHosts reports a host list the server cannot enforce: a host without
	// a name or an address, a name that is not a plain label, or an address
	// given to two hosts.
	ErrHosts = errors.New("invalid hosts")
	// errBudget stops a response that would deliver more of a counted file
	// than --max-fetches allows.
	errBudget = errors.New("fetch budget spent")
)
