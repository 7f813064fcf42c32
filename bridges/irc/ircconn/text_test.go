package ircconn

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestISupport(t *testing.T) {
	var s ISupport
	if s.LineLen() != 512 || s.CaseMapping() != CaseMappingRFC1459 || !s.IsChannel("#a") || s.IsChannel("a") {
		t.Fatal("defaults")
	}
	if m, sym := s.Prefix(); m != "ov" || sym != "@+" {
		t.Fatal("default PREFIX")
	}
	s.Apply([]string{"me", "AWAYLEN=200", "CASEMAPPING=ascii", "CHANMODES=b,k,Hl,imnpst", "LINELEN=1024",
		"NETWORK=Test\\x20Net", "PREFIX=(qaohv)~&@%+", "CHATHISTORY=100", "CHANTYPES=#&", "SAFELIST", "are supported by this server"})
	a, b, c, d := s.ChanModes()
	if a != "b" || b != "k" || c != "Hl" || d != "imnpst" {
		t.Fatalf("CHANMODES %q %q %q %q", a, b, c, d)
	}
	if m, sym := s.Prefix(); m != "qaohv" || sym != "~&@%+" {
		t.Fatalf("PREFIX %q %q", m, sym)
	}
	if s.Network() != "Test Net" || s.LineLen() != 1024 || s.CaseMapping() != CaseMappingASCII {
		t.Fatalf("NETWORK %q LINELEN %d CASEMAPPING %v", s.Network(), s.LineLen(), s.CaseMapping())
	}
	if n, ok := s.ChatHistory(); n != 100 || !ok {
		t.Fatal("CHATHISTORY")
	}
	if _, ok := s.Get("safelist"); !ok {
		t.Fatal("flag token")
	}
	s.Apply([]string{"me", "-CHATHISTORY", "-LINELEN", "are supported"})
	if _, ok := s.ChatHistory(); ok || s.LineLen() != 512 {
		t.Fatal("negated tokens")
	}
	s.Apply([]string{"me", "PREFIX=", "x"})
	if m, _ := s.Prefix(); m != "" {
		t.Fatal("empty PREFIX")
	}
}

func TestCaseMapping(t *testing.T) {
	for _, tc := range []struct {
		cm   CaseMapping
		a, b string
		eq   bool
	}{
		{CaseMappingRFC1459, "Nick[]\\~", "nick{}|^", true},
		{CaseMappingStrictRFC1459, "Nick[]\\", "nick{}|", true},
		{CaseMappingStrictRFC1459, "a~", "a^", false},
		{CaseMappingASCII, "NICK", "nick", true},
		{CaseMappingASCII, "[x]", "{x}", false},
		{CaseMappingRFC1459, "#Chan", "#chan", true},
		{CaseMappingRFC1459, "ab", "abc", false},
		{CaseMappingRFC1459, "É", "é", false}, // only ASCII letters fold
	} {
		if got := tc.cm.Equal(tc.a, tc.b); got != tc.eq {
			t.Errorf("%v.Equal(%q, %q) = %v", tc.cm, tc.a, tc.b, got)
		}
		if got := tc.cm.Fold(tc.a) == tc.cm.Fold(tc.b); got != tc.eq {
			t.Errorf("%v.Fold(%q) vs Fold(%q): %v", tc.cm, tc.a, tc.b, got)
		}
	}
	for _, name := range []string{"ascii", "rfc1459", "strict-rfc1459"} {
		if ParseCaseMapping(name).String() != name {
			t.Errorf("ParseCaseMapping(%q)", name)
		}
	}
	if ParseCaseMapping("rfc7613") != CaseMappingRFC1459 {
		t.Error("unknown mapping")
	}
}

func TestTextBudget(t *testing.T) {
	src := "nick!user@host"
	text := " " + strings.Repeat("x", TextBudget(512, len(src), "PRIVMSG", "#chan")-1)
	line := (&Message{Source: src, Command: "PRIVMSG", Params: []string{"#chan", text}}).Bytes()
	if len(line) != 512 {
		t.Fatalf("a line filling the budget is %d bytes, want 512", len(line))
	}
}

