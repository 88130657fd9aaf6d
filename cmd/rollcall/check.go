package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rollcall/rollcall/internal/worker"
	"github.com/rollcall/rollcall/poller"
	"github.com/rollcall/rollcall/publisher"
)

// runCheck prints the config, validated as `run` does (loaded from path), with secrets redacted;
// online, it also asks the API and NATS, one line per check: ✓ passed, ✗ failed, ! a
// warning, - a note. Any failed check is an error; a warning is not.
func runCheck(ctx context.Context, cfg worker.Config, path string, online bool, stdout io.Writer) error {
	fmt.Fprintf(stdout, "# %s is valid; the effective config, secrets redacted:\n", path)
	shown := cfg.Redacted()
	// The encoder leaves out nil lists: shown empty, every key is there.
	for _, list := range []*[]string{&shown.Poll.ExcludeModes, &shown.Poll.ExcludeSDKTypes} {
		if *list == nil {
			*list = []string{}
		}
	}
	if err := toml.NewEncoder(stdout).Encode(shown); err != nil {
		return err
	}
	if !online {
		return nil
	}
	fmt.Fprintln(stdout, "\n# online checks")
	failed := 0
	report := func(what string, err error) {
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "✗ %s: %v\n", what, err)
			return
		}
		fmt.Fprintf(stdout, "✓ %s\n", what)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	v := cfg.VideoSDK
	var tokens poller.Tokens = poller.Static(v.Token)
	if v.Token == "" {
		m := poller.NewMinter(v.APIKey, v.Secret, v.TokenTTL.Duration, nil)
		_, err := m.Mint()
		report("mint an API token from videosdk.api_key and videosdk.secret", err)
		tokens = m
	}
	client := poller.NewClient(poller.ClientConfig{BaseURL: v.BaseURL, Tokens: tokens, PerPage: v.PerPage, RequestTimeout: v.RequestTimeout.Duration, Attempts: 1})
	explain := func(err error) error {
		if errors.Is(err, poller.ErrUnauthorized) {
			return fmt.Errorf("%w; check VIDEOSDK_API_KEY and VIDEOSDK_SECRET (videosdk.api_key, videosdk.secret), or VIDEOSDK_TOKEN (videosdk.token)", err)
		}
		return err
	}
	for _, id := range cfg.RoomIDs() {
		// Every page, as run's first listing of the room reads it.
		sessions, _, err := client.RoomSessions(ctx, id, true)
		switch {
		case err != nil:
			report("the API lists the sessions of room "+id, explain(err))
		case len(sessions) == 0:
			// The API answers an unknown room ID with an empty list, not an error: a
			// warning, not a failure, since a room nobody has met in yet is listed so too.
			fmt.Fprintf(stdout, "! the API lists no session of room %s: a mistyped ID, or a room nobody has met in yet (the API lists none for a room it does not know)\n", id)
		default:
			noun, ongoing := "sessions", 0
			if len(sessions) == 1 {
				noun = "session"
			}
			for _, s := range sessions {
				if !s.Ended() {
					ongoing++
				}
			}
			report(fmt.Sprintf("the API lists %d %s of room %s (%d ongoing)", len(sessions), noun, id, ongoing), nil)
		}
	}
	for _, id := range cfg.SessionIDs() {
		report("the API answers for session "+id, explain(client.Probe(ctx, id)))
	}
	if len(cfg.RoomIDs())+len(cfg.SessionIDs()) == 0 {
		fmt.Fprintln(stdout, "- no rooms or sessions in the config: the API is not asked")
	}

	if cfg.NATS.URL == "" {
		fmt.Fprintf(stdout, "- nats.url is \"\": `run` starts an embedded server storing in %s\n", cfg.NATS.StoreDir)
	} else {
		report("NATS at "+worker.RedactURL(cfg.NATS.URL)+" and its stream and buckets", checkNATS(ctx, cfg, stdout))
	}
	if failed > 0 {
		if failed == 1 {
			return errors.New("1 check failed")
		}
		return fmt.Errorf("%d checks failed", failed)
	}
	return nil
}

// checkNATS connects as the worker would and looks for the stream and buckets; a
// missing one is fine (the worker creates it), a stream that does not capture the
// subjects is not.
func checkNATS(ctx context.Context, cfg worker.Config, stdout io.Writer) error {
	auth, err := worker.AuthOptions(cfg.NATS)
	if err != nil {
		return err
	}
	nc, err := nats.Connect(cfg.NATS.URL, append(auth, nats.Name("rollcall check"), nats.Timeout(5*time.Second))...)
	if errors.Is(err, nats.ErrNoServers) {
		// nats.go does not say why no server took the connection: a dial does.
		if u, perr := worker.NATSServerURL(strings.TrimSpace(strings.Split(cfg.NATS.URL, ",")[0])); perr == nil {
			if c, derr := net.DialTimeout("tcp", u.Host, 5*time.Second); derr != nil {
				err = derr
			} else {
				c.Close()
			}
		}
	}
	if err != nil {
		return errors.New(worker.NATSCause(err))
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	n := cfg.NATS
	s, err := js.Stream(ctx, n.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		fmt.Fprintf(stdout, "- stream %s is missing: `run` creates it\n", n.Stream)
	case err != nil:
		return fmt.Errorf("stream %s: %w", n.Stream, err)
	default:
		if err := publisher.Captures(n.Stream, s.CachedInfo().Config.Subjects, n.SubjectPrefix); err != nil {
			return err
		}
	}
	for _, b := range []string{n.StateBucket, n.TrackingBucket} {
		if _, err := js.KeyValue(ctx, b); errors.Is(err, jetstream.ErrBucketNotFound) {
			fmt.Fprintf(stdout, "- bucket %s is missing: `run` creates it\n", b)
		} else if err != nil {
			return fmt.Errorf("bucket %s: %w", b, err)
		}
	}
	return nil
}

// runHealthcheck asks the worker of the config for /healthz, or /readyz with ready,
// and fails unless it answers 200: a container health check for an image without a
// shell.
func runHealthcheck(ctx context.Context, path string, ready bool, stdout io.Writer, getenv func(string) string) error {
	cfg, err := worker.LoadFor(path, getenv, false)
	if err != nil {
		return err
	}
	if cfg.HTTP.Listen == "" {
		return errors.New("http.listen is \"\": the worker serves no health endpoint")
	}
	host, port, err := net.SplitHostPort(cfg.HTTP.Listen)
	if err != nil {
		return err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	endpoint := "/healthz"
	if ready {
		endpoint = "/readyz"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+endpoint, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(stdout, "%s %d %s\n", endpoint, resp.StatusCode, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", endpoint, resp.Status)
	}
	return nil
}

// tailTarget is where `tail -config` reads: the config's NATS server (the embedded
// one's URL from store_dir/nats.url) with its credentials, and its stream.
func tailTarget(cfg worker.Config) (string, []nats.Option, error) {
	auth, err := worker.AuthOptions(cfg.NATS)
	if err != nil {
		return "", nil, err
	}
	url := cfg.NATS.URL
	if url == "" {
		b, err := os.ReadFile(filepath.Join(cfg.NATS.StoreDir, worker.EmbeddedURLFile))
		if err != nil {
			return "", nil, fmt.Errorf("%w with nats.store_dir %s: %w", errNoWorker, cfg.NATS.StoreDir, err)
		}
		url = strings.TrimSpace(string(b))
	}
	return url, auth, nil
}
