package worker

import (
	"cmp"
	"errors"
	"fmt"
	"github.com/rollcall/rollcall/diff"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/robfig/cron/v3"
	"github.com/rollcall/rollcall/internal/webhook"
)

// Config is rollcall's configuration: config.toml decoded over Default,
// then overridden by the environment. It holds only the keys of capabilities
// that exist; any other key is rejected, never accepted and ignored.
type Config struct {
	VideoSDK VideoSDK  `toml:"videosdk"`
	Poll     Poll      `toml:"poll"`
	Sessions []Session `toml:"sessions"`
	Rooms    []Room    `toml:"rooms"`
	NATS     NATS      `toml:"nats"`
	HTTP     HTTP      `toml:"http"`
	Webhook  Webhook   `toml:"webhook"`
	Log      Log       `toml:"log"`
}

// VideoSDK is how rollcall reaches and authenticates to the VideoSDK REST API.
type VideoSDK struct {
	BaseURL        string   `toml:"base_url"`
	APIKey         string   `toml:"api_key"`         // env VIDEOSDK_API_KEY overrides
	Secret         string   `toml:"secret"`          // env VIDEOSDK_SECRET overrides; never logged
	Token          string   `toml:"token"`           // env VIDEOSDK_TOKEN overrides; pre-minted, instead of key and secret
	TokenTTL       Duration `toml:"token_ttl"`       // lifetime of each minted token
	PerPage        int      `toml:"per_page"`        // participants asked for per page
	RequestTimeout Duration `toml:"request_timeout"` // per HTTP request
	MaxConcurrency int      `toml:"max_concurrency"` // sessions fetched at once
	RateLimit      float64  `toml:"rate_limit"`      // requests per second across all sessions; 0 = unlimited
}

// Poll is when sessions are polled, and who is left out of the events.
type Poll struct {
	Schedule         string   `toml:"schedule"`          // robfig/cron spec, see ParseSchedule
	DiscoverSchedule string   `toml:"discover_schedule"` // when rooms' session lists are read
	ExcludeModes     []string `toml:"exclude_modes"`     // e.g. "VIEWER": no events for them
	ExcludeSDKTypes  []string `toml:"exclude_sdk_types"` // e.g. "recorder"
	// When each session's list of all participants is read to find the stints
	// polls missed, if no poll has read it since.
	ReconcileSchedule string   `toml:"reconcile_schedule"`
	LeftTimeWait      Duration `toml:"left_time_wait"` // how long a left may wait for its exact end
}

// Session is one tracked VideoSDK session.
type Session struct {
	ID string `toml:"id"`
}

// Room is one tracked VideoSDK room: every ongoing session of it is tracked.
type Room struct {
	ID string `toml:"id"`
}

// NATS is the server events are published to, and the JetStream names used.
type NATS struct {
	URL             string   `toml:"url"`       // "" = embedded server; env NATS_URL overrides; comma-separated list
	Creds           string   `toml:"creds"`     // a credentials file (user JWT and seed); env NATS_CREDS overrides
	NKeySeed        string   `toml:"nkey_seed"` // a file holding an NKey user seed
	User            string   `toml:"user"`      // with Password; env NATS_USER overrides
	Password        string   `toml:"password"`  // never logged; env NATS_PASSWORD overrides
	Token           string   `toml:"token"`     // never logged
	TLSCA           string   `toml:"tls_ca"`    // CA file to verify the server with
	TLSCert         string   `toml:"tls_cert"`  // with TLSKey: a client certificate, for mutual TLS
	TLSKey          string   `toml:"tls_key"`
	Stream          string   `toml:"stream"`
	SubjectPrefix   string   `toml:"subject_prefix"`
	StateBucket     string   `toml:"state_bucket"`    // KV bucket of each session's last snapshot
	TrackingBucket  string   `toml:"tracking_bucket"` // KV bucket of what is tracked at run time
	LeaseBucket     string   `toml:"lease_bucket"`    // KV bucket of which replica polls what
	LeaseTTL        Duration `toml:"lease_ttl"`       // a lease not renewed within it expires
	Replicas        int      `toml:"replicas"`        // of the stream and the bucket
	DuplicateWindow Duration `toml:"duplicate_window"`
	MaxAge          Duration `toml:"max_age"`   // how long events stay in the stream
	StoreDir        string   `toml:"store_dir"` // the embedded server's JetStream storage
}