func TestSplitText(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		max  int
		want []string
	}{
		{"fits", "hello world", 20, []string{"hello world"}},
		{"at space", "hello world again", 12, []string{"hello world ", "again"}},
		{"no space", "abcdefghij", 4, []string{"abcd", "efgh", "ij"}},
		{"space too early", "a bcdefghijkl", 8, []string{"a bcdefg", "hijkl"}},
		{"utf-8", "ééééé", 5, []string{"éé", "éé", "é"}},
		{"snowmen", "☃☃☃", 4, []string{"☃", "☃", "☃"}},
		{"tiny max", "é", 1, []string{"é"}},
		{"newlines", "one\ntwo\r\n\nthree", 100, []string{"one", "two", "three"}},
		{"colour code kept whole", "abcdefg\x0304,05red", 9, []string{"abcdefg", "\x0304,05red"}},
		{"hex colour kept whole", "abc\x04ff0000x", 6, []string{"abc", "\x04ff0000", "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := SplitText(tc.text, tc.max)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("SplitText(%q, %d) = %q, want %q", tc.text, tc.max, got, tc.want)
			}
		})
	}
}

func FuzzSplitText(f *testing.F) {
	f.Add("hello world, this is a long line", 7)
	f.Add("ü☃ 🎉x\x0312,04y", 3)
	f.Fuzz(func(t *testing.T, text string, max int) {
		if max < 1 || max > 600 || !utf8.ValidString(text) || strings.ContainsAny(text, "\r\n") {
			return
		}
		parts := SplitText(text, max)
		if got := strings.Join(parts, ""); got != text {
			t.Fatalf("parts %q do not concatenate to %q", parts, text)
		}
		for _, p := range parts {
			if !utf8.ValidString(p) || p == "" {
				t.Fatalf("bad part %q of %q", p, text)
			}
			if r, size := utf8.DecodeRuneInString(p); len(p) > max && size != len(p) && !(r == '\x03' || r == '\x04') {
				t.Fatalf("part %q longer than %d", p, max)
			}
		}
	})
}

func TestCTCP(t *testing.T) {
	if a := Action("waves"); a != "\x01ACTION waves\x01" {
		t.Fatalf("Action = %q", a)
	}
	if text, ok := ParseAction("\x01ACTION waves hello\x01"); !ok || text != "waves hello" {
		t.Fatal("ParseAction")
	}
	if text, ok := ParseAction("\x01ACTION no closing"); !ok || text != "no closing" {
		t.Fatal("ParseAction without closing \\x01")
	}
	if cmd, args, ok := ParseCTCP("\x01version\x01"); !ok || cmd != "VERSION" || args != "" {
		t.Fatal("ParseCTCP VERSION")
	}
	for _, s := range []string{"", "plain", "\x01", "\x01\x01"} {
		if _, _, ok := ParseCTCP(s); ok {
			t.Errorf("ParseCTCP(%q) ok", s)
		}
	}
	if _, ok := ParseAction(CTCP("PING", "123")); ok {
		t.Error("PING is not an action")
	}
}

func TestParseFormatting(t *testing.T) {
	bold := Plain
	bold.Bold = true
	red := Plain
	red.FG = 4
	redOnBlue := red
	redOnBlue.BG = 2
	all := Style{Bold: true, Italic: true, Underline: true, Strike: true, Mono: true, Reverse: true, FG: NoColour, BG: NoColour}
	for _, tc := range []struct {
		in   string
		want []Span
	}{
		{"plain", []Span{{Plain, "plain"}}},
		{"a\x02b\x02c", []Span{{Plain, "a"}, {bold, "b"}, {Plain, "c"}}},
		{"\x02\x1d\x1f\x1e\x11\x16x\x0fy", []Span{{all, "x"}, {Plain, "y"}}},
		{"\x034red\x03 plain", []Span{{red, "red"}, {Plain, " plain"}}},
		{"\x0304,02x\x0304y", []Span{{redOnBlue, "xy"}}},
		{"\x0304,x", []Span{{red, ",x"}}},
		{"\x0399,02x", []Span{{Style{FG: NoColour, BG: 2}, "x"}}},
		{"\x04ff0000x", []Span{{red, "x"}}},
		{"\x0312345", []Span{{Style{FG: 12, BG: NoColour}, "345"}}},
		{"\x02\x02", nil},
	} {
		got := ParseFormatting(tc.in)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseFormatting(%q)\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
	if s := StripFormatting("\x02bold\x02 \x0304,05red\x03 \x1ditalic\x0f"); s != "bold red italic" {
		t.Errorf("StripFormatting = %q", s)
	}
}

func TestFormatRoundTrip(t *testing.T) {
	for _, in := range []string{
		"plain", "a\x02b\x02c", "\x0304,02x\x03 \x0312y\x0f", "\x0304red\x03123", "\x0304,02a\x0304b", "\x0304a\x03,5",
		"\x02\x1d\x1f\x1e\x11\x16all\x0f", "\x0399,02bg only",
	} {
		spans := ParseFormatting(in)
		out := Format(spans)
		if got := ParseFormatting(out); !reflect.DeepEqual(got, spans) {
			t.Errorf("%q → %+v → %q → %+v", in, spans, out, got)
		}
	}
}

func FuzzFormatting(f *testing.F) {
	f.Add("\x02b\x0304,05c\x03d\x1di\x0f")
	f.Add("<b>&amp;</b>")
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsRune(s, '\n') {
			return
		}
		spans := ParseFormatting(s)
		if got := ParseFormatting(Format(spans)); !reflect.DeepEqual(got, spans) {
			t.Fatalf("%q: %+v != %+v", s, got, spans)
		}
		h := ToHTML(s)
		if strings.Contains(StripTags(h), "<") {
			t.Fatalf("ToHTML(%q) = %q lets markup through", s, h)
		}
		_ = FromHTML(s)
	})
}

