//go:build race

package poller_test

// memoryDefault is TestLoopMemoryBounded's number of sessions: fewer under the race
// detector, which crashes the more often the more synchronisation the process does
// (see loop_test.go). Three waves of 100 still show a leak of a hundred a wave.
const memoryDefault = 300