// HTTP is where /metrics, /healthz and /readyz are served.
type HTTP struct {
	Listen string `toml:"listen"` // host:port; "" disables
}

// Webhook is where VideoSDK's webhooks are received: hints to poll now, never events
// (docs/webhooks.md).
type Webhook struct {
	Listen        string `toml:"listen"`          // host:port of its own listener, public-facing; "" receives none
	Path          string `toml:"path"`            // the path webhooks are POSTed to
	PublicKeyFile string `toml:"public_key_file"` // VideoSDK's RSA public key (PEM), pinned; "" fetches it
	FollowRooms   bool   `toml:"follow_rooms"`    // a verified webhook from a room no one tracks starts following it
}

// Log configures the process logger.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn or error
	Format string `toml:"format"` // text or json
}

// Duration is a time.Duration written in TOML as a Go duration string
// ("10s", "1h30m"), not as an integer of nanoseconds.
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("invalid duration %q", text)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration as a string, so that the effective config
// logged by slog's JSON handler reads "10s" rather than 10000000000.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}

// Default is the configuration of an empty config file: every key's default, as
// docs/configuration.md lists them.
func Default() Config {
	return Config{
		VideoSDK: VideoSDK{
			BaseURL:        "https://api.videosdk.live",
			TokenTTL:       Duration{time.Hour},
			PerPage:        100,
			RequestTimeout: Duration{10 * time.Second},
			MaxConcurrency: 8,
			RateLimit:      20,
		},
		Poll: Poll{Schedule: "@every 5s", DiscoverSchedule: "@every 30s", ReconcileSchedule: "@every 1m", LeftTimeWait: Duration{time.Minute}},
		NATS: NATS{
			Stream:          "ROLLCALL",
			SubjectPrefix:   "videosdk",
			StateBucket:     "ROLLCALL_STATE",
			TrackingBucket:  "ROLLCALL_TRACKING",
			LeaseBucket:     "ROLLCALL_LEASES",
			LeaseTTL:        Duration{15 * time.Second},
			Replicas:        1,
			DuplicateWindow: Duration{10 * time.Minute},
			MaxAge:          Duration{720 * time.Hour}, // 30 days
			StoreDir:        "./data",
		},
		HTTP:    HTTP{Listen: "127.0.0.1:9090"},
		Webhook: Webhook{Path: "/webhook"},
		Log:     Log{Level: "info", Format: "text"},
	}
}

// Load reads the config file at path; see parseConfig.
func Load(path string, getenv func(string) string) (Config, error) {
	return LoadFor(path, getenv, true)
}

// LoadFor reads the config file at path; without api, the VideoSDK credentials
// are not required (for the commands that only talk to NATS).
func LoadFor(path string, getenv func(string) string, api bool) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err // already names the path
	}
	cfg, err := parseConfig(data, getenv, api)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// parseConfig decodes a TOML config over the defaults, applies the
