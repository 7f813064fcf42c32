package telegram

import (
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/go-telegram/bot/models"
)

// FuzzEntitiesToHTML: any text with any entities renders without panic,
// as valid UTF-8.
func FuzzEntitiesToHTML(f *testing.F) {
	f.Add("hello bold world", 6, 4, 0, 11)
	f.Add("😀 x", 1, 2, 0, 1)
	f.Fuzz(func(t *testing.T, text string, off1, len1, off2, len2 int) {
		ents := []models.MessageEntity{{Type: "bold", Offset: off1, Length: len1},
			{Type: "pre", Offset: off2, Length: len2}, {Type: "italic", Offset: off1, Length: len2}}
		if out := entitiesToHTML(text, ents, nil); !utf8.ValidString(out) && utf8.ValidString(text) {
			t.Errorf("invalid UTF-8 from %q: %q", text, out)
		}
	})
}

// FuzzHTMLToEntities: any HTML gives entities inside the text.
func FuzzHTMLToEntities(f *testing.F) {
	f.Add("<b>a <i>b</i></b><br><pre><code>x</code></pre>")
	f.Add("<ol><li>😀</li></ol><blockquote>\n</blockquote>")
	f.Fuzz(func(t *testing.T, src string) {
		text, ents := htmlToEntities(src, nil)
		n := len(utf16.Encode([]rune(text)))
		for _, e := range ents {
			if e.Offset < 0 || e.Length <= 0 || e.Offset+e.Length > n {
				t.Fatalf("%q → %q: entity %+v outside %d units", src, text, e, n)
			}
		}
	})
}
