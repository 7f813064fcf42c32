package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCommentedTemplateRoundTrips(t *testing.T) {
	want := Default()
	want.ServerName = "example.org"
	want.HTTP.TrustedProxies = []string{"10.0.0.1", "192.168.0.0/16"}
	want.RateLimits.Register = Rate{PerSecond: 2.5, Burst: 7}
	want.Media.URLPreviews.AllowedRanges = []string{"127.0.0.0/8", "::1/128"}
	want.Push.AllowedRanges = []string{"10.1.0.0/16"}
	want.AppServiceConfigFiles = []string{"/etc/tributary/discord.yaml"}
	want.AppServices.MaxRetryBackoff = Duration{time.Hour}
	want.Auth.AccessTokenLifetime = Duration{90 * time.Minute}
	want.VoIP = VoIP{TurnURIs: []string{"turn:turn.example.org:3478?transport=udp"}, TurnSharedSecret: "s3cret",
		TurnUserLifetime: Duration{12 * time.Hour}}
	want.Federation = Federation{Enabled: true, Listen: ":8448", TLSSelfSigned: true, TrustedKeyServers: []string{"matrix.org"},
		AllowedServers: []string{"a.example"}, DeniedServers: []string{"evil.example"}, AllowedRanges: []string{"127.0.0.0/8"},
		RetryBackoff: Duration{2 * time.Second}, MaxRetryBackoff: Duration{30 * time.Minute}, CatchUpAfter: Duration{time.Hour}}
	out, err := Commented(want)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	got := &Config{}
	if err := LoadFile(got, path); err != nil {
		t.Fatalf("the generated file does not load: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip changed the config:\n got %+v\nwant %+v", got, want)
	}
	if !strings.Contains(string(out), "# ") {
		t.Fatal("generated config has no comments")
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown key":  "server_nmae: x\n",
		"bad type":     "listen: [1, 2]\n",
		"bad duration": "auth: {access_token_lifetime: soon}\n",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		os.WriteFile(path, []byte(body), 0o600)
		if err := LoadFile(Default(), path); err == nil {
			t.Errorf("%s: loaded without error", name)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error is more than one line: %q", name, err)
		}
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	cfg := Default()
	if err := LoadFile(cfg, empty); err != nil || !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("empty file: %v", err)
	}
}

func TestValidate(t *testing.T) {
	cases := map[string]func(*Config){
		"server_name":                func(c *Config) { c.ServerName = "bad name" },
		"listen":                     func(c *Config) { c.Listen = "nope" },
		"public_baseurl":             func(c *Config) { c.PublicBaseURL = "ftp://x" },
		"database.url":               func(c *Config) { c.Database.URL = "mysql://x" },
		"database.sqlite_cache_mib":  func(c *Config) { c.Database.SQLiteCacheMiB = -1 },
		"log.level":                  func(c *Config) { c.Log.Level = "loud" },
		"log.format":                 func(c *Config) { c.Log.Format = "xml" },
		"rate_limits.register":       func(c *Config) { c.RateLimits.Register.Burst = 0 },
		"http.max_body_bytes":        func(c *Config) { c.HTTP.MaxBodyBytes = 1 },
		"push.allowed_ranges":        func(c *Config) { c.Push.AllowedRanges = []string{"10.1.0.0"} },
		"auth.access_token_lifetime": func(c *Config) { c.Auth.AccessTokenLifetime = Duration{time.Second} },
		"app_services":               func(c *Config) { c.AppServices.MaxRetryBackoff = Duration{time.Millisecond} },
		"federation: retry_backoff":  func(c *Config) { c.Federation.RetryBackoff = Duration{time.Millisecond} },
		"plugins[0].name":            func(c *Config) { c.Plugins = []Plugin{{Name: "Bad Name"}} },
		"plugins[1].name": func(c *Config) {
			c.Plugins = []Plugin{goodPlugin(), goodPlugin()}
		},
		"plugins[0].binary": func(c *Config) { p := goodPlugin(); p.Binary = ""; c.Plugins = []Plugin{p} },
		"plugins[0].sha256": func(c *Config) { p := goodPlugin(); p.SHA256 = "abc"; c.Plugins = []Plugin{p} },
		"plugins[0].ghost_prefix": func(c *Config) {
			p := goodPlugin()
			p.GhostPrefix = "Irc_"
			c.Plugins = []Plugin{p}
		},
		"plugins[0].bot_localpart": func(c *Config) {
			p := goodPlugin()
			p.BotLocalpart = "irc_bot" // inside its own ghost namespace
			c.Plugins = []Plugin{p}
		},
		"imports.slack.ghost_prefix": func(c *Config) {
			p := goodPlugin()
			p.GhostPrefix = "slack_t1" // would share part of the import's namespace
			c.Plugins = []Plugin{p}
		},
		"imports.slack.bot_localpart": func(c *Config) { c.Imports.Slack.BotLocalpart = "slack_bot" },
	}
	for key, mutate := range cases {
		c := Default()
		mutate(c)
		err := c.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), key) {
			t.Errorf("%s: got %v, want an error naming the key", key, err)
		}
	}
	c := Default()
	c.Plugins = []Plugin{goodPlugin()}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.PublicBaseURL != "http://127.0.0.1:8008/" {
		t.Fatalf("derived public_baseurl = %q", c.PublicBaseURL)
	}
	c = Default()
	c.Listen = "0.0.0.0:8008"
	c.Validate()
	if c.PublicBaseURL != "http://localhost:8008/" {
		t.Fatalf("wildcard listen gives public_baseurl %q", c.PublicBaseURL)
	}
}

func TestApplyEnv(t *testing.T) {
	env := map[string]string{
		"TRIBUTARY_SERVER_NAME":         "env.example",
		"TRIBUTARY_ENABLE_REGISTRATION": "true",
		"TRIBUTARY_DISABLE_RATE_LIMITS": "1",
		"TRIBUTARY_DATABASE_URL":        "postgres://u@h/db",
	}
	c := Default()
	if err := ApplyEnv(c, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if c.ServerName != "env.example" || !c.Registration.Enabled || c.RateLimits.Enabled || c.Database.URL != "postgres://u@h/db" {
		t.Fatalf("env not applied: %+v", c)
	}
	env["TRIBUTARY_ENABLE_REGISTRATION"] = "maybe"
	if err := ApplyEnv(Default(), func(k string) string { return env[k] }); err == nil ||
		!strings.Contains(err.Error(), "TRIBUTARY_ENABLE_REGISTRATION") {
		t.Fatalf("bad boolean: %v", err)
	}
}

func goodPlugin() Plugin {
	return Plugin{Name: "irc", Binary: "/usr/lib/tributary/plugins/irc", GhostPrefix: "irc_", BotLocalpart: "ircbot",
		SHA256: strings.Repeat("ab", 32)}
}
