//go:build !unix

package main

import (
	"errors"
	"os"
)

// pause is not supported where there is no SIGSTOP: the tests that pause a worker
// fail here with errors.ErrUnsupported.
func pause(*os.Process) error { return errors.ErrUnsupported }

// resume is not supported where there is no SIGCONT.
func resume(*os.Process) error { return errors.ErrUnsupported }
