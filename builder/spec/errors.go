package spec

import "errors"

// ErrInvalid is wrapped by Report.Err when the report holds an error entry:
// errors.Is(err, spec.ErrInvalid) tells a user's mistake from an I/O failure.
var ErrInvalid = errors.New("invalid bundle spec")