// environment overrides (getenv is os.Getenv outside tests) and validates the
// result. The error lists every problem found, one per line.
func parseConfig(data []byte, getenv func(string) string, api bool) (Config, error) {
	cfg := Default()
	if err := decodeStrict(string(data), &cfg); err != nil {
		return Config{}, err
	}
	cfg.ApplyEnv(getenv)
	if err := cfg.check(api); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// decodeStrict decodes doc into cfg after checking every key and value
// against Config, so that unknown keys and wrongly typed values are all
// reported, key first, in file order.
//
// The check is ours rather than MetaData.Undecoded because BurntSushi/toml
// matches keys to fields case-insensitively: "API_KEY" would be accepted,
// and with both "api_key" and "API_KEY" set, either could win.
func decodeStrict(doc string, cfg *Config) error {
	var raw map[string]any
	md, err := toml.Decode(doc, &raw)
	if err != nil {
		return err // a syntax error; toml's message has the line
	}
	s := shapeCheck{order: make(map[string]int)}
	for i, k := range slices.Backward(md.Keys()) {
		s.order[k.String()] = i // backwards, so the first appearance wins
	}
	s.check(nil, "", raw, reflect.TypeFor[Config]())
	if len(s.errs) > 0 {
		return errors.Join(s.errs...)
	}
	_, err = toml.Decode(doc, cfg)
	return err
}

// shapeCheck walks a decoded TOML document alongside the Go type it is to be
// decoded into, in file order.
type shapeCheck struct {
	order map[string]int // dotted key, without array indices -> first appearance in the file
	errs  []error
}

// check checks the value v of key against the type t. name is the key as the
// user should read it, with array indices: "sessions[1].id".
func (s *shapeCheck) check(key toml.Key, name string, v any, t reflect.Type) {
	mismatch := func(want string) {
		s.errs = append(s.errs, fmt.Errorf("%s: must be %s, got %s", name, want, tomlType(v)))
	}
	switch {
	case t == reflect.TypeFor[Duration]():
		text, ok := v.(string)
		if !ok {
			mismatch(`a duration string such as "10s"`)
			return
		}
		if err := new(Duration).UnmarshalText([]byte(text)); err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s: %w", name, err))
		}
	case t.Kind() == reflect.Struct:
		table, ok := v.(map[string]any)
		if !ok {
			mismatch("a table")
			return
		}
		fields := make(map[string]reflect.Type)
		for f := range t.Fields() {
			fields[f.Tag.Get("toml")] = f.Type
		}
		pos := func(k string) int { return s.order[append(slices.Clip(key), k).String()] }
		keys := slices.SortedFunc(maps.Keys(table), func(a, b string) int {
			return cmp.Or(cmp.Compare(pos(a), pos(b)), strings.Compare(a, b))
		})
		for _, k := range keys {
			sub := append(slices.Clip(key), k)
			subName := sub[len(sub)-1:].String() // quoted if it is not a bare key
			if name != "" {
				subName = name + "." + subName
			}
			ft, ok := fields[k]
			if !ok {
				s.errs = append(s.errs, fmt.Errorf("unknown key %q", subName))
				continue
			}
			s.check(sub, subName, table[k], ft)
		}
	case t.Kind() == reflect.Slice:
		list := reflect.ValueOf(v)
		if list.Kind() != reflect.Slice {
			if t.Elem().Kind() == reflect.Struct {
				mismatch("an array of tables") // e.g. [sessions] written for [[sessions]]
			} else {
				mismatch("an array")
			}
			return
		}
		for i := range list.Len() {
			s.check(key, fmt.Sprintf("%s[%d]", name, i), list.Index(i).Interface(), t.Elem())
		}
	case t.Kind() == reflect.String:
		if _, ok := v.(string); !ok {
			mismatch("a string")
		}
	case t.Kind() == reflect.Int:
		if _, ok := v.(int64); !ok {
			mismatch("an integer")
		}
	case t.Kind() == reflect.Bool:
		if _, ok := v.(bool); !ok {
			mismatch("a boolean")
		}
	case t.Kind() == reflect.Float64:
		switch v.(type) {
		case int64, float64:
		default:
			mismatch("a number")
		}
	}
}

// tomlType names the type of a value decoded from TOML into an any.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a datetime"
	case map[string]any:
		return "a table"
	default: // []any, or []map[string]any for an array of tables
		return "an array"
	}
}

// ApplyEnv lets the environment override the file, so that secrets need not
// be written in it. An empty variable overrides nothing.
func (c *Config) ApplyEnv(getenv func(string) string) {
	for _, o := range []struct {
		name string
		dst  *string
	}{
		{"VIDEOSDK_API_KEY", &c.VideoSDK.APIKey},
		{"VIDEOSDK_SECRET", &c.VideoSDK.Secret},
		{"VIDEOSDK_TOKEN", &c.VideoSDK.Token},
		{"NATS_URL", &c.NATS.URL},
		{"NATS_CREDS", &c.NATS.Creds},
		{"NATS_USER", &c.NATS.User},
		{"NATS_PASSWORD", &c.NATS.Password},
	} {
		if v := getenv(o.name); v != "" {
			*o.dst = v
		}
	}
}

var (
	// natsName and natsSubject match names and subject tokens made of the
	// characters every NATS API accepts: no wildcards, '$', spaces or path
	// separators.
	natsName    = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	natsSubject = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
)

// Validate reports every invalid value, one per line, in file order.
func (c Config) Validate() error { return c.check(true) }

