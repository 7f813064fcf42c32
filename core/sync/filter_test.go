package sync

import (
	"testing"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
)

// Lists of room and user IDs in a filter must hold room and user IDs
// (Synapse's filter schema); any server's users may be named.
func TestParseFilterIDs(t *testing.T) {
	for _, ok := range []string{
		`{}`,
		`{"room":{"rooms":["!a:localhost"],"not_rooms":[],"timeline":{"senders":["@b:remote.example","@OLD=name:remote.example"]}}}`,
		`{"presence":{"not_senders":["@c:localhost"]},"account_data":{"types":["m.x"]}}`,
		`{"room":{"state":{"rooms":["!opaque"],"not_senders":["@d:[::1]:8448"]}}}`,
	} {
		if _, err := ParseFilter([]byte(ok)); err != nil {
			t.Errorf("ParseFilter(%s): %v", ok, err)
		}
	}
	for _, bad := range []string{
		`{"room":{"rooms":"!a:localhost"}}`,
		`{"room":{"rooms":[""]}}`,
		`{"room":{"not_rooms":["#alias:localhost"]}}`,
		`{"room":{"timeline":{"rooms":[1]}}}`,
		`{"room":{"ephemeral":{"senders":["alice"]}}}`,
		`{"room":{"account_data":{"not_senders":["@:localhost"]}}}`,
		`{"room":{"state":{"senders":["@a b:localhost"]}}}`,
		`{"presence":{"senders":["@a"]}}`,
		`{"account_data":{"senders":{}}}`,
	} {
		_, err := ParseFilter([]byte(bad))
		if me, ok := types.AsError(err); !ok || me.Code != types.CodeBadJSON || me.Status != 400 {
			t.Errorf("ParseFilter(%s): %v, want 400 M_BAD_JSON", bad, err)
		}
	}
}

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
