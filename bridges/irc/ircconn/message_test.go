package ircconn

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string
		want *Message
	}{
		{"simple", "PING :abc\r\n", &Message{Command: "PING", Params: []string{"abc"}}},
		{"lowercase command", "privmsg #a :hi", &Message{Command: "PRIVMSG", Params: []string{"#a", "hi"}}},
		{"source and trailing", ":nick!user@host PRIVMSG #chan :hello world",
			&Message{Source: "nick!user@host", Command: "PRIVMSG", Params: []string{"#chan", "hello world"}}},
		{"numeric", ":irc.test 001 me :Welcome", &Message{Source: "irc.test", Command: "001", Params: []string{"me", "Welcome"}}},
		{"empty trailing", "TOPIC #a :", &Message{Command: "TOPIC", Params: []string{"#a", ""}}},
		{"trailing with colon", "PRIVMSG #a ::)", &Message{Command: "PRIVMSG", Params: []string{"#a", ":)"}}},
		{"extra spaces", ":s   MODE  #a   +o  x ", &Message{Source: "s", Command: "MODE", Params: []string{"#a", "+o", "x"}}},
		{"tags", "@time=2024-01-02T03:04:05.678Z;msgid=abc;+draft/reply=x :n!u@h PRIVMSG #a b",
			&Message{Tags: map[string]string{"time": "2024-01-02T03:04:05.678Z", "msgid": "abc", "+draft/reply": "x"},
				Source: "n!u@h", Command: "PRIVMSG", Params: []string{"#a", "b"}}},
		{"tag escapes", `@a=x\sy\:z\\w\r\n;b;c=;d=\q\ TAGMSG`,
			&Message{Tags: map[string]string{"a": "x y;z\\w\r\n", "b": "", "c": "", "d": "q"}, Command: "TAGMSG"}},
		{"empty tags skipped, last wins", "@a=1;;a=2 CMD", &Message{Tags: map[string]string{"a": "2"}, Command: "CMD"}},
		{"utf-8", "PRIVMSG #a :héllo ☃", &Message{Command: "PRIVMSG", Params: []string{"#a", "héllo ☃"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.line)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Parse(%q)\n got %#v\nwant %#v", tc.line, got, tc.want)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	for _, line := range []string{"", "   ", "@ CMD", "@a=b", ": CMD", ":src", "PRIV\x00MSG", "A\rB", "PRIVMSG #a :x\ny", "PRIV-MSG x", ":s :x"} {
		if m, err := Parse(line); err == nil {
			t.Errorf("Parse(%q) = %#v, want an error", line, m)
		}
	}
	if _, err := Parse(""); !errors.Is(err, ErrEmptyMessage) {
		t.Errorf("Parse(\"\") error %v, want ErrEmptyMessage", err)
	}
}

func TestSerialise(t *testing.T) {
	for _, tc := range []struct {
		m    *Message
		want string
	}{
		{NewMessage("privmsg", "#a", "hello world"), "PRIVMSG #a :hello world"},
		{NewMessage("PRIVMSG", "#a", "word"), "PRIVMSG #a word"},
		{NewMessage("PRIVMSG", "#a", ":)"), "PRIVMSG #a ::)"},
		{NewMessage("TOPIC", "#a", ""), "TOPIC #a :"},
		{NewMessage("QUIT"), "QUIT"},
		{&Message{Tags: map[string]string{"b": "x y", "a": "", "+c": `;\`}, Source: "s", Command: "TAGMSG", Params: []string{"#a"}},
			`@+c=\:\\;a;b=x\sy :s TAGMSG #a`},
	} {
		if err := tc.m.Validate(); err != nil {
			t.Errorf("Validate(%q): %v", tc.want, err)
		}
		if got := tc.m.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
		if got := string(tc.m.Bytes()); got != tc.want+"\r\n" {
			t.Errorf("Bytes() = %q", got)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, m := range []*Message{
		{},
		{Command: "PRIV MSG"},
		{Command: "PRIVMSG", Params: []string{"#a b", "x"}},
		{Command: "PRIVMSG", Params: []string{"", "x"}},
		{Command: "PRIVMSG", Params: []string{":a", "x"}},
		{Command: "PRIVMSG", Params: []string{"#a", "x\r\nQUIT"}},
		{Command: "PRIVMSG", Source: "a b"},
		{Command: "PRIVMSG", Tags: map[string]string{"a;b": ""}},
		{Command: "PRIVMSG", Tags: map[string]string{"a": "\x00"}},
	} {
		if err := m.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Validate(%#v) = %v, want ErrInvalid", m, err)
		}
	}
}

func TestTagEscaping(t *testing.T) {
	for _, v := range []string{"", "plain", "a b", "a;b", `a\b`, "a\r\nb", `\`, `;;\\  `, "☃ snow"} {
		esc := EscapeTagValue(v)
		if strings.ContainsAny(esc, "; \r\n") {
			t.Errorf("EscapeTagValue(%q) = %q still has a separator", v, esc)
		}
		if got := UnescapeTagValue(esc); got != v {
			t.Errorf("UnescapeTagValue(EscapeTagValue(%q)) = %q", v, got)
		}
	}
	if got := UnescapeTagValue(`a\`); got != "a" {
		t.Errorf("trailing backslash: %q", got)
	}
}

func TestMessageAccessors(t *testing.T) {
	m, err := Parse("@time=2024-05-06T07:08:09.123Z;msgid=m1;label=l1;batch=b1;+typing=active;+draft/reply=m0 :n!u@h PRIVMSG #a :x")
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2024, 5, 6, 7, 8, 9, 123e6, time.UTC)
	if !m.Time().Equal(want) || m.MsgID() != "m1" || m.Label() != "l1" || m.BatchRef() != "b1" {
		t.Fatalf("accessors: %v %q %q %q", m.Time(), m.MsgID(), m.Label(), m.BatchRef())
	}
	if ct := m.ClientTags(); !reflect.DeepEqual(ct, map[string]string{"+typing": "active", "+draft/reply": "m0"}) {
		t.Fatalf("ClientTags = %v", ct)
	}
	if p := m.Prefix(); p != (Prefix{"n", "u", "h"}) || p.String() != "n!u@h" {
		t.Fatalf("Prefix = %#v", p)
	}
	c := m.Clone()
	c.Tags["msgid"] = "changed"
	c.Params[0] = "#b"
	if m.MsgID() != "m1" || m.Param(0) != "#a" || m.Param(5) != "" || m.Trailing() != "x" {
		t.Fatal("Clone shares state, or Param/Trailing wrong")
	}
	if (&Message{}).Time() != (time.Time{}) {
		t.Fatal("no time tag should give the zero time")
	}
	if m.IsNumeric() || !(&Message{Command: "353"}).IsNumeric() {
		t.Fatal("IsNumeric")
	}
}

func TestParsePrefix(t *testing.T) {
	for in, want := range map[string]Prefix{
		"irc.example.org":     {Name: "irc.example.org"},
		"nick":                {Name: "nick"},
		"nick!user@host":      {"nick", "user", "host"},
		"nick@host":           {Name: "nick", Host: "host"},
		"nick!~u@2001:db8::1": {"nick", "~u", "2001:db8::1"},
	} {
		got := ParsePrefix(in)
		if got != want || got.String() != in {
			t.Errorf("ParsePrefix(%q) = %#v (%q)", in, got, got.String())
		}
	}
	if !ParsePrefix("irc.test").IsServer() || ParsePrefix("n!u@h.x").IsServer() {
		t.Error("IsServer")
	}
}

// FuzzParse checks that parsing never panics and that whatever parses
// serialises to a line that parses to the same message.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"PING :x", ":n!u@h PRIVMSG #a :hi there", `@a=b\sc;d :s 001 me :Welcome`,
		"@time=2024-01-01T00:00:00.000Z;batch=x :s BATCH +y chathistory #a",
		"CAP * LS * :sasl=PLAIN server-time", "@+draft/reply=\\:\\ TAGMSG #x", ":a b c d e f g h i j k l m n o p q r",
		"PRIVMSG #a ::", "@;; X", "x  :  ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := Parse(line)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("Parse(%q) gave a message Validate rejects: %v", line, err)
		}
		s := m.String()
		m2, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(%q) → %q does not parse: %v", line, s, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip of %q via %q:\n%#v\n%#v", line, s, m, m2)
		}
	})
}

// FuzzSerialise builds messages from fuzzed parts: those Validate accepts
// must come back from Parse unchanged.
func FuzzSerialise(f *testing.F) {
	f.Add("k", "v", "src", "PRIVMSG", "#a", "hello world")
	f.Add("+x", "a;b c\\", "", "001", "me", "")
	f.Fuzz(func(t *testing.T, tagKey, tagVal, source, command, p1, p2 string) {
		m := &Message{Source: source, Command: strings.ToUpper(command), Params: []string{p1, p2}}
		if tagKey != "" {
			m.Tags = map[string]string{tagKey: tagVal}
		}
		if m.Validate() != nil {
			return
		}
		got, err := Parse(m.String())
		if err != nil {
			t.Fatalf("%#v serialised as %q: %v", m, m.String(), err)
		}
		// A tag value loses nothing but a trailing lone backslash, which cannot
		// be written (it is escaped, so it survives).
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("round trip:\n%#v\n%#v\nvia %q", m, got, m.String())
		}
	})
}

func BenchmarkParse(b *testing.B) {
	line := "@time=2024-01-02T03:04:05.678Z;msgid=abcdef123456;+draft/reply=xyz :nick!user@host.example.org PRIVMSG #channel :Hello, this is a fairly ordinary chat message of some length."
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSerialise(b *testing.B) {
	m, _ := Parse("@time=2024-01-02T03:04:05.678Z;msgid=abcdef123456;+draft/reply=xyz :nick!user@host.example.org PRIVMSG #channel :Hello, this is a fairly ordinary chat message of some length.")
	b.SetBytes(int64(len(m.String())))
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Bytes()
	}
}
