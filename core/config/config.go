// Package config holds Tributary's configuration: the structs, their
// defaults, loading from YAML and TRIBUTARY_* environment variables, and
// Validate. Command-line flags are applied by cmd/tributary on top.
// It imports nothing of this module.
package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultMemoryLimitMiB is memory_limit_mib's default: none. Issue 12's
// crowd (4,000 parked long-polls) stays under 300 MiB with 240, but its
// collector then cost about twice the CPU per message delivered and
// slowed deliveries; an operator who would rather pay that for memory
// sets it.
const DefaultMemoryLimitMiB = 0

// DefaultGCPercent is gc_percent's default: the Go runtime's GOGC. At Go's
// 100 the heap grows to twice what is live (plus the goroutine stacks)
// before a collection; issue 12's crowd (4,000 parked long-polls) held
// 310-316 MiB. At 75 it held 286 MiB for 4-6% more CPU per message
// delivered, a cost proportional to the heap, unlike a fixed limit.
const DefaultGCPercent = 75

// Config is the whole configuration file.
type Config struct {
	// ServerName is the domain in user IDs (@alice:ServerName). Fixed for the
	// life of a database.
	ServerName string `yaml:"server_name"`
	// Listen is the host:port of the client (and later federation) listener.
	Listen string `yaml:"listen"`
	// PublicBaseURL is how clients reach this server; default http://<listen>/.
	PublicBaseURL string `yaml:"public_baseurl"`
	// DataDir holds the SQLite database, signing keys and media.
	DataDir  string   `yaml:"data_dir"`
	Database Database `yaml:"database"`
	// MemoryLimitMiB is the Go runtime's soft memory limit: near it the
	// garbage collector runs more often rather than let the heap grow to
	// twice its live size (debug.SetMemoryLimit). 0: no limit. The
	// GOMEMLIMIT environment variable, when set, wins.
	MemoryLimitMiB int `yaml:"memory_limit_mib"`
	// GCPercent is the Go runtime's GOGC: how far, in percent of the live
	// heap, the heap grows before the next collection (debug.SetGCPercent).
	// The GOGC environment variable, when set, wins.
	GCPercent int `yaml:"gc_percent"`

	Registration Registration `yaml:"registration"`
	Auth         Auth         `yaml:"auth"`
	RateLimits   RateLimits   `yaml:"rate_limits"`
	HTTP         HTTP         `yaml:"http"`
	WellKnown    WellKnown    `yaml:"well_known"`
	Log          Log          `yaml:"log"`
	Metrics      Metrics      `yaml:"metrics"`
	// ServerNotices configures server notices.
	ServerNotices ServerNotices `yaml:"server_notices"`
	Presence      Presence      `yaml:"presence"`
	Rooms         Rooms         `yaml:"rooms"`
	Media         Media         `yaml:"media"`
	VoIP          VoIP          `yaml:"voip"`
	Push          Push          `yaml:"push"`
	// AppServiceConfigFiles are appservice registration files (YAML).
	AppServiceConfigFiles []string    `yaml:"app_service_config_files"`
	AppServices           AppServices `yaml:"app_services"`
	Federation            Federation  `yaml:"federation"`
	// Plugins are the bridge plugins the server runs (bridges/manager).
	Plugins []Plugin `yaml:"plugins"`
	// Imports configures `tributary import` of other networks' exports.
	Imports Imports `yaml:"imports"`
}

// Imports configures the importers of other networks' history.
type Imports struct {
	Slack   ImportNetwork `yaml:"slack"`
	Discord ImportNetwork `yaml:"discord"`
}

// ImportNetwork is the identity an import of one network acts as: an
// internal appservice with an exclusive namespace of ghosts
// (@<ghost_prefix>…:server) and a bot that creates the rooms. A bridge
// plugin with the same ghost_prefix is the same identity: the import then
// acts as that plugin, so that the bridge and the import share ghosts.
type ImportNetwork struct {
	GhostPrefix  string `yaml:"ghost_prefix"`
	BotLocalpart string `yaml:"bot_localpart"`
}

