package worker

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rollcall/rollcall/internal/testkit"
)

// TestEmbeddedURLFile: while a worker on the embedded server runs, store_dir/nats.url
// holds the server's URL; once Close returns, it is gone, and the store is free for
// the next worker.
func TestEmbeddedURLFile(t *testing.T) {
	dir := t.TempDir()
	cfg := securityConfig(t, "")
	cfg.NATS.StoreDir = dir
	var logs testkit.Buffer
	for range 2 { // the second finds the store unlocked
		w, err := New(context.Background(), cfg, NewLogger(&logs, Log{Level: "info", Format: "text"}))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, EmbeddedURLFile))
		if err != nil || !strings.HasPrefix(string(b), "nats://127.0.0.1:") {
			t.Errorf("%s while the worker runs: %q, %v", EmbeddedURLFile, b, err)
		}
		w.Close()
		if _, err := os.Stat(filepath.Join(dir, EmbeddedURLFile)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after Close: %v, want it removed", EmbeddedURLFile, err)
		}
	}
}
