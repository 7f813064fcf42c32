package ircconn

import (
	"fmt"
	"html"
	"strconv"
	"strings"
)

// mIRC formatting control characters.
const (
	fmtBold      = '\x02'
	fmtColour    = '\x03'
	fmtHexColour = '\x04'
	fmtReset     = '\x0f'
	fmtMono      = '\x11'
	fmtReverse   = '\x16'
	fmtItalic    = '\x1d'
	fmtStrike    = '\x1e'
	fmtUnderline = '\x1f'
)

// NoColour is the Colour of text without a colour.
const NoColour Colour = -1

// Colour is an mIRC colour number, 0-98, or NoColour. (99, "default", is
// read as NoColour; \x04 hexadecimal colours are read as the nearest of 0-15.)
type Colour int

// palette holds the RGB values of mIRC colours 0-15.
var palette = [16][3]uint8{
	{0xff, 0xff, 0xff}, {0x00, 0x00, 0x00}, {0x00, 0x00, 0x7f}, {0x00, 0x93, 0x00},
	{0xff, 0x00, 0x00}, {0x7f, 0x00, 0x00}, {0x9c, 0x00, 0x9c}, {0xfc, 0x7f, 0x00},
	{0xff, 0xff, 0x00}, {0x00, 0xfc, 0x00}, {0x00, 0x93, 0x93}, {0x00, 0xff, 0xff},
	{0x00, 0x00, 0xfc}, {0xff, 0x00, 0xff}, {0x7f, 0x7f, 0x7f}, {0xd2, 0xd2, 0xd2},
}

// Hex returns the colour as "#rrggbb", or "" for NoColour and the extended
// colours 16-98, which have no agreed RGB value.
func (c Colour) Hex() string {
	if c < 0 || int(c) >= len(palette) {
		return ""
	}
	p := palette[c]
	return fmt.Sprintf("#%02x%02x%02x", p[0], p[1], p[2])
}

// NearestColour returns the mIRC colour 0-15 closest to "#rrggbb" (or
// "rrggbb"), or NoColour when s is not such a colour.
func NearestColour(s string) Colour {
	s = strings.TrimPrefix(s, "#")
	if len(s) != 6 {
		return NoColour
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return NoColour
	}
	r, g, b := int(v>>16), int(v>>8&0xff), int(v&0xff)
	best, bestD := NoColour, 1<<30
	for i, p := range palette {
		dr, dg, db := r-int(p[0]), g-int(p[1]), b-int(p[2])
		if d := dr*dr + dg*dg + db*db; d < bestD {
			best, bestD = Colour(i), d
		}
	}
	return best
}

// Style is the formatting of a run of text.
type Style struct {
	Bold, Italic, Underline, Strike, Mono, Reverse bool
	FG, BG                                         Colour
}

// Plain is the style of unformatted text.
var Plain = Style{FG: NoColour, BG: NoColour}

// Span is a run of text in one style.
type Span struct {
	Style
	Text string
}

// ParseFormatting reads mIRC formatting codes into spans. Adjacent spans
// always differ in style, and no span is empty.
func ParseFormatting(s string) []Span {
	var spans []Span
	st := Plain
	var text strings.Builder
	flush := func() {
		if text.Len() == 0 {
			return
		}
		if n := len(spans); n > 0 && spans[n-1].Style == st {
			spans[n-1].Text += text.String()
		} else {
			spans = append(spans, Span{Style: st, Text: text.String()})
		}
		text.Reset()
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case fmtBold, fmtItalic, fmtUnderline, fmtStrike, fmtMono, fmtReverse, fmtReset:
			flush()
			switch c {
			case fmtBold:
				st.Bold = !st.Bold
			case fmtItalic:
				st.Italic = !st.Italic
			case fmtUnderline:
				st.Underline = !st.Underline
			case fmtStrike:
				st.Strike = !st.Strike
			case fmtMono:
				st.Mono = !st.Mono
			case fmtReverse:
				st.Reverse = !st.Reverse
			case fmtReset:
				st = Plain
			}
		case fmtColour, fmtHexColour:
			flush()
			n := colourCodeLen(s[i:])
			st.FG, st.BG = readColours(s[i:i+n], st.BG)
			i += n - 1
		default:
			text.WriteByte(c)
		}
	}
	flush()
	return spans
}

// readColours applies one colour code to the current background: a bare
// code resets both colours; a code with only a foreground keeps the
// background.
func readColours(code string, bg Colour) (Colour, Colour) {
	body := code[1:]
	if body == "" {
		return NoColour, NoColour
	}
	f, b, hasB := strings.Cut(body, ",")
	conv := func(v string) Colour {
		if code[0] == fmtHexColour {
			return NearestColour(v)
		}
		n, _ := strconv.Atoi(v)
		if n >= 99 {
			return NoColour
		}
		return Colour(n)
	}
	fg := conv(f)
	if hasB {
		bg = conv(b)
	}
	return fg, bg
}