func (n *ImportNetwork) validate(key string, plugins []Plugin) error {
	switch {
	case n.GhostPrefix == "" || !localpartRE.MatchString(n.GhostPrefix):
		return fmt.Errorf("imports.%s.ghost_prefix: %q must be a non-empty start of a user ID localpart", key, n.GhostPrefix)
	case n.BotLocalpart == "" || !localpartRE.MatchString(n.BotLocalpart):
		return fmt.Errorf("imports.%s.bot_localpart: %q must be a user ID localpart", key, n.BotLocalpart)
	case strings.HasPrefix(n.BotLocalpart, n.GhostPrefix):
		return fmt.Errorf("imports.%s.bot_localpart: %q must not start with the ghost prefix", key, n.BotLocalpart)
	}
	for _, p := range plugins {
		if p.GhostPrefix != n.GhostPrefix && (strings.HasPrefix(p.GhostPrefix, n.GhostPrefix) ||
			strings.HasPrefix(n.GhostPrefix, p.GhostPrefix)) {
			return fmt.Errorf("imports.%s.ghost_prefix: %q overlaps the ghost_prefix %q of plugin %s (use the same prefix to share its ghosts)",
				key, n.GhostPrefix, p.GhostPrefix, p.Name)
		}
	}
	return nil
}

// Plugin is one bridge plugin: a binary the server launches and supervises,
// registered as an internal appservice.
type Plugin struct {
	// Name identifies the plugin (its appservice ID is "plugin:" + Name).
	Name string `yaml:"name"`
	// Binary is the plugin's executable.
	Binary string `yaml:"binary"`
	// SHA256, when set, is the hex checksum the binary must have.
	SHA256 string `yaml:"sha256"`
	// GhostPrefix starts the localpart of every ghost user of the plugin
	// (its exclusive namespace); BotLocalpart is its bot's.
	GhostPrefix  string `yaml:"ghost_prefix"`
	BotLocalpart string `yaml:"bot_localpart"`
	// Config is handed to the plugin as JSON.
	Config map[string]any `yaml:"config"`
}

var pluginNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

func (p *Plugin) validate(i int, seen map[string]bool) error {
	switch {
	case !pluginNameRE.MatchString(p.Name):
		return fmt.Errorf("plugins[%d].name: %q must be 1-64 of a-z, 0-9, _ and -", i, p.Name)
	case seen[p.Name]:
		return fmt.Errorf("plugins[%d].name: %q is used twice", i, p.Name)
	case p.Binary == "":
		return fmt.Errorf("plugins[%d].binary: must be set", i)
	case p.SHA256 != "" && !sha256RE.MatchString(p.SHA256):
		return fmt.Errorf("plugins[%d].sha256: must be 64 hex digits", i)
	case p.GhostPrefix == "" || !localpartRE.MatchString(p.GhostPrefix):
		return fmt.Errorf("plugins[%d].ghost_prefix: %q must be a non-empty start of a user ID localpart", i, p.GhostPrefix)
	case p.BotLocalpart == "" || !localpartRE.MatchString(p.BotLocalpart):
		return fmt.Errorf("plugins[%d].bot_localpart: %q must be a user ID localpart", i, p.BotLocalpart)
	case strings.HasPrefix(p.BotLocalpart, p.GhostPrefix):
		return fmt.Errorf("plugins[%d].bot_localpart: %q must not start with the ghost prefix", i, p.BotLocalpart)
	}
	seen[p.Name] = true
	return nil
}

var (
	sha256RE    = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	localpartRE = regexp.MustCompile(`^[a-z0-9._=/+-]+$`)
)

