package discord

import (
	"html"
	"regexp"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"
)

// Resolver names the Matrix side of Discord users and channels.
type Resolver interface {
	// User is a Discord user's Matrix user and name ("" if unknown).
	User(discordID string) (id.UserID, string)
	// Channel is a channel's room and name ("" if unknown).
	Channel(discordID string) (id.RoomID, string)
}

// Formatted is a message's text for Matrix: body, HTML ("" when the body
// says it all) and the users it mentions.
type Formatted struct {
	Body     string
	HTML     string
	Mentions []id.UserID
}

// Mention is a user a message names (the export's mentions: its content
// says "@name" where Discord's said "<@id>").
type Mention struct {
	ID, Name, Nickname string
}

var (
	// Discord's own markup of users, roles, channels, custom emoji and
	// times (in content that was not flattened by the exporter).
	rawTokenRE = regexp.MustCompile(`<(@!?|@&|#)(\d{1,20})>|<(a?):(\w{1,64}):(\d{1,20})>|<t:(-?\d{1,13})(?::([tTdDfFR]))?>`)
	linkRE     = regexp.MustCompile(`\[([^\]\n]+)\]\(<?(https?://[^\s)>]+)>?\)`)
	autoLinkRE = regexp.MustCompile(`<?(https?://[^\s<>|]*[^\s<>|.,:;"')\]!?*_~])>?`)
	codeRE     = regexp.MustCompile("`{1,2}([^`\n]+?)`{1,2}")
	boldRE     = regexp.MustCompile(`\*\*(\S(?:.*?\S)?)\*\*`)
	underRE    = regexp.MustCompile(`__(\S(?:.*?\S)?)__`)
	italicRE   = regexp.MustCompile(`(^|[^\w*])\*(\S(?:[^*]*?\S)?)\*`)
	italic2RE  = regexp.MustCompile(`(^|\W)_(\S(?:[^_]*?\S)?)_(\W|$)`)
	strikeRE   = regexp.MustCompile(`~~(\S(?:.*?\S)?)~~`)
	spoilerRE  = regexp.MustCompile(`\|\|(.+?)\|\|`)
	headerRE   = regexp.MustCompile(`^(#{1,3}) (.+)$`)
)

// Markdown converts Discord's markdown to a Matrix body and HTML.
func Markdown(text string, mentions []Mention, r Resolver) Formatted {
	var out Formatted
	seen := map[id.UserID]bool{}
	mention := func(u id.UserID) {
		if u != "" && !seen[u] {
			seen[u] = true
			out.Mentions = append(out.Mentions, u)
		}
	}
	// The body: Discord's markup of users, channels and emoji in words.
	body := rawTokenRE.ReplaceAllStringFunc(text, func(tok string) string {
		m := rawTokenRE.FindStringSubmatch(tok)
		switch {
		case m[1] == "@" || m[1] == "@!":
			if u, name := r.User(m[2]); name != "" {
				mention(u)
				return "@" + name
			}
		case m[1] == "#":
			if _, name := r.Channel(m[2]); name != "" {
				return "#" + name
			}
		case m[4] != "":
			return ":" + m[4] + ":"
		case m[6] != "":
			sec, _ := strconv.ParseInt(m[6], 10, 64)
			return time.Unix(sec, 0).UTC().Format("2006-01-02 15:04 MST")
		}
		return tok
	})
	out.Body = body

	// The HTML, fenced code blocks apart.
	var sb strings.Builder
	rest := text
	formatted := false
	for rest != "" {
		start := strings.Index(rest, "```")
		if start < 0 {
			sb.WriteString(blocks(rest, mentions, r, mention, &formatted))
			break
		}
		end := strings.Index(rest[start+3:], "```")
		if end < 0 {
			sb.WriteString(blocks(rest, mentions, r, mention, &formatted))
			break
		}
		if start > 0 {
			sb.WriteString(blocks(strings.TrimSuffix(rest[:start], "\n"), mentions, r, mention, &formatted))
		}
		code := rest[start+3 : start+3+end]
		lang := ""
		if nl := strings.IndexByte(code, '\n'); nl >= 0 && !strings.ContainsAny(code[:nl], " \t") {
			lang, code = code[:nl], code[nl+1:]
		}
		code = strings.TrimSuffix(code, "\n")
		if lang != "" {
			sb.WriteString(`<pre><code class="language-` + html.EscapeString(lang) + `">`)
		} else {
			sb.WriteString("<pre><code>")
		}
		sb.WriteString(html.EscapeString(code) + "</code></pre>")
		formatted = true
		rest = strings.TrimPrefix(rest[start+3+end+3:], "\n")
	}
	if formatted {
		out.HTML = sb.String()
	}
	return out
}

