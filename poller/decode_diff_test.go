package poller

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rollcall/rollcall/sim"
)

// FuzzDiff checks DecodePage against unmarshalPage, the reading by encoding/json that
// defines it: the same page or the same error for any body. And scanPage, the fast
// path, rejects a body only if encoding/json does too or if it calls the body unusual,
// so that what the API sends stays on the fast path.
func FuzzDiff(f *testing.F) {
	for _, body := range diffSeeds(f) {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		want, wantErr := reference(body)
		got, err := DecodePage(body)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("DecodePage error %v, encoding/json's %v", err, wantErr)
		}
		if d := cmp.Diff(want, got); d != "" || !reflect.DeepEqual(want, got) {
			t.Fatalf("DecodePage (-encoding/json +DecodePage):\n%s", d)
		}
		pi, docs, err := scanPage(body)
		switch {
		case errors.Is(err, errUnusual):
		case err != nil:
			if wantErr == nil {
				t.Fatalf("scanPage rejects a page that encoding/json reads: %v", err)
			}
		default:
			got, err := newPage(pi, docs)
			if fmt.Sprint(err) != fmt.Sprint(wantErr) || !reflect.DeepEqual(want, got) {
				t.Fatalf("scanPage: error %v, encoding/json's %v; page (-encoding/json +scanPage):\n%s", err, wantErr, cmp.Diff(want, got))
			}
		}
	})
}

func reference(body []byte) (Page, error) {
	pi, docs, err := unmarshalPage(body)
	if err != nil {
		return Page{}, err
	}
	return newPage(pi, docs)
}

// TestScanPageSim: a page as the simulator renders it is read by the fast path.
func TestScanPageSim(t *testing.T) {
	body := simPage(t, 3, false)
	if _, _, err := scanPage(body); err != nil {
		t.Fatalf("scanPage: %v", err)
	}
	want, _ := reference(body)
	got, err := DecodePage(body)
	if err != nil || !reflect.DeepEqual(want, got) {
		t.Fatalf("DecodePage: %v; (-encoding/json +DecodePage):\n%s", err, cmp.Diff(want, got))
	}
}

// simPage is a page of n participants as the simulator renders it, in the older
// shape if legacy.
func simPage(t testing.TB, n int, legacy bool) []byte {
	t.Helper()
	clk := sim.NewClock(time.Date(2023, 7, 24, 8, 28, 9, 215e6, time.UTC))
	api := sim.New(sim.Config{APIKey: "key", Secret: "secret", Now: clk.Now})
	api.SetLegacyShape(legacy)
	api.StartSession("s1", "r1")
	for i := range n {
		clk.Add(1234567 * time.Microsecond)
		api.Join("s1", fmt.Sprintf("p%d", i), fmt.Sprintf("Participant %d", i))
	}
	api.Leave("s1", "p0")
	api.Join("s1", "p0", "") // a second stint
	tok, err := NewMinter("key", "secret", time.Hour, clk.Now).Token()
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/v2/sessions/s1/participants/active?page=1&perPage=100", nil)
	r.Header.Set("Authorization", string(tok))
	w := httptest.NewRecorder()
	api.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	return w.Body.Bytes()
}