// Federation is the Server-Server API: talking to other homeservers.
type Federation struct {
	// Enabled serves the federation and key APIs and lets this server reach
	// others. Off: neither (the OpenID userinfo endpoint stays).
	Enabled bool `yaml:"enabled"`
	// Listen is a listener for other servers with TLS (usually :8448). Empty:
	// the federation API is served on the main listener only, for a
	// TLS-terminating reverse proxy in front (the usual production set-up).
	Listen string `yaml:"listen"`
	// TLSCert and TLSKey are the PEM files of the federation listener.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// TLSSelfSigned makes the federation listener use a certificate
	// generated at start for the server name (tests, trying out).
	TLSSelfSigned bool `yaml:"tls_self_signed"`
	// InsecureSkipVerify skips verifying other servers' certificates. For
	// tests on loopback only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// TrustedKeyServers are notaries asked for a server's keys when the
	// server cannot be asked itself (e.g. "matrix.org"); none by default.
	TrustedKeyServers []string `yaml:"trusted_key_servers"`
	// AllowedServers, when not empty, are the only servers federated with;
	// DeniedServers are never federated with.
	AllowedServers []string `yaml:"allowed_servers"`
	DeniedServers  []string `yaml:"denied_servers"`
	// AllowedRanges are IP ranges (CIDR) of other servers reached although
	// they are private, loopback or link-local, which are refused by default.
	AllowedRanges []string `yaml:"allowed_ranges"`
	// RetryBackoff is the wait after a failed transaction to a server,
	// doubled after each further failure up to MaxRetryBackoff. A request
	// from that server, or an admin's reset_connection, retries at once.
	RetryBackoff    Duration `yaml:"retry_backoff"`
	MaxRetryBackoff Duration `yaml:"max_retry_backoff"`
	// CatchUpAfter: once a server has been unreachable this long, its
	// queue keeps only the latest event of each room (and the membership
	// events of its users); when it is back it fetches what lies between
	// (get_missing_events, state), as with Synapse. 0 keeps everything.
	CatchUpAfter Duration `yaml:"catch_up_after"`
}

// FederatesWith reports whether the allow and deny lists let this server
// talk to serverName.
func (f Federation) FederatesWith(serverName string) bool {
	if !f.Enabled || slices.Contains(f.DeniedServers, serverName) {
		return false
	}
	return len(f.AllowedServers) == 0 || slices.Contains(f.AllowedServers, serverName)
}

// AppServices tunes the delivery of transactions to appservices.
type AppServices struct {
	// RetryBackoff is the wait after a failed delivery, doubled after each
	// further failure up to MaxRetryBackoff. A successful ping from the
	// appservice, or a request it makes, retries at once.
	RetryBackoff    Duration `yaml:"retry_backoff"`
	MaxRetryBackoff Duration `yaml:"max_retry_backoff"`
}

type Media struct {
	// MaxUploadBytes is the largest upload accepted.
	MaxUploadBytes int64 `yaml:"max_upload_bytes"`
	// UserQuotaBytes caps what one user may upload in all; 0: no cap.
	UserQuotaBytes int64 `yaml:"user_quota_bytes"`
	// MaxImagePixels: larger images are not decoded (decompression bombs).
	MaxImagePixels int64 `yaml:"max_image_pixels"`
	// LegacyUnauthenticated lets the unauthenticated /_matrix/media/v3
	// downloads serve new media too. Off (frozen), as the spec recommends.
	LegacyUnauthenticated bool `yaml:"legacy_unauthenticated"`
	// Uploads limits uploads per user.
	Uploads     Rate        `yaml:"uploads"`
	URLPreviews URLPreviews `yaml:"url_previews"`
	// Previews limits URL preview requests per user (each may fetch a page).
	Previews Rate `yaml:"previews"`
}

type URLPreviews struct {
	Enabled bool `yaml:"enabled"`
	// AllowedRanges are IP ranges (CIDR) fetched although they are private,
	// loopback or link-local, which are refused by default.
	AllowedRanges []string `yaml:"allowed_ranges"`
}

// Push is the delivery of notifications to push gateways (HTTP pushers).
type Push struct {
	// AllowedRanges are IP ranges (CIDR) of push gateways reached although
	// they are private, loopback or link-local, which are refused by default.
	AllowedRanges []string `yaml:"allowed_ranges"`
	// ThreadSubscriptions turns on thread subscriptions (MSC4306): the
	// endpoints and the default push rules that notify only for threads
	// the user subscribed to — which silences the other threads for
	// clients that never subscribe (Synapse's msc4306_enabled, off too).
	ThreadSubscriptions bool `yaml:"thread_subscriptions"`
}

