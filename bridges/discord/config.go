package discord

import (
	_ "embed"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	up "go.mau.fi/util/configupgrade"
	"maunium.net/go/mautrix/id"
)

//go:embed example-config.yaml
var exampleConfig string

// Config is the network section of the bridge's configuration.
type Config struct {
	// APIURL is Discord's API root ("https://discord.com/"): requests that
	// discordgo makes to discord.com go there instead.
	APIURL string `yaml:"api_url"`
	// MediaURL makes Matrix avatars reachable for Discord's webhooks.
	MediaURL    string `yaml:"media_url"`
	DisplayName string `yaml:"display_name"`

	api *url.URL
}

func (c *Config) validate() error {
	if c.APIURL == "" {
		c.APIURL = "https://discord.com/"
	}
	u, err := url.Parse(c.APIURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("discord: network.api_url %q is not an http(s) URL", c.APIURL)
	}
	c.api = u
	if c.DisplayName == "" {
		c.DisplayName = "Discord"
	}
	c.MediaURL = strings.TrimSuffix(c.MediaURL, "/")
	return nil
}

func (c *Config) upgrader() up.Upgrader {
	return up.SimpleUpgrader(func(h up.Helper) {
		for _, key := range []string{"api_url", "media_url", "display_name"} {
			h.Copy(up.Str|up.Null, key)
		}
	})
}

// avatarURL is where Discord can fetch a Matrix avatar ("" if nowhere).
func (c *Config) avatarURL(mxc id.ContentURIString) string {
	u, err := mxc.Parse()
	if err != nil || c.MediaURL == "" || u.IsEmpty() {
		return ""
	}
	return c.MediaURL + "/" + u.Homeserver + "/" + u.FileID
}

// redirect sends requests for discord.com and Discord's CDN to the
// configured API when it is not discord.com (a fake of Discord in tests).
var redirected = map[string]bool{"discord.com": true, "cdn.discordapp.com": true, "media.discordapp.net": true}

type redirect struct {
	to   *url.URL
	next http.RoundTripper
}

func (r redirect) RoundTrip(req *http.Request) (*http.Response, error) {
	if redirected[req.URL.Host] && r.to.Host != "discord.com" {
		req = req.Clone(req.Context())
		req.URL.Scheme, req.URL.Host = r.to.Scheme, r.to.Host
		req.Host = r.to.Host
	}
	return r.next.RoundTrip(req)
}
