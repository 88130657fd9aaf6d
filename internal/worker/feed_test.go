package worker

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rollcall/rollcall/events"
	"github.com/rollcall/rollcall/internal/natstest"
	"github.com/rollcall/rollcall/internal/testkit"
)

// TestEventsFeed: the worker serves its stream's events on http.listen's /events.
func TestEventsFeed(t *testing.T) {
	ns := natstest.Start(t)
	cfg := securityConfig(t, ns.ClientURL())
	cfg.HTTP.Listen = testkit.FreeAddr(t)
	var logs testkit.Buffer
	stop := runWorker(t, cfg, &logs)
	defer stop()
	eventually(t, "ready", func() bool { code, _ := httpGet(t, cfg.HTTP.Listen, "/readyz"); return code == 200 })
	req, err := http.NewRequest(http.MethodGet, "http://"+cfg.HTTP.Listen+"/events?session=s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Last-Event-ID", "0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		for sc := bufio.NewScanner(resp.Body); sc.Scan(); {
			if l := sc.Text(); strings.HasPrefix(l, "id:") || strings.HasPrefix(l, "event:") {
				lines <- l
			}
		}
	}()
	var got []string
	for len(got) < 4 {
		select {
		case l := <-lines:
			got = append(got, l)
		case <-time.After(10 * time.Second):
			t.Fatalf("got %q, then nothing for 10s", got)
		}
	}
	want := []string{"id: 1", "event: " + events.TypeSessionStarted, "id: 2", "event: " + events.TypeJoined}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("the feed (-want +got):\n%s", d)
	}
}