// check is Validate; without api, the VideoSDK credentials are not required.
func (c Config) check(api bool) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}

	v := c.VideoSDK
	if u, err := url.Parse(v.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("videosdk.base_url: must be an absolute http or https URL")
	}
	if api && (v.APIKey == "" || v.Secret == "") && v.Token == "" {
		bad("videosdk: need api_key and secret, or token (or the environment's VIDEOSDK_API_KEY and VIDEOSDK_SECRET, or VIDEOSDK_TOKEN)")
	}
	if v.TokenTTL.Duration < time.Minute {
		bad("videosdk.token_ttl: must be at least 1m")
	}
	if v.PerPage < 1 || v.PerPage > 1000 {
		bad("videosdk.per_page: must be between 1 and 1000")
	}
	if v.RequestTimeout.Duration < minRequestTimeout {
		bad("videosdk.request_timeout: must be at least %s", minRequestTimeout)
	}
	if v.MaxConcurrency < 1 || v.MaxConcurrency > maxConcurrency {
		bad("videosdk.max_concurrency: must be between 1 and %d", maxConcurrency)
	}
	switch {
	case !(v.RateLimit >= 0) || math.IsInf(v.RateLimit, 1): // TOML allows nan and inf
		bad("videosdk.rate_limit: must be a number >= 0 (0 = unlimited)")
	case v.RateLimit > 0 && v.RateLimit < minRateLimit:
		bad("videosdk.rate_limit: must be 0 (unlimited) or at least %g (a request every %s)", minRateLimit, time.Duration(float64(time.Second)/minRateLimit))
	}

	now := time.Now()
	for _, s := range []struct{ key, spec string }{
		{"poll.schedule", c.Poll.Schedule}, {"poll.discover_schedule", c.Poll.DiscoverSchedule}, {"poll.reconcile_schedule", c.Poll.ReconcileSchedule},
	} {
		sched, err := ParseSchedule(s.spec)
		if err == nil {
			err = checkFires(s.spec, sched, now)
		}
		if err != nil {
			bad("%s: %w", s.key, err)
		}
	}
	if c.Poll.LeftTimeWait.Duration < 0 {
		bad("poll.left_time_wait: must not be negative (0: a left goes out at once, with its end if the list shows it)")
	}

	errs = append(errs, idErrors("sessions", c.SessionIDs())...)
	errs = append(errs, idErrors("rooms", c.RoomIDs())...)

	n := c.NATS
	errs = append(errs, natsURLErrors("nats.url", n.URL)...)
	if (n.User == "") != (n.Password == "") {
		bad("nats: need both user and password, or neither")
	}
	ways := 0
	for _, set := range []bool{n.Creds != "", n.NKeySeed != "", n.User != "" || n.Password != "", n.Token != ""} {
		if set {
			ways++
		}
	}
	if ways > 1 {
		bad("nats: use one of creds, nkey_seed, user and password, or token")
	}
	for _, f := range []struct{ key, path string }{
		{"nats.creds", n.Creds}, {"nats.nkey_seed", n.NKeySeed}, {"nats.tls_ca", n.TLSCA}, {"nats.tls_cert", n.TLSCert}, {"nats.tls_key", n.TLSKey},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			bad("%s: %w", f.key, err)
		}
	}
	if (n.TLSCert == "") != (n.TLSKey == "") {
		bad("nats: need both tls_cert and tls_key, or neither")
	}
	if (ways > 0 || n.TLSCA != "" || n.TLSCert != "") && n.URL == "" {
		bad(`nats: credentials and TLS are for a server of your own (nats.url); the embedded server needs none`)
	}
	if !natsName.MatchString(n.Stream) {
		bad("nats.stream: must match [A-Za-z0-9_-]+")
	}
	if !natsSubject.MatchString(n.SubjectPrefix) {
		bad("nats.subject_prefix: must be dot-separated tokens matching [A-Za-z0-9_-]+")
	}
	if !natsName.MatchString(n.StateBucket) {
		bad("nats.state_bucket: must match [A-Za-z0-9_-]+")
	}
	switch {
	case !natsName.MatchString(n.TrackingBucket):
		bad("nats.tracking_bucket: must match [A-Za-z0-9_-]+")
	case n.TrackingBucket == n.StateBucket:
		bad("nats.tracking_bucket: must differ from nats.state_bucket")
	}
	switch {
	case !natsName.MatchString(n.LeaseBucket):
		bad("nats.lease_bucket: must match [A-Za-z0-9_-]+")
	case n.LeaseBucket == n.StateBucket || n.LeaseBucket == n.TrackingBucket:
		bad("nats.lease_bucket: must differ from nats.state_bucket and nats.tracking_bucket")
	}
	if n.LeaseTTL.Duration < 3*time.Second {
		bad("nats.lease_ttl: must be at least 3s (leases are renewed every third of it)")
	}
	switch {
	case n.Replicas < 1 || n.Replicas > 5:
		bad("nats.replicas: must be between 1 and 5")
	case n.Replicas > 1 && n.URL == "":
		bad(`nats.replicas: must be 1 with the embedded server (url = "")`)
	}
	// JetStream refuses a window under 100ms or over the stream's max age.
	switch {
	case n.DuplicateWindow.Duration < 100*time.Millisecond:
		bad("nats.duplicate_window: must be at least 100ms")
	case n.MaxAge.Duration > 0 && n.DuplicateWindow.Duration > n.MaxAge.Duration:
		bad("nats.duplicate_window: must not exceed max_age")
	}
	if n.MaxAge.Duration <= 0 {
		bad("nats.max_age: must be positive")
	}
	if n.StoreDir == "" && n.URL == "" {
		bad(`nats.store_dir: must be set for the embedded server (url = "")`)
	}

	if l := c.HTTP.Listen; l != "" {
		if _, port, err := net.SplitHostPort(l); err != nil || port == "" {
			bad("http.listen: must be host:port (\":9090\" for every interface), or \"\" to serve nothing")
		}
	}

	wh := c.Webhook
	if l := wh.Listen; l != "" {
		if _, port, err := net.SplitHostPort(l); err != nil || port == "" {
			bad("webhook.listen: must be host:port (\":8080\" for every interface), or \"\" to receive no webhooks")
		} else if l == c.HTTP.Listen && port != "0" { // port 0: each gets a port of its own
			bad("webhook.listen: must differ from http.listen: webhooks have a listener of their own, the one to make public")
		}
	}
	if !strings.HasPrefix(wh.Path, "/") || strings.ContainsAny(wh.Path, "?# \t\r\n") {
		bad("webhook.path: must be a URL path starting with \"/\", such as \"/webhook\"")
	}
	if wh.PublicKeyFile != "" {
		if _, err := webhook.ReadKeyFile(wh.PublicKeyFile); err != nil {
			bad("webhook.public_key_file: %w", err)
		}
	}
	if wh.FollowRooms && wh.Listen == "" {
		bad("webhook.follow_rooms: needs webhook.listen: no webhook comes without it")
	}

	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		bad("log.level: must be one of debug, info, warn, error")
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		bad("log.format: must be one of text, json")
	}
	return errors.Join(errs...)
}

