package sync

import (
	"testing"

	"github.com/tributary-hs/tributary/core/stream"
)

// The presence part of a filter is an EventFilter (spec, POST
// /user/{userId}/filter): types absent means all, an empty list none;
// not_types wins over types; "*" matches any sequence; senders likewise.
func TestFilterPresence(t *testing.T) {
	for _, tc := range []struct {
		filter string
		wanted bool
		sender string // when wanted: one the filter lets through ("" none)
	}{
		{`{}`, true, "@a:x"},
		{`{"presence":{}}`, true, "@a:x"},
		{`{"presence":{"types":[]}}`, false, ""},
		{`{"presence":{"types":["m.presence"]}}`, true, "@a:x"},
		{`{"presence":{"types":["m.*"]}}`, true, "@a:x"},
		{`{"presence":{"types":["m.typing"]}}`, false, ""},
		{`{"presence":{"not_types":["*"]}}`, false, ""},
		{`{"presence":{"not_types":["m.pres*"]}}`, false, ""},
		{`{"presence":{"types":["*"],"not_types":["m.presence"]}}`, false, ""},
		{`{"presence":{"not_types":["m.receipt"]}}`, true, "@a:x"},
		{`{"presence":{"senders":[]}}`, false, ""},
		{`{"presence":{"senders":["@a:x"]}}`, true, "@a:x"},
		{`{"presence":{"not_senders":["@b:x"]}}`, true, "@a:x"},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			f, err := ParseFilter([]byte(tc.filter))
			if err != nil {
				t.Fatal(err)
			}
			pf, wanted := f.presence()
			if wanted != tc.wanted {
				t.Fatalf("presence wanted = %v, want %v", wanted, tc.wanted)
			}
			if wanted && !pf.AllowsSender(tc.sender) {
				t.Fatalf("presence of %s dropped", tc.sender)
			}
			if ignores := ignored(f).Has(stream.Presence); ignores == tc.wanted {
				t.Fatalf("the long-poll ignores presence: %v, want %v", ignores, !tc.wanted)
			}
		})
	}
	f, _ := ParseFilter([]byte(`{"presence":{"senders":["@a:x"],"not_senders":["@b:x"]}}`))
	if pf, _ := f.presence(); pf.AllowsSender("@b:x") || pf.AllowsSender("@c:x") || !pf.AllowsSender("@a:x") {
		t.Fatal("senders / not_senders not applied")
	}
	if ignored(nil) != 0 {
		t.Fatal("no filter ignores a stream")
	}
}