// StripTags removes the tags ToHTML writes, leaving only escaped text.
func StripTags(h string) string {
	for _, tag := range []string{"b", "i", "u", "del", "code", "font"} {
		h = strings.ReplaceAll(h, "</"+tag+">", "")
		for {
			i := strings.Index(h, "<"+tag)
			if i < 0 {
				break
			}
			j := strings.IndexByte(h[i:], '>')
			h = h[:i] + h[i+j+1:]
		}
	}
	return h
}

func TestToHTML(t *testing.T) {
	for in, want := range map[string]string{
		"a <b> & \"c\"":               "a &lt;b&gt; &amp; &#34;c&#34;",
		"\x02bold\x02 \x1ditalic\x1d": "<b>bold</b> <i>italic</i>",
		"\x1funder\x1e\x1fstrike":     "<u>under</u><del>strike</del>",
		"\x11mono\x11":                "<code>mono</code>",
		"\x0304,02x":                  `<font data-mx-color="#ff0000" data-mx-bg-color="#00007f">x</font>`,
		"\x0304\x02<>":                `<font data-mx-color="#ff0000"><b>&lt;&gt;</b></font>`,
		"\x0350extended":              "extended",
		"\x16reverse":                 "reverse",
	} {
		if got := ToHTML(in); got != want {
			t.Errorf("ToHTML(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFromHTML(t *testing.T) {
	for in, want := range map[string]string{
		"plain &amp; simple":                                                  "plain & simple",
		"<b>bold</b> <strong>s</strong>":                                      "\x02bold\x02 \x02s\x0f",
		"<i>i</i><em>e</em>":                                                  "\x1die\x0f",
		"<u>u</u> <del>d</del> <s>s</s> <strike>k</strike>":                   "\x1fu\x1f \x1ed\x1e \x1es\x1e \x1ek\x0f",
		"<code>x = 1</code>":                                                  "\x11x = 1\x0f",
		"<pre><code>a\nb</code></pre>after":                                   "\x11a\x0f\n\x11b\x0f\nafter",
		`<font data-mx-color="#ff0000">red</font>`:                            "\x0304red\x0f",
		`<span data-mx-color="#fe0101" data-mx-bg-color="#000080">x</span>`:   "\x0304,02x\x0f",
		"line<br>next<br/>last":                                               "line\nnext\nlast",
		"<p>one</p><p>two</p>":                                                "one\ntwo",
		`<a href="https://example.org">site</a>`:                              "site (https://example.org)",
		`<a href="https://example.org">https://example.org</a>`:               "https://example.org",
		`<a href="https://matrix.to/#/@alice:example.org">Alice</a>: hi`:      "Alice: hi",
		`<mx-reply><blockquote>quoted <b>x</b></blockquote></mx-reply>answer`: "answer",
		"<ul><li>a</li><li>b</li></ul>":                                       "• a\n• b",
		"<blockquote>q</blockquote>r":                                         "> q\nr",
		`<img src="mxc://x/y" alt="cat">`:                                     "cat",
		"<script>alert(1)</script>":                                           "alert(1)",
		"<b>unclosed":                                                         "\x02unclosed\x0f",
		"</i>stray":                                                           "stray",
		"<b>multi\nline</b>":                                                  "\x02multi\x0f\n\x02line\x0f",
	} {
		if got := FromHTML(in); got != want {
			t.Errorf("FromHTML(%q)\n got %q\nwant %q", in, got, want)
		}
	}
}

func TestHTMLRoundTrip(t *testing.T) {
	in := "\x02bold\x02 \x1ditalic\x1d \x0304,02colour\x03 \x11code\x11 <&>"
	if got := FromHTML(ToHTML(in)); !reflect.DeepEqual(ParseFormatting(got), ParseFormatting(in)) {
		t.Fatalf("FromHTML(ToHTML(%q)) = %q", in, got)
	}
}

func TestNearestColour(t *testing.T) {
	for in, want := range map[string]Colour{"#ff0000": 4, "000000": 1, "#fefefe": 0, "#00007e": 2, "bad": NoColour, "#12345": NoColour, "#gggggg": NoColour} {
		if got := NearestColour(in); got != want {
			t.Errorf("NearestColour(%q) = %d, want %d", in, got, want)
		}
	}
	if Colour(4).Hex() != "#ff0000" || NoColour.Hex() != "" || Colour(40).Hex() != "" {
		t.Error("Hex")
	}
}

func TestTokenBucket(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newTokenBucket(FloodControl{Burst: 3, Interval: time.Second}, t0)
	for i := 0; i < 3; i++ {
		if w := b.take(t0); w != 0 {
			t.Fatalf("burst line %d waits %v", i, w)
		}
	}
	if w := b.take(t0); w != time.Second {
		t.Fatalf("fourth line waits %v, want 1s", w)
	}
	if w := b.take(t0.Add(400 * time.Millisecond)); w != 600*time.Millisecond {
		t.Fatalf("after 400ms waits %v, want 600ms", w)
	}
	if w := b.take(t0.Add(time.Second)); w != 0 {
		t.Fatalf("after 1s waits %v", w)
	}
	b.force(t0.Add(time.Second)) // a PONG goes into debt
	if w := b.take(t0.Add(time.Second)); w != 2*time.Second {
		t.Fatalf("after a forced line waits %v, want 2s", w)
	}
	// Refill is capped at the burst.
	if w := b.take(t0.Add(time.Hour)); w != 0 {
		t.Fatal(w)
	}
	for i := 0; i < 2; i++ {
		b.take(t0.Add(time.Hour))
	}
	if w := b.take(t0.Add(time.Hour)); w == 0 {
		t.Fatal("bucket holds more than its burst")
	}
	unlimited := newTokenBucket(FloodControl{Burst: 1}, t0)
	for i := 0; i < 10; i++ {
		if unlimited.take(t0) != 0 {
			t.Fatal("Interval 0 must not limit")
		}
	}
}

func TestSASLChunks(t *testing.T) {
	if got := SASLChunks(""); !reflect.DeepEqual(got, []string{"+"}) {
		t.Fatalf("empty: %q", got)
	}
	if got := SASLChunks("\x00user\x00pass"); !reflect.DeepEqual(got, []string{"AHVzZXIAcGFzcw=="}) {
		t.Fatalf("short: %q", got)
	}
	// 300 bytes encode to exactly 400: a "+" must follow.
	got := SASLChunks(strings.Repeat("a", 300))
	if len(got) != 2 || len(got[0]) != 400 || got[1] != "+" {
		t.Fatalf("400 bytes: %d chunks, last %q", len(got), got[len(got)-1])
	}
	got = SASLChunks(strings.Repeat("a", 301))
	if len(got) != 2 || len(got[0]) != 400 || got[1] == "+" || len(got[1]) == 0 {
		t.Fatalf("401+ bytes: %q", got)
	}
}

func TestHistoryRequest(t *testing.T) {
	ts := time.Date(2024, 1, 2, 3, 4, 5, 6e6, time.UTC)
	for _, tc := range []struct {
		r    HistoryRequest
		want string
	}{
		{HistoryRequest{Sub: HistoryLatest, Target: "#a", Limit: 50}, "CHATHISTORY LATEST #a * 50"},
		{HistoryRequest{Sub: HistoryBefore, Target: "#a", From: HistoryAnchor{MsgID: "m1"}, Limit: 10}, "CHATHISTORY BEFORE #a msgid=m1 10"},
		{HistoryRequest{Sub: "after", Target: "#a", From: HistoryAnchor{Time: ts}, Limit: 10}, "CHATHISTORY AFTER #a timestamp=2024-01-02T03:04:05.006Z 10"},
		{HistoryRequest{Sub: HistoryAround, Target: "nick", From: HistoryAnchor{MsgID: "x"}, Limit: 5}, "CHATHISTORY AROUND nick msgid=x 5"},
		{HistoryRequest{Sub: HistoryBetween, Target: "#a", From: HistoryAnchor{MsgID: "a"}, To: HistoryAnchor{Time: ts}, Limit: 100},
			"CHATHISTORY BETWEEN #a msgid=a timestamp=2024-01-02T03:04:05.006Z 100"},
	} {
		if got := tc.r.Message().String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