// idErrors checks the IDs of [[sessions]] or [[rooms]]: none empty, none twice.
func idErrors(table string, ids []string) []error {
	var errs []error
	seen := make(map[string]int)
	for i, id := range ids {
		if err := diff.CheckID(id); err != nil {
			errs = append(errs, fmt.Errorf("%s[%d].id: %w", table, i, err))
			continue
		}
		if j, ok := seen[id]; ok {
			errs = append(errs, fmt.Errorf("%s[%d].id: duplicate of %s[%d].id", table, i, table, j))
			continue
		}
		seen[id] = i
	}
	return errs
}

// SessionIDs returns the IDs of the sessions the config file tracks, in file order.
func (c Config) SessionIDs() []string {
	ids := make([]string, len(c.Sessions))
	for i, s := range c.Sessions {
		ids[i] = s.ID
	}
	return ids
}

// RoomIDs returns the IDs of the rooms the config file tracks, in file order.
func (c Config) RoomIDs() []string {
	ids := make([]string, len(c.Rooms))
	for i, r := range c.Rooms {
		ids[i] = r.ID
	}
	return ids
}

// natsURLErrors checks a nats.url list, named key in the errors. The messages give
// an entry's position, not its text, which may hold credentials.
func natsURLErrors(key, list string) []error {
	if list == "" {
		return nil // the embedded server
	}
	var errs []error
	entries := strings.Split(list, ",")
	var websocket, plain int
	for i, e := range entries {
		at := ""
		if len(entries) > 1 {
			at = fmt.Sprintf("entry %d: ", i+1)
		}
		e = strings.TrimSpace(e)
		u, err := NATSServerURL(e)
		switch {
		case e == "":
			errs = append(errs, fmt.Errorf("%s: %sempty", key, at))
		case err != nil || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, u.Scheme) || u.Hostname() == "":
			errs = append(errs, fmt.Errorf("%s: %smust be a nats://, tls://, ws:// or wss:// URL, or host:port", key, at))
		case u.Scheme == "ws" || u.Scheme == "wss":
			websocket++
		default:
			plain++
		}
	}
	if websocket > 0 && plain > 0 { // nats.go refuses the mix
		errs = append(errs, fmt.Errorf("%s: cannot mix ws:// or wss:// servers with nats:// or tls:// ones", key))
	}
	return errs
}

