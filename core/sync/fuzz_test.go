package sync

import (
	"encoding/json/v2"
	"strings"
	"testing"

	"github.com/tributary-hs/tributary/core/canonicaljson"
	"github.com/tributary-hs/tributary/core/types"
)

// FuzzParseToken: ParseToken never panics, what it accepts is a token
// FormatToken writes (up to trailing zero positions, which it may omit)
// and reads back the same, and its positions are within MaxPosition.
func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"s0", "s12_3_4_1795000000000_7_0_9", "s5_6", "s", "s-1", "s1_", "s+1", "s01",
		"s9223372036854775807", "s9007199254740991_0", "s1_2_3_4_5_6_7_8", "ss1_s2_3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := ParseToken(tok)
		if err != nil {
			if _, ok := types.AsError(err); !ok {
				t.Fatalf("ParseToken(%q): %v is not a Matrix error", tok, err)
			}
			return
		}
		for _, v := range p {
			if v < 0 || v > types.MaxPosition {
				t.Fatalf("ParseToken(%q) = %v: position out of range", tok, p)
			}
		}
		formatted := FormatToken(p)
		if !strings.HasPrefix(formatted, tok) || strings.Trim(formatted[len(tok):], "_0") != "" {
			t.Fatalf("ParseToken(%q) = %v, which formats as %q", tok, p, formatted)
		}
		back, err := ParseToken(formatted)
		if err != nil || back != p {
			t.Fatalf("%q → %v → %q → %v, %v", tok, p, formatted, back, err)
		}
	})
}

// FuzzParsePosition: ParsePosition agrees with a plain reading of the
// grammar "-"? [1-9][0-9]* | "0".
func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"0", "-1", "12", "007", "+3", "9007199254740991", "9007199254740992", "-0", "1e3", " 1"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, negative bool) {
		v, ok := types.ParsePosition(s, negative)
		digits, neg := strings.CutPrefix(s, "-")
		want := digits != "" && strings.Trim(digits, "0123456789") == "" && (digits == "0" || digits[0] != '0') &&
			(!neg || (negative && digits != "0")) && len(digits) <= 16
		var n int64
		if want {
			for _, c := range digits {
				n = n*10 + int64(c-'0')
			}
			want = n <= types.MaxPosition
			if neg {
				n = -n
			}
		}
		if ok != want || (ok && v != n) {
			t.Fatalf("ParsePosition(%q, %v) = %d, %v; want %d, %v", s, negative, v, ok, n, want)
		}
	})
}

// FuzzParseFilter: ParseFilter never panics and answers with a Matrix
// error; a filter it accepts is valid JSON by canonicaljson's rules,
// survives a round trip through its own encoding, and can be applied.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{`{}`, `{"room":{"timeline":{"limit":10,"types":["m.room.*"],"not_senders":["@a:b"]}}}`,
		`{"event_format":"federation","presence":{"types":["*"]},"account_data":{"not_types":["x"]}}`,
		`{"room":{"rooms":["!a:b"],"include_leave":true,"state":{"lazy_load_members":true},"ephemeral":{"types":[]}}}`,
		`{"room":{"timeline":{"limit":-1}}}`, `{"event_format":"x"}`, `{"room":{"timeline":{"limit":1.5}}}`,
		`{"room":{"room":1,"room":2}}`, `[]`, `{"room":{"timeline":{"contains_url":true}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		flt, err := ParseFilter(raw)
		if err != nil {
			if _, ok := types.AsError(err); !ok {
				t.Fatalf("ParseFilter(%q): %v is not a Matrix error", raw, err)
			}
			return
		}
		if err := canonicaljson.Validate(raw); err != nil {
			t.Fatalf("ParseFilter accepted %q, which Validate refuses: %v", raw, err)
		}
		enc, err := json.Marshal(flt)
		if err != nil {
			t.Fatalf("accepted filter %q does not encode: %v", raw, err)
		}
		again, err := ParseFilter(enc)
		if err != nil || normalized(again) != normalized(flt) {
			t.Fatalf("%q → %s → %+v, %v", raw, enc, again, err)
		}
		flt.wantsRoom("!r:example.org")
		flt.lazyMembers()
		flt.includeLeave()
		flt.accountData().Allows("m.push_rules")
		flt.ephemeralAllows("m.typing")
		if tl := flt.timeline(); tl != nil && tl.Limit < 0 {
			t.Fatalf("accepted a negative timeline limit: %q", raw)
		}
	})
}

// normalized encodes a filter, so that nil and empty lists, which the
// encoding omits alike, compare equal.
func normalized(f *Filter) string {
	b, _ := json.Marshal(f)
	return string(b)
}
