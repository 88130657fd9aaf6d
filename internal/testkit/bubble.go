package testkit

import (
	"runtime"
	"testing"
	"testing/synctest"
)

// Bubble runs f in a synctest bubble, as synctest.Test does, on a single P under the
// race detector. The race runtime gives all of a bubble's timers one race context,
// which two threads firing the bubble's timers at once corrupt (golang/go#78156:
// "ThreadSanitizer: CHECK failed", or SIGSEGV in runtime.(*timer).maybeRunChan):
// with go1.26.8 that crashed four of six runs of ./poller's loop tests under -race,
// and none of eleven on one P.
func Bubble(t *testing.T, f func(*testing.T)) {
	t.Helper()
	if raceEnabled {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	}
	synctest.Test(t, f)
}
