package telegram

import (
	"fmt"
	"html"
	"slices"
	"strings"
	"unicode/utf16"

	"github.com/go-telegram/bot/models"
	xhtml "golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// mentionFunc names the Matrix user a Telegram user is bridged as (a
// ghost); ok is false when there is none.
type mentionFunc func(user *models.User) (mxid id.UserID, ok bool)

// entitiesToHTML renders Telegram text with its entities (offsets and
// lengths in UTF-16 code units, possibly overlapping) as Matrix HTML. It
// returns "" when no entity formats anything, so that a plain message stays
// plain.
func entitiesToHTML(text string, entities []models.MessageEntity, mention mentionFunc) string {
	units := utf16.Encode([]rune(text))
	var ents []models.MessageEntity
	for _, e := range entities {
		if e.Length <= 0 || e.Offset < 0 || e.Offset+e.Length > len(units) || openTag(e, nil, mention) == "" {
			continue
		}
		ents = append(ents, e)
	}
	if len(ents) == 0 {
		return ""
	}
	// Outer entities first: by start, then the longer one.
	slices.SortStableFunc(ents, func(a, b models.MessageEntity) int {
		if a.Offset != b.Offset {
			return a.Offset - b.Offset
		}
		return b.Length - a.Length
	})
	var b strings.Builder
	var stack []models.MessageEntity // open entities, innermost last
	inPre := 0
	writeText := func(from, to int) {
		s := string(utf16.Decode(units[from:to]))
		s = html.EscapeString(s)
		if inPre == 0 {
			s = strings.ReplaceAll(s, "\n", "<br>")
		}
		b.WriteString(s)
	}
	open := func(e models.MessageEntity) {
		b.WriteString(openTag(e, units, mention))
		if e.Type == models.MessageEntityTypePre || e.Type == models.MessageEntityTypeCode {
			inPre++
		}
		stack = append(stack, e)
	}
	closeTop := func() {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		b.WriteString(closeTag(e))
		if e.Type == models.MessageEntityTypePre || e.Type == models.MessageEntityTypeCode {
			inPre--
		}
	}
	next, pos := 0, 0
	for pos <= len(units) {
		// Close what ends here; an entity closed from under others
		// (overlap) makes them close and open again after it.
		for {
			i := slices.IndexFunc(stack, func(e models.MessageEntity) bool { return e.Offset+e.Length == pos })
			if i < 0 {
				break
			}
			var reopen []models.MessageEntity
			for len(stack) > i+1 {
				reopen = append(reopen, stack[len(stack)-1])
				closeTop()
			}
			closeTop()
			for j := len(reopen) - 1; j >= 0; j-- {
				if reopen[j].Offset+reopen[j].Length > pos { // not ending here too
					open(reopen[j])
				}
			}
		}
		for next < len(ents) && ents[next].Offset == pos {
			open(ents[next])
			next++
		}
		if pos == len(units) {
			break
		}
		// Text up to the next boundary.
		end := len(units)
		if next < len(ents) {
			end = ents[next].Offset
		}
		for _, e := range stack {
			end = min(end, e.Offset+e.Length)
		}
		writeText(pos, end)
		pos = end
	}
	for len(stack) > 0 {
		closeTop()
	}
	return b.String()
}

// openTag is an entity's opening HTML, "" for the entities left as text
// (hashtags, bot commands, @usernames…). units may be nil to ask only
// whether the entity renders.
func openTag(e models.MessageEntity, units []uint16, mention mentionFunc) string {
	covered := func() string {
		if units == nil {
			return "x"
		}
		return string(utf16.Decode(units[e.Offset : e.Offset+e.Length]))
	}
	switch e.Type {
	case models.MessageEntityTypeBold:
		return "<strong>"
	case models.MessageEntityTypeItalic:
		return "<em>"
	case models.MessageEntityTypeUnderline:
		return "<u>"
	case models.MessageEntityTypeStrikethrough:
		return "<del>"
	case models.MessageEntityTypeSpoiler:
		return "<span data-mx-spoiler>"
	case models.MessageEntityTypeCode:
		return "<code>"
	case models.MessageEntityTypePre:
		if e.Language != "" {
			return fmt.Sprintf(`<pre><code class="language-%s">`, html.EscapeString(e.Language))
		}
		return "<pre><code>"
	case models.MessageEntityTypeBlockquote, models.MessageEntityTypeExpandableBlockquote:
		return "<blockquote>"
	case models.MessageEntityTypeTextLink:
		if e.URL == "" {
			return ""
		}
		return fmt.Sprintf(`<a href="%s">`, html.EscapeString(e.URL))
	case models.MessageEntityTypeURL:
		u := covered()
		if !strings.Contains(u, "://") {
			u = "https://" + u
		}
		return fmt.Sprintf(`<a href="%s">`, html.EscapeString(u))
	case models.MessageEntityTypeEmail:
		return fmt.Sprintf(`<a href="mailto:%s">`, html.EscapeString(covered()))
	case models.MessageEntityTypeTextMention:
		if e.User == nil || mention == nil {
			return ""
		}
		mxid, ok := mention(e.User)
		if !ok {
			return ""
		}
		return fmt.Sprintf(`<a href="%s">`, html.EscapeString(mxid.URI().MatrixToURL()))
	}
	return ""
}

func closeTag(e models.MessageEntity) string {
	switch e.Type {
	case models.MessageEntityTypeBold:
		return "</strong>"
	case models.MessageEntityTypeItalic:
		return "</em>"
	case models.MessageEntityTypeUnderline:
		return "</u>"
	case models.MessageEntityTypeStrikethrough:
		return "</del>"
	case models.MessageEntityTypeSpoiler:
		return "</span>"
	case models.MessageEntityTypeCode:
		return "</code>"
	case models.MessageEntityTypePre:
		return "</code></pre>"
	case models.MessageEntityTypeBlockquote, models.MessageEntityTypeExpandableBlockquote:
		return "</blockquote>"
	}
	return "</a>"
}

// textContent is a Telegram text (or caption) as Matrix content: the text
// as body, the entities as HTML.
func textContent(text string, entities []models.MessageEntity, mention mentionFunc) *event.MessageEventContent {
	content := &event.MessageEventContent{MsgType: event.MsgText, Body: text}
	if h := entitiesToHTML(text, entities, mention); h != "" {
		content.Format, content.FormattedBody = event.FormatHTML, h
	}
	return content
}

// ghostNameFunc names a Matrix user on Telegram (for a pill): a ghost's
// Telegram name, a Matrix user's display name.
type ghostNameFunc func(user id.UserID) string

// matrixToTelegram turns a Matrix message's text into Telegram text with
// entities (UTF-16 offsets): HTML when the message has it, else the body.
func matrixToTelegram(content *event.MessageEventContent, name ghostNameFunc) (string, []models.MessageEntity) {
	if content.Format != event.FormatHTML || content.FormattedBody == "" {
		return content.Body, nil
	}
	return htmlToEntities(content.FormattedBody, name)
}

// htmlToEntities converts Matrix HTML into Telegram text and entities.
func htmlToEntities(src string, name ghostNameFunc) (string, []models.MessageEntity) {
	nodes, err := xhtml.ParseFragment(strings.NewReader(src), &xhtml.Node{Type: xhtml.ElementNode, Data: "div", DataAtom: atom.Div})
	if err != nil {
		return src, nil
	}
	w := &entityWriter{name: name}
	for _, n := range nodes {
		w.node(n, 0)
	}
	text := strings.TrimRight(string(utf16.Decode(w.units)), "\n ")
	n := len(utf16.Encode([]rune(text)))
	var ents []models.MessageEntity
	for _, e := range w.ents {
		if e.Offset >= n {
			continue
		}
		e.Length = min(e.Length, n-e.Offset)
		if e.Length > 0 {
			ents = append(ents, e)
		}
	}
	return text, ents
}

type entityWriter struct {
	name  ghostNameFunc
	units []uint16
	ents  []models.MessageEntity
	inPre bool
}

func (w *entityWriter) write(s string) { w.units = append(w.units, utf16.Encode([]rune(s))...) }

// newline ends the current line unless the text is empty or already ends
// with one.
func (w *entityWriter) newline() {
	if len(w.units) > 0 && w.units[len(w.units)-1] != '\n' {
		w.units = append(w.units, '\n')
	}
}

func attr(n *xhtml.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func (w *entityWriter) children(n *xhtml.Node, depth int) {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		w.node(c, depth)
	}
}

func (w *entityWriter) node(n *xhtml.Node, depth int) {
	if depth > 50 {
		return
	}
	switch n.Type {
	case xhtml.TextNode:
		text := n.Data
		if !w.inPre {
			text = strings.ReplaceAll(text, "\n", "")
		}
		w.write(text)
		return
	case xhtml.ElementNode:
	default:
		w.children(n, depth+1)
		return
	}
	var typ models.MessageEntityType
	ent := models.MessageEntity{}
	block := false
	switch n.DataAtom {
	case atom.Br:
		w.write("\n")
		return
	case atom.B, atom.Strong, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
		typ = models.MessageEntityTypeBold
		block = n.DataAtom != atom.B && n.DataAtom != atom.Strong
	case atom.I, atom.Em:
		typ = models.MessageEntityTypeItalic
	case atom.U, atom.Ins:
		typ = models.MessageEntityTypeUnderline
	case atom.S, atom.Del, atom.Strike:
		typ = models.MessageEntityTypeStrikethrough
	case atom.Code:
		if w.inPre {
			w.children(n, depth+1)
			return
		}
		typ = models.MessageEntityTypeCode
	case atom.Pre:
		typ, block = models.MessageEntityTypePre, true
		if c := n.FirstChild; c != nil && c.DataAtom == atom.Code {
			if class, ok := attr(c, "class"); ok {
				ent.Language = strings.TrimPrefix(class, "language-")
			}
		}
	case atom.Blockquote:
		typ, block = models.MessageEntityTypeBlockquote, true
	case atom.A:
		href, _ := attr(n, "href")
		if uri, err := id.ParseMatrixToURL(href); err == nil && uri.Sigil1 == '@' {
			// A pill: the user's name as text.
			if nm := w.name(uri.UserID()); nm != "" {
				w.write(nm)
				return
			}
			w.children(n, depth+1)
			return
		}
		if href != "" {
			typ, ent.URL = models.MessageEntityTypeTextLink, href
		}
	case atom.Span:
		if _, ok := attr(n, "data-mx-spoiler"); ok {
			typ = models.MessageEntityTypeSpoiler
		}
	case atom.P, atom.Div, atom.Ul, atom.Ol, atom.Table, atom.Tr, atom.Hr:
		block = true
	case atom.Li:
		w.newline()
		prefix := "• "
		if p := n.Parent; p != nil && p.DataAtom == atom.Ol {
			i := 1
			for s := n.PrevSibling; s != nil; s = s.PrevSibling {
				if s.Type == xhtml.ElementNode && s.DataAtom == atom.Li {
					i++
				}
			}
			prefix = fmt.Sprintf("%d. ", i)
		}
		w.write(prefix)
		w.children(n, depth+1)
		w.newline()
		return
	case atom.Img:
		alt, _ := attr(n, "alt")
		w.write(alt)
		return
	}
	if n.Data == "mx-reply" {
		return // the reply fallback: Telegram shows the reply itself
	}
	if block {
		w.newline()
	}
	start := len(w.units)
	wasPre := w.inPre
	if typ == models.MessageEntityTypePre {
		w.inPre = true
	}
	w.children(n, depth+1)
	w.inPre = wasPre
	if typ != "" && len(w.units) > start {
		ent.Type, ent.Offset, ent.Length = typ, start, len(w.units)-start
		// Trailing newlines of a block stay outside its entity.
		for ent.Length > 0 && w.units[ent.Offset+ent.Length-1] == '\n' {
			ent.Length--
		}
		if ent.Length > 0 {
			w.ents = append(w.ents, ent)
		}
	}
	if block {
		w.newline()
	}
}