// VoIP is the TURN server clients are told to use for calls
// (/voip/turnServer), with credentials in the shared-secret scheme coturn's
// use-auth-secret understands.
type VoIP struct {
	// TurnURIs are the TURN/STUN URIs (turn:host:3478?transport=udp, …);
	// none: no TURN server is offered.
	TurnURIs []string `yaml:"turn_uris"`
	// TurnSharedSecret is coturn's static-auth-secret.
	TurnSharedSecret string `yaml:"turn_shared_secret"`
	// TurnUserLifetime is how long the credentials handed out hold.
	TurnUserLifetime Duration `yaml:"turn_user_lifetime"`
}

type Presence struct {
	// Enabled tracks and shares presence (online/offline) with room members.
	Enabled bool `yaml:"enabled"`
	// OfflineAfter is how long after their last /sync a user who is online
	// or unavailable is marked offline.
	OfflineAfter Duration `yaml:"offline_after"`
	// RemoteOfflineAfter is how long another server's user shown online or
	// unavailable stays so without news from their server before they are
	// shown offline (Synapse's FEDERATION_TIMEOUT, 30 minutes): a server
	// gone quiet leaves nobody online forever.
	RemoteOfflineAfter Duration `yaml:"remote_offline_after"`
	// FederationPingInterval is how often the presence of local users who
	// are online or unavailable is sent again to the servers sharing a room
	// with them, though it did not change, so that they do not time out
	// there (Synapse's FEDERATION_PING_INTERVAL, 25 minutes).
	FederationPingInterval Duration `yaml:"federation_ping_interval"`
}

type Rooms struct {
	// WriterIdle is how long a room's writer stays without writes before it
	// is released with the room state it caches.
	WriterIdle Duration `yaml:"writer_idle"`
	// DefaultVersion is the room version of rooms created without one
	// (Synapse's default_room_version); 12, as the spec recommends.
	DefaultVersion string `yaml:"default_version"`
	// MaxEventDelay is the longest delay of a delayed event (MSC4140,
	// Synapse's max_event_delay_duration); 0 turns delayed events off.
	MaxEventDelay Duration `yaml:"max_event_delay"`
	// MaxDelayedEventsPerUser caps each user's pending delayed events.
	MaxDelayedEventsPerUser int `yaml:"max_delayed_events_per_user"`
}

type Database struct {
	// URL: empty for SQLite at <data_dir>/tributary.db, or postgres://user:pass@host/db.
	URL string `yaml:"url"`
	// SQLiteCacheMiB bounds the memory of the page cache of SQLite's one
	// writer connection (each 4 KiB page takes 8 KiB; SQLite's default is
	// 2 MiB of pages). A bigger cache spares re-reading index pages on
	// inserts into a big database, but a commit may walk all of it (see
	// storage/sqlite's dsn), which costs a running server's many small
	// commits more than the reads: 32 sent 12% fewer events a second than
	// 8 (BenchmarkSendEvents/sqlite/senders=16). `tributary import` on a
	// stopped server's data, whose commits are few and big, uses at least
	// 256.
	SQLiteCacheMiB int `yaml:"sqlite_cache_mib"`
	// SQLiteBulk is set by `tributary import` on a stopped server's data,
	// never by configuration: the writer then lets its write-ahead log
	// grow to 256 MiB between checkpoints (storage/sqlite.WithBulk).
	SQLiteBulk bool `yaml:"-"`
}

type Registration struct {
	// Enabled opens registration to anyone (m.login.dummy), or to holders of a
	// registration token when RequiresToken is set.
	Enabled       bool `yaml:"enabled"`
	RequiresToken bool `yaml:"requires_token"`
	// SharedSecret enables Synapse-compatible shared-secret registration
	// (/_synapse/admin/v1/register) when not empty.
	SharedSecret      string `yaml:"shared_secret"`
	PasswordMinLength int    `yaml:"password_min_length"`
}

type Auth struct {
	// AccessTokenLifetime applies to clients that ask for refresh tokens;
	// others get tokens that do not expire.
	AccessTokenLifetime Duration `yaml:"access_token_lifetime"`
	LoginTokenLifetime  Duration `yaml:"login_token_lifetime"`
	UIASessionLifetime  Duration `yaml:"uia_session_lifetime"`
}

// Rate is a token bucket: PerSecond refills, Burst is the bucket size.
type Rate struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

