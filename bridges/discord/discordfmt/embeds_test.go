package discordfmt

import "testing"

func plain(text string) (string, string) { return text, "" }

func TestQuoteEmbeds(t *testing.T) {
	body, htm, n := QuoteEmbeds("see <this>", "", []Embed{
		{},
		{Author: "A & B", Title: "T", URL: "https://x.example/?a=1&b=2", Description: "line1\nline2",
			Fields: []Field{{Name: "k", Value: "v"}}, Footer: "f"},
		{Title: "no link", URL: "javascript:alert(1)"},
	}, plain)
	if n != 2 {
		t.Fatalf("%d embeds quoted, want 2", n)
	}
	wantBody := "see <this>\n> A & B\n> T (https://x.example/?a=1&b=2)\n> line1\nline2\n> k: v\n> f\n> no link"
	if body != wantBody {
		t.Errorf("body %q\nwant %q", body, wantBody)
	}
	wantHTML := "see &lt;this&gt;<blockquote><sub>A &amp; B</sub><br>" +
		`<strong><a href="https://x.example/?a=1&amp;b=2">T</a></strong><br>line1<br>line2<br><strong>k</strong>: v<br><sub>f</sub></blockquote>` +
		"<blockquote><strong>no link</strong></blockquote>"
	if htm != wantHTML {
		t.Errorf("html %q\nwant %q", htm, wantHTML)
	}
	if b, h, n := QuoteEmbeds("x", "<b>x</b>", nil, plain); b != "x" || h != "<b>x</b>" || n != 0 {
		t.Errorf("no embeds: %q %q %d", b, h, n)
	}
}
