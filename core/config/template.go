package config

import (
	"bytes"
	"text/template"
)

// configTemplate is the commented file generate-config and first start write.
// Every key of Config appears here with its default.
var configTemplate = template.Must(template.New("config").Parse(`# Tributary configuration.
# Every key is optional; the value shown is the default unless noted.
# Precedence: defaults < this file < TRIBUTARY_* environment < command-line flags.

# The domain in user IDs (@alice:{{.ServerName}}). It cannot change once users exist.
server_name: {{printf "%q" .ServerName}}

# Address of the HTTP listener (client API, /health).
listen: {{printf "%q" .Listen}}

# How clients reach this server, used in /.well-known/matrix/client.
# Empty: http://<listen>/.
public_baseurl: {{printf "%q" .PublicBaseURL}}

# Holds the SQLite database (tributary.db) and, later, keys and media.
data_dir: {{printf "%q" .DataDir}}

database:
  # Empty: SQLite in data_dir. For PostgreSQL: postgres://user:password@host:5432/dbname
  url: {{printf "%q" .Database.URL}}
  # SQLite only: MiB of memory for the pages the writer keeps cached
  # (each 4 KiB page takes 8 KiB). More spares reads when inserting into
  # a big database, but SQLite may walk the whole cache at a commit:
  # raise it only for a database far bigger than memory's page cache.
  sqlite_cache_mib: {{.Database.SQLiteCacheMiB}}

# Soft limit of the process's memory, in MiB (0: none). Without one the
# garbage collector lets the heap grow to about twice what is live; near
# the limit it runs more often instead, costing CPU (with 4,000 clients
# long-polling, 240 held the process under 300 MiB instead of ~430 at
# about twice the CPU per message delivered). A server whose live memory
# needs more gets more. The GOMEMLIMIT environment variable, when set,
# wins.
memory_limit_mib: {{.MemoryLimitMiB}}

# How far the heap grows, in percent of what is live, before the garbage
# collector runs again (Go's GOGC; Go's own default is 100). Lower: less
# memory, more CPU (with 4,000 clients long-polling, 75 instead of 100
# held 286 instead of 313 MiB for about 5% more CPU). The GOGC environment
# variable, when set, wins.
gc_percent: {{.GCPercent}}

registration:
  # Let anyone register (m.login.dummy). Closed by default: create users with
  # 'tributary user add', shared-secret registration or registration tokens.
  enabled: {{.Registration.Enabled}}
  # With enabled: true, require a registration token (m.login.registration_token).
  # Tokens are managed through /_synapse/admin/v1/registration_tokens.
  requires_token: {{.Registration.RequiresToken}}
  # Enables Synapse-compatible shared-secret registration
  # (/_synapse/admin/v1/register, as used by register_new_matrix_user). Keep it secret.
  shared_secret: {{printf "%q" .Registration.SharedSecret}}
  # Shortest password accepted at registration and password change.
  password_min_length: {{.Registration.PasswordMinLength}}

auth:
  # Lifetime of access tokens for clients that ask for refresh tokens
  # (others get tokens that do not expire).
  access_token_lifetime: {{.Auth.AccessTokenLifetime}}
  # Lifetime of m.login.token login tokens.
  login_token_lifetime: {{.Auth.LoginTokenLifetime}}
  # How long a user-interactive authentication session stays open.
  uia_session_lifetime: {{.Auth.UIASessionLifetime}}

# Token buckets: per_second refills, burst is the bucket size.
rate_limits:
  # false (or --disable-rate-limits) turns every limit off, for load tests.
  enabled: {{.RateLimits.Enabled}}
  # Login attempts per client IP address.
  login_address: {per_second: {{.RateLimits.LoginAddress.PerSecond}}, burst: {{.RateLimits.LoginAddress.Burst}}}
  # Failed login attempts per account.
  login_failed_account: {per_second: {{.RateLimits.LoginFailedAccount.PerSecond}}, burst: {{.RateLimits.LoginFailedAccount.Burst}}}
  # Registration requests per client IP address.
  register: {per_second: {{.RateLimits.Register.PerSecond}}, burst: {{.RateLimits.Register.Burst}}}
  # Events each user sends (messages, state, redactions); appservices are exempt.
  messages: {per_second: {{.RateLimits.Messages.PerSecond}}, burst: {{.RateLimits.Messages.Burst}}}
  # Restarting, cancelling and sending delayed events, per user (per client IP
  # address without a login).
  delayed_event_management: {per_second: {{.RateLimits.DelayedEventManagement.PerSecond}}, burst: {{.RateLimits.DelayedEventManagement.Burst}}}

http:
  # Largest JSON request body accepted, in bytes.
  max_body_bytes: {{.HTTP.MaxBodyBytes}}
  # How long a client may take to send a request line and its headers.
  read_header_timeout: {{.HTTP.ReadHeaderTimeout}}
  # How long a client may take to send a request body, counted from its
  # headers, plus one second for every read_body_min_rate bytes received: an
  # upload that keeps arriving at that rate (a slow link) gets the time it
  # needs, a body trickled byte by byte is cut off. Long-polls (/sync) have no
  # body and are not affected.
  read_body_timeout: {{.HTTP.ReadBodyTimeout}}
  read_body_min_rate: {{.HTTP.ReadBodyMinRate}}
  # How long an idle kept-alive connection stays open.
  idle_timeout: {{.HTTP.IdleTimeout}}
  # Reverse proxies whose X-Forwarded-For is believed (IPs or CIDRs). Empty: none.
  trusted_proxies: [{{range $i, $p := .HTTP.TrustedProxies}}{{if $i}}, {{end}}{{printf "%q" $p}}{{end}}]

well_known:
  # Delegated federation address served at /.well-known/matrix/server (host:port).
  # Empty: <server_name>:443.
  server: {{printf "%q" .WellKnown.Server}}

log:
  # debug, info, warn or error.
  level: {{printf "%q" .Log.Level}}
  # text or json.
  format: {{printf "%q" .Log.Format}}

server_notices:
  # Messages from the server to a user (admin API send_server_notice), sent
  # by this system user (made on first use) in a notices room per user.
  enabled: {{.ServerNotices.Enabled}}
  system_mxid_localpart: {{printf "%q" .ServerNotices.Localpart}}
  room_name: {{printf "%q" .ServerNotices.RoomName}}

metrics:
  # Prometheus metrics at /metrics on their own listener (never the client
  # port). serve --metrics-listen HOST:PORT turns them on for one run.
  enabled: {{.Metrics.Enabled}}
  listen: {{printf "%q" .Metrics.Listen}}

presence:
  # Track online/offline presence and share it with room members.
  enabled: {{.Presence.Enabled}}
  # A user who was online or unavailable is marked offline this long after
  # their last /sync ended.
  offline_after: {{.Presence.OfflineAfter}}
  # Another server's user shown online or unavailable is shown offline after
  # this long without news from their server.
  remote_offline_after: {{.Presence.RemoteOfflineAfter}}
  # The presence of local users who are online or unavailable is sent again
  # this often to the servers sharing a room with them, so that they do not
  # time out there (keep it below the other servers' remote_offline_after).
  federation_ping_interval: {{.Presence.FederationPingInterval}}

rooms:
  # A room's writer (and the room state it keeps in memory) is released after
  # this long without a write, and reloaded on the next one.
  writer_idle: {{.Rooms.WriterIdle}}
  # Room version of new rooms that name none (1 to 12); 12 is what the spec
  # recommends. An older one only for clients that cannot handle 12 yet.
  default_version: {{printf "%q" .Rooms.DefaultVersion}}
  # Longest delay of a delayed event (MSC4140; Element Call keeps its "left the
  # call" event pending with one). 0 turns delayed events off.
  max_event_delay: {{.Rooms.MaxEventDelay}}
  # Most delayed events one user may have pending.
  max_delayed_events_per_user: {{.Rooms.MaxDelayedEventsPerUser}}

voip:
  # TURN/STUN URIs offered to clients for calls (turn:turn.example.org:3478?transport=udp, ...).
  turn_uris: [{{range $i, $u := .VoIP.TurnURIs}}{{if $i}}, {{end}}{{printf "%q" $u}}{{end}}]
  # The TURN server's shared secret (coturn: use-auth-secret, static-auth-secret).
  turn_shared_secret: {{printf "%q" .VoIP.TurnSharedSecret}}
  # How long the TURN credentials handed to clients hold.
  turn_user_lifetime: {{.VoIP.TurnUserLifetime}}

push:
  # IP ranges of push gateways reached although private, loopback or link-local
  # (refused by default).
  allowed_ranges: [{{range $i, $r := .Push.AllowedRanges}}{{if $i}}, {{end}}{{printf "%q" $r}}{{end}}]
  # Thread subscriptions (MSC4306): clients subscribe to threads and only those
  # notify. Off by default, as in Synapse: clients that do not subscribe would
  # get no notifications from threads at all (mentions still notify).
  thread_subscriptions: {{.Push.ThreadSubscriptions}}

federation:
  # Serve the federation and key APIs and talk to other servers.
  enabled: {{.Federation.Enabled}}
  # A listener for other servers, with TLS (usually ":8448"). Empty: the
  # federation API is served on 'listen' only, for a TLS-terminating reverse
  # proxy in front. Also: serve --federation-listen ADDR.
  listen: {{printf "%q" .Federation.Listen}}
  # PEM certificate and key of the federation listener (serve --tls-cert/--tls-key).
  tls_cert: {{printf "%q" .Federation.TLSCert}}
  tls_key: {{printf "%q" .Federation.TLSKey}}
  # Generate a self-signed certificate for the server name at start (serve
  # --tls-self-signed): tests and trying out; other servers must skip verifying it.
  tls_self_signed: {{.Federation.TLSSelfSigned}}
  # Do not verify other servers' certificates. Loopback tests only
  # (serve --federation-insecure-skip-verify).
  insecure_skip_verify: {{.Federation.InsecureSkipVerify}}
  # Notaries asked for a server's signing keys when that server cannot be
  # asked itself, e.g. ["matrix.org"]. None by default.
  trusted_key_servers: [{{range $i, $r := .Federation.TrustedKeyServers}}{{if $i}}, {{end}}{{printf "%q" $r}}{{end}}]
  # When not empty, the only servers this one federates with.
  allowed_servers: [{{range $i, $r := .Federation.AllowedServers}}{{if $i}}, {{end}}{{printf "%q" $r}}{{end}}]
  # Servers this one never federates with.
  denied_servers: [{{range $i, $r := .Federation.DeniedServers}}{{if $i}}, {{end}}{{printf "%q" $r}}{{end}}]
  # IP ranges of other servers reached although private, loopback or
  # link-local (refused by default).
  allowed_ranges: [{{range $i, $r := .Federation.AllowedRanges}}{{if $i}}, {{end}}{{printf "%q" $r}}{{end}}]
  # After a failed transaction to a server, wait this long before retrying,
  # twice as long after each further failure, at most max_retry_backoff. A
  # request from that server, or the admin API's reset_connection, retries at once.
  retry_backoff: {{.Federation.RetryBackoff}}
  max_retry_backoff: {{.Federation.MaxRetryBackoff}}
  # Once a server has been unreachable this long, only the latest event of
  # each room (and the membership events of its users) stays queued for it;
  # when it is back it fetches the events between itself. 0 keeps them all.
  catch_up_after: {{.Federation.CatchUpAfter}}

# Application service registration files (bridges); also: serve --appservice FILE.
app_service_config_files: [{{range $i, $f := .AppServiceConfigFiles}}{{if $i}}, {{end}}{{printf "%q" $f}}{{end}}]

app_services:
  # After a failed delivery to an appservice, wait this long before retrying,
  # twice as long after each further failure, at most max_retry_backoff. A
  # successful ping from the appservice, or any request it makes, retries at once.
  retry_backoff: {{.AppServices.RetryBackoff}}
  max_retry_backoff: {{.AppServices.MaxRetryBackoff}}

# Bridge plugins the server launches, supervises (restarting a crashed one
# with backoff) and registers as internal appservices. None by default:
# plugins:
#   - name: irc                 # appservice ID "plugin:irc"
#     binary: /usr/lib/tributary/plugins/irc
#     sha256: ""                # hex checksum the binary must have, if set
#     ghost_prefix: irc_        # ghosts are @irc_…:server_name (exclusive)
#     bot_localpart: ircbot
#     config:                   # handed to the plugin as JSON; a bridgev2 plugin reads
#       network: {}             #   its connector's section, and bridgev2's bridge,
#       bridge: {}              #   backfill, matrix and bot sections (see README,
#       backfill: {}            #   "Bridge plugins"); its database is in the data dir
#                               #   (SQLite) or the server's PostgreSQL, own schema

# Who "tributary import slack" and "tributary import discord" act as: ghosts
# @<ghost_prefix><team>-<user>:server_name (Slack), @<ghost_prefix><user ID>:server_name
# (Discord), each an exclusive namespace, and a bot that creates the rooms. A plugin with the
# same ghost_prefix is the same identity: the import then acts as that plugin,
# and the live bridge finds the imported ghosts and rooms its own.
imports:
  slack:
    ghost_prefix: {{printf "%q" .Imports.Slack.GhostPrefix}}
    bot_localpart: {{printf "%q" .Imports.Slack.BotLocalpart}}
  discord:
    ghost_prefix: {{printf "%q" .Imports.Discord.GhostPrefix}}
    bot_localpart: {{printf "%q" .Imports.Discord.BotLocalpart}}

media:
  # Largest upload accepted, in bytes.
  max_upload_bytes: {{.Media.MaxUploadBytes}}
  # What one user may upload in all, in bytes; 0: no cap.
  user_quota_bytes: {{.Media.UserQuotaBytes}}
  # Larger images are not decoded for thumbnails (decompression bombs).
  max_image_pixels: {{.Media.MaxImagePixels}}
  # Let the old unauthenticated /_matrix/media/v3 downloads serve new media.
  # Off ("frozen") as the spec recommends: clients use /_matrix/client/v1/media.
  legacy_unauthenticated: {{.Media.LegacyUnauthenticated}}
  # Uploads per user.
  uploads: {per_second: {{.Media.Uploads.PerSecond}}, burst: {{.Media.Uploads.Burst}}}
  # URL preview requests per user.
  previews: {per_second: {{.Media.Previews.PerSecond}}, burst: {{.Media.Previews.Burst}}}
  url_previews:
    # Fetch pages for link previews (OpenGraph).
    enabled: {{.Media.URLPreviews.Enabled}}
    # IP ranges fetched although private, loopback or link-local (refused by default).
    allowed_ranges: [{{range $i, $r := .Media.URLPreviews.AllowedRanges}}{{if $i}}, {{end}}{{printf "%q" $r}}{{end}}]
`))

// Commented renders cfg as a commented YAML file.
func Commented(cfg *Config) ([]byte, error) {
	var buf bytes.Buffer
	if err := configTemplate.Execute(&buf, cfg); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
