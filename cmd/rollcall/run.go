package main

import (
	"context"
	"io"

	"github.com/rollcall/rollcall/internal/worker"
)

// runWorker is `rollcall run`: the config (loaded from path), the logger, the worker.
func runWorker(ctx context.Context, cfg worker.Config, path string, stderr io.Writer) error {
	log := worker.NewSecrets(cfg.Secrets()...).Logger(worker.NewLogger(stderr, cfg.Log))
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
