package slackfmt

import (
	"html"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"maunium.net/go/mautrix/id"
)

// Resolver names what Slack text refers to.
type Resolver interface {
	// User is the Matrix user of a Slack user and their display name
	// ("" for a user the export does not know).
	User(slackID string) (id.UserID, string)
	// Channel is the room of a Slack conversation and its name ("" for a
	// conversation the export does not know).
	Channel(slackID string) (id.RoomID, string)
}

// EmojiResolver is a Resolver that also knows a workspace's custom emoji.
type EmojiResolver interface {
	// CustomEmoji is the mxc:// URI of the image of a custom emoji ("" if
	// there is none).
	CustomEmoji(name string) id.ContentURIString
}

// EmojiHTML is how a custom emoji shows inline: its image, named by its
// shortcode (as mautrix-slack and Element's custom emoji are).
func EmojiHTML(name string, mxc id.ContentURIString) string {
	sc := html.EscapeString(":" + name + ":")
	return `<img data-mx-emoticon src="` + html.EscapeString(string(mxc)) + `" alt="` + sc + `" title="` + sc + `" height="32">`
}

// Formatted is Slack text as a Matrix message: a plain body and, when the
// text has formatting, its HTML (formatted_body), and who it mentions.
type Formatted struct {
	Body     string
	HTML     string
	Mentions []id.UserID
}

// Mrkdwn converts Slack's mrkdwn (the text of a message: &, < and > as
// entities; *bold*, _italic_, ~strike~, `code`, ```pre```, "> " quotes;
// <@U…> mentions, <#C…|name> channels, <!here>, <url|label> links and
// :emoji:) to a Matrix body and HTML. The body keeps the markers, as
// people type them; mentions, channels and links become their names.
func Mrkdwn(text string, r Resolver) Formatted {
	c := &conv{r: r}
	for text != "" {
		i := strings.Index(text, "```")
		if i < 0 {
			c.lines(text)
			break
		}
		j := strings.Index(text[i+3:], "```")
		if j < 0 {
			c.lines(text)
			break
		}
		c.lines(strings.TrimSuffix(text[:i], "\n"))
		c.pre(text[i+3 : i+3+j])
		text = strings.TrimPrefix(text[i+3+j+3:], "\n")
	}
	f := Formatted{Body: c.body.String(), Mentions: c.mentions}
	if c.formatted {
		f.HTML = c.html.String()
	}
	return f
}

type conv struct {
	r          Resolver
	body, html strings.Builder
	mentions   []id.UserID
	formatted  bool
	// block: the last thing written is a block element (no <br> before
	// the next line); started: something was written.
	block, started bool
}

// newline separates what follows from what was written.
func (c *conv) newline(block bool) {
	if !c.started {
		return
	}
	c.body.WriteByte('\n')
	if !c.block && !block {
		c.html.WriteString("<br>")
	}
}

func (c *conv) pre(code string) {
	code = strings.TrimPrefix(code, "\n")
	c.newline(true)
	plain := DecodeEntities(code)
	c.body.WriteString("```\n" + plain + "\n```")
	c.html.WriteString("<pre><code>" + html.EscapeString(plain) + "</code></pre>")
	c.formatted, c.block, c.started = true, true, true
}

func (c *conv) lines(text string) {
	if text == "" {
		return
	}
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		if q, ok := quoteLine(lines[i]); ok {
			c.newline(true)
			c.html.WriteString("<blockquote>")
			for k := 0; ; k++ {
				if k > 0 {
					c.body.WriteByte('\n')
					c.html.WriteString("<br>")
				}
				c.body.WriteString("> ")
				c.inline(q)
				if i+1 >= len(lines) {
					break
				}
				next, ok := quoteLine(lines[i+1])
				if !ok {
					break
				}
				q = next
				i++
			}
			c.html.WriteString("</blockquote>")
			c.formatted, c.block, c.started = true, true, true
			continue
		}
		c.newline(false)
		c.inline(lines[i])
		c.block, c.started = false, true
	}
}

func quoteLine(l string) (string, bool) {
	if q, ok := strings.CutPrefix(l, "&gt;"); ok {
		return strings.TrimPrefix(q, " "), true
	}
	return "", false
}

// markers are the inline styles and their HTML elements.
var markers = map[byte]string{'*': "strong", '_': "em", '~': "del"}

