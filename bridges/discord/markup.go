package discord

import (
	"context"
	"html"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bwmarrin/discordgo"
	"maunium.net/go/mautrix/event"
)

// markupRE is Discord's markup in a message's content that is not
// markdown: channels (<#id>), roles (<@&id>), custom emoji
// (<:name:id>, <a:name:id> animated) and times (<t:unix[:style]>). Users
// (<@id>) are named from the message's mentions.
var markupRE = regexp.MustCompile(`<#(\d{1,20})>|<@&(\d{1,20})>|<(a?):(\w{1,64}):(\d{1,20})>|<t:(-?\d{1,13})(?::[tTdDfFR])?>`)

// Placeholders a custom emoji stands as while markdown is rendered (the
// Private Use Area: markdown leaves them be).
const emojiOpen, emojiClose = "\ue000", "\ue001"

// markup replaces Discord's markup in text as `tributary import discord`
// does (#channel, @role, :emoji:, a UTC time), except that a custom emoji
// whose image can be had becomes a placeholder for an inline image;
// images are the emoji's names and images by placeholder number.
func (c *Client) markup(ctx context.Context, guildID, text string) (string, []emojiRef) {
	var refs []emojiRef
	s := c.session()
	out := markupRE.ReplaceAllStringFunc(text, func(tok string) string {
		m := markupRE.FindStringSubmatch(tok)
		switch {
		case m[1] != "":
			if s != nil {
				if ch, err := s.State.Channel(m[1]); err == nil && ch.Name != "" {
					return "#" + ch.Name
				}
			}
		case m[2] != "":
			if s != nil && guildID != "" {
				if r, err := s.State.Role(guildID, m[2]); err == nil && r.Name != "" {
					return "@" + r.Name
				}
			}
		case m[4] != "":
			mxc := c.emojiImage(ctx, discordgo.Emoji{ID: m[5], Name: m[4], Animated: m[3] == "a"})
			if mxc == "" {
				return ":" + m[4] + ":"
			}
			refs = append(refs, emojiRef{name: ":" + m[4] + ":", mxc: string(mxc)})
			return emojiOpen + strconv.Itoa(len(refs)-1) + emojiClose
		case m[6] != "":
			sec, _ := strconv.ParseInt(m[6], 10, 64)
			return time.Unix(sec, 0).UTC().Format("2006-01-02 15:04 MST")
		}
		return tok
	})
	return out, refs
}

// emojiRef is a custom emoji of a message's text and its image.
type emojiRef struct{ name, mxc string }

var emojiPlaceholderRE = regexp.MustCompile(emojiOpen + `(\d+)` + emojiClose)

// withEmoji puts the custom emoji back into rendered content: their
// :names: in the body, their images in the HTML (which the content then
// has, if it had none).
func withEmoji(content *event.MessageEventContent, refs []emojiRef) {
	if len(refs) == 0 {
		return
	}
	ref := func(tok string) (emojiRef, bool) {
		i, err := strconv.Atoi(strings.Trim(tok, emojiOpen+emojiClose))
		if err != nil || i < 0 || i >= len(refs) {
			return emojiRef{}, false
		}
		return refs[i], true
	}
	htm := content.FormattedBody
	if content.Format != event.FormatHTML || htm == "" {
		htm = strings.ReplaceAll(html.EscapeString(content.Body), "\n", "<br>")
	}
	content.Body = emojiPlaceholderRE.ReplaceAllStringFunc(content.Body, func(tok string) string {
		r, _ := ref(tok)
		return r.name
	})
	content.FormattedBody = emojiPlaceholderRE.ReplaceAllStringFunc(htm, func(tok string) string {
		r, _ := ref(tok)
		name := html.EscapeString(r.name)
		return `<img data-mx-emoticon src="` + html.EscapeString(r.mxc) + `" alt="` + name + `" title="` + name + `" height="32">`
	})
	content.Format = event.FormatHTML
}
