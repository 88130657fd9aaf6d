// Command rollcall turns VideoSDK.live's active-participants API into a live stream of
// presence events on NATS JetStream. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/rollcall/rollcall/internal/worker"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/nats-io/nats.go"
)

const usage = `usage: rollcall <command> [flags]

commands:
  run      [-config PATH]                   the worker (default config ./config.toml)
  demo     [-for DURATION]                  embedded NATS, simulated API, worker, live feed
  sim      [-listen ADDR] [-webhook URL] [-webhook-delay MIN-MAX]
           [-webhook-loss F] [-webhook-dup F]
                                            the simulated VideoSDK API alone; -webhook: it also
                                            sends its signed webhooks to URL (late, lost, twice)
  tail     [-config PATH] [-nats URL] [-stream NAME] [-all]
                                            print events as they arrive
  track    session|room ID [-config PATH]   track it at run time (the tracking bucket)
  untrack  session|room ID [-config PATH]   stop tracking it; no one is announced as gone
  tracked  [-config PATH]                   what the running worker tracks, and how it goes
  who      SESSION_ID|ROOM_ID [-config PATH] [-json]
                                            who is present now, from rollcall's state
  check    [-config PATH] [-online]         validate the config and print it, secrets redacted;
                                            -online: also ask the API and NATS
  healthcheck [-config PATH] [-ready]       ask the worker's /healthz (or /readyz): exit 0 if 200
  token    [-config PATH]                   print an API token for curl
  version                                   version and build info
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "rollcall:", err)
		stop()
		os.Exit(1)
	}
}

// run is the whole program; main only adds the process around it.
//
// No secret shows in what it prints or returns: each command adds to secrets those of
// the config, flags and environment it reads, and its output and error are scrubbed
// of them (but for `token`'s output, which is one).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) (err error) {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command")
	}
	cmd, args := args[0], args[1:]
	secrets := worker.NewSecrets()
	defer func() { err = secrets.Error(err) }()
	if cmd != "token" {
		stdout = secrets.Writer(stdout)
	}
	stderr = secrets.Writer(stderr)
	load := func(path string, api bool) (worker.Config, error) {
		cfg, err := worker.LoadFor(path, getenv, api)
		secrets.Add(cfg.Secrets()...)
		return cfg, err
	}
	// loadBeside loads the config of a command that talks to a running worker: the
	// running demo's when none of path's runs and path was not named (see besideDemo).
	loadBeside := func(path string, named bool) (worker.Config, error) {
		cfg, err := load(path, false)
		return besideDemo(cfg, err, named, func(p string) (worker.Config, error) { return load(p, false) }, stderr)
	}
	fs := flag.NewFlagSet("rollcall "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	switch cmd {
	case "run":
		path := fs.String("config", "config.toml", "config file")
		if err := fs.Parse(args); err != nil {
			return err
		}
		cfg, err := load(*path, true)
		if err != nil {
			return err
		}
		return runWorker(ctx, cfg, *path, stderr)
	case "demo":
		dur := fs.Duration("for", 0, "stop after this long (0: until Ctrl-C)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return runDemo(ctx, *dur, stdout, stderr)
	case "sim":
		listen := fs.String("listen", "127.0.0.1:8080", "address to serve the simulated API on")
		var hooks simWebhooks
		hooks.flags(fs)
		if err := fs.Parse(args); err != nil {
			return err
		}
		return runSim(ctx, *listen, hooks, stdout, getenv)
	case "tail":
		path := fs.String("config", "", "config file: its NATS server, credentials and stream")
		url := fs.String("nats", "nats://127.0.0.1:4222", "NATS server URL (env NATS_URL)")
		stream := fs.String("stream", "ROLLCALL", "stream name")
		all := fs.Bool("all", false, "print the stream from its start, not only new events")
		if err := fs.Parse(args); err != nil {
			return err
		}
		var auth []nats.Option
		if *path != "" {
			cfg, err := load(*path, false)
			if err != nil {
				return err
			}
			u, a, err := tailTarget(cfg)
			if err != nil {
				return err
			}
			auth = a
			if !flagSet(fs, "nats") {
				*url = u
			}
			if !flagSet(fs, "stream") {
				*stream = cfg.NATS.Stream
			}
		} else if u := getenv("NATS_URL"); u != "" && !flagSet(fs, "nats") {
			*url = u
		} else if u, ok := runningDemo(func(p string) (worker.Config, error) { return load(p, false) }); ok && !flagSet(fs, "nats") {
			*url = u
			fmt.Fprintf(stderr, "tailing the running `rollcall demo`'s stream, on %s\n", u)
		}
		secrets.Add(worker.URLSecrets(*url)...)
		// Checked as nats.url is, so that nats.go never quotes a URL it cannot parse.
		if err := worker.CheckNATSURL("the NATS URL (-nats, NATS_URL, nats.url)", *url); err != nil {
			return err
		}
		return runTail(ctx, *url, auth, *stream, *all, stdout, stderr)
	case "check":
		path := fs.String("config", "config.toml", "config file")
		online := fs.Bool("online", false, "also ask the API and NATS")
		if err := fs.Parse(args); err != nil {
			return err
		}
		cfg, err := load(*path, true)
		if err != nil {
			return err
		}
		return runCheck(ctx, cfg, *path, *online, stdout)
	case "healthcheck":
		path := fs.String("config", "config.toml", "config file: where http.listen is")
		ready := fs.Bool("ready", false, "ask /readyz rather than /healthz")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return runHealthcheck(ctx, *path, *ready, stdout, getenv)
	case "track", "untrack", "tracked":
		path := fs.String("config", "config.toml", "config file")
		pos, err := parseInterspersed(fs, args)
		if err != nil {
			return err
		}
		cfg, err := loadBeside(*path, flagSet(fs, "config"))
		if err != nil {
			return err
		}
		switch cmd {
		case "track":
			return runTrack(ctx, cfg, pos, stdout)
		case "untrack":
			return runUntrack(ctx, cfg, pos, stdout)
		}
		if len(pos) > 0 {
			return errors.New("usage: rollcall tracked [-config PATH]")
		}
		return runTracked(ctx, cfg, stdout)
	case "who":
		path := fs.String("config", "config.toml", "config file")
		asJSON := fs.Bool("json", false, "print JSON")
		pos, err := parseInterspersed(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 || pos[0] == "" {
			return errors.New("usage: rollcall who SESSION_ID|ROOM_ID [-config PATH] [-json]")
		}
		cfg, err := loadBeside(*path, flagSet(fs, "config"))
		if err != nil {
			return err
		}
		return runWho(ctx, cfg, pos[0], *asJSON, stdout)
	case "token":
		path := fs.String("config", "config.toml", "config file")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return printToken(*path, flagSet(fs, "config"), stdout, getenv)
	case "version":
		printVersion(stdout)
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// parseInterspersed parses flags wherever they stand among the arguments, and returns
// the other arguments: `track room ID -config c.toml` as well as `track -config c.toml
// room ID`.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if args = fs.Args(); len(args) == 0 {
			return pos, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "rollcall %s\n", version)
	if bi, ok := debug.ReadBuildInfo(); ok {
		fmt.Fprintf(w, "go %s\n", bi.GoVersion)
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision", "vcs.time", "vcs.modified", "GOOS", "GOARCH":
				fmt.Fprintf(w, "%s %s\n", s.Key, s.Value)
			}
		}
	}
}
