package irc

import (
	"net/url"
	"regexp"
	"strings"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/irc/ircconn"
)

// Power levels of IRC's prefix modes. The bridge bot (9001 in bridgev2's
// rooms) stays above all of them.
const (
	levelOwner  = 100 // +q ~
	levelAdmin  = 75  // +a &
	levelOp     = 50  // +o @
	levelHalfop = 25  // +h %
	levelVoice  = 1   // +v +
)

// memberLevel is the power level of a member with these prefix modes.
func memberLevel(modes string) int {
	level := 0
	for i := 0; i < len(modes); i++ {
		var l int
		switch modes[i] {
		case 'q', 'Y', 'y':
			l = levelOwner
		case 'a':
			l = levelAdmin
		case 'o':
			l = levelOp
		case 'h':
			l = levelHalfop
		case 'v':
			l = levelVoice
		}
		level = max(level, l)
	}
	return level
}

// modesForLevel is the prefix mode a power level stands for on IRC ("o",
// "v" or ""), for power level changes made on Matrix: IRC has no finer
// grades that every server knows.
func modesForLevel(level int) string {
	switch {
	case level >= levelOp:
		return "o"
	case level >= levelVoice:
		return "v"
	}
	return ""
}

// channelLevels maps channel modes to room power levels: +m (moderated)
// lets only voiced members speak, +t (topic lock) lets only operators set
// the topic.
func channelLevels(modes map[byte]string) (eventsDefault, topic int) {
	if _, ok := modes['m']; ok {
		eventsDefault = levelVoice
	}
	if _, ok := modes['t']; ok {
		topic = levelOp
	}
	return eventsDefault, topic
}

// ircToMatrix converts the text of a PRIVMSG or NOTICE to message content:
// NOTICE is m.notice, CTCP ACTION m.emote; mIRC formatting becomes HTML.
// Other CTCP requests (VERSION, PING…) give nil: they are not messages.
func ircToMatrix(command, text string) *event.MessageEventContent {
	msgType := event.MsgText
	if command == "NOTICE" {
		msgType = event.MsgNotice
	}
	if action, ok := ircconn.ParseAction(text); ok {
		msgType, text = event.MsgEmote, action
	} else if _, _, ok := ircconn.ParseCTCP(text); ok {
		return nil
	}
	content := &event.MessageEventContent{MsgType: msgType, Body: ircconn.StripFormatting(text)}
	if ircconn.HasFormatting(text) {
		content.Format = event.FormatHTML
		content.FormattedBody = ircconn.ToHTML(text)
	}
	return content
}

// mentionNicks adds to content the Matrix users whose nick the text names
// as a word ("alice: hi", "hi alice!"): IRC clients highlight on the nick.
// nicks maps a folded nick to its Matrix user.
func mentionNicks(content *event.MessageEventContent, nicks map[string]id.UserID, fold func(string) string) {
	if len(nicks) == 0 {
		return
	}
	words := strings.FieldsFunc(content.Body, func(r rune) bool {
		return !(r < 0x80 && isNickChar(byte(r)))
	})
	for _, w := range words {
		if user, ok := nicks[fold(w)]; ok {
			if content.Mentions == nil {
				content.Mentions = &event.Mentions{}
			}
			content.Mentions.Add(user)
		}
	}
}

// pillPattern finds Matrix user pills in HTML.
var pillPattern = regexp.MustCompile(`<a\s+href="https://matrix\.to/#/([^"?]+)[^"]*"\s*>(.*?)</a>`)

// matrixToIRC converts message content to IRC text (lines separated by
// '\n', which the sender splits): HTML becomes mIRC formatting, a user
// pill the user's nick (nickOf, when it knows the user), the reply
// fallback goes.
func matrixToIRC(content *event.MessageEventContent, nickOf func(id.UserID) string) string {
	if content.Format == event.FormatHTML && content.FormattedBody != "" {
		html := pillPattern.ReplaceAllStringFunc(content.FormattedBody, func(a string) string {
			m := pillPattern.FindStringSubmatch(a)
			target, err := url.PathUnescape(m[1])
			if err != nil || !strings.HasPrefix(target, "@") {
				return a
			}
			if nick := nickOf(id.UserID(target)); nick != "" {
				return escapeHTMLText(nick)
			}
			return a
		})
		return ircconn.FromHTML(html)
	}
	body := content.Body
	if content.RelatesTo != nil && content.RelatesTo.InReplyTo != nil {
		body = stripReplyFallback(body)
	}
	return body
}

func escapeHTMLText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// stripReplyFallback removes the "> <@user> quoted" lines older clients put
// before a reply's text.
func stripReplyFallback(body string) string {
	if !strings.HasPrefix(body, "> ") {
		return body
	}
	lines := strings.Split(body, "\n")
	i := 0
	for i < len(lines) && strings.HasPrefix(lines[i], ">") {
		i++
	}
	if i < len(lines) && lines[i] == "" {
		i++
	}
	return strings.Join(lines[i:], "\n")
}

// relayLines prefixes each line of text with the relayed sender's name:
// "<name> text", or "* name text" for an emote.
func relayLines(name, text string, emote bool) string {
	name = strings.NewReplacer("\n", " ", "\r", " ").Replace(name)
	lines := strings.Split(text, "\n")
	out := lines[:0]
	for _, l := range lines {
		if l == "" {
			continue
		}
		if emote {
			out = append(out, "* "+name+" "+l)
		} else {
			out = append(out, "<"+name+"> "+l)
		}
	}
	return strings.Join(out, "\n")
}
