//go:build !unix

package fetch

import "os"

// lockPartial is a no-op where flock is unavailable.
func lockPartial(*os.File) error { return nil }
