//go:build !unix

package worker

// lockDir takes no lock where flock is not available (Windows, Plan 9, wasm): it
// always succeeds, and unlock does nothing. There, it does not protect against two
// workers started on the same nats.store_dir, which would then share one embedded
// server's store: run at most one worker per store_dir on such systems.
func lockDir(string) (unlock func(), err error) { return func() {}, nil }
