package ircconn

import (
	"strings"

	"golang.org/x/net/html"
)

// FromHTML converts Matrix HTML (org.matrix.custom.html) to mIRC formatted
// text: <b>/<strong>, <i>/<em>, <u>/<ins>, <s>/<del>/<strike>, <code>/<pre>
// and colours (data-mx-color, data-mx-bg-color, color; mapped to the nearest
// mIRC colour 0-15) become formatting; <br> and block elements become
// newlines; links become "text (url)" unless the text is the URL or the link
// is a matrix.to mention; images become their alt text; the reply fallback
// (<mx-reply>) is dropped; every other tag is ignored, its text kept.
// Newlines separate lines: pass the result to SplitText.
func FromHTML(s string) string {
	var spans []Span
	st := Plain
	type frame struct {
		tag   string
		saved Style
		href  string
		text  int // length of the text written when the element opened
	}
	var stack []frame
	var out strings.Builder // plain text so far, for link text comparison
	write := func(text string) {
		if text == "" {
			return
		}
		out.WriteString(text)
		if n := len(spans); n > 0 && spans[n-1].Style == st {
			spans[n-1].Text += text
		} else {
			spans = append(spans, Span{Style: st, Text: text})
		}
	}
	newline := func() {
		if out.Len() > 0 && !strings.HasSuffix(out.String(), "\n") {
			saved := st
			st = Plain
			write("\n")
			st = saved
		}
	}
	skip := 0 // depth inside <mx-reply>
	z := html.NewTokenizer(strings.NewReader(s))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		tok := z.Token()
		switch tt {
		case html.TextToken:
			if skip == 0 {
				write(tok.Data)
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name := tok.Data
			if name == "mx-reply" {
				if tt == html.StartTagToken {
					skip++
				}
				continue
			}
			if skip > 0 {
				continue
			}
			switch name {
			case "br":
				write("\n")
				continue
			case "hr":
				newline()
				write("---")
				newline()
				continue
			case "img":
				if alt := attr(tok, "alt"); alt != "" {
					write(alt)
				}
				continue
			}
			if tt == html.SelfClosingTagToken {
				continue
			}
			f := frame{tag: name, saved: st, text: out.Len()}
			switch name {
			case "b", "strong":
				st.Bold = true
			case "i", "em":
				st.Italic = true
			case "u", "ins":
				st.Underline = true
			case "s", "del", "strike":
				st.Strike = true
			case "code":
				st.Mono = true
			case "pre":
				newline()
				st.Mono = true
			case "font", "span":
				if c := NearestColour(firstAttr(tok, "data-mx-color", "color")); c != NoColour {
					st.FG = c
				}
				if c := NearestColour(attr(tok, "data-mx-bg-color")); c != NoColour {
					st.BG = c
				}
			case "a":
				f.href = attr(tok, "href")
			case "li":
				newline()
				write("• ")
			case "blockquote":
				newline()
				write("> ")
			case "p", "div", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "table", "tr", "details", "summary":
				newline()
			}
			stack = append(stack, f)
		case html.EndTagToken:
			name := tok.Data
			if name == "mx-reply" {
				if skip > 0 {
					skip--
				}
				continue
			}
			if skip > 0 {
				continue
			}
			// Close up to the matching element; unmatched end tags are ignored.
			i := len(stack) - 1
			for i >= 0 && stack[i].tag != name {
				i--
			}
			if i < 0 {
				continue
			}
			f := stack[i]
			stack = stack[:i]
			st = f.saved
			switch name {
			case "a":
				text := out.String()[f.text:]
				if f.href != "" && text != f.href && !strings.HasPrefix(f.href, "https://matrix.to/") &&
					strings.TrimPrefix(f.href, "mailto:") != text {
					write(" (" + f.href + ")")
				}
			case "p", "div", "pre", "blockquote", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "details", "summary":
				newline()
			}
		}
	}
	// Drop the trailing newline block elements leave.
	for n := len(spans); n > 0; n = len(spans) {
		t := strings.TrimRight(spans[n-1].Text, "\n")
		if t != "" {
			spans[n-1].Text = t
			break
		}
		spans = spans[:n-1]
	}
	return Format(spans)
}

func attr(tok html.Token, key string) string {
	for _, a := range tok.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func firstAttr(tok html.Token, keys ...string) string {
	for _, k := range keys {
		if v := attr(tok, k); v != "" {
			return v
		}
	}
	return ""
}
