package types

import (
	"strings"
	"testing"
	"unicode/utf8"

	"maunium.net/go/mautrix/id"
)

// FuzzIdentifiers: the grammar checks never panic, and what they accept
// holds the properties the rest of the server relies on (storable text,
// at most 255 bytes, the right sigil, a parseable server name).
func FuzzIdentifiers(f *testing.F) {
	for _, s := range []string{"@alice:localhost", "@Old:example.org:8448", "!room:localhost", "!abc", "$ev",
		"#alias:localhost", "@x:[::1]:80", "@\x00:x", "#a:b:c", "@@x:localhost", "m.room.message", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		storable := func(what string) {
			if len(s) > 255 || !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
				t.Fatalf("%s accepted %q", what, s)
			}
		}
		if CheckUserID(id.UserID(s), "localhost") == nil {
			storable("CheckUserID")
			local, server, err := id.UserID(s).Parse()
			if err != nil || local == "" || !id.ValidateServerName(server) || strings.ContainsAny(local, ": \n") {
				t.Fatalf("CheckUserID accepted %q (%q %q %v)", s, local, server, err)
			}
		}
		if CheckRoomID(id.RoomID(s)) == nil {
			storable("CheckRoomID")
			if s[0] != '!' {
				t.Fatalf("CheckRoomID accepted %q", s)
			}
		}
		if CheckEventID(id.EventID(s)) == nil {
			storable("CheckEventID")
		}
		if CheckRoomAlias(id.RoomAlias(s)) == nil {
			storable("CheckRoomAlias")
			if _, server, ok := strings.Cut(s, ":"); !ok || !id.ValidateServerName(server) {
				t.Fatalf("CheckRoomAlias accepted %q", s)
			}
		}
		if CheckEventType(s) == nil {
			storable("CheckEventType")
			if s == "" || hasControl(s) {
				t.Fatalf("CheckEventType accepted %q", s)
			}
		}
		if CheckStateKey(s) == nil {
			storable("CheckStateKey")
		}
		_ = CheckServerName(s)
	})
}

func TestIdentifierGrammar(t *testing.T) {
	for _, tc := range []struct {
		s    string
		user bool
	}{
		{"@alice:localhost", true}, {"@a.b_c=d-e/f+g:localhost", true}, {"@Old.Style:example.org", true},
		{"@x:example.org:8448", true}, {"@x:[::1]:8448", true}, {"@x:1.2.3.4", true},
		{"@UPPER:localhost", false}, {"@@x:localhost", false}, {"@:localhost", false}, {"@x", false},
		{"@x:bad_server", false}, {"@x:localhost:0", false}, {"@x:localhost:65536", false}, {"@x:[::1", false},
		{"@é:example.org", false}, {"@sp ace:example.org", false}, {"@" + strings.Repeat("x", 250) + ":localhost", false},
	} {
		if got := CheckUserID(id.UserID(tc.s), "localhost") == nil; got != tc.user {
			t.Errorf("CheckUserID(%q) accepted=%v, want %v", tc.s, got, tc.user)
		}
	}
	for s, ok := range map[string]bool{"!abc:localhost": true, "!b64hash_-": true, "!": false, "!a b": false, "$x": false} {
		if got := CheckRoomID(id.RoomID(s)) == nil; got != ok {
			t.Errorf("CheckRoomID(%q) = %v", s, got)
		}
	}
	for s, ok := range map[string]bool{"#a:localhost": true, "#ünï:example.org": true, "#:x": false, "#a": false,
		"#a\x00:x": false, "#a:bad_server": false} {
		if got := CheckRoomAlias(id.RoomAlias(s)) == nil; got != ok {
			t.Errorf("CheckRoomAlias(%q) = %v", s, got)
		}
	}
	for s, ok := range map[string]bool{"m.room.message": true, "com.example.ünï": true, "": false, "a\x0bb": false,
		"a\u0085b": false, strings.Repeat("t", 256): false} {
		if got := CheckEventType(s) == nil; got != ok {
			t.Errorf("CheckEventType(%q) = %v", s, got)
		}
	}
}