// Format writes spans back as mIRC formatted text; it ends with a reset when
// the last span is not plain, and resets before every newline (reopening the
// style after it), since each IRC line starts plain. For spans without
// newlines ParseFormatting(Format(spans)) gives back the spans (merged where
// neighbours share a style).
func Format(spans []Span) string {
	var b strings.Builder
	cur := Plain
	for _, sp := range spans {
		if sp.Text == "" {
			continue
		}
		// Each IRC line starts unformatted, so a styled span that crosses a
		// newline is closed before it and reopened after it.
		for i, line := range strings.Split(sp.Text, "\n") {
			if i > 0 {
				if cur != Plain {
					b.WriteByte(fmtReset)
				}
				b.WriteByte('\n')
				cur = Plain
			}
			if line == "" {
				continue
			}
			writeTransition(&b, cur, sp.Style, line)
			b.WriteString(line)
			cur = sp.Style
		}
	}
	if cur != Plain {
		b.WriteByte(fmtReset)
	}
	return b.String()
}

func writeTransition(b *strings.Builder, from, to Style, next string) {
	if to == Plain && (from.FG != NoColour || from.BG != NoColour) {
		b.WriteByte(fmtReset)
		return
	}
	toggle := func(was, is bool, c byte) {
		if was != is {
			b.WriteByte(c)
		}
	}
	toggle(from.Bold, to.Bold, fmtBold)
	toggle(from.Italic, to.Italic, fmtItalic)
	toggle(from.Underline, to.Underline, fmtUnderline)
	toggle(from.Strike, to.Strike, fmtStrike)
	toggle(from.Mono, to.Mono, fmtMono)
	toggle(from.Reverse, to.Reverse, fmtReverse)
	if from.FG == to.FG && from.BG == to.BG {
		return
	}
	defer func() {
		// Text starting with digits or a comma would be read as part of the
		// colour code: an empty bold toggle pair ends the code.
		if next != "" && (isDigit(next[0]) || next[0] == ',') {
			b.WriteString("\x02\x02")
		}
	}()
	if to.FG == NoColour && to.BG == NoColour {
		b.WriteByte(fmtColour)
		return
	}
	if to.BG == NoColour && from.BG != NoColour {
		b.WriteByte(fmtColour) // only a full reset clears the background
	}
	fg := to.FG
	if fg == NoColour {
		fg = 99
	}
	fmt.Fprintf(b, "\x03%02d", int(fg))
	if to.BG != NoColour {
		fmt.Fprintf(b, ",%02d", int(to.BG))
	}
}

// StripFormatting removes every mIRC formatting code.
func StripFormatting(s string) string {
	if !HasFormatting(s) {
		return s
	}
	var b strings.Builder
	for _, sp := range ParseFormatting(s) {
		b.WriteString(sp.Text)
	}
	return b.String()
}

// HasFormatting reports whether s contains an mIRC formatting code.
func HasFormatting(s string) bool {
	return strings.ContainsAny(s, "\x02\x03\x04\x0f\x11\x16\x1d\x1e\x1f")
}

// ToHTML converts mIRC formatted text to the Matrix HTML subset: <b>, <i>,
// <u>, <del>, <code> and <font data-mx-color data-mx-bg-color>, everything
// else escaped. Reverse video has no HTML form and is dropped.
func ToHTML(s string) string {
	var b strings.Builder
	for _, sp := range ParseFormatting(s) {
		var closers []string
		open := func(tag, attrs string) {
			b.WriteString("<" + tag + attrs + ">")
			closers = append(closers, "</"+tag+">")
		}
		fg, bg := sp.FG.Hex(), sp.BG.Hex()
		if fg != "" || bg != "" {
			attrs := ""
			if fg != "" {
				attrs += ` data-mx-color="` + fg + `"`
			}
			if bg != "" {
				attrs += ` data-mx-bg-color="` + bg + `"`
			}
			open("font", attrs)
		}
		if sp.Bold {
			open("b", "")
		}
		if sp.Italic {
			open("i", "")
		}
		if sp.Underline {
			open("u", "")
		}
		if sp.Strike {
			open("del", "")
		}
		if sp.Mono {
			open("code", "")
		}
		b.WriteString(html.EscapeString(sp.Text))
		for i := len(closers) - 1; i >= 0; i-- {
			b.WriteString(closers[i])
		}
	}
	return b.String()
}
