// Package worker is rollcall's worker, written once: the config (a TOML struct, its
// defaults, strict decoding, validation), the logger, NATS or the embedded server,
// the stream and the buckets, /metrics, /healthz and /readyz, the poller's Manager,
// which runs one loop per tracked session and room (with several replicas, only for
// those whose lease this one holds), and the webhook receiver, on a listener of its
// own, whose hints every replica takes over NATS (HintSubject). `rollcall run`, `rollcall demo` and
// the load command all use it the same way:
//
//	w, err := worker.New(ctx, cfg, log) // waits for NATS until ctx ends
//	if err != nil {
//		return err
//	}
//	defer w.Close()
//	return w.Run(ctx) // polls until ctx ends, then stops in order
//
// The commands that only talk to NATS (track, tracked, tail, who, check) use its
// config and connection helpers without a Worker.
//
// # Secrets
//
// Neither what the worker logs nor New's errors show the config's secrets: the
// VideoSDK secret and token, the NATS password, token and seed, and the
// credentials in nats.url (see Config.Secrets).
//
// # Shutdown
//
// When Run's context ends, no new poll starts, and the webhook listener closes (the
// webhooks under way get webhookGrace, 0.5 s, to be answered). The polls in flight
// get cycleGrace (6 s) to finish; then they are abandoned, and what they published
// stays in their sessions' outboxes for the next run to finish. The connection is then drained, so
// that the publishes are flushed, for at most drainGrace (2 s): Run returns within
// the 10 s the spec gives from the signal to the exit. It returns an error only
// if it could not start, or if the NATS connection was closed for good, so that a
// supervisor starts the process again rather than let every poll fail. Close then
// closes the connection and shuts the embedded server down; when it returns,
// store_dir/nats.url is gone and store_dir is unlocked, so that a process that exits
// right after leaves no URL behind.
package worker
