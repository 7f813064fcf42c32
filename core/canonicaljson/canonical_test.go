package canonicaljson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func canonical(t *testing.T, in string) string {
	t.Helper()
	out, err := Canonical([]byte(in))
	if err != nil {
		t.Fatalf("Canonical(%q): %v", in, err)
	}
	return string(out)
}

// The examples of content/appendices.md "Canonical JSON".
func TestCanonicalSpecExamples(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{}`, `{}`},
		{"{\n    \"one\": 1,\n    \"two\": \"Two\"\n}", `{"one":1,"two":"Two"}`},
		{"{\n    \"b\": \"2\",\n    \"a\": \"1\"\n}", `{"a":"1","b":"2"}`},
		{`{"b":"2","a":"1"}`, `{"a":"1","b":"2"}`},
		{`{"auth": {"success": true, "mxid": "@john.doe:example.com", "profile": {"display_name": "John Doe",
		  "three_pids": [{"medium": "email", "address": "john.doe@example.org"},
		  {"medium": "msisdn", "address": "123456789"}]}}}`,
			`{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}`},
		{`{"a": "日本語"}`, `{"a":"日本語"}`},
		{`{"本": 2, "日": 1}`, `{"日":1,"本":2}`},
		{`{"a": "\u65E5"}`, `{"a":"日"}`},
		{`{"a": null}`, `{"a":null}`},
		{`{"a": -0, "b": 1e10}`, `{"a":0,"b":10000000000.0}`},
	} {
		if got := canonical(t, tc.in); got != tc.want {
			t.Errorf("Canonical(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

// wantEscape is how the spec's grammar writes code points below U+0020.
func wantEscape(r rune) string {
	switch r {
	case '\b':
		return `\b`
	case '\t':
		return `\t`
	case '\n':
		return `\n`
	case '\f':
		return `\f`
	case '\r':
		return `\r`
	}
	return fmt.Sprintf(`\u%04x`, r)
}

// Every code point the issue names, written raw (where JSON allows it),
// escaped in upper and lower case, comes out as the grammar says.
func TestCanonicalCodePoints(t *testing.T) {
	var points []rune
	for r := rune(0); r <= 0x1F; r++ {
		points = append(points, r)
	}
	for r := rune(0x7F); r <= 0x9F; r++ {
		points = append(points, r)
	}
	points = append(points, 0x2028, 0x2029, 0xFEFF, 0xFFFF, 0x10000, 0x1F600, 0x10FFFF, '"', '\\', '/', 'A')
	for _, r := range points {
		want := string(r)
		switch {
		case r < 0x20:
			want = wantEscape(r)
		case r == '"' || r == '\\':
			want = `\` + string(r)
		}
		want = `{"k` + want + `":"` + want + `"}`
		ins := []string{
			fmt.Sprintf(`{"k\u%04x":"\u%04x"}`, r, r),
			fmt.Sprintf(`{"k\u%04X":"\u%04X"}`, r, r),
		}
		if r > 0xFFFF {
			hi, lo := 0xD800+(r-0x10000)>>10, 0xDC00+(r-0x10000)&0x3FF
			ins = []string{fmt.Sprintf(`{"k\u%04x\u%04x":"\u%04X\u%04X"}`, hi, lo, hi, lo)}
		}
		if r >= 0x20 && r != '"' && r != '\\' {
			ins = append(ins, `{"k`+string(r)+`":"`+string(r)+`"}`)
		}
		for _, in := range ins {
			if got := canonical(t, in); got != want {
				t.Errorf("U+%04X: Canonical(%s) = %s, want %s", r, in, got, want)
			}
		}
	}
}

// Keys sort by code point: U+FFFF before U+1F600, where RFC 8785's UTF-16
// order (and so jsontext.Value.Canonicalize) puts the emoji first.
func TestCanonicalSortsByCodePoint(t *testing.T) {
	got := canonical(t, `{"😀":1,"\uffff":2,"a":3,"é":4,"":5}`)
	if want := `{"":5,"a":3,"é":4,"` + "\uffff" + `":2,"😀":1}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

func TestCanonicalNumbers(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// Integers stay as written, whatever their size (Python's json).
		{`[0,-0,1,-1,9007199254740993,-123456789012345678901234567890]`,
			`[0,0,1,-1,9007199254740993,-123456789012345678901234567890]`},
		// Other numbers as Python's repr writes them (python3 -c 'import json; print(json.dumps(json.loads(s)))').
		{`[1.0,100.0,1e16,1.5e16,0.0001,0.00001,123456789012345.6,9999999999999998.0]`,
			`[1.0,100.0,1e+16,1.5e+16,0.0001,1e-05,123456789012345.6,9999999999999998.0]`},
		{`[1e22,1.5e-7,-0.0,0.1,1E5,2.5e-5,1e-400,-1e-400,0.30000000000000004]`,
			`[1e+22,1.5e-07,-0.0,0.1,100000.0,2.5e-05,0.0,-0.0,0.30000000000000004]`},
	} {
		if got := canonical(t, tc.in); got != tc.want {
			t.Errorf("Canonical(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
	if _, err := Canonical([]byte(`[1e400]`)); err == nil {
		t.Error("1e400 (infinite as a float) was encoded")
	}
}

func TestCanonicalDuplicateKeysLastWins(t *testing.T) {
	if got := canonical(t, `{"b":1,"a":1,"b":2,"a":{"x":1,"x":2}}`); got != `{"a":{"x":2},"b":2}` {
		t.Fatalf("got %s", got)
	}
}

func TestCanonicalRefuses(t *testing.T) {
	for _, in := range []string{``, `{`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{"a":1}x`, "{\"a\":\"\x0b\"}"} {
		if _, err := Canonical([]byte(in)); err == nil {
			t.Errorf("Canonical(%q) succeeded", in)
		}
	}
}

// Deep nesting is no limit for Canonical (federation events of any depth
// within 64 KiB), and costs no more than the text's size.
func TestCanonicalDeep(t *testing.T) {
	const depth = 20000
	in := strings.Repeat(`{"b":0,"a":`, depth) + "1" + strings.Repeat("}", depth)
	want := strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat(`,"b":0}`, depth)
	if got := canonical(t, in); got != want {
		t.Fatalf("deep object not canonical (%d bytes, want %d)", len(got), len(want))
	}
}

// checkGrammar reports where s departs from the spec's canonical JSON
// grammar (content/appendices.md, "Grammar"), with keys in code point order
// and unique. It is written independently of the encoder.
func checkGrammar(s []byte) error {
	p := grammarParser{s: s}
	if err := p.value(); err != nil {
		return err
	}
	if p.i != len(s) {
		return fmt.Errorf("trailing bytes at %d", p.i)
	}
	return nil
}

type grammarParser struct {
	s []byte
	i int
}

func (p *grammarParser) errorf(format string, args ...any) error {
	return fmt.Errorf("at %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *grammarParser) value() error {
	if p.i >= len(p.s) {
		return p.errorf("end of text")
	}
	switch c := p.s[p.i]; {
	case c == '{':
		p.i++
		var prev []byte
		for n := 0; ; n++ {
			if p.i < len(p.s) && p.s[p.i] == '}' {
				p.i++
				return nil
			}
			if n > 0 {
				if p.s[p.i] != ',' {
					return p.errorf("want , or }")
				}
				p.i++
			}
			key, err := p.str()
			if err != nil {
				return err
			}
			if n > 0 && bytes.Compare(prev, key) >= 0 {
				return p.errorf("key %q not after %q", key, prev)
			}
			prev = key
			if p.i >= len(p.s) || p.s[p.i] != ':' {
				return p.errorf("want :")
			}
			p.i++
			if err := p.value(); err != nil {
				return err
			}
		}
	case c == '[':
		p.i++
		for n := 0; ; n++ {
			if p.i < len(p.s) && p.s[p.i] == ']' {
				p.i++
				return nil
			}
			if n > 0 {
				if p.s[p.i] != ',' {
					return p.errorf("want , or ]")
				}
				p.i++
			}
			if err := p.value(); err != nil {
				return err
			}
		}
	case c == '"':
		_, err := p.str()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.i
		if c == '-' {
			p.i++
		}
		if p.i < len(p.s) && p.s[p.i] == '0' {
			p.i++
		} else {
			for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
				p.i++
			}
		}
		if num := string(p.s[start:p.i]); num == "-" || num == "-0" || num == "" {
			return p.errorf("bad number %q", num)
		}
		return nil
	default:
		for _, lit := range []string{"true", "false", "null"} {
			if bytes.HasPrefix(p.s[p.i:], []byte(lit)) {
				p.i += len(lit)
				return nil
			}
		}
		return p.errorf("unexpected %q", c)
	}
}

// str parses a string and returns its value.
func (p *grammarParser) str() ([]byte, error) {
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return nil, p.errorf("want a string")
	}
	p.i++
	var val []byte
	for {
		if p.i >= len(p.s) {
			return nil, p.errorf("unterminated string")
		}
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return val, nil
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return nil, p.errorf("cut escape")
			}
			e := p.s[p.i+1]
			short := map[byte]byte{'b': '\b', 't': '\t', 'n': '\n', 'f': '\f', 'r': '\r', '"': '"', '\\': '\\'}
			if v, ok := short[e]; ok {
				val = append(val, v)
				p.i += 2
				continue
			}
			esc := string(p.s[p.i:min(len(p.s), p.i+6)])
			// %s"u000" (%x30-37 / %x62 / %x65-66) / %s"u001" (%x30-39 / %x61-66)
			ok := len(esc) == 6 && (strings.HasPrefix(esc, `\u000`) && strings.ContainsRune("01234567bef", rune(esc[5])) ||
				strings.HasPrefix(esc, `\u001`) && strings.ContainsRune("0123456789abcdef", rune(esc[5])))
			if !ok {
				return nil, p.errorf("escape %q not in the grammar", esc)
			}
			var r byte
			fmt.Sscanf(esc[2:], "%04x", &r)
			val = append(val, r)
			p.i += 6
		case c < 0x20:
			return nil, p.errorf("raw control character")
		default:
			r, n := utf8.DecodeRune(p.s[p.i:])
			if r == utf8.RuneError && n <= 1 {
				return nil, p.errorf("invalid UTF-8")
			}
			val = append(val, p.s[p.i:p.i+n]...)
			p.i += n
		}
	}
}

// reference is an independent canonical encoder of a decoded value (numbers
// as json.Number), built on encoding/json's decoding and sort order.
func reference(v any) string {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys) // byte order of UTF-8 is code point order
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = referenceString(k) + ":" + reference(v[k])
		}
		return "{" + strings.Join(parts, ",") + "}"
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = reference(e)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case string:
		return referenceString(v)
	case json.Number:
		if v == "-0" {
			return "0"
		}
		return string(v)
	case bool:
		return fmt.Sprint(v)
	case nil:
		return "null"
	}
	panic(fmt.Sprintf("unexpected %T", v))
}

func referenceString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r < 0x20:
			b.WriteString(wantEscape(r))
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// roundTrip checks the canonical form of a text Validate accepted: it
// follows the grammar, equals the reference encoding of the decoded value,
// and is its own canonical form.
func roundTrip(t *testing.T, in []byte) {
	t.Helper()
	out, err := Canonical(in)
	if err != nil {
		t.Fatalf("Canonical(%q) of a valid text: %v", in, err)
	}
	if err := checkGrammar(out); err != nil {
		t.Fatalf("Canonical(%q) = %q: %v", in, out, err)
	}
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("encoding/json cannot decode %q: %v", in, err)
	}
	if want := reference(v); string(out) != want {
		t.Fatalf("Canonical(%q)\n got %q\nwant %q", in, out, want)
	}
	again, err := Canonical(out)
	if err != nil || !bytes.Equal(again, out) {
		t.Fatalf("Canonical is not idempotent on %q: %q %v", out, again, err)
	}
}

func TestCanonicalRoundTrip(t *testing.T) {
	for _, in := range []string{
		`{"b":[1,{"d":"\u000b\u001F","c":"\/"}],"a":"\ud83d\ude00\u2028"}`,
		"{\"z\":\"\u007f\u0085\u00a0\",\"y\":-0,\"x\":[[],{}],\"\":\"\\u0000\"}",
		largeDocument(),
	} {
		roundTrip(t, []byte(in))
	}
}

func BenchmarkCanonical(b *testing.B) {
	data := []byte(largeDocument())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Canonical(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCanonicalDeep: a 60 KB event nested ~5,000 levels deep (as a
// federation event may be), every level out of order; linear, not quadratic.
func BenchmarkCanonicalDeep(b *testing.B) {
	const depth = 5000
	data := []byte(strings.Repeat(`{"b":0,"a":`, depth) + "1" + strings.Repeat("}", depth))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Canonical(data); err != nil {
			b.Fatal(err)
		}
	}
}
