package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/rollcall/rollcall/internal/worker"
)

// A running demo leaves its config where the commands run beside it look: with no
// -config, and no worker of ./config.toml running, `track`, `untrack`, `tracked` and
// `who` use the demo's, as the README shows them next to it.

// demoFile is where a running demo leaves its config, per user; "" if the user has
// no cache directory.
func demoFile() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "rollcall", "demo.toml")
}

// leaveDemoConfig writes what the commands need of the demo's config (its store_dir
// and rooms; no secret: the embedded server needs none, and they do not ask the API)
// to demoFile; the latest demo started wins. remove deletes it if it is still this
// demo's.
func leaveDemoConfig(cfg worker.Config) (remove func(), err error) {
	path := demoFile()
	if path == "" {
		return func() {}, nil
	}
	var doc struct {
		NATS struct {
			StoreDir string `toml:"store_dir"`
		} `toml:"nats"`
		Rooms []worker.Room `toml:"rooms"`
	}
	doc.NATS.StoreDir, doc.Rooms = cfg.NATS.StoreDir, cfg.Rooms
	var b bytes.Buffer
	b.WriteString("# Left by `rollcall demo` while it runs, for `rollcall tracked`, `who`, `track` and\n# `untrack` run beside it with no -config. It goes when the demo stops.\n")
	if err := toml.NewEncoder(&b).Encode(doc); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	return func() {
		if now, err := os.ReadFile(path); err == nil && bytes.Equal(now, b.Bytes()) {
			_ = os.Remove(path) // best effort: a stale file leads to no running worker, and is ignored
		}
	}, nil
}

// besideDemo returns a running demo's config in place of the default config file's
// (cfg, or its loading error err) when the command was given no -config (named
// false) and no worker of the default config runs: it uses the embedded server and
// has left no URL in its store_dir, or the file does not exist. It says so on
// stderr. Otherwise it returns cfg and err as they are.
func besideDemo(cfg worker.Config, err error, named bool, load func(string) (worker.Config, error), stderr io.Writer) (worker.Config, error) {
	switch {
	case named:
		return cfg, err
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return cfg, err
	case err == nil && (cfg.NATS.URL != "" || embeddedRunning(cfg)):
		return cfg, err
	}
	path := demoFile()
	if path == "" {
		return cfg, err
	}
	demo, derr := load(path)
	if derr != nil {
		return cfg, err
	}
	if _, ok := demoServer(demo); !ok {
		return cfg, err
	}
	fmt.Fprintf(stderr, "no worker runs with config.toml here: using the running `rollcall demo`'s config (%s)\n", path)
	return demo, nil
}

// runningDemo returns the NATS URL of a running demo, if one runs.
func runningDemo(load func(string) (worker.Config, error)) (string, bool) {
	path := demoFile()
	if path == "" {
		return "", false
	}
	demo, err := load(path)
	if err != nil {
		return "", false
	}
	return demoServer(demo)
}

// demoServer returns the URL that a demo of config cfg left, if its server answers:
// a demo killed before it could remove its files leaves them behind.
func demoServer(cfg worker.Config) (string, bool) {
	b, err := os.ReadFile(filepath.Join(cfg.NATS.StoreDir, worker.EmbeddedURLFile))
	if err != nil {
		return "", false
	}
	url := strings.TrimSpace(string(b))
	u, err := neturl.Parse(url)
	if err != nil {
		return "", false
	}
	conn, err := net.DialTimeout("tcp", u.Host, 500*time.Millisecond)
	if err != nil {
		return "", false
	}
	_ = conn.Close() // a probe
	return url, true
}

// embeddedRunning reports whether a worker on the embedded server runs with cfg's
// store_dir: it leaves the server's URL there while it runs.
func embeddedRunning(cfg worker.Config) bool {
	if cfg.NATS.URL != "" {
		return false
	}
	_, err := os.Stat(filepath.Join(cfg.NATS.StoreDir, worker.EmbeddedURLFile))
	return err == nil
}
