package slack

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/slack/slackfmt"
)

// Custom emoji: a workspace's own emoji (emoji.list: name → image URL, or
// "alias:other") go to Matrix as images, as mautrix-slack sends them: a
// reaction's key is the image's mxc:// URI with the shortcode beside it
// (com.beeper.reaction.shortcode), and in text an inline <img
// data-mx-emoticon>. Each image is uploaded once per connector.

// emojiListTTL is how long a workspace's emoji list is trusted before it
// is asked for again (a name it lacks asks again sooner: emojiMissTTL).
const (
	emojiListTTL = time.Hour
	emojiMissTTL = time.Minute
)

// shortcodeKey is the reaction content field naming a custom emoji.
const shortcodeKey = "com.beeper.reaction.shortcode"

// emojiCache is the custom emoji of one workspace.
type emojiCache struct {
	mu      sync.Mutex
	list    map[string]string // name → URL or "alias:name"
	fetched time.Time
	// mxc: name → uploaded image; byMXC the other way.
	mxc   map[string]id.ContentURIString
	byMXC map[id.ContentURIString]string
}

// emoji is the workspace's emoji cache (one per team, shared by logins).
func (n *Connector) emoji(team string) *emojiCache {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.emojis == nil {
		n.emojis = map[string]*emojiCache{}
	}
	ec := n.emojis[team]
	if ec == nil {
		ec = &emojiCache{mxc: map[string]id.ContentURIString{}, byMXC: map[id.ContentURIString]string{}}
		n.emojis[team] = ec
	}
	return ec
}

// customEmoji is the mxc:// URI of the image of the workspace's custom
// emoji name, uploading it the first time; "" for a name that is no custom
// emoji (or whose image cannot be had: the shortcode then stays text).
func (c *Client) customEmoji(ctx context.Context, name string) id.ContentURIString {
	if _, ok := slackfmt.Emoji(name); ok {
		return ""
	}
	ec := c.n.emoji(c.meta.TeamID)
	ec.mu.Lock()
	defer ec.mu.Unlock()
	if mxc := ec.mxc[name]; mxc != "" {
		return mxc
	}
	age := time.Since(ec.fetched)
	if _, ok := ec.list[name]; age > emojiListTTL || (!ok && age > emojiMissTTL) {
		list, err := c.api.GetEmojiContext(ctx)
		if err != nil {
			c.log.Warn().Err(err).Msg("Failed to list the workspace's custom emoji")
			ec.fetched = time.Now() // not again at once
			return ""
		}
		ec.list, ec.fetched = list, time.Now()
	}
	// An alias shares its target's image (aliases of aliases, not forever).
	final, src := name, ec.list[name]
	for range 5 {
		target, ok := strings.CutPrefix(src, "alias:")
		if !ok {
			break
		}
		if _, std := slackfmt.Emoji(target); std {
			return "" // an alias of a standard emoji: its unicode is used
		}
		final, src = target, ec.list[target]
	}
	if mxc := ec.mxc[final]; mxc != "" {
		ec.mxc[name] = mxc
		return mxc
	}
	if src == "" || strings.HasPrefix(src, "alias:") {
		return ""
	}
	// Emoji images are public (emoji.slack-edge.com); no token goes along.
	data, err := c.download(ctx, src, false)
	if err != nil {
		c.log.Warn().Err(err).Str("emoji", name).Msg("Failed to download a custom emoji")
		return ""
	}
	mxc, _, err := c.n.br.Bot.UploadMedia(ctx, "", data, final, http.DetectContentType(data))
	if err != nil {
		c.log.Warn().Err(err).Str("emoji", name).Msg("Failed to upload a custom emoji")
		return ""
	}
	ec.mxc[name], ec.mxc[final], ec.byMXC[mxc] = mxc, mxc, final
	return mxc
}

// customEmojiName is the name of the custom emoji whose image is mxc, if
// the bridge uploaded it.
func (c *Client) customEmojiName(mxc id.ContentURIString) (string, bool) {
	ec := c.n.emoji(c.meta.TeamID)
	ec.mu.Lock()
	defer ec.mu.Unlock()
	name, ok := ec.byMXC[mxc]
	return name, ok
}

// CustomEmoji implements slackfmt.EmojiResolver.
func (r resolver) CustomEmoji(name string) id.ContentURIString { return r.c.customEmoji(r.ctx, name) }
