//go:build !race

package poller_test

// memoryDefault is TestLoopMemoryBounded's number of sessions (see race_test.go).
const memoryDefault = 1000