// inline converts one line.
func (c *conv) inline(s string) {
	for i := 0; i < len(s); {
		ch := s[i]
		switch {
		case ch == '`':
			if j := strings.IndexByte(s[i+1:], '`'); j > 0 {
				code := s[i+1 : i+1+j]
				plain := DecodeEntities(code)
				c.body.WriteString("`" + plain + "`")
				c.html.WriteString("<code>" + html.EscapeString(plain) + "</code>")
				c.formatted = true
				i += j + 2
				continue
			}
		case ch == '<':
			if j := strings.IndexByte(s[i+1:], '>'); j > 0 {
				c.token(s[i+1 : i+1+j])
				i += j + 2
				continue
			}
		case markers[ch] != "":
			if j := closing(s, i); j > 0 {
				tag := markers[ch]
				c.body.WriteByte(ch)
				c.html.WriteString("<" + tag + ">")
				c.inline(s[i+1 : j])
				c.body.WriteByte(ch)
				c.html.WriteString("</" + tag + ">")
				c.formatted = true
				i = j + 1
				continue
			}
		case ch == ':':
			if j := strings.IndexByte(s[i+1:], ':'); j > 0 {
				name := s[i+1 : i+1+j]
				// "name::skin-tone-N" spans two pairs of colons.
				if rest := s[i+1+j+1:]; strings.HasPrefix(rest, ":skin-tone-") && len(rest) > 12 && rest[12] == ':' {
					name += ":" + rest[:12]
				}
				if isEmojiName(name) {
					if e, ok := Emoji(name); ok {
						c.body.WriteString(e)
						c.html.WriteString(e)
						i += len(name) + 2
						continue
					}
					if er, ok := c.r.(EmojiResolver); ok {
						if mxc := er.CustomEmoji(name); mxc != "" {
							c.body.WriteString(":" + name + ":")
							c.html.WriteString(EmojiHTML(name, mxc))
							c.formatted = true
							i += len(name) + 2
							continue
						}
					}
				}
			}
		case ch == '&':
			if r, n := entity(s[i:]); n > 0 {
				c.body.WriteString(r)
				c.html.WriteString(html.EscapeString(r))
				i += n
				continue
			}
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		c.body.WriteString(s[i : i+size])
		c.html.WriteString(html.EscapeString(s[i : i+size]))
		i += size
	}
}

// closing finds the marker closing the one at s[i], as Slack reads them:
// the opener starts a word (nothing alphanumeric before it) and is followed
// by something other than a space; the closer follows something other than
// a space and ends a word. It returns -1 when there is none.
func closing(s string, i int) int {
	m := s[i]
	if i > 0 {
		r, _ := utf8.DecodeLastRuneInString(s[:i])
		if isWordRune(r) || r == rune(m) {
			return -1
		}
	}
	if i+1 >= len(s) || s[i+1] == ' ' || s[i+1] == m {
		return -1
	}
	for j := i + 2; j < len(s); j++ {
		if s[j] != m || s[j-1] == ' ' {
			continue
		}
		if j+1 < len(s) {
			r, _ := utf8.DecodeRuneInString(s[j+1:])
			if isWordRune(r) {
				continue
			}
		}
		return j
	}
	return -1
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

func isEmojiName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("_+-':", r)) {
			return false
		}
	}
	return true
}

// token converts what stood between < and >.
func (c *conv) token(t string) {
	target, label, _ := strings.Cut(t, "|")
	label = DecodeEntities(label)
	switch {
	case strings.HasPrefix(target, "@"):
		slackID := target[1:]
		mxid, name := c.r.User(slackID)
		if name == "" {
			name = strings.TrimPrefix(label, "@")
		}
		if name == "" {
			name = slackID
		}
		c.body.WriteString("@" + name)
		if mxid == "" {
			c.html.WriteString(html.EscapeString("@" + name))
			return
		}
		c.html.WriteString(`<a href="https://matrix.to/#/` + html.EscapeString(url.PathEscape(string(mxid))) + `">` +
			html.EscapeString(name) + "</a>")
		c.mention(mxid)
		c.formatted = true
	case strings.HasPrefix(target, "#"):
		roomID, name := c.r.Channel(target[1:])
		if label != "" {
			name = label
		}
		if name == "" {
			name = target[1:]
		}
		c.body.WriteString("#" + name)
		if roomID == "" {
			c.html.WriteString(html.EscapeString("#" + name))
			return
		}
		c.html.WriteString(`<a href="https://matrix.to/#/` + html.EscapeString(url.PathEscape(string(roomID))) +
			"?via=" + html.EscapeString(url.QueryEscape(roomID.String()[strings.IndexByte(roomID.String(), ':')+1:])) +
			`">#` + html.EscapeString(name) + "</a>")
		c.formatted = true
	case strings.HasPrefix(target, "!"):
		// <!here>, <!channel>, <!everyone>, <!subteam^ID|@team>,
		// <!date^…|fallback>: their label, or the word.
		word, _, _ := strings.Cut(target[1:], "^")
		text := label
		if text == "" {
			text = "@" + word
		}
		c.body.WriteString(text)
		c.html.WriteString(html.EscapeString(text))
	default:
		href := DecodeEntities(target)
		show := label
		if show == "" {
			show = strings.TrimPrefix(href, "mailto:")
		}
		if !SafeLink(href) {
			c.body.WriteString(show)
			c.html.WriteString(html.EscapeString(show))
			return
		}
		if show == href || show == strings.TrimPrefix(href, "mailto:") {
			c.body.WriteString(show)
		} else {
			c.body.WriteString(show + " (" + href + ")")
		}
		c.html.WriteString(`<a href="` + html.EscapeString(href) + `">` + html.EscapeString(show) + "</a>")
		c.formatted = true
	}
}

func (c *conv) mention(u id.UserID) {
	for _, m := range c.mentions {
		if m == u {
			return
		}
	}
	c.mentions = append(c.mentions, u)
}

// SafeLink admits the schemes a link may have in a message.
func SafeLink(href string) bool {
	for _, p := range []string{"https://", "http://", "mailto:", "ftp://", "tel:"} {
		if len(href) > len(p) && strings.EqualFold(href[:len(p)], p) {
			return true
		}
	}
	return false
}

// entity decodes the entity Slack text starts with (&amp; &lt; &gt;).
func entity(s string) (string, int) {
	for _, e := range []struct{ from, to string }{{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}} {
		if strings.HasPrefix(s, e.from) {
			return e.to, len(e.from)
		}
	}
	return "", 0
}

var entities = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">")

// DecodeEntities undoes the three entities Slack escapes text with.
func DecodeEntities(s string) string { return entities.Replace(s) }
