package e2e

import (
	"encoding/json/jsontext"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
)

// deepJSON is an object nested depth levels deep: {"a":{"a":…{}…}}.
func deepJSON(depth int) string {
	return strings.Repeat(`{"a":`, depth-1) + "{}" + strings.Repeat("}", depth-1)
}

// hostileBodies are bodies a strict JSON reader refuses, or that canonical
// JSON cannot hold, with the errcode each gets: M_NOT_JSON for text that is
// not JSON in UTF-8, M_BAD_JSON for JSON breaking Matrix's rules.
func hostileBodies(wrap func(inner string) string) []struct{ name, body, code string } {
	return []struct{ name, body, code string }{
		{"0xFF byte", wrap("\"a\xffb\""), "M_NOT_JSON"},
		{"overlong UTF-8", wrap("\"\xc0\x80\""), "M_NOT_JSON"},
		{"UTF-8 encoded surrogate", wrap("\"\xed\xa0\x80\""), "M_NOT_JSON"},
		{"truncated UTF-8", wrap("\"\xe2\x98\""), "M_NOT_JSON"},
		{"lone high surrogate", wrap(`"\ud800"`), "M_BAD_JSON"},
		{"lone low surrogate", wrap(`"x\udfff"`), "M_BAD_JSON"},
		{"duplicate keys", wrap(`{"k":1,"k":2}`), "M_BAD_JSON"},
		{"duplicate keys deep", wrap(`[{"x":{"k":1,"\u006b":2}}]`), "M_BAD_JSON"},
		{"integer beyond 2^53-1", wrap(`9007199254740992`), "M_BAD_JSON"},
		{"integer below -(2^53-1)", wrap(`-9007199254740992`), "M_BAD_JSON"},
		{"over 100 levels deep", wrap(deepJSON(101)), "M_BAD_JSON"},
	}
}

// strictJSON fails the test unless raw is JSON a strict reader takes:
// valid UTF-8, no lone surrogates, no duplicate keys.
func strictJSON(t *testing.T, what string, raw []byte) {
	t.Helper()
	if !jsontext.Value(raw).IsValid() { // by default: UTF-8, paired surrogates, unique names
		t.Fatalf("%s is not strict JSON: %q", what, raw)
	}
}

