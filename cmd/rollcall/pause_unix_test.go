//go:build unix

package main

import (
	"os"
	"syscall"
)

// pause stops process p, as a debugger or an overloaded host would, until resume.
func pause(p *os.Process) error { return p.Signal(syscall.SIGSTOP) }

// resume lets process p, paused, run on.
func resume(p *os.Process) error { return p.Signal(syscall.SIGCONT) }
