package worker

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"
	"github.com/robfig/cron/v3"
)

// env is a getenv backed by a map, so tests never touch the process environment.
func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestLoadConfigBad(t *testing.T) {
	tests := []struct {
		name string // testdata/bad/<name>.toml
		want string // the error, less the "<path>: " prefix
	}{
		{"syntax", `toml: line 2 (last key "videosdk.token"): expected value but found "t" instead`},
		{"duplicate_key", `toml: line 4 (last key "videosdk.per_page"): Key 'videosdk.per_page' has already been defined.`},
		{"unknown_key", `unknown key "videosdk.colour"`},
		{"unknown_later_keys", `unknown key "http.tls_cert"`},
		{"unknown_key_case", `unknown key "videosdk.API_KEY"`},
		{"unknown_key_in_session", `unknown key "sessions[1].room"`},
		{"unknown_key_in_room", `unknown key "rooms[0].session"`},
		{"wrong_types", `videosdk.per_page: must be an integer, got a string
videosdk.rate_limit: must be a number, got a string
videosdk.max_concurrency: must be an integer, got a float
log.level: must be a string, got a boolean
sessions[1].id: must be a string, got an integer`},
		{"table_not_table", `poll: must be a table, got a string`},
		{"sessions_not_tables", `sessions[0]: must be a table, got a string
sessions[1]: must be a table, got a string`},
		{"sessions_single_table", `sessions: must be an array of tables, got a table`},
		{"duration_invalid", `videosdk.token_ttl: invalid duration "soon"`},
		{"duration_not_string", `videosdk.token_ttl: must be a duration string such as "10s", got an integer`},
		{"session_empty_id", `sessions[1].id: empty`},
		{"session_duplicate", `sessions[2].id: duplicate of sessions[0].id`},
		{"session_id_too_long", `sessions[0].id: 257 bytes, more than 256`},
		{"rooms_bad", `poll.discover_schedule: invalid cron spec "@every 30": failed to parse duration @every 30: time: missing unit in duration "30"
rooms[1].id: empty
rooms[2].id: duplicate of rooms[0].id
nats.tracking_bucket: must differ from nats.state_bucket`},
		{"no_credentials", `videosdk: need api_key and secret, or token (or the environment's VIDEOSDK_API_KEY and VIDEOSDK_SECRET, or VIDEOSDK_TOKEN)`},
		{"videosdk_values", `videosdk.base_url: must be an absolute http or https URL
videosdk.token_ttl: must be at least 1m
videosdk.per_page: must be between 1 and 1000
videosdk.request_timeout: must be at least 100ms
videosdk.max_concurrency: must be between 1 and 1000
videosdk.rate_limit: must be a number >= 0 (0 = unlimited)`},
		{"videosdk_bounds", `videosdk.request_timeout: must be at least 100ms
videosdk.max_concurrency: must be between 1 and 1000
videosdk.rate_limit: must be 0 (unlimited) or at least 0.01 (a request every 1m40s)`},
		{"videosdk_base_url_scheme", `videosdk.base_url: must be an absolute http or https URL`},
		{"rate_limit_nan", `videosdk.rate_limit: must be a number >= 0 (0 = unlimited)`},
		{"schedule_invalid", `poll.schedule: invalid cron spec "every 5s": expected 5 to 6 fields, found 2: [every 5s]`},
		{"reconcile_values", `poll.reconcile_schedule: invalid cron spec "often": expected 5 to 6 fields, found 1: [often]
poll.left_time_wait: must not be negative (0: a left goes out at once, with its end if the list shows it)`},
		{"schedule_parser_panic", `poll.schedule: invalid cron spec "TZ=UTC": parser panicked: runtime error: slice bounds out of range [:-1]`},
		{"schedule_never", `poll.schedule: "0 0 30 2 *" never fires`},
		{"schedule_rare", `poll.schedule: "*/5 * * * 1-5" must fire at least twice within any day: after 2024-01-06T00:00:00Z it fires at 2024-01-08T00:00:00Z, then at 2024-01-08T00:05:00Z
poll.discover_schedule: "0 0 1 1 *" must fire at least twice within any day: after 2024-01-01T00:00:00Z it fires at 2025-01-01T00:00:00Z, then at 2026-01-01T00:00:00Z
poll.reconcile_schedule: "@daily" must fire at least twice within any day: after 2024-01-01T00:00:00Z it fires at 2024-01-02T00:00:00Z, then at 2024-01-03T00:00:00Z`},
		{"schedule_every_over_12h", `poll.reconcile_schedule: "@every 13h" must fire at least twice within any day: after 2024-01-01T00:00:00Z it fires at 2024-01-01T13:00:00Z, then at 2024-01-02T02:00:00Z`},
		{"schedule_subsecond", `poll.schedule: invalid cron spec "@every 500ms": @every takes a whole number of seconds, at least 1s`},
		{"nats_values", `nats.stream: must match [A-Za-z0-9_-]+
nats.subject_prefix: must be dot-separated tokens matching [A-Za-z0-9_-]+
nats.state_bucket: must match [A-Za-z0-9_-]+
nats.replicas: must be between 1 and 5
nats.duplicate_window: must be at least 100ms
nats.max_age: must be positive`},
		{"nats_window_over_max_age", `nats.duplicate_window: must not exceed max_age`},
		{"nats_url_bad", `nats.url: must be a nats://, tls://, ws:// or wss:// URL, or host:port`},
		{"nats_url_list", `nats.url: entry 2: empty
nats.url: entry 3: must be a nats://, tls://, ws:// or wss:// URL, or host:port
nats.url: cannot mix ws:// or wss:// servers with nats:// or tls:// ones`},
		{"nats_auth", `nats: need both user and password, or neither
nats: use one of creds, nkey_seed, user and password, or token`},
		{"nats_auth_both", `nats: use one of creds, nkey_seed, user and password, or token`},
		{"nats_security", `nats: use one of creds, nkey_seed, user and password, or token
nats.creds: stat testdata/nats/missing.creds: no such file or directory
nats.nkey_seed: stat testdata/nats/missing.nk: no such file or directory
nats: need both tls_cert and tls_key, or neither`},
		{"nats_security_embedded", `nats: credentials and TLS are for a server of your own (nats.url); the embedded server needs none`},
		{"nats_embedded", `nats.replicas: must be 1 with the embedded server (url = "")
nats.store_dir: must be set for the embedded server (url = "")`},
		{"http_listen", `http.listen: must be host:port (":9090" for every interface), or "" to serve nothing`},
		{"webhook_types", `webhook.listen: must be a string, got an integer
webhook.follow_rooms: must be a boolean, got a string`},
		{"webhook_values", `webhook.listen: must be host:port (":8080" for every interface), or "" to receive no webhooks
webhook.path: must be a URL path starting with "/", such as "/webhook"
webhook.public_key_file: open testdata/webhook/missing.pem: no such file or directory`},
		{"webhook_key", `webhook.listen: must differ from http.listen: webhooks have a listener of their own, the one to make public
webhook.public_key_file: testdata/webhook/not_a_key.pem: a PEM block of type "CERTIFICATE": want "PUBLIC KEY" or "RSA PUBLIC KEY"`},
		{"webhook_follow_rooms", `webhook.follow_rooms: needs webhook.listen: no webhook comes without it`},
		{"log_values", `log.level: must be one of debug, info, warn, error
log.format: must be one of text, json`},
		{"file_order", `videosdk: need api_key and secret, or token (or the environment's VIDEOSDK_API_KEY and VIDEOSDK_SECRET, or VIDEOSDK_TOKEN)
videosdk.per_page: must be between 1 and 1000
poll.schedule: invalid cron spec "@daily at noon": unrecognized descriptor: @daily at noon
nats.stream: must match [A-Za-z0-9_-]+
log.format: must be one of text, json`},
	}

	files, err := filepath.Glob(filepath.Join("testdata", "bad", "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	untested := make(map[string]bool)
	for _, f := range files {
		untested[strings.TrimSuffix(filepath.Base(f), ".toml")] = true
	}

	for _, tt := range tests {
		delete(untested, tt.name)
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join("testdata", "bad", tt.name+".toml")
			_, err := Load(path, env(nil))
			if err == nil {
				t.Fatal("loadConfig succeeded, want an error")
			}
			if diff := cmp.Diff(path+": "+tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
	for name := range untested {
		t.Errorf("testdata/bad/%s.toml has no test case", name)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	_, err := Load(path, env(nil))
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("Load(missing file) error = %v, want one naming %s", err, path)
	}
}

func TestLoadConfigGood(t *testing.T) {
	got, err := Load(filepath.Join("testdata", "good.toml"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		VideoSDK: VideoSDK{
			BaseURL:        "http://127.0.0.1:8080/api",
			APIKey:         "key-123",
			Secret:         "secret-456",
			Token:          "token-789",
			TokenTTL:       Duration{30 * time.Minute},
			PerPage:        50,
			RequestTimeout: Duration{2500 * time.Millisecond},
			MaxConcurrency: 4,
			RateLimit:      2.5,
		},
		Poll: Poll{
			Schedule: "*/10 * * * * *", DiscoverSchedule: "0 * * * * *",
			ExcludeModes: []string{"VIEWER"}, ExcludeSDKTypes: []string{"recorder", "hls"},
			ReconcileSchedule: "@every 2m", LeftTimeWait: Duration{30 * time.Second},
		},
		Sessions: []Session{
			{ID: "64bb3619669942e088479mm0"},
			{ID: "room/with spaces"},
		},
		Rooms: []Room{{ID: "r10p-2qz8-si67"}, {ID: "room.with.dots"}},
		NATS: NATS{
			URL:             "nats://n1:4222, tls://n2:4443,n3:4222",
			User:            "rollcall",
			Password:        "pw",
			TLSCA:           "testdata/nats/ca.pem",
			TLSCert:         "testdata/nats/client.pem",
			TLSKey:          "testdata/nats/client.key",
			Stream:          "PRESENCE",
			SubjectPrefix:   "acme.videosdk",
			StateBucket:     "PRESENCE_STATE",
			TrackingBucket:  "PRESENCE_TRACKING",
			LeaseBucket:     "PRESENCE_LEASES",
			LeaseTTL:        Duration{30 * time.Second},
			Replicas:        3,
			DuplicateWindow: Duration{5 * time.Minute},
			MaxAge:          Duration{24 * time.Hour},
			StoreDir:        "/var/lib/rollcall",
		},
		HTTP:    HTTP{Listen: ":9191"},
		Webhook: Webhook{Listen: ":8443", Path: "/hooks/videosdk", PublicKeyFile: "testdata/webhook/key.pem", FollowRooms: true},
		Log:     Log{Level: "debug", Format: "json"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

// wantDefaults is the spec's defaults, written out rather than taken from
// Default so that a changed default fails a test.
func wantDefaults() Config {
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
			MaxAge:          Duration{720 * time.Hour},
			StoreDir:        "./data",
		},
		HTTP:    HTTP{Listen: "127.0.0.1:9090"},
		Webhook: Webhook{Path: "/webhook"},
		Log:     Log{Level: "info", Format: "text"},
	}
}

// TestParseConfigTracksNothing: a worker may start with nothing in its config file,
// and take what to track from the tracking bucket at run time.
func TestParseConfigTracksNothing(t *testing.T) {
	got, err := parseConfig([]byte("[videosdk]\ntoken = \"t\"\n"), env(nil), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Sessions)+len(got.Rooms) != 0 {
		t.Errorf("sessions %v, rooms %v; want none", got.Sessions, got.Rooms)
	}
}

// TestParseConfigWithoutAPI: the commands that only talk to NATS need no API
// credentials.
func TestParseConfigWithoutAPI(t *testing.T) {
	if _, err := parseConfig([]byte("[nats]\nstream = \"S\"\n"), env(nil), false); err != nil {
		t.Errorf("without API credentials: %v", err)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	got, err := parseConfig([]byte(`
[videosdk]
token = "t"

[[sessions]]
id = "s1"
`), env(nil), true)
	if err != nil {
		t.Fatal(err)
	}
	want := wantDefaults()
	want.VideoSDK.Token = "t"
	want.Sessions = []Session{{ID: "s1"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestParseConfigEnv(t *testing.T) {
	const file = `
[videosdk]
api_key = "file-key"
secret = "file-secret"
token = "file-token"

[[sessions]]
id = "s1"

[nats]
url = "nats://file:4222"
`
	tests := []struct {
		name string
		env  map[string]string
		want func(*Config)
	}{
		{
			name: "set",
			env: map[string]string{
				"VIDEOSDK_API_KEY": "env-key",
				"VIDEOSDK_SECRET":  "env-secret",
				"VIDEOSDK_TOKEN":   "env-token",
				"NATS_URL":         "nats://env:4222",
			},
			want: func(c *Config) {
				c.VideoSDK.APIKey, c.VideoSDK.Secret, c.VideoSDK.Token = "env-key", "env-secret", "env-token"
				c.NATS.URL = "nats://env:4222"
			},
		},
		{
			name: "empty overrides nothing",
			env:  map[string]string{"VIDEOSDK_API_KEY": "", "VIDEOSDK_SECRET": "", "VIDEOSDK_TOKEN": "", "NATS_URL": ""},
			want: func(c *Config) {
				c.VideoSDK.APIKey, c.VideoSDK.Secret, c.VideoSDK.Token = "file-key", "file-secret", "file-token"
				c.NATS.URL = "nats://file:4222"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig([]byte(file), env(tt.env), true)
			if err != nil {
				t.Fatal(err)
			}
			want := wantDefaults()
			want.Sessions = []Session{{ID: "s1"}}
			tt.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseConfigEnvValidated: the environment applies before validation:
// credentials may come from it alone, and a bad NATS_URL is caught.
func TestParseConfigEnvValidated(t *testing.T) {
	const file = "[[sessions]]\nid = \"s1\"\n"
	if _, err := parseConfig([]byte(file), env(map[string]string{"VIDEOSDK_TOKEN": "t"}), true); err != nil {
		t.Errorf("token from the environment: %v", err)
	}
	_, err := parseConfig([]byte(file), env(map[string]string{"VIDEOSDK_TOKEN": "t", "NATS_URL": "http://x"}), true)
	want := "nats.url: must be a nats://, tls://, ws:// or wss:// URL, or host:port"
	if err == nil || err.Error() != want {
		t.Errorf("bad NATS_URL: error = %v, want %q", err, want)
	}
}

// TestExampleConfig: the example shipped at the repository root is valid once the
// credentials it leaves to the environment are given, and shows the defaults.
func TestExampleConfig(t *testing.T) {
	got, err := Load(filepath.Join("..", "..", "config.toml"), env(map[string]string{
		"VIDEOSDK_API_KEY": "key",
		"VIDEOSDK_SECRET":  "secret",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := wantDefaults()
	want.VideoSDK.APIKey, want.VideoSDK.Secret = "key", "secret"
	want.Rooms = []Room{{ID: "r10p-2qz8-si67"}}
	want.Poll.ExcludeModes, want.Poll.ExcludeSDKTypes = []string{}, []string{} // written out as empty lists
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

// TestExampleConfigShowsEveryKey: the example config.toml shows every key of Config,
// set or commented out, as the README says; and each commented-out one is valid as it
// stands once uncommented.
func TestExampleConfigShowsEveryKey(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	// A commented-out key or table header, "# creds = …" or "# [[sessions]]", as
	// opposed to a comment in words.
	commented := regexp.MustCompile(`^# ?(\[.*\]|[a-z_]+ = .*)$`)
	lines := strings.Split(string(data), "\n")
	for i, line := range lines {
		if m := commented.FindStringSubmatch(line); m != nil {
			lines[i] = m[1]
		}
	}
	doc := strings.Join(lines, "\n")
	if err := decodeStrict(doc, new(Config)); err != nil {
		t.Fatalf("config.toml with its keys uncommented: %v", err)
	}
	var raw map[string]any
	md, err := toml.Decode(doc, &raw)
	if err != nil {
		t.Fatal(err)
	}
	shown := make(map[string]bool)
	for _, k := range md.Keys() {
		shown[k.String()] = true
	}
	for _, key := range tomlKeys("", reflect.TypeFor[Config]()) {
		if !shown[key] {
			t.Errorf("config.toml does not show %s", key)
		}
	}
}

// tomlKeys lists the dotted keys of the TOML tags of struct type t, under prefix; an
// array of tables adds the keys of its element, as [[rooms]] id is "rooms.id".
func tomlKeys(prefix string, t reflect.Type) []string {
	var keys []string
	for f := range t.Fields() {
		key := prefix + f.Tag.Get("toml")
		keys = append(keys, key)
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[Duration]() {
			keys = append(keys, tomlKeys(key+".", ft)...)
		}
	}
	return keys
}

func TestParseSchedule(t *testing.T) {
	from := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		spec string
		next time.Time // the first run after from
	}{
		{"*/5 * * * *", from.Add(5 * time.Minute)},
		{"*/10 * * * * *", from.Add(10 * time.Second)},
		{"@every 5s", from.Add(5 * time.Second)},
		{"@every 1m30s", from.Add(90 * time.Second)},
		{"@hourly", from.Add(time.Hour)},
		{"TZ=Asia/Tokyo 0 9 * * *", from.Add(24 * time.Hour)}, // 09:00 in Tokyo is 00:00 UTC
	} {
		sched, err := ParseSchedule(tt.spec)
		if err != nil {
			t.Errorf("ParseSchedule(%q): %v", tt.spec, err)
			continue
		}
		if got := sched.Next(from); !got.Equal(tt.next) {
			t.Errorf("ParseSchedule(%q).Next = %v, want %v", tt.spec, got, tt.next)
		}
	}

	for _, spec := range []string{"", "TZ=UTC", "CRON_TZ=UTC", "every 5s", "* * * *", "* * * * * * *", "@every 0s", "@every 1500ms", "@fortnightly"} {
		if _, err := ParseSchedule(spec); err == nil {
			t.Errorf("ParseSchedule(%q) succeeded, want an error", spec)
		}
	}
}

// TestCheckFires: a schedule must fire twice within any day; the year of days it is
// checked from makes that independent of the day of the check, and now catches what
// that year cannot show.
func TestCheckFires(t *testing.T) {
	now := time.Date(2030, 6, 15, 12, 0, 0, 0, time.UTC)
	for _, spec := range []string{"@every 1s", "@every 5s", "@every 12h", "*/10 * * * * *", "0 */12 * * *", "@hourly", "TZ=Asia/Tokyo 0 9,21 * * *"} {
		sched, err := ParseSchedule(spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkFires(spec, sched, now); err != nil {
			t.Errorf("checkFires(%q): %v", spec, err)
		}
	}
	// Fires every minute until 2026, never after: fine in the year checked, not now.
	until := untilSchedule{cron.Every(time.Minute), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := checkFires("until 2026", until, now); err == nil || err.Error() != `"until 2026" never fires` {
		t.Errorf("a schedule that stopped firing before now: %v", err)
	}
	if err := checkFires("until 2026", until, time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Errorf("a schedule that fires until after now: %v", err)
	}
}

// untilSchedule is a schedule that fires as Schedule does until end, and never after.
type untilSchedule struct {
	cron.Schedule
	end time.Time
}

func (u untilSchedule) Next(t time.Time) time.Time {
	if next := u.Schedule.Next(t); next.Before(u.end) {
		return next
	}
	return time.Time{}
}

func TestRedacted(t *testing.T) {
	c := wantDefaults()
	c.VideoSDK.APIKey, c.VideoSDK.Secret, c.VideoSDK.Token = "key", "secret", "vtoken"
	c.NATS.User, c.NATS.Password, c.NATS.Token = "user", "password", "ntoken"
	c.NATS.URL = "nats://u:p@a:4222, tok@b:4222,tls://c:4443"

	want := c
	want.VideoSDK.Secret, want.VideoSDK.Token = "REDACTED", "REDACTED"
	want.NATS.Password, want.NATS.Token = "REDACTED", "REDACTED"
	want.NATS.URL = "nats://u:REDACTED@a:4222,REDACTED@b:4222,tls://c:4443"
	if diff := cmp.Diff(want, c.Redacted()); diff != "" {
		t.Errorf("Redacted (-want +got):\n%s", diff)
	}
	if c.VideoSDK.Secret != "secret" || c.NATS.URL != "nats://u:p@a:4222, tok@b:4222,tls://c:4443" {
		t.Error("Redacted changed its receiver")
	}

	// Unset secrets stay empty: "REDACTED" would claim one was configured.
	if diff := cmp.Diff(wantDefaults(), wantDefaults().Redacted()); diff != "" {
		t.Errorf("Redacted with no secrets (-want +got):\n%s", diff)
	}
}

func TestDurationJSON(t *testing.T) {
	got, err := json.Marshal(Duration{90 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `"1m30s"` {
		t.Errorf("json.Marshal(Duration{90s}) = %s, want \"1m30s\"", got)
	}
}
