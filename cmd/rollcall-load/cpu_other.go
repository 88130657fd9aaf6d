//go:build !unix

package main

import "time"

// cpuTime is 0, unknown, where getrusage is not available: the report's CPU figures
// for this process read as zero there.
func cpuTime() time.Duration { return 0 }
