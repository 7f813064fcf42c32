package slackfmt

import (
	"context"
	"strings"
	"sync"

	"go.mau.fi/util/emojishortcodes"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/id"
)

// escape is what Slack asks senders to escape in text: &, < and >.
var escape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// Escape makes plain text safe to send as mrkdwn.
func Escape(s string) string { return escape.Replace(s) }

// ToMrkdwn converts a Matrix message's HTML to Slack mrkdwn; user pills
// become <@U…> mentions where slackUser knows the user's Slack ID (the
// pill's name otherwise).
func ToMrkdwn(ctx context.Context, htmlBody string, slackUser func(id.UserID) string) string {
	p := &format.HTMLParser{
		TabsToSpaces:   4,
		Newline:        "\n",
		HorizontalLine: "\n---\n",
		TextConverter:  func(s string, _ format.Context) string { return Escape(s) },
		BoldConverter:  func(s string, _ format.Context) string { return wrap("*", s) },
		ItalicConverter: func(s string, _ format.Context) string {
			return wrap("_", s)
		},
		StrikethroughConverter: func(s string, _ format.Context) string { return wrap("~", s) },
		MonospaceConverter:     func(s string, _ format.Context) string { return wrap("`", s) },
		MonospaceBlockConverter: func(code, _ string, _ format.Context) string {
			// The parser has put the code through TextConverter already.
			return "```" + strings.TrimSuffix(code, "\n") + "```"
		},
		LinkConverter: func(text, href string, _ format.Context) string {
			if text == href || text == Escape(href) {
				return "<" + href + ">"
			}
			return "<" + href + "|" + text + ">"
		},
		PillConverter: func(name, mxid, eventID string, c format.Context) string {
			if strings.HasPrefix(mxid, "@") && eventID == "" {
				if u := slackUser(id.UserID(mxid)); u != "" {
					return "<@" + u + ">"
				}
				return name // escaped by TextConverter already
			}
			return format.DefaultPillConverter(name, mxid, eventID, c)
		},
	}
	out := p.Parse(htmlBody, format.NewContext(ctx))
	// Quotes: the parser writes "> " before each line already.
	return strings.TrimSpace(out)
}

func wrap(marker, s string) string {
	if strings.TrimSpace(s) == "" {
		return s
	}
	return marker + s + marker
}

// nameByEmoji is built on first use, as emojiByName is: at init it was
// 360 KiB (with emojishortcodes' own map) in every process that links the
// package, the homeserver's importer included, which never reacts.
var nameByEmoji = sync.OnceValue(func() map[string]string {
	m := map[string]string{}
	for emoji, name := range emojishortcodes.GetMap() {
		m[emoji] = name
		m[strings.TrimSuffix(emoji, "\uFE0F")] = name
	}
	return m
})

// EmojiName is the Slack name of a Matrix reaction key: the short name of
// a unicode emoji (with its skin tone, "+1::skin-tone-3"), or the name of
// a ":custom:" emoji; false when Slack has no name for it.
func EmojiName(key string) (string, bool) {
	if n, ok := strings.CutPrefix(key, ":"); ok {
		if n, ok = strings.CutSuffix(n, ":"); ok && n != "" && isEmojiName(n) {
			return n, true
		}
	}
	if name, ok := nameByEmoji()[key]; ok {
		return name, true
	}
	for tone, mod := range skinTones {
		if base, ok := strings.CutSuffix(key, mod); ok {
			if name, ok := nameByEmoji()[base]; ok {
				return name + "::skin-tone-" + tone, true
			}
		}
	}
	return "", false
}
