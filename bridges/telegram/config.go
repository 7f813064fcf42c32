package telegram

import (
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"text/template"
	"time"

	"github.com/go-telegram/bot/models"
	up "go.mau.fi/util/configupgrade"
)

//go:embed example-config.yaml
var exampleConfig string

// Config is the network section of the bridge's configuration.
type Config struct {
	// APIURL is the Bot API's base URL (no trailing /bot<token>).
	APIURL string `yaml:"api_url"`
	// PollTimeout is how long one getUpdates waits.
	PollTimeout time.Duration `yaml:"poll_timeout"`
	// MaxRetryWait caps the wait after repeated 429 answers.
	MaxRetryWait time.Duration `yaml:"max_retry_wait"`
	// Relay makes the bot the relay of its portals.
	Relay bool `yaml:"relay"`
	// APIID and APIHash are the app's (my.telegram.org), for user-account
	// logins over MTProto; without them only bot logins are offered.
	APIID   int    `yaml:"api_id"`
	APIHash string `yaml:"api_hash"`
	// DCAddress, DCID and PublicKey (PEM, PKCS #1) point user mode at
	// another MTProto server than Telegram's: for tests.
	DCAddress string `yaml:"dc_address"`
	DCID      int    `yaml:"dc_id"`
	PublicKey string `yaml:"public_key"`
	// DisplaynameTemplate names ghosts.
	DisplaynameTemplate string `yaml:"displayname_template"`

	nameTmpl *template.Template
}

// nameData is what the display name template sees.
type nameData struct {
	FirstName, LastName, Username, FullName string
}

func (c *Config) validate() error {
	if c.APIURL == "" {
		c.APIURL = "https://api.telegram.org"
	}
	u, err := url.Parse(c.APIURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("telegram: network.api_url %q is not an http(s) URL", c.APIURL)
	}
	c.APIURL = strings.TrimRight(c.APIURL, "/")
	if c.PollTimeout <= 0 {
		c.PollTimeout = 30 * time.Second
	}
	if c.PollTimeout < time.Second {
		return errors.New("telegram: network.poll_timeout must be at least 1s")
	}
	if c.MaxRetryWait <= 0 {
		c.MaxRetryWait = 5 * time.Minute
	}
	if c.DisplaynameTemplate == "" {
		c.DisplaynameTemplate = "{{.FullName}}"
	}
	c.nameTmpl, err = template.New("displayname_template").Option("missingkey=error").Parse(c.DisplaynameTemplate)
	if err != nil {
		return fmt.Errorf("telegram: network.displayname_template: %w", err)
	}
	return nil
}

// ghostName is a Telegram user's ghost's display name.
func (c *Config) ghostName(u *models.User) string {
	var b strings.Builder
	if c.nameTmpl == nil || c.nameTmpl.Execute(&b, nameData{FirstName: u.FirstName, LastName: u.LastName,
		Username: u.Username, FullName: userName(u)}) != nil || strings.TrimSpace(b.String()) == "" {
		return userName(u)
	}
	return b.String()
}

func (c *Config) upgrader() up.Upgrader {
	return up.SimpleUpgrader(func(h up.Helper) {
		h.Copy(up.Str, "api_url")
		h.Copy(up.Str, "poll_timeout")
		h.Copy(up.Str, "max_retry_wait")
		h.Copy(up.Bool, "relay")
		h.Copy(up.Str, "displayname_template")
		h.Copy(up.Int, "api_id")
		h.Copy(up.Str, "api_hash")
		h.Copy(up.Str, "dc_address")
		h.Copy(up.Int, "dc_id")
		h.Copy(up.Str, "public_key")
	})
}