// diffSeeds are the fixtures, the corpus of FuzzDecodePage, and bodies that read
// JSON in ways encoding/json has rules for.
func diffSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	files, _ := filepath.Glob(filepath.Join("testdata", "*"))
	corpus, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzDecodePage", "*"))
	for _, name := range append(files, corpus...) {
		b, err := os.ReadFile(name)
		if err != nil {
			continue // a directory
		}
		if rest, ok := strings.CutPrefix(string(b), "go test fuzz v1\n[]byte("); ok {
			s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimSpace(rest), ")"))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			b = []byte(s)
		}
		seeds = append(seeds, b)
	}
	page := func(participant string) []byte {
		return []byte(`{"pageInfo":{"currentPage":1,"perPage":2,"lastPage":1,"total":1},"data":[{"_id":"s1","start":"2023-07-24T08:28:09.215Z","participants":[` + participant + `]}]}`)
	}
	for _, p := range []string{
		`{"participantId":"a","timelog":[{"start":"2023-07-24T08:28:09.650Z","end":null}],"deviceInfo":{"sdkType":"web"},"geoLocation":{}}`,
		`{"participantId":"a","timelog":[{"start":"2023-07-24T08:28:09.650Z"}],"deviceInfo":{"sdkType":"web","sdkType":"rn"}}`,
		`{"participantId":"a","timelog":[{"start":"2023-07-24T08:28:09.650Z"}],"deviceInfo":{"SDKTYPE":"web","\u0073dkType":1}}`,
		`{"participantId":"a","timelog":[{"start":"2023-07-24T08:28:09.650Z"}],"deviceInfo":{"sdkType":5}}`,
		`{"participantId":"a","timelog":[{"start":"2023-07-24T08:28:09.650Z"}],"deviceInfo":{"sdkType":null}}`,
		`{"participantId":"a","timelog":[{"start":"2023-07-24T08:28:09.650Z"}],"deviceInfo":{"\u017fdkType":"web"}}`,
		`{"participantId":"a","timelog":[{"start":"2023-07-24T08:28:09.650Z"}],"deviceInfo":{"sdkType":"w\u00e9b\ud800"}}`,
		`{"participantId":"a","name":"Jos\u00e9 \"J\" Ã©","timelog":[{"start":"2023-07-24T08:28:09.650Z"}]}`,
		"{\"participantId\":\"a\",\"name\":\"\xff\xfe\",\"timelog\":[{\"start\":\"2023-07-24T08:28:09.650Z\"}]}",
		`{"PARTICIPANTID":"a","Timelog":[{"START":"2023-07-24T10:28:09.650123+02:00","End":null}]}`,
		`{"participantId":"a","timelog":[{"start":"2023-07-24T08:28:09.650Z"},{"start":"2023-07-24T08:28:10Z","end":"2023-07-24T08:28:11.9999Z"}]}`,
		`{"participantId":"a","timelog":[{"start":"2023-07-24T08:28:09.650Z"}],"timelog":[{"start":"2023-07-24T08:28:10.650Z","end":"2023-07-24T08:28:11Z"}]}`,
		`{"participantId":"a","timelog":[null,{"start":null}]}`,
		`{"participantId":"a","timelog":[{"start":"2023\u002d07-24T08:28:09.650Z"}]}`,
		`{"participantId":"a","timelog":[{"start":"2023-07-24T08:28:09.650z"}]}`,
		`{"participantId":"a","timelog":[{"start":"2023-07-24 08:28:09.650Z"}]}`,
		`{"participantId":"a","timelog":[{"start":"2023-07-24T08:28:09.650Z","start":null}]}`,
		`{"participantId":"a","timelog":[{"start":"2023-07-24T08:28:09.650Z"}],"deviceInfo":[{"sdkType":"web"}],"geoLocation":"x"}`,
		`{"participantId":"a","timelog":[{"start":"2023-07-24T08:28:09.650Z"}],"deviceInfo":{"a":[[[[[{}]]]]],"sdkType":"web"} , "geoLocation" : { "city" : "Surat" } }`,
		`null`,
		`{"participantId":"a","timelog":{}}`,
		`{"participantId":5}`,
	} {
		seeds = append(seeds, page(p))
	}
	seeds = append(seeds,
		[]byte(`{"data":{"_id":"s1","participants":[]},"data":null}`),
		[]byte(`{"data":null,"data":{"_id":"s1"}}`),
		[]byte(`{"data":[{"_id":"s1"}],"data":[{"roomId":"r"}]}`),
		[]byte(`{"DATA":[{"ID":"s1","STATUS":"ended","End":"2023-07-24T08:28:09.215Z"}],"PageInfo":{"Total":-0,"LastPage":null}}`),
		[]byte(`{"pageInfo":null,"data":[]}`),
		[]byte(`{"pageInfo":{"total":1.0},"data":[]}`),
		[]byte(`{"pageInfo":{"total":1e2},"data":[]}`),
		[]byte(`{"pageInfo":{"total":9223372036854775808},"data":[]}`),
		[]byte(`{"pageInfo":{"total":"1"},"data":{"_id":"s1"}}`),
		[]byte(`{"pageInfo":{},"data":[null]}`),
		[]byte(`{"data":[],"x":[1,-0.5e+3,true,false,null,"\u00e9\/\b"]}`+" \t\r\n"),
		[]byte(`{"data":[],"x":01}`),
		[]byte(`{"data":[],"x":"\x"}`),
		[]byte("{\"data\":[],\"x\":\"\t\"}"),
		[]byte("\xef\xbb\xbf{\"data\":[]}"),
		[]byte(`{"data":[]}x`),
		[]byte(`{"data":[],}`),
		[]byte(`{"data":[]`+strings.Repeat(`,"x":`+strings.Repeat("[", 9998)+strings.Repeat("]", 9998), 1)+`}`),
		[]byte(`{"data":[]`+strings.Repeat(`,"x":`+strings.Repeat("[", 9999)+strings.Repeat("]", 9999), 1)+`}`),
		simPage(t, 3, false),
		simPage(t, 2, true),
	)
	return seeds
}
