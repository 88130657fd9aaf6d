package publisher

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestAckError: every shape of ack the stream writes, and some it does not, read as
// nats.go reads them.
func TestAckError(t *testing.T) {
	refused := &jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "maximum messages exceeded"}
	for _, tc := range []struct {
		name   string
		body   string
		status string
		want   error
	}{
		{"stored", `{"stream":"ROLLCALL","seq":12}`, "", nil},
		{"stored, in a domain", `{"stream":"ROLLCALL","domain":"hub","seq":12}`, "", nil},
		{"duplicate, as the server writes it", `{"stream":"ROLLCALL","seq":12,"duplicate": true}`, "", errDuplicate},
		{"duplicate, as json.Marshal writes it", `{"stream":"ROLLCALL","seq":12,"duplicate":true}`, "", errDuplicate},
		{"not a duplicate", `{"stream":"ROLLCALL","seq":12,"duplicate":false}`, "", nil},
		{"a stream named error", `{"stream":"error","seq":3}`, "", nil},
		{"a duplicate in a stream named error", `{"stream":"error","seq":3,"duplicate": true}`, "", errDuplicate},
		{"refused", `{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"ROLLCALL","seq":0}`, "", refused},
		{"no responders", ``, "503", jetstream.ErrNoStreamResponse},
		{"empty", ``, "", jetstream.ErrInvalidJSAck},
		{"not JSON", `+OK`, "", jetstream.ErrInvalidJSAck},
		{"an error that is not JSON", `{"error":`, "", jetstream.ErrInvalidJSAck},
		{"no stream", `{"seq":12}`, "", jetstream.ErrInvalidJSAck},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &nats.Msg{Data: []byte(tc.body), Header: nats.Header{}}
			if tc.status != "" {
				m.Header.Set("Status", tc.status)
			}
			got := ackError(m)
			var apiErr *jetstream.APIError
			switch {
			case errors.As(tc.want, &apiErr):
				var gotErr *jetstream.APIError
				if !errors.As(got, &gotErr) || *gotErr != *apiErr {
					t.Errorf("ackError = %v, want %v", got, tc.want)
				}
			case !errors.Is(got, tc.want):
				t.Errorf("ackError = %v, want %v", got, tc.want)
			}
		})
	}
}
