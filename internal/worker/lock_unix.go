//go:build unix

package worker

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive lock on dir for as long as the process lives, so that two
// workers never share an embedded server's store. The kernel drops the lock when the
// process exits, however it exits.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, "rollcall.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("nats.store_dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close() // the error to report is the lock's
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("nats.store_dir %s is in use by another rollcall", dir)
		}
		return nil, fmt.Errorf("nats.store_dir: lock: %w", err)
	}
	return func() { _ = f.Close() }, nil // closing the file drops the lock, whatever it returns
}
