// Package testkit holds the helpers that tests of several packages share.
package testkit

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer that a logger and a test can share: writes and reads are
// safe at the same time.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
