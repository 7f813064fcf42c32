package slack

import (
	_ "embed"
	"fmt"
	"net/url"
	"strings"
	"time"

	up "go.mau.fi/util/configupgrade"
	"maunium.net/go/mautrix/id"
)

//go:embed example-config.yaml
var exampleConfig string

// Config is the network section of the bridge's configuration.
type Config struct {
	// APIURL is Slack's Web API, ending in "/".
	APIURL string `yaml:"api_url"`
	// DisplayName names the network in bridge info and messages.
	DisplayName string `yaml:"display_name"`
	// FileTimeout bounds one file's download or upload.
	FileTimeout time.Duration `yaml:"file_timeout"`
	// ReconnectMin and ReconnectMax bound the backoff between Socket Mode
	// connection attempts.
	ReconnectMin time.Duration `yaml:"reconnect_min"`
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// Relay makes a bot login the relay of its workspace's portals, so
	// that Matrix users without a Slack login talk through the bot, under
	// their own name and avatar.
	Relay bool `yaml:"relay"`
	// MediaURL makes Matrix avatars reachable for Slack (icon_url):
	// <media_url>/<server>/<media ID> for mxc://<server>/<media ID>.
	MediaURL string `yaml:"media_url"`
}

func (c *Config) validate() error {
	if c.APIURL == "" {
		c.APIURL = "https://slack.com/api/"
	}
	if !strings.HasSuffix(c.APIURL, "/") {
		c.APIURL += "/"
	}
	if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("slack: api_url %q is not an http(s) URL", c.APIURL)
	}
	if c.DisplayName == "" {
		c.DisplayName = "Slack"
	}
	if c.FileTimeout <= 0 {
		c.FileTimeout = 2 * time.Minute
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = time.Second
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = max(2*time.Minute, c.ReconnectMin)
	}
	c.MediaURL = strings.TrimSuffix(c.MediaURL, "/")
	if c.MediaURL != "" {
		if u, err := url.Parse(c.MediaURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("slack: media_url %q is not an http(s) URL", c.MediaURL)
		}
	}
	return nil
}

// avatarURL is where Slack can fetch a Matrix avatar ("" if nowhere).
func (c *Config) avatarURL(mxc id.ContentURIString) string {
	u, err := mxc.Parse()
	if err != nil || c.MediaURL == "" || u.IsEmpty() {
		return ""
	}
	return c.MediaURL + "/" + u.Homeserver + "/" + u.FileID
}

func (c *Config) upgrader() up.Upgrader {
	return up.SimpleUpgrader(func(h up.Helper) {
		for _, key := range []string{"api_url", "display_name", "file_timeout", "reconnect_min", "reconnect_max", "media_url"} {
			h.Copy(up.Str|up.Null, key)
		}
		h.Copy(up.Bool, "relay")
	})
}
