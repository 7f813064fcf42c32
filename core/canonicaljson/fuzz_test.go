package canonicaljson

import (
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

var fuzzSeeds = []string{
	`{}`, `[]`, `"x"`, `1`, `-0`, `{"a":1,"b":[true,false,null,"s"]}`, `{"a":1,"a":2}`, `{"a":"\u0061","\u0061":1}`,
	`{"a":"\ud83d\ude00\u000b\u001F\/\"\\"}`, `{"a":"\ud800"}`, `{"a":"\udc00\ud800"}`, `[1.5,1e400,-0.0,1E-5]`,
	`[9007199254740991,9007199254740992,-9007199254740992]`, "{\"a\":\"\xff\"}", "{\"a\":\"\xed\xa0\x80\"}",
	`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	"{\"é\":\"☃\",\"😀\":1,\"\uffff\":2}", ` { "a" : [ 1 , 2 ] } `, `{"a":1}x`, `{"a" 1}`, `[01]`,
}

// FuzzValidate: Validate never panics; what it accepts is JSON
// (encoding/json agrees) in valid UTF-8 and has a canonical form that
// follows the spec's grammar; what it calls a syntax error is not JSON in
// UTF-8; and ValidateCanonical accepts a subset of it.
func FuzzValidate(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Validate(data)
		isJSON := json.Valid(data) && utf8.Valid(data)
		var je *Error
		switch {
		case err == nil:
			if !isJSON {
				t.Fatalf("Validate accepted %q, which is not JSON in UTF-8", data)
			}
			if ValidateCanonical(data) == nil {
				roundTrip(t, data)
			}
		case !errors.As(err, &je):
			t.Fatalf("Validate(%q) returned %T %v", data, err, err)
		case je.Kind == Syntax && isJSON:
			t.Fatalf("Validate(%q) calls valid JSON a syntax error: %v", data, err)
		case je.Kind == Invalid && !isJSON && je.Offset > len(data):
			t.Fatalf("Validate(%q): offset %d past the text", data, je.Offset)
		}
		if ValidateCanonical(data) == nil && err != nil {
			t.Fatalf("ValidateCanonical accepted %q, which Validate refuses: %v", data, err)
		}
	})
}

// FuzzCanonical: Canonical never panics; its output follows the grammar
// (when the input has integers only), decodes to the same value, and is its
// own canonical form.
func FuzzCanonical(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := Canonical(data)
		if err != nil {
			return
		}
		if !json.Valid(out) || !utf8.Valid(out) {
			t.Fatalf("Canonical(%q) = %q, not JSON in UTF-8", data, out)
		}
		again, err := Canonical(out)
		if err != nil || string(again) != string(out) {
			t.Fatalf("Canonical not idempotent: %q → %q → %q (%v)", data, out, again, err)
		}
		if ValidateCanonical(data) == nil {
			roundTrip(t, data)
		}
	})
}
