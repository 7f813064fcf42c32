package canonicaljson

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func nested(depth int) string {
	return strings.Repeat(`{"a":`, depth-1) + "[]" + strings.Repeat("}", depth-1)
}

func TestValidateAccepts(t *testing.T) {
	for name, text := range map[string]string{
		"object":              `{"a": 1, "b": [true, false, null], "c": {"d": "e"}}`,
		"white space":         " \t\r\n{ \"a\" : [ 1 , 2 ] }\n",
		"scalar":              `"just a string"`,
		"empty containers":    `{"a":{},"b":[],"c":[[],{}]}`,
		"escapes":             `{"a":"\" \\ \/ \b \f \n \r \t \u0000 \u001F \u00e9 \uFFFF"}`,
		"surrogate pair":      `{"a":"\ud83d\ude00 \uD83D\uDE00"}`,
		"UTF-8":               "{\"a\":\"é ☃ 😀 \u2028 \u007f \u0085\"}",
		"max int":             `{"a":9007199254740991,"b":-9007199254740991,"c":0,"d":-0}`,
		"fifteen digits":      `[999999999999999,-999999999999999]`,
		"floats":              `{"a":1.5,"b":-0.0,"c":1e300,"d":2E-3,"e":1e-999,"f":-1.7976931348623157e308}`,
		"same key elsewhere":  `{"a":{"a":1},"b":{"a":2},"c":[{"a":1},{"a":2}]}`,
		"depth 100":           nested(MaxDepth),
		"many distinct keys":  manyKeys(100, false),
		"keys differ by case": `{"a":1,"A":2}`,
	} {
		if err := Validate([]byte(text)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func manyKeys(n int, dup bool) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + strconv.Itoa(i) + `":1`)
	}
	if dup {
		b.WriteString(`,"k7":2`)
	}
	b.WriteString("}")
	return b.String()
}

func TestValidateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		kind       Kind
	}{
		{"empty", ``, Syntax},
		{"spaces only", `   `, Syntax},
		{"truncated", `{"a":1`, Syntax},
		{"truncated string", `{"a":"b`, Syntax},
		{"truncated escape", `{"a":"\`, Syntax},
		{"trailing comma", `{"a":1,}`, Syntax},
		{"trailing data", `{} {}`, Syntax},
		{"single quotes", `{'a':1}`, Syntax},
		{"unquoted key", `{a:1}`, Syntax},
		{"missing colon", `{"a" 1}`, Syntax},
		{"leading zero", `[01]`, Syntax},
		{"bare minus", `[-]`, Syntax},
		{"dot without digits", `[1.]`, Syntax},
		{"exponent without digits", `[1e]`, Syntax},
		{"plus sign", `[+1]`, Syntax},
		{"NaN", `[NaN]`, Syntax},
		{"bad literal", `[nul]`, Syntax},
		{"raw control character", "{\"a\":\"\x01\"}", Syntax},
		{"raw tab", "{\"a\":\"\t\"}", Syntax},
		{"bad escape", `{"a":"\x41"}`, Syntax},
		{"short unicode escape", `{"a":"\u12"}`, Syntax},
		{"bad hex", `{"a":"\u12G4"}`, Syntax},
		{"0xFF", "{\"a\":\"\xff\"}", Syntax},
		{"0xFF in a key", "{\"\xff\":1}", Syntax},
		{"overlong NUL", "{\"a\":\"\xc0\x80\"}", Syntax},
		{"UTF-8 surrogate", "{\"a\":\"\xed\xa0\x80\"}", Syntax},
		{"truncated sequence", "{\"a\":\"\xe2\x98\"}", Syntax},
		{"beyond U+10FFFF", "{\"a\":\"\xf4\x90\x80\x80\"}", Syntax},
		{"BOM", "\xef\xbb\xbf{}", Syntax},
		{"lone high surrogate", `{"a":"\ud800"}`, Invalid},
		{"high surrogate then text", `{"a":"\ud800abcdef"}`, Invalid},
		{"two high surrogates", `{"a":"\ud800\ud800"}`, Invalid},
		{"lone low surrogate", `{"a":"\udc00"}`, Invalid},
		{"reversed pair", `{"a":"\ude00\ud83d"}`, Invalid},
		{"lone surrogate in a key", `{"\ud800":1}`, Invalid},
		{"duplicate key", `{"a":1,"a":2}`, Invalid},
		{"duplicate key deep", `{"x":[{"y":{"a":1,"b":2,"a":3}}]}`, Invalid},
		{"duplicate key escaped", `{"a":1,"\u0061":2}`, Invalid},
		{"duplicate key in a large object", manyKeys(200, true), Invalid},
		{"too deep", nested(MaxDepth + 1), Invalid},
		{"too deep arrays", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), Invalid},
		{"too deep and cut short", strings.Repeat("[", 10000), Invalid},
		{"int too large", `{"a":9007199254740992}`, Invalid},
		{"int too small", `{"a":-9007199254740992}`, Invalid},
		{"int with 20 digits", `{"a":12345678901234567890}`, Invalid},
		{"int overflowing int64", `[9223372036854775808]`, Invalid},
		{"float out of range", `{"a":1e999}`, Invalid},
		{"negative float out of range", `{"a":[-1e999]}`, Invalid},
		{"float just beyond a double", `[1.8e308]`, Invalid},
		{"float with many digits out of range", `[` + strings.Repeat("9", 400) + `.5]`, Invalid},
	} {
		err := Validate([]byte(tc.text))
		var je *Error
		if !errors.As(err, &je) {
			t.Errorf("%s: %v, want a %d error", tc.name, err, tc.kind)
			continue
		}
		if je.Kind != tc.kind {
			t.Errorf("%s: kind %d (%v), want %d", tc.name, je.Kind, err, tc.kind)
		}
	}
}

func TestValidateCanonicalRefusesFloats(t *testing.T) {
	for _, text := range []string{`{"a":1.5}`, `{"a":1.0}`, `{"a":[1e5]}`, `{"a":{"b":-2E-3}}`, `{"a":0.0}`} {
		if err := Validate([]byte(text)); err != nil {
			t.Errorf("Validate(%s): %v", text, err)
		}
		var je *Error
		if err := ValidateCanonical([]byte(text)); !errors.As(err, &je) || je.Kind != Invalid {
			t.Errorf("ValidateCanonical(%s): %v, want an Invalid error", text, err)
		}
	}
	if err := ValidateCanonical([]byte(`{"a":[1,-2,0,9007199254740991],"b":"1.5"}`)); err != nil {
		t.Errorf("integers: %v", err)
	}
}

// The depth limit is found while scanning, at the first byte too deep.
func TestValidateDepthRefusedEarly(t *testing.T) {
	text := []byte(strings.Repeat(`{"a":`, 5000))
	var je *Error
	if err := Validate(text); !errors.As(err, &je) || je.Offset != MaxDepth*5 {
		t.Fatalf("error %v, want the depth limit at byte %d", err, MaxDepth*5)
	}
}

func BenchmarkValidate(b *testing.B) {
	for name, text := range map[string]string{
		"message": `{"msgtype":"m.text","body":"Hello there, this is a message with some text in it and é ☃ 😀",` +
			`"format":"org.matrix.custom.html","formatted_body":"<b>Hello</b> there","m.mentions":{"user_ids":["@a:b.c"]}}`,
		"large": largeDocument(),
	} {
		data := []byte(text)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := ValidateCanonical(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// largeDocument is about 60 KB of typical event content: many keys, text
// with escapes and non-ASCII, numbers and nesting.
func largeDocument() string {
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < 60000; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"id":` + strings.Repeat("7", 1+i%15) + `,"name":"item \"` + string(rune('a'+i%26)) +
			`\" with text é ☃ 😀 \n\t","tags":["x","y","z"],"nested":{"deep":{"deeper":[true,false,null]}}}`)
	}
	b.WriteString(`],"total":12345}`)
	return b.String()
}

// BenchmarkJSONValid is encoding/json's syntax check alone on the same
// texts, for comparison with BenchmarkValidate in the same run.
func BenchmarkJSONValid(b *testing.B) {
	data := []byte(largeDocument())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if !json.Valid(data) {
			b.Fatal("invalid")
		}
	}
}

// BenchmarkValidateDeep is the attack of issue 12: an event nested 9,900
// levels deep in 60 KB, which cost ~640 ms of CPU per request before the
// depth limit. Validate refuses it at byte 500.
func BenchmarkValidateDeep(b *testing.B) {
	data := []byte(strings.Repeat(`{"a":`, 9900) + "1" + strings.Repeat("}", 9900))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if ValidateCanonical(data) == nil {
			b.Fatal("accepted")
		}
	}
}