// blocks converts lines: quotes, headers and lists, then their text.
func blocks(text string, mentions []Mention, r Resolver, mention func(id.UserID), formatted *bool) string {
	lines := strings.Split(text, "\n")
	var sb strings.Builder
	inQuote, inList, quoteRest := false, false, false
	prevBlock := false // the line before ended a block: no <br> after it
	for i, line := range lines {
		quoted := quoteRest
		switch {
		case quoteRest:
		case strings.HasPrefix(line, ">>> "):
			quoteRest, quoted, line = true, true, line[4:]
		case strings.HasPrefix(line, "> "):
			quoted, line = true, line[2:]
		case line == ">":
			quoted, line = true, ""
		}
		if quoted != inQuote {
			if inList {
				sb.WriteString("</ul>")
				inList = false
			}
			if quoted {
				sb.WriteString("<blockquote>")
			} else {
				sb.WriteString("</blockquote>")
			}
			inQuote = quoted
			*formatted = true
		} else if i > 0 && !inList && !prevBlock {
			sb.WriteString("<br>")
		}
		prevBlock = false
		item := strings.HasPrefix(line, "- ") || strings.HasPrefix(line, "* ")
		if item != inList {
			if item {
				sb.WriteString("<ul>")
			} else {
				sb.WriteString("</ul>")
			}
			inList = item
			*formatted = true
		}
		switch {
		case item:
			sb.WriteString("<li>" + inline(line[2:], mentions, r, mention, formatted) + "</li>")
		case strings.HasPrefix(line, "-# "):
			sb.WriteString("<sub>" + inline(line[3:], mentions, r, mention, formatted) + "</sub>")
			*formatted = true
		default:
			if m := headerRE.FindStringSubmatch(line); m != nil {
				n := strconv.Itoa(len(m[1]))
				sb.WriteString("<h" + n + ">" + inline(m[2], mentions, r, mention, formatted) + "</h" + n + ">")
				*formatted, prevBlock = true, true
			} else {
				sb.WriteString(inline(line, mentions, r, mention, formatted))
			}
		}
	}
	if inList {
		sb.WriteString("</ul>")
	}
	if inQuote {
		sb.WriteString("</blockquote>")
	}
	if strings.Contains(text, "\n") {
		*formatted = true
	}
	return sb.String()
}

// inline converts a line's spans. Code, links and mentions are set aside
// first, so that what they hold is never taken for emphasis.
func inline(line string, mentions []Mention, r Resolver, mention func(id.UserID), formatted *bool) string {
	line = strings.ReplaceAll(line, "\x00", "")
	var held []string
	hold := func(s string) string {
		held = append(held, s)
		*formatted = true
		return "\x00" + strconv.Itoa(len(held)-1) + "\x00"
	}
	line = codeRE.ReplaceAllStringFunc(line, func(s string) string {
		return hold("<code>" + html.EscapeString(codeRE.FindStringSubmatch(s)[1]) + "</code>")
	})
	line = linkRE.ReplaceAllStringFunc(line, func(s string) string {
		m := linkRE.FindStringSubmatch(s)
		return hold(`<a href="` + html.EscapeString(m[2]) + `">` + html.EscapeString(m[1]) + "</a>")
	})
	line = autoLinkRE.ReplaceAllStringFunc(line, func(s string) string {
		u := autoLinkRE.FindStringSubmatch(s)[1]
		return hold(`<a href="` + html.EscapeString(u) + `">` + html.EscapeString(u) + "</a>")
	})
	line = rawTokenRE.ReplaceAllStringFunc(line, func(tok string) string {
		m := rawTokenRE.FindStringSubmatch(tok)
		switch {
		case m[1] == "@" || m[1] == "@!":
			if u, name := r.User(m[2]); u != "" {
				mention(u)
				return hold(pill(u, name))
			}
		case m[1] == "#":
			if room, name := r.Channel(m[2]); room != "" {
				return hold(`<a href="https://matrix.to/#/` + html.EscapeString(string(room)) + `">#` + html.EscapeString(name) + "</a>")
			}
		case m[4] != "":
			return ":" + m[4] + ":"
		case m[6] != "":
			sec, _ := strconv.ParseInt(m[6], 10, 64)
			return time.Unix(sec, 0).UTC().Format("2006-01-02 15:04 MST")
		}
		return tok
	})
	// The exporter writes a mention as "@name": the message's mentions say
	// whom it means.
	for _, mn := range mentions {
		u, name := r.User(mn.ID)
		if u == "" {
			continue
		}
		for _, n := range []string{mn.Nickname, mn.Name} {
			if n != "" && strings.Contains(line, "@"+n) {
				mention(u)
				if name == "" {
					name = n
				}
				line = strings.ReplaceAll(line, "@"+n, hold(pill(u, name)))
				break
			}
		}
	}
	out := html.EscapeString(line)
	before := out
	out = boldRE.ReplaceAllString(out, "<strong>$1</strong>")
	out = underRE.ReplaceAllString(out, "<u>$1</u>")
	out = italicRE.ReplaceAllString(out, "$1<em>$2</em>")
	out = italic2RE.ReplaceAllString(out, "$1<em>$2</em>$3")
	out = strikeRE.ReplaceAllString(out, "<del>$1</del>")
	out = spoilerRE.ReplaceAllString(out, "<span data-mx-spoiler>$1</span>")
	if out != before {
		*formatted = true
	}
	if len(held) > 0 {
		var sb strings.Builder
		for {
			i := strings.IndexByte(out, 0)
			if i < 0 {
				sb.WriteString(out)
				break
			}
			j := strings.IndexByte(out[i+1:], 0)
			if j < 0 {
				sb.WriteString(out)
				break
			}
			n, _ := strconv.Atoi(out[i+1 : i+1+j])
			sb.WriteString(out[:i])
			if n < len(held) {
				sb.WriteString(held[n])
			}
			out = out[i+1+j+1:]
		}
		out = sb.String()
	}
	return out
}

func pill(u id.UserID, name string) string {
	return `<a href="https://matrix.to/#/` + html.EscapeString(string(u)) + `">` + html.EscapeString(name) + "</a>"
}
