package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/rollcall/rollcall/internal/testkit"
)

// TestRetrySetup: a setup that times out (a cluster electing its leaders) is tried
// again, said once; any other error, or the end of the context, stops it.
func TestRetrySetup(t *testing.T) {
	var logs testkit.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	calls := 0
	err := retrySetup(context.Background(), log, func() error {
		if calls++; calls < 3 {
			return fmt.Errorf("look up stream ROLLCALL: %w", context.DeadlineExceeded)
		}
		return nil
	})
	if err != nil || calls != 3 || strings.Count(logs.String(), "timed out") != 1 {
		t.Errorf("err %v after %d calls, log:\n%s; want success on the third, one warning", err, calls, logs.String())
	}
	refused := errors.New("stream ROLLCALL captures \"x.>\"")
	calls = 0
	if err := retrySetup(context.Background(), log, func() error { calls++; return refused }); !errors.Is(err, refused) || calls != 1 {
		t.Errorf("err %v after %d calls, want the refusal at once", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := retrySetup(ctx, log, func() error { return context.DeadlineExceeded }); err == nil {
		t.Error("a setup that times out after the context ended succeeded")
	}
}
