package worker

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestNewLoggerJSONDurations: the JSON log writes durations as the text log does,
// "1.5s", at the top level, in groups and in attributes given to With, and through
// the Secrets that run puts in front of it; other numbers stay numbers.
func TestNewLoggerJSONDurations(t *testing.T) {
	var out bytes.Buffer
	log := NewSecrets("s3cr3t").Logger(NewLogger(&out, Log{Level: "info", Format: "json"}))
	log = log.With("with", 2*time.Minute).WithGroup("poll")
	log.Info("done", "took", 1500*time.Millisecond, slog.Group("wait", "left", time.Duration(0)), "n", 3)

	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	delete(got, "time")
	want := map[string]any{
		"level": "INFO",
		"msg":   "done",
		"with":  "2m0s",
		"poll": map[string]any{
			"took": "1.5s",
			"wait": map[string]any{"left": "0s"},
			"n":    float64(3),
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log line (-want +got):\n%s", diff)
	}
}