func TestHostileJSON(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	roomPath := "/_matrix/client/v3/rooms/" + url.PathEscape(string(room.RoomID))
	bobSince := syncOnce(t, bob, "", 0).NextBatch

	t.Run("to-device", func(t *testing.T) {
		for i, b := range hostileBodies(func(v string) string {
			return `{"messages":{"` + string(bob.UserID) + `":{"*":{"v":` + v + `}}}}`
		}) {
			st, body := srv.Do(t, "PUT", "/_matrix/client/v3/sendToDevice/com.example.bad/bad"+string(rune('a'+i)),
				alice.AccessToken, b.body)
			wantStatus(t, "to-device with "+b.name, st, body, http.StatusBadRequest, b.code)
		}
		st, body := srv.Do(t, "PUT", "/_matrix/client/v3/sendToDevice/com.example.good/good", alice.AccessToken,
			`{"messages":{"`+string(bob.UserID)+`":{"*":{"v":"\ud83d\ude00 fine"}}}}`)
		wantStatus(t, "to-device", st, body, http.StatusOK, "")
		// Bob's sync is strict JSON and holds only the good message.
		st, raw := srv.DoRaw(t, "GET", "/_matrix/client/v3/sync?timeout=0&since="+url.QueryEscape(bobSince), bob.AccessToken, nil)
		if st != http.StatusOK {
			t.Fatalf("sync: %d %s", st, raw)
		}
		strictJSON(t, "bob's sync", raw)
		events := decode(t, raw)["to_device"].(map[string]any)["events"].([]any)
		if len(events) != 1 || events[0].(map[string]any)["type"] != "com.example.good" {
			t.Fatalf("bob's to-device events: %v", events)
		}
	})

	t.Run("account data", func(t *testing.T) {
		path := "/_matrix/client/v3/user/" + url.PathEscape(string(alice.UserID)) + "/account_data/com.example.bad"
		for _, b := range hostileBodies(func(v string) string { return `{"v":` + v + `}` }) {
			st, body := srv.Do(t, "PUT", path, alice.AccessToken, b.body)
			wantStatus(t, "account data with "+b.name, st, body, http.StatusBadRequest, b.code)
		}
		st, body := srv.Do(t, "PUT", path, alice.AccessToken, `{"a":1,"b":{"a":2},"a":3}`)
		wantStatus(t, "account data with duplicate top-level keys", st, body, http.StatusBadRequest, "M_BAD_JSON")
		st, body = srv.Do(t, "GET", path, alice.AccessToken, nil)
		wantStatus(t, "refused account data", st, body, http.StatusNotFound, "M_NOT_FOUND")
		// Canonical JSON's rules are for events: account data may hold floats.
		st, body = srv.Do(t, "PUT", path, alice.AccessToken, `{"ratio":0.5,"big":1e100}`)
		wantStatus(t, "account data with floats", st, body, http.StatusOK, "")
	})

	t.Run("room events", func(t *testing.T) {
		bad := hostileBodies(func(v string) string { return `{"msgtype":"m.text","body":"x","v":` + v + `}` })
		// Canonical JSON has no fractions or exponents.
		bad = append(bad, []struct{ name, body, code string }{
			{"a fraction", `{"msgtype":"m.text","body":"x","v":1.5}`, "M_BAD_JSON"},
			{"an exponent", `{"msgtype":"m.text","body":"x","v":1e5}`, "M_BAD_JSON"},
			{"a float deep down", `{"msgtype":"m.text","body":"x","v":[{"w":-0.0}]}`, "M_BAD_JSON"},
			// The attack of the issue: ~9,900 levels in a 60 KB body.
			{"9,900 levels deep", deepJSON(9900), "M_BAD_JSON"},
		}...)
		for i, b := range bad {
			st, body := srv.Do(t, "PUT", roomPath+"/send/m.room.message/bad"+string(rune('a'+i)), alice.AccessToken, b.body)
			wantStatus(t, "message with "+b.name, st, body, http.StatusBadRequest, b.code)
			st, body = srv.Do(t, "PUT", roomPath+"/state/com.example.state/"+string(rune('a'+i)), alice.AccessToken, b.body)
			wantStatus(t, "state event with "+b.name, st, body, http.StatusBadRequest, b.code)
		}
		for name, body := range map[string]string{
			"creation_content":             `{"creation_content":{"v":1.5}}`,
			"initial_state":                `{"initial_state":[{"type":"com.example","state_key":"","content":{"v":2.5}}]}`,
			"power_level_content_override": `{"power_level_content_override":{"users_default":9007199254740992}}`,
			"duplicate keys":               `{"name":"a","name":"b"}`,
		} {
			st, res := srv.Do(t, "POST", "/_matrix/client/v3/createRoom", alice.AccessToken, body)
			wantStatus(t, "createRoom with a bad "+name, st, res, http.StatusBadRequest, "M_BAD_JSON")
		}
		// 100 levels are fine.
		st, body := srv.Do(t, "PUT", roomPath+"/send/m.room.message/deep100", alice.AccessToken, deepJSON(100))
		wantStatus(t, "message 100 levels deep", st, body, http.StatusOK, "")
		// Nothing refused reached the room.
		st, raw := srv.DoRaw(t, "GET", "/_matrix/client/v3/sync?timeout=0&since="+url.QueryEscape(bobSince), bob.AccessToken, nil)
		if st != http.StatusOK {
			t.Fatalf("sync: %d %s", st, raw)
		}
		strictJSON(t, "bob's sync", raw)
		timeline := decode(t, raw)["rooms"].(map[string]any)["join"].(map[string]any)[string(room.RoomID)].(map[string]any)["timeline"].(map[string]any)["events"].([]any)
		if len(timeline) != 1 {
			t.Fatalf("bob's timeline has %d events, want the one deep message: %v", len(timeline), timeline)
		}
	})

	t.Run("filters", func(t *testing.T) {
		// Stored ones are bodies; inline ones come in the query and get
		// the same rules.
		for name, tc := range map[string]struct{ filter, code string }{
			"duplicate keys": {`{"room":{"timeline":{"limit":1,"limit":2}}}`, "M_BAD_JSON"},
			"too deep":       {`{"room":` + deepJSON(101) + `}`, "M_BAD_JSON"},
			"not JSON":       {`{"room":`, "M_NOT_JSON"},
		} {
			st, body := srv.Do(t, "POST", "/_matrix/client/v3/user/"+url.PathEscape(string(alice.UserID))+"/filter",
				alice.AccessToken, tc.filter)
			wantStatus(t, "stored filter with "+name, st, body, http.StatusBadRequest, tc.code)
			st, body = srv.Do(t, "GET", "/_matrix/client/v3/sync?timeout=0&filter="+url.QueryEscape(tc.filter), alice.AccessToken, nil)
			wantStatus(t, "inline filter with "+name, st, body, http.StatusBadRequest, tc.code)
		}
	})

	t.Run("unauthenticated bodies", func(t *testing.T) {
		for name, tc := range map[string]struct{ body, code string }{
			"duplicate keys": {`{"type":"m.login.password","type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"x"}`, "M_BAD_JSON"},
			"0xFF":           {"{\"type\":\"m.login.password\",\"password\":\"\xff\"}", "M_NOT_JSON"},
			"lone surrogate": {`{"type":"m.login.password","password":"\udc00"}`, "M_BAD_JSON"},
			"deep":           {deepJSON(5000), "M_BAD_JSON"},
		} {
			st, body := srv.Do(t, "POST", "/_matrix/client/v3/login", "", tc.body)
			wantStatus(t, "login with "+name, st, body, http.StatusBadRequest, tc.code)
		}
	})
}