type RateLimits struct {
	Enabled bool `yaml:"enabled"`
	// LoginAddress limits login attempts per client IP.
	LoginAddress Rate `yaml:"login_address"`
	// LoginFailedAccount limits failed logins per account.
	LoginFailedAccount Rate `yaml:"login_failed_account"`
	// Register limits registration requests per client IP.
	Register Rate `yaml:"register"`
	// Messages limits the events (messages, state, redactions) each user
	// sends; appservices are exempt, as in Synapse (rc_message).
	Messages Rate `yaml:"messages"`
	// DelayedEventManagement limits restarting, cancelling and sending
	// delayed events, per user (per IP address without a login), as
	// Synapse's rc_delayed_event_mgmt.
	DelayedEventManagement Rate `yaml:"delayed_event_management"`
}

type HTTP struct {
	// MaxBodyBytes caps JSON request bodies.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// ReadHeaderTimeout is how long a client may take to send a request's
	// line and headers.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	// ReadBodyTimeout is how long a client may take to send a request body,
	// counted from its headers, plus one second for every
	// ReadBodyMinRate bytes it sends: a large upload on a slow link that
	// keeps arriving gets the time it needs, a body trickled byte by byte
	// does not.
	ReadBodyTimeout Duration `yaml:"read_body_timeout"`
	ReadBodyMinRate int64    `yaml:"read_body_min_rate"`
	// IdleTimeout is how long a kept-alive connection may wait for its next request.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// TrustedProxies may set X-Forwarded-For; empty trusts none.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// ServerNotices are messages from the server to a user (the admin API's
// send_server_notice), sent by a system user in a notices room per user.
type ServerNotices struct {
	Enabled bool `yaml:"enabled"`
	// Localpart of the system user that sends them (made on first use).
	Localpart string `yaml:"system_mxid_localpart"`
	// RoomName is the name of each user's notices room.
	RoomName string `yaml:"room_name"`
}

type WellKnown struct {
	// Server is the delegated "m.server" (host:port) for /.well-known/matrix/server;
	// empty serves <server_name>:443.
	Server string `yaml:"server"`
}

type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Metrics is the Prometheus listener: /metrics is served there only, off
// the client port (as Synapse does), so that request counts and process
// details are not public.
type Metrics struct {
	Enabled bool `yaml:"enabled"`
	// Listen is the metrics listener's host:port.
	Listen string `yaml:"listen"`
}

// Duration reads "5m", "90s" or a number of seconds from YAML.
type Duration struct{ time.Duration }

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if secs, err := strconv.ParseFloat(n.Value, 64); err == nil {
		d.Duration = time.Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: invalid duration %q", n.Line, n.Value)
	}
	d.Duration = v
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Default is the configuration with every default filled in.
func Default() *Config {
	return &Config{
		ServerName: "localhost",
		Listen:     "127.0.0.1:8008",
		DataDir:    "./data",
		Registration: Registration{
			PasswordMinLength: 8,
		},
		Auth: Auth{
			AccessTokenLifetime: Duration{5 * time.Minute},
			LoginTokenLifetime:  Duration{2 * time.Minute},
			UIASessionLifetime:  Duration{15 * time.Minute},
		},
		RateLimits: RateLimits{
			Enabled:            true,
			LoginAddress:       Rate{PerSecond: 0.17, Burst: 3},
			LoginFailedAccount: Rate{PerSecond: 0.17, Burst: 3},
			Register:           Rate{PerSecond: 0.17, Burst: 3},
			Messages:           Rate{PerSecond: 0.2, Burst: 10},
			// Element Call restarts its delayed leave event every few seconds.
			DelayedEventManagement: Rate{PerSecond: 1, Burst: 5},
		},
		HTTP: HTTP{MaxBodyBytes: 1 << 20, ReadHeaderTimeout: Duration{10 * time.Second},
			ReadBodyTimeout: Duration{30 * time.Second}, ReadBodyMinRate: 4096, IdleTimeout: Duration{2 * time.Minute}},
		Log:     Log{Level: "info", Format: "text"},
		Metrics: Metrics{Listen: "127.0.0.1:9009"},
		Presence: Presence{Enabled: true, OfflineAfter: Duration{time.Minute}, RemoteOfflineAfter: Duration{30 * time.Minute},
			FederationPingInterval: Duration{25 * time.Minute}},
		Database:       Database{SQLiteCacheMiB: 8},
		MemoryLimitMiB: DefaultMemoryLimitMiB,
		GCPercent:      DefaultGCPercent,
		ServerNotices:  ServerNotices{Enabled: true, Localpart: "notices", RoomName: "Server Notices"},
		Rooms: Rooms{WriterIdle: Duration{2 * time.Minute}, DefaultVersion: "12", MaxEventDelay: Duration{24 * time.Hour},
			MaxDelayedEventsPerUser: 100},
		AppServices: AppServices{RetryBackoff: Duration{time.Second}, MaxRetryBackoff: Duration{5 * time.Minute}},
		Imports: Imports{Slack: ImportNetwork{GhostPrefix: "slack_", BotLocalpart: "slackbot"},
			Discord: ImportNetwork{GhostPrefix: "discord_", BotLocalpart: "discordbot"}},
		VoIP: VoIP{TurnUserLifetime: Duration{24 * time.Hour}},
		Federation: Federation{Enabled: true, RetryBackoff: Duration{time.Second}, MaxRetryBackoff: Duration{time.Hour},
			CatchUpAfter: Duration{10 * time.Minute}},
		Media: Media{MaxUploadBytes: 50 << 20, MaxImagePixels: 32_000_000,
			Uploads: Rate{PerSecond: 1, Burst: 20}, Previews: Rate{PerSecond: 1, Burst: 10}},
	}
}

// LoadFile reads a YAML file over the defaults. Unknown keys are errors.
func LoadFile(cfg *Config, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) { // an empty file is all defaults
		msg := err.Error()
		var te *yaml.TypeError
		if errors.As(err, &te) {
			msg = strings.Join(te.Errors, "; ")
		}
		return fmt.Errorf("%s: %s", path, strings.TrimPrefix(msg, "yaml: "))
	}
	return nil
}

