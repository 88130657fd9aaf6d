package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/rollcall/rollcall/internal/worker"
)

// runWorker is `rollcall run`: the config (loaded from path), the logger, the worker.
func runWorker(ctx context.Context, cfg worker.Config, path string, stderr io.Writer) error {
	log := worker.NewSecrets(cfg.Secrets()...).Logger(worker.NewLogger(stderr, cfg.Log))
	defer ignoreHangups(log)()
	log.Info("starting", "version", version, "config", path, "sessions", len(cfg.Sessions), "rooms", len(cfg.Rooms))
	log.Debug("effective config", "config", cfg.Redacted())
	w, err := worker.New(ctx, cfg, log)
	if err != nil && ctx.Err() != nil {
		// A signal during start-up (waiting for NATS, say) is a clean stop too.
		log.Info("stopped during start-up", "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	defer w.Close()
	return w.Run(ctx)
}

// ignoreHangups logs SIGHUP and ignores it until the returned function is called. The
// worker has nothing to reload (what it tracks changes at run time through `rollcall
// track`), and a hangup, a daemon's usual "reload", must not kill it without a
// graceful stop, as the default action would.
func ignoreHangups(log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				log.Info("SIGHUP ignored: there is nothing to reload; change what is tracked with `rollcall track` and `untrack`, anything else with a restart")
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}
