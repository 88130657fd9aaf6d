package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rollcall/rollcall/internal/testkit"
	"github.com/rollcall/rollcall/sim"
)

// TestCommandsBesideTheDemo: beside a running `rollcall demo`, from the repository
// root (whose config.toml's worker does not run), with no NATS_URL: `tracked` lists
// exactly what the demo's worker tracks, `who ROOM` answers, and `track session ID`
// tracks it, as the README shows them. The built binary, as a user runs it.
func TestCommandsBesideTheDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	bin := buildRollcall(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir() // the user's cache directory, where the demo leaves its config
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "NATS_URL=") || strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "XDG_CACHE_HOME=")
	})
	env = append(env, "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, ".cache"))

	demo := exec.Command(bin, "demo", "-for", "2m")
	demo.Dir, demo.Env = root, env
	var errs testkit.Buffer
	demo.Stderr = &errs
	out, err := demo.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = demo.Process.Signal(os.Interrupt)
		_ = demo.Wait()
	})
	lines := bufio.NewScanner(out)
	for lines.Scan() && !strings.HasPrefix(lines.Text(), "Events, as they arrive") {
	}
	go func() { // the feed, unread, must not block the demo
		for lines.Scan() {
		}
	}()

	command := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = root, env
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rollcall %s: %v\n%s\ndemo's stderr:\n%s", strings.Join(args, " "), err, b, errs.String())
		}
		return string(b)
	}
	api := sim.New(sim.Config{})
	var rooms []string
	for _, id := range api.DemoWorld(demoRooms) {
		rooms = append(rooms, api.RoomOf(id))
	}
	var got []string
	testkit.Eventually(t, 20*time.Second, "the demo's rooms followed", func() bool {
		got = nil
		for _, l := range strings.Split(command("tracked"), "\n") {
			if f := strings.Fields(l); len(f) > 3 && f[0] == "room" {
				got = append(got, f[1]+" "+f[3])
			}
		}
		return len(got) == len(rooms) && !slices.ContainsFunc(got, func(s string) bool { return !strings.HasSuffix(s, " following") })
	})
	slices.Sort(rooms)
	for i, id := range rooms {
		if want := id + " following"; got[i] != want {
			t.Errorf("tracked lists room %q, want %q", got[i], want)
		}
	}
	if out := command("tracked"); strings.Contains(out, "no replica") {
		t.Errorf("tracked lists what the demo does not track:\n%s", out)
	}
	if out := command("who", rooms[0]); !strings.Contains(out, rooms[0]) {
		t.Errorf("who %s:\n%s", rooms[0], out)
	}
	// tail, given no -nats, shows the demo's events, from the demo's server.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tail := exec.CommandContext(ctx, bin, "tail", "-all")
	tail.Dir, tail.Env = root, env
	var tailOut, tailErr testkit.Buffer
	tail.Stdout, tail.Stderr = &tailOut, &tailErr
	_ = tail.Run() // until killed
	if !strings.Contains(tailErr.String(), "tailing the running `rollcall demo`'s stream") || !strings.Contains(tailOut.String(), "session started") {
		t.Errorf("tail beside the demo:\n%s\n%s", tailErr.String(), tailOut.String())
	}
	command("track", "session", "a-session-of-mine")
	testkit.Eventually(t, 10*time.Second, "the session tracked", func() bool {
		return strings.Contains(command("tracked"), "a-session-of-mine")
	})
}
