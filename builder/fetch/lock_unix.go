//go:build unix

package fetch

import (
	"errors"
	"os"
	"syscall"
)

// lockPartial takes an exclusive, non-blocking flock on a partial download,
// so two pulls sharing a store never write the same partial file. The kernel
// drops it when the process dies: a killed pull leaves no stale lock.
func lockPartial(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrBusy
	}
	return err
}