// CheckNATSURL checks a NATS URL list given otherwise than as nats.url (a flag,
// NATS_URL) as nats.url is checked; its errors name it as name, and give no entry's
// text.
func CheckNATSURL(name, list string) error {
	if list == "" {
		return fmt.Errorf("%s: empty", name)
	}
	return errors.Join(natsURLErrors(name, list)...)
}

// NATSServerURL parses one nats.url entry as nats.go does: a bare host:port
// means nats://host:port.
func NATSServerURL(entry string) (*url.URL, error) {
	if !strings.Contains(entry, "://") {
		entry = "nats://" + entry
	}
	return url.Parse(entry)
}

// Redacted returns a copy of c that is safe to show: secrets that are set read
// "REDACTED", and so do credentials in nats.url (see RedactURL).
func (c Config) Redacted() Config {
	for _, s := range []*string{&c.VideoSDK.Secret, &c.VideoSDK.Token, &c.NATS.Password, &c.NATS.Token} {
		if *s != "" {
			*s = redacted
		}
	}
	if c.NATS.URL != "" {
		c.NATS.URL = RedactURL(c.NATS.URL)
	}
	return c
}

// Bounds of values that would stall or flood the worker rather than configure it.
const (
	// minRequestTimeout: a request that must be answered sooner cannot be, and
	// every poll would fail.
	minRequestTimeout = 100 * time.Millisecond
	// maxConcurrency, of sessions fetched at once: past a few dozen, more only queue
	// at the API and the broker (docs/performance.md); thousands would be thousands
	// of connections.
	maxConcurrency = 1000
	// minRateLimit: below a request every 100 s, no schedule is kept: every poll
	// waits its turn for minutes, and nothing says why.
	minRateLimit = 0.01
)

// checkFires refuses a schedule whose next two activations, from some moment, are not
// within a day: one that never fires (robfig/cron's Next gives the zero time when
// nothing comes within five years, and a loop waiting on it would poll without
// pause, as for "0 0 30 2 *"), fires once a day or less, or not on some days ("* * *
// * 1-5"). It looks from now, and from the start of each day of a year (a leap year,
// in UTC, as the schedules run), so that whether a schedule is refused does not
// depend on the day it is checked on.
func checkFires(spec string, sched cron.Schedule, now time.Time) error {
	var from []time.Time
	year := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for day := year; day.Year() == year.Year(); day = day.AddDate(0, 0, 1) {
		from = append(from, day)
	}
	from = append(from, now)
	for _, t := range from {
		first := sched.Next(t)
		if first.IsZero() {
			return fmt.Errorf("%q never fires", spec)
		}
		second := sched.Next(first)
		if second.IsZero() || second.Sub(t) > 24*time.Hour {
			then := "never again"
			if !second.IsZero() {
				then = "at " + second.UTC().Format(time.RFC3339)
			}
			return fmt.Errorf("%q must fire at least twice within any day: after %s it fires at %s, then %s",
				spec, t.UTC().Format(time.RFC3339), first.UTC().Format(time.RFC3339), then)
		}
	}
	return nil
}

// scheduleParser accepts standard 5-field specs, 6-field specs that start
// with seconds, and descriptors such as "@every 5s" and "@hourly".
var scheduleParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a robfig/cron spec.
func ParseSchedule(spec string) (sched cron.Schedule, err error) {
	// robfig/cron v3.0.1 panics on some specs, such as "TZ=UTC" with no
	// schedule after it.
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("invalid cron spec %q: parser panicked: %v", spec, r)
		}
	}()
	sched, err = scheduleParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("invalid cron spec %q: %w", spec, err)
	}
	// cron rounds @every up to 1s and truncates it to whole seconds: refuse
	// a spec that would run at another interval than the one written.
	if every, ok := sched.(cron.ConstantDelaySchedule); ok {
		_, text, _ := strings.Cut(spec, "@every ")
		if d, _ := time.ParseDuration(text); d != every.Delay {
			return nil, fmt.Errorf("invalid cron spec %q: @every takes a whole number of seconds, at least 1s", spec)
		}
	}
	return sched, nil
}
