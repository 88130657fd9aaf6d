package main

import (
	"errors"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rollcall/rollcall/sim"
)

// TestRunSignals: the built binary, as a supervisor or a terminal signals it. SIGHUP
// is logged and ignored: the worker polls on. SIGTERM then stops it cleanly (exit 0
// within 10 s), and it leaves no store_dir/nats.url behind.
func TestRunSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildRollcall(t)
	api := sim.New(sim.Config{APIKey: testKey, Secret: testSecret})
	api.StartSession("s1", "room-1")
	join(api, "s1", "a")
	srv := httptest.NewServer(api)
	defer srv.Close()
	dir := t.TempDir()
	config := writeConfig(t, dir, srv.URL, "", 0, []string{"s1"}, nil) // the embedded server, in dir/data
	r := startRun(t, bin, config, dir, 1)
	runs := []*crashRun{r}
	keepLogsOnFailure(t, &runs)
	urlFile := filepath.Join(dir, "data", "nats.url")
	waitForFile(t, urlFile)
	r.waitCycles(t, 1)

	if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "SIGHUP logged", func() bool { return strings.Contains(r.logs.String(), "SIGHUP ignored") })
	r.waitCycles(t, 2)
	if n := strings.Count(r.logs.String(), "SIGHUP"); n != 1 {
		t.Errorf("%d lines about SIGHUP, want 1", n)
	}

	r.term(t)
	if _, err := os.Stat(urlFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s after a clean stop: %v, want it removed", urlFile, err)
	}
}
