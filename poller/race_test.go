//go:build race

package poller_test

// memoryDefault is TestLoopMemoryBounded's number of sessions: fewer under the race
// detector, which runs the bubble on one P (testkit.Bubble) and every step slower.
// Three waves of 100 still show a leak of a hundred a wave.
const memoryDefault = 300