// EnvVars lists the TRIBUTARY_* variables ApplyEnv reads, for documentation.
var EnvVars = []string{
	"TRIBUTARY_SERVER_NAME", "TRIBUTARY_LISTEN", "TRIBUTARY_PUBLIC_BASEURL", "TRIBUTARY_DATA_DIR",
	"TRIBUTARY_DATABASE_URL", "TRIBUTARY_ENABLE_REGISTRATION", "TRIBUTARY_REGISTRATION_REQUIRES_TOKEN",
	"TRIBUTARY_REGISTRATION_SHARED_SECRET", "TRIBUTARY_DISABLE_RATE_LIMITS", "TRIBUTARY_LOG_LEVEL",
	"TRIBUTARY_LOG_FORMAT",
}

// ApplyEnv applies TRIBUTARY_* environment variables over cfg.
func ApplyEnv(cfg *Config, getenv func(string) string) error {
	str := map[string]*string{
		"TRIBUTARY_SERVER_NAME":                &cfg.ServerName,
		"TRIBUTARY_LISTEN":                     &cfg.Listen,
		"TRIBUTARY_PUBLIC_BASEURL":             &cfg.PublicBaseURL,
		"TRIBUTARY_DATA_DIR":                   &cfg.DataDir,
		"TRIBUTARY_DATABASE_URL":               &cfg.Database.URL,
		"TRIBUTARY_REGISTRATION_SHARED_SECRET": &cfg.Registration.SharedSecret,
		"TRIBUTARY_LOG_LEVEL":                  &cfg.Log.Level,
		"TRIBUTARY_LOG_FORMAT":                 &cfg.Log.Format,
	}
	for k, p := range str {
		if v := getenv(k); v != "" {
			*p = v
		}
	}
	boolean := map[string]func(bool){
		"TRIBUTARY_ENABLE_REGISTRATION":         func(b bool) { cfg.Registration.Enabled = b },
		"TRIBUTARY_REGISTRATION_REQUIRES_TOKEN": func(b bool) { cfg.Registration.RequiresToken = b },
		"TRIBUTARY_DISABLE_RATE_LIMITS":         func(b bool) { cfg.RateLimits.Enabled = !b },
	}
	for k, set := range boolean {
		if v := getenv(k); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not true or false", k, v)
			}
			set(b)
		}
	}
	return nil
}

