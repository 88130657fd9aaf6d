package poller_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/rollcall/rollcall/poller"
)

// FuzzDecodePage feeds DecodePage any body, seeded with every fixture in testdata/ and
// the corpus in testdata/fuzz/FuzzDecodePage/. A page it accepts holds only usable
// participants, and a scan whose every page is that body is called complete only if
// it is: no participant missing, none listed twice.
func FuzzDecodePage(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		if fi, err := os.Stat(name); err != nil || fi.IsDir() {
			continue // testdata/fuzz: the corpus, which go test reads itself
		}
		body, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		page, err := poller.DecodePage(body)
		if err != nil {
			return
		}
		for _, s := range page.Sessions {
			for _, p := range s.Participants {
				if p.ID == "" || p.JoinedAt.IsZero() {
					t.Fatalf("DecodePage kept participant %q joined at %v", p.ID, p.JoinedAt)
				}
			}
		}
		sessionID := session // a page without a session document is for any session
		if len(page.Sessions) > 0 {
			sessionID = page.Sessions[0].SessionID
		}
		// Every page is fetched up to three times: beyond a few pages an input only
		// slows the fuzzer down.
		if page.LastPage > 8 {
			return
		}
		c := poller.NewClient(poller.ClientConfig{
			BaseURL: "http://videosdk.test", Tokens: poller.Static("token"), Attempts: 1,
			HTTPClient: &http.Client{Transport: sameBody(body)},
		})
		snap, err := c.Snapshot(context.Background(), nil, sessionID)
		if err != nil || !snap.Complete {
			return
		}
		seen := make(map[string]bool)
		for _, p := range snap.Participants {
			if p.ID == "" || seen[p.ID] || p.JoinedAt.IsZero() {
				t.Fatalf("complete snapshot with participant %q (listed before: %v) joined at %v", p.ID, seen[p.ID], p.JoinedAt)
			}
			seen[p.ID] = true
		}
		kept := 0
		for _, s := range page.Sessions {
			kept += len(s.Participants)
		}
		if page.Paged && (page.Listed != page.Total || len(snap.Participants) != kept) {
			t.Fatalf("complete snapshot of %d participants (%d listed, %d kept) over %d pages, total says %d", len(snap.Participants), page.Listed, kept, snap.Pages, page.Total)
		}
	})
}

// sameBody answers every request in process with 200 and itself as a JSON body.
type sameBody []byte

func (b sameBody) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(b)),
		ContentLength: int64(len(b)),
		Request:       r,
	}, nil
}
