// Package webhook receives VideoSDK's webhooks and turns each verified one into a
// Hint: a reason to poll a session, or list a room, now. A webhook carries no
// timestamp, no event id and no promise of delivery, so nothing is ever published
// from its body; the poll it hastens publishes what changed, as a scheduled one would
// have, with the same ids.
//
// The Receiver answers at once and never waits for a poll: it hands each hint to a
// callback that must not block. Its answers:
//
//   - 405, with Allow: POST, for another method; 404 for another path;
//   - 413 for a body over MaxBody;
//   - 400 for a body that is not a webhook: not a JSON object with a string
//     webhookType, or, for a type that hints, a data.meetingId, data.sessionId or
//     data.participantId that is not an ID rollcall can follow (1–256 bytes). This is
//     checked before the signature: it is cheap, and costs no key fetch;
//   - 401 for a missing or bad videosdk-signature header, or while the key cannot be
//     fetched;
//   - 204 for a verified webhook, also of a type rollcall does not use.
//
// The signature is base64 of an RSA PKCS#1 v1.5 SHA-256 signature over the raw body
// or, failing that, over its json.Compact form (VideoSDK's own Node sample signs
// JSON.stringify of the parsed body). No timestamp is signed, so a webhook can be
// replayed: all a replay can do is hasten a poll that changes nothing.
//
// An unverified request causes no API request but, at most once per RefetchAfter, a
// fetch of the public key (when it is not pinned), since a key rotated by VideoSDK
// shows first as a signature that does not verify.
package webhook

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rollcall/rollcall/diff"
	"github.com/rollcall/rollcall/internal/metrics"
	"github.com/rollcall/rollcall/poller"
)

// Hint is what a verified webhook tells: something changed in a session of a room,
// now. It is also the JSON that travels between replicas.
type Hint struct {
	Type          string `json:"type"` // one of hintTypes
	RoomID        string `json:"roomId"`
	SessionID     string `json:"sessionId"`
	ParticipantID string `json:"participantId,omitempty"` // of participant-joined and participant-left
}

// hintTypes are the webhook types that hint, those the poller acts on; any other
// verified webhook is answered 204 and goes no further.
var hintTypes = []string{poller.HintJoined, poller.HintLeft, poller.HintSessionStarted, poller.HintSessionEnded}

// MaxBody is the largest body accepted: VideoSDK's webhooks are a few hundred bytes.
const MaxBody = 64 << 10

// SignatureHeader holds the base64 signature of a webhook.
const SignatureHeader = "videosdk-signature"

// Config configures a Receiver.
type Config struct {
	// Path is the only path served ("/webhook").
	Path string
	// Key, if set, is VideoSDK's public key, pinned: it is never fetched.
	Key *rsa.PublicKey
	// KeyURL, when Key is nil, is where the key is fetched from:
	// {videosdk.base_url}/v2/public/rsa-public-key (KeyPath).
	KeyURL string
	// Hint is given each verified hint, on the request's goroutine, before the
	// answer: it must not block.
	Hint func(Hint)
	Log  *slog.Logger
	// Metrics counts webhooks by result; nil counts them nowhere.
	Metrics *metrics.Metrics
	// Now is the clock of RefetchAfter; nil is time.Now.
	Now func() time.Time
}

// Receiver is the http.Handler of POST Config.Path.
type Receiver struct {
	cfg     Config
	keys    *keys
	results *metrics.Metrics
}

// New returns a Receiver of cfg.
func New(cfg Config) (*Receiver, error) {
	switch {
	case !strings.HasPrefix(cfg.Path, "/"):
		return nil, fmt.Errorf("webhook: path %q does not start with /", cfg.Path)
	case cfg.Key == nil && cfg.KeyURL == "":
		return nil, errors.New("webhook: neither a key nor a URL to fetch it from")
	case cfg.Hint == nil:
		return nil, errors.New("webhook: no Hint callback")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	k := &keys{key: cfg.Key, client: &http.Client{Timeout: FetchTimeout}, now: cfg.Now, log: cfg.Log}
	if cfg.Key == nil {
		k.url = cfg.KeyURL
	}
	return &Receiver{cfg: cfg, keys: k, results: metrics.Or(cfg.Metrics)}, nil
}

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != r.cfg.Path {
		http.NotFound(w, req) // not a webhook's address: not counted
		return
	}
	status, why := r.serve(req)
	result := metrics.WebhookMalformed
	switch status {
	case http.StatusNoContent:
		result = metrics.WebhookVerified
	case http.StatusUnauthorized:
		result = metrics.WebhookRejected
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
	}
	r.results.Webhooks.WithLabelValues(result).Inc()
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	r.cfg.Log.Debug("webhook refused", "status", status, "why", why, "remote", req.RemoteAddr)
	http.Error(w, why, status)
}