var serverNameRE = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$`)

// Validate checks the configuration and fills in derived defaults. Its errors
// are one line each, naming the key.
func (c *Config) Validate() error {
	seenPlugins := map[string]bool{}
	for i := range c.Plugins {
		if err := c.Plugins[i].validate(i, seenPlugins); err != nil {
			return err
		}
	}
	if err := c.Imports.Slack.validate("slack", c.Plugins); err != nil {
		return err
	}
	if err := c.Imports.Discord.validate("discord", c.Plugins); err != nil {
		return err
	}
	if c.ServerName == "" {
		return errors.New("server_name: must be set")
	}
	if !serverNameRE.MatchString(c.ServerName) || len(c.ServerName) > 230 {
		return fmt.Errorf("server_name: %q is not a valid Matrix server name", c.ServerName)
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return fmt.Errorf("listen: %q is not host:port", c.Listen)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("listen: %q has an invalid port", c.Listen)
	}
	if c.PublicBaseURL == "" {
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		c.PublicBaseURL = "http://" + net.JoinHostPort(host, port) + "/"
	}
	if !strings.HasPrefix(c.PublicBaseURL, "http://") && !strings.HasPrefix(c.PublicBaseURL, "https://") {
		return fmt.Errorf("public_baseurl: %q must start with http:// or https://", c.PublicBaseURL)
	}
	if !strings.HasSuffix(c.PublicBaseURL, "/") {
		c.PublicBaseURL += "/"
	}
	if c.DataDir == "" {
		return errors.New("data_dir: must be set")
	}
	if n := c.GCPercent; n < 10 || n > 10000 {
		return fmt.Errorf("gc_percent: %d is not between 10 and 10000", n)
	}
	if n := c.MemoryLimitMiB; n < 0 || n > 1<<30 {
		return fmt.Errorf("memory_limit_mib: %d is not between 0 and %d", n, 1<<30)
	}
	if n := c.Database.SQLiteCacheMiB; n < 0 || n > 64*1024 {
		return fmt.Errorf("database.sqlite_cache_mib: %d is not between 0 and 65536", n)
	}
	if u := c.Database.URL; u != "" && !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") {
		return errors.New("database.url: must be empty (SQLite in data_dir) or a postgres:// URL")
	}
	if c.Registration.PasswordMinLength < 0 {
		return errors.New("registration.password_min_length: must not be negative")
	}
	if c.Auth.AccessTokenLifetime.Duration < time.Minute {
		return errors.New("auth.access_token_lifetime: must be at least 1m")
	}
	if c.Auth.LoginTokenLifetime.Duration <= 0 || c.Auth.UIASessionLifetime.Duration <= 0 {
		return errors.New("auth: login_token_lifetime and uia_session_lifetime must be positive")
	}
	for name, r := range map[string]Rate{
		"login_address": c.RateLimits.LoginAddress, "login_failed_account": c.RateLimits.LoginFailedAccount,
		"register": c.RateLimits.Register, "delayed_event_management": c.RateLimits.DelayedEventManagement,
	} {
		if r.PerSecond <= 0 || r.Burst < 1 {
			return fmt.Errorf("rate_limits.%s: per_second must be > 0 and burst >= 1", name)
		}
	}
	if c.Media.MaxUploadBytes < 1024 || c.Media.UserQuotaBytes < 0 || c.Media.MaxImagePixels < 1 {
		return errors.New("media: max_upload_bytes must be at least 1024, user_quota_bytes >= 0, max_image_pixels >= 1")
	}
	if c.Media.Uploads.PerSecond <= 0 || c.Media.Uploads.Burst < 1 {
		return errors.New("media.uploads: per_second must be > 0 and burst >= 1")
	}
	for _, r := range c.Media.URLPreviews.AllowedRanges {
		if _, err := netip.ParsePrefix(r); err != nil {
			return fmt.Errorf("media.url_previews.allowed_ranges: %q is not a CIDR range", r)
		}
	}
	for _, r := range c.Push.AllowedRanges {
		if _, err := netip.ParsePrefix(r); err != nil {
			return fmt.Errorf("push.allowed_ranges: %q is not a CIDR range", r)
		}
	}
	if err := c.Federation.validate(); err != nil {
		return err
	}
	if len(c.VoIP.TurnURIs) > 0 && c.VoIP.TurnSharedSecret == "" {
		return errors.New("voip.turn_shared_secret: must be set with voip.turn_uris")
	}
	if c.Rooms.MaxEventDelay.Duration < 0 || c.Rooms.MaxDelayedEventsPerUser < 0 {
		return errors.New("rooms: max_event_delay and max_delayed_events_per_user must not be negative")
	}
	if c.Rooms.WriterIdle.Duration < 10*time.Millisecond {
		return errors.New("rooms.writer_idle: must be at least 10ms")
	}
	if r := c.AppServices; r.RetryBackoff.Duration < 10*time.Millisecond || r.MaxRetryBackoff.Duration < r.RetryBackoff.Duration {
		return errors.New("app_services: retry_backoff must be at least 10ms and max_retry_backoff at least retry_backoff")
	}
	if c.VoIP.TurnUserLifetime.Duration < time.Minute {
		return errors.New("voip.turn_user_lifetime: must be at least 1m")
	}
	if c.HTTP.MaxBodyBytes < 1024 {
		return errors.New("http.max_body_bytes: must be at least 1024")
	}
	for _, d := range []struct {
		name string
		d    Duration
	}{{"http.read_header_timeout", c.HTTP.ReadHeaderTimeout}, {"http.read_body_timeout", c.HTTP.ReadBodyTimeout},
		{"http.idle_timeout", c.HTTP.IdleTimeout}, {"presence.offline_after", c.Presence.OfflineAfter},
		{"presence.remote_offline_after", c.Presence.RemoteOfflineAfter},
		{"presence.federation_ping_interval", c.Presence.FederationPingInterval}} {
		if d.d.Duration < 10*time.Millisecond {
			return fmt.Errorf("%s: must be at least 10ms", d.name)
		}
	}
	if c.HTTP.ReadBodyMinRate < 1 {
		return errors.New("http.read_body_min_rate: must be at least 1 byte per second")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: %q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log.format: %q is not text or json", c.Log.Format)
	}
	return nil
}

// DatabaseDSN is what storage/open.Open takes.
func (c *Config) DatabaseDSN() string {
	if c.Database.URL != "" {
		return c.Database.URL
	}
	return filepath.Join(c.DataDir, "tributary.db")
}

func (f Federation) validate() error {
	for _, r := range f.AllowedRanges {
		if _, err := netip.ParsePrefix(r); err != nil {
			return fmt.Errorf("federation.allowed_ranges: %q is not a CIDR range", r)
		}
	}
	for key, list := range map[string][]string{"trusted_key_servers": f.TrustedKeyServers,
		"allowed_servers": f.AllowedServers, "denied_servers": f.DeniedServers} {
		for _, name := range list {
			if !serverNameRE.MatchString(name) {
				return fmt.Errorf("federation.%s: %q is not a valid Matrix server name", key, name)
			}
		}
	}
	if f.Listen != "" {
		if _, _, err := net.SplitHostPort(f.Listen); err != nil {
			return fmt.Errorf("federation.listen: %q is not host:port", f.Listen)
		}
		if !f.TLSSelfSigned && (f.TLSCert == "" || f.TLSKey == "") {
			return errors.New("federation.listen: needs tls_cert and tls_key, or tls_self_signed")
		}
	}
	if (f.TLSCert == "") != (f.TLSKey == "") {
		return errors.New("federation: tls_cert and tls_key go together")
	}
	if f.RetryBackoff.Duration < 10*time.Millisecond || f.MaxRetryBackoff.Duration < f.RetryBackoff.Duration {
		return errors.New("federation: retry_backoff must be at least 10ms and max_retry_backoff at least retry_backoff")
	}
	if f.CatchUpAfter.Duration < 0 {
		return errors.New("federation: catch_up_after must not be negative")
	}
	return nil
}
