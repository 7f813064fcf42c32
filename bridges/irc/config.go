package irc

import (
	_ "embed"
	"errors"
	"fmt"
	"net"
	"strings"
	"text/template"
	"time"

	up "go.mau.fi/util/configupgrade"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/irc/ircconn"
)

//go:embed example-config.yaml
var exampleConfig string

// Config is the network section of the bridge's configuration (the
// plugin's `network:` block, or a standalone bridge's config.yaml).
type Config struct {
	// Server is the IRC server's host:port.
	Server string `yaml:"server"`
	// TLS connects with TLS; TLSSkipVerify accepts any certificate.
	TLS           bool `yaml:"tls"`
	TLSSkipVerify bool `yaml:"tls_skip_verify"`
	// ServerPassword is sent with PASS, for servers that want one.
	ServerPassword string `yaml:"server_password"`

	// NetworkID names the network in portal and login IDs; it defaults to
	// the server's host name. Changing it later orphans existing portals.
	NetworkID string `yaml:"network_id"`
	// DisplayName is the network's name in bridge info and messages.
	DisplayName string `yaml:"display_name"`

	// NickTemplate proposes a nick at login, IdentTemplate is the user
	// name (ident) of every connection and RealNameTemplate its real
	// name. Each is a Go template over {{.Localpart}} and {{.UserID}} of
	// the Matrix user.
	NickTemplate     string `yaml:"nick_template"`
	IdentTemplate    string `yaml:"ident_template"`
	RealNameTemplate string `yaml:"realname_template"`

	// FloodBurst lines may go at once, then one every FloodInterval.
	FloodBurst    int           `yaml:"flood_burst"`
	FloodInterval time.Duration `yaml:"flood_interval"`
	// PingInterval: a connection silent this long is PINGed; PingTimeout:
	// how long the server then has to answer before the bridge reconnects.
	PingInterval time.Duration `yaml:"ping_interval"`
	PingTimeout  time.Duration `yaml:"ping_timeout"`
	// ReconnectMin and ReconnectMax bound the backoff between attempts.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// RegainInterval: how often a connection that had to fall back to
	// another nick asks for its own again.
	RegainInterval time.Duration `yaml:"regain_interval"`

	nickTmpl, identTmpl, realTmpl *template.Template
}

// templateData is what the nick, ident and real name templates see.
type templateData struct {
	Localpart string
	UserID    id.UserID
}

// validate checks the config and fills what it leaves out.
func (c *Config) validate() error {
	if c.Server == "" {
		return errors.New("irc: network.server is required (host:port of the IRC server)")
	}
	host, _, err := net.SplitHostPort(c.Server)
	if err != nil {
		return fmt.Errorf("irc: network.server %q: %w", c.Server, err)
	}
	if c.NetworkID == "" {
		c.NetworkID = host
	}
	if strings.ContainsAny(c.NetworkID, "/ ") {
		return fmt.Errorf("irc: network.network_id %q must not contain '/' or spaces", c.NetworkID)
	}
	if c.DisplayName == "" {
		c.DisplayName = "IRC"
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.NickTemplate, "{{.Localpart}}")
	def(&c.IdentTemplate, "{{.Localpart}}")
	def(&c.RealNameTemplate, "{{.UserID}}")
	for _, t := range []struct {
		name string
		src  string
		dst  **template.Template
	}{{"nick_template", c.NickTemplate, &c.nickTmpl}, {"ident_template", c.IdentTemplate, &c.identTmpl},
		{"realname_template", c.RealNameTemplate, &c.realTmpl}} {
		tmpl, err := template.New(t.name).Option("missingkey=error").Parse(t.src)
		if err != nil {
			return fmt.Errorf("irc: network.%s: %w", t.name, err)
		}
		*t.dst = tmpl
	}
	if c.FloodBurst <= 0 {
		c.FloodBurst = ircconn.DefaultFloodControl.Burst
	}
	if c.FloodInterval <= 0 {
		c.FloodInterval = ircconn.DefaultFloodControl.Interval
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = 2 * time.Second
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = max(5*time.Minute, c.ReconnectMin)
	}
	if c.RegainInterval <= 0 {
		c.RegainInterval = 30 * time.Second
	}
	return nil
}

func execTemplate(t *template.Template, user id.UserID) string {
	var b strings.Builder
	if t == nil || t.Execute(&b, templateData{Localpart: user.Localpart(), UserID: user}) != nil {
		return user.Localpart()
	}
	return b.String()
}

// defaultNick is the nick proposed to a Matrix user at login.
func (c *Config) defaultNick(user id.UserID) string {
	return SanitizeNick(execTemplate(c.nickTmpl, user))
}

// ident is the user name a connection registers with: letters, digits and
// a few punctuation marks, at most 10 bytes (the common USERLEN).
func (c *Config) ident(user id.UserID) string {
	var b strings.Builder
	for _, r := range execTemplate(c.identTmpl, user) {
		if r < 0x80 && (isNickChar(byte(r)) || r == '.') && r != '[' && r != ']' {
			b.WriteRune(r)
		}
		if b.Len() == 10 {
			break
		}
	}
	if b.Len() == 0 {
		return "matrix"
	}
	return b.String()
}

func (c *Config) realName(user id.UserID) string {
	name := strings.NewReplacer("\r", " ", "\n", " ", "\x00", "").Replace(execTemplate(c.realTmpl, user))
	if name == "" {
		return string(user)
	}
	return name
}

func (c *Config) upgrader() up.Upgrader {
	return up.SimpleUpgrader(func(h up.Helper) {
		for _, key := range []string{"server", "server_password", "network_id", "display_name",
			"nick_template", "ident_template", "realname_template",
			"flood_interval", "ping_interval", "ping_timeout", "reconnect_min", "reconnect_max", "regain_interval"} {
			h.Copy(up.Str|up.Null, key)
		}
		h.Copy(up.Bool, "tls")
		h.Copy(up.Bool, "tls_skip_verify")
		h.Copy(up.Int, "flood_burst")
	})
}

// isNickChar reports whether c may appear in a nick (RFC 2812 letters,
// digits, special characters and '-').
func isNickChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		strings.IndexByte("[]\\`_^{|}-", c) >= 0
}

// SanitizeNick turns s into a valid nick: each character a nick may not
// hold becomes '_', a leading digit or '-' gets a '_' before it, and an
// empty result is "matrix".
func SanitizeNick(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x80 && isNickChar(byte(r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	out := b.String()
	switch {
	case out == "":
		return "matrix"
	case out[0] >= '0' && out[0] <= '9' || out[0] == '-':
		return "_" + out
	}
	return out
}

// ValidNick reports whether s can be sent as a nick.
func ValidNick(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNickChar(s[i]) {
			return false
		}
	}
	return true
}