// serve checks a request and, verified, hands its hint on: the status to answer,
// and why if it is not 204.
func (r *Receiver) serve(req *http.Request) (int, string) {
	if req.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, "POST only"
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, req.Body, MaxBody))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			return http.StatusRequestEntityTooLarge, fmt.Sprintf("a webhook is at most %d bytes", MaxBody)
		}
		return http.StatusBadRequest, "cannot read the body"
	}
	hint, hints, err := parse(body)
	if err != nil {
		return http.StatusBadRequest, "not a webhook: " + err.Error()
	}
	if err := r.verify(req, body); err != nil {
		return http.StatusUnauthorized, err.Error()
	}
	if hints {
		r.cfg.Hint(hint)
	}
	return http.StatusNoContent, ""
}

// parse reads a webhook: hints is false for a type that does not hint.
func parse(body []byte) (h Hint, hints bool, err error) {
	var envelope struct {
		Type json.RawMessage `json:"webhookType"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &envelope); err != nil {
		return Hint{}, false, errors.New("not a JSON object")
	}
	if len(envelope.Type) == 0 || envelope.Type[0] != '"' || json.Unmarshal(envelope.Type, &h.Type) != nil {
		return Hint{}, false, errors.New("no string webhookType")
	}
	if !slices.Contains(hintTypes, h.Type) {
		return h, false, nil // acknowledged, whatever its data
	}
	var data struct {
		MeetingID     string `json:"meetingId"`
		SessionID     string `json:"sessionId"`
		ParticipantID string `json:"participantId"`
	}
	if len(envelope.Data) == 0 {
		return Hint{}, false, errors.New("no data")
	}
	if err := json.Unmarshal(envelope.Data, &data); err != nil {
		return Hint{}, false, errors.New("data is not an object of string IDs")
	}
	// The IDs become subject tokens and keys: checked here, as every ID from the API is.
	for _, id := range []struct {
		name, value string
		optional    bool
	}{{"meetingId", data.MeetingID, false}, {"sessionId", data.SessionID, false}, {"participantId", data.ParticipantID, true}} {
		if id.optional && id.value == "" {
			continue
		}
		if err := diff.CheckID(id.value); err != nil {
			return Hint{}, false, fmt.Errorf("data.%s: %w", id.name, err)
		}
	}
	h.RoomID, h.SessionID, h.ParticipantID = data.MeetingID, data.SessionID, data.ParticipantID
	return h, true, nil
}

// verify checks the request's signature over body, then over body's compact form,
// with the key; if neither verifies, with a key fetched again (see keys.get).
func (r *Receiver) verify(req *http.Request, body []byte) error {
	header := req.Header.Get(SignatureHeader)
	if header == "" {
		return errors.New("no " + SignatureHeader + " header")
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(header))
	if err != nil {
		return errors.New(SignatureHeader + " is not base64")
	}
	raw := sha256.Sum256(body)
	var compact *[sha256.Size]byte
	var buf bytes.Buffer
	if json.Compact(&buf, body) == nil && !bytes.Equal(buf.Bytes(), body) {
		sum := sha256.Sum256(buf.Bytes())
		compact = &sum
	}
	signed := func(key *rsa.PublicKey) bool {
		return rsa.VerifyPKCS1v15(key, crypto.SHA256, raw[:], sig) == nil ||
			(compact != nil && rsa.VerifyPKCS1v15(key, crypto.SHA256, compact[:], sig) == nil)
	}
	key, err := r.keys.get(req.Context(), nil)
	if err != nil {
		// The sender learns no more than that: the detail (the key's URL among it)
		// is in the log.
		r.cfg.Log.Debug("webhook not verified: no key", "err", err)
		return errors.New("cannot verify: no key")
	}
	if signed(key) {
		return nil
	}
	if again, err := r.keys.get(req.Context(), key); err == nil && again != key && signed(again) {
		return nil
	}
	return errors.New("the signature does not verify")
}
