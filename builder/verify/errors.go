package verify

import "errors"

// ErrCorrupt means a bundle could not be read as a gzip'd tar: a bad gzip
// header or checksum, truncated data, or a malformed tar header. Verify and
// Inspect wrap it; callers test with errors.Is.
var ErrCorrupt = errors.New("bundle is not a readable gzip'd tar")
