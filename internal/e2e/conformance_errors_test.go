package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
)

// Every body that ends up in an event (the content of messages and state,
// createRoom's parts, membership reasons and extra keys, profile fields
// copied into member events, redaction reasons) is refused with 400
// M_NOT_JSON or M_BAD_JSON when it is not JSON in UTF-8, holds a lone
// surrogate escape or a duplicate key, or a number canonical JSON cannot
// hold; never a 500, and nothing is sent.
func TestEventBodiesRefused(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	sent, err := alice.SendText(t.Context(), room.RoomID, "target")
	if err != nil {
		t.Fatal(err)
	}
	roomPath := "/_matrix/client/v3/rooms/" + url.PathEscape(string(room.RoomID))
	aliceSince := syncOnce(t, alice, "", 0).NextBatch

	values := []struct {
		name, value, code string
		eventOnly         bool // refused only where it becomes event content
	}{
		{"invalid UTF-8", "\"a\xffb\"", "M_NOT_JSON", false},
		{"a lone surrogate escape", `"\ud800"`, "M_BAD_JSON", false},
		{"a duplicate key", `{"k":1,"k":2}`, "M_BAD_JSON", false},
		{"a number out of range", `1e999`, "M_BAD_JSON", false},
		{"a negative number out of range", `-1e999`, "M_BAD_JSON", false},
		{"an integer beyond 2^53-1", `9007199254740993`, "M_BAD_JSON", false},
		{"a fraction", `1.5`, "M_BAD_JSON", true},
	}
	type endpoint struct {
		method, path, token string
		body                func(v string) string
		notEvent            bool // the body is not event content
	}
	const event, notEvent = false, true
	n := 0
	next := func() string { n++; return "t" + string(rune('a'+n%26)) + string(rune('a'+n/26)) }
	endpoints := func() []endpoint {
		txn := next()
		return []endpoint{
			{"PUT", roomPath + "/send/m.room.message/" + txn, alice.AccessToken,
				func(v string) string { return `{"msgtype":"m.text","body":"x","v":` + v + `}` }, event},
			{"PUT", roomPath + "/state/com.example.state/" + txn, alice.AccessToken,
				func(v string) string { return `{"v":` + v + `}` }, event},
			{"POST", "/_matrix/client/v3/createRoom", alice.AccessToken,
				func(v string) string {
					return `{"initial_state":[{"type":"com.example","state_key":"","content":{"v":` + v + `}}]}`
				}, event},
			{"POST", "/_matrix/client/v3/createRoom", alice.AccessToken,
				func(v string) string { return `{"creation_content":{"v":` + v + `}}` }, event},
			{"POST", "/_matrix/client/v3/createRoom", alice.AccessToken,
				func(v string) string { return `{"name":"n","com.example.extra":` + v + `}` }, event},
			{"POST", "/_matrix/client/v3/join/" + url.PathEscape(string(room.RoomID)), bob.AccessToken,
				func(v string) string { return `{"com.example.note":` + v + `}` }, event},
			{"POST", roomPath + "/join", bob.AccessToken,
				func(v string) string { return `{"reason":"hi","com.example.note":{"w":` + v + `}}` }, event},
			{"POST", roomPath + "/invite", alice.AccessToken,
				func(v string) string { return `{"user_id":"@carol:localhost","reason":` + v + `}` }, event},
			{"POST", roomPath + "/ban", alice.AccessToken,
				func(v string) string { return `{"user_id":"@carol:localhost","reason":` + v + `}` }, event},
			{"PUT", roomPath + "/redact/" + url.PathEscape(string(sent.EventID)) + "/" + txn, alice.AccessToken,
				func(v string) string { return `{"reason":` + v + `}` }, event},
			{"PUT", "/_matrix/client/v3/profile/" + url.PathEscape(string(alice.UserID)) + "/displayname", alice.AccessToken,
				func(v string) string { return `{"displayname":` + v + `}` }, event},
			{"PUT", "/_matrix/client/v3/profile/" + url.PathEscape(string(alice.UserID)) + "/avatar_url", alice.AccessToken,
				func(v string) string { return `{"avatar_url":` + v + `}` }, event},
			{"POST", roomPath + "/upgrade", alice.AccessToken,
				func(v string) string { return `{"new_version":` + v + `}` }, event},
			// Bodies that are not event content but ignore unknown keys
			// still refuse what no JSON reader can hold.
			{"POST", roomPath + "/receipt/m.read/" + url.PathEscape(string(sent.EventID)), alice.AccessToken,
				func(v string) string { return `{"com.example":` + v + `}` }, notEvent},
			{"PUT", "/_matrix/client/v3/user/" + url.PathEscape(string(alice.UserID)) + "/account_data/com.example." + txn,
				alice.AccessToken, func(v string) string { return `{"v":` + v + `}` }, notEvent},
		}
	}
	for _, v := range values {
		for _, e := range endpoints() {
			if v.eventOnly && e.notEvent {
				continue
			}
			st, body := srv.Do(t, e.method, e.path, e.token, e.body(v.value))
			if st >= 500 {
				t.Errorf("%s %s with %s: %d %v", e.method, e.path, v.name, st, body)
				continue
			}
			if st != http.StatusBadRequest || body["errcode"] != v.code {
				t.Errorf("%s %s with %s: %d %v, want 400 %s", e.method, e.path, v.name, st, body, v.code)
			}
		}
	}

	// %FF (not UTF-8) in an event type or a state key of the path.
	for _, p := range []string{
		roomPath + "/send/m.room.%FF/" + next(),
		roomPath + "/state/com.example.%FF/x",
		roomPath + "/state/com.example.state/%FF",
		roomPath + "/state/com.example.state/a%FFb",
		roomPath + "/state/%FF",
	} {
		st, body := srv.Do(t, "PUT", p, alice.AccessToken, `{"v":1}`)
		if st != http.StatusBadRequest || body["errcode"] == nil {
			t.Errorf("PUT %s: %d %v, want 400", p, st, body)
		}
		if !strings.Contains(p, "/send/") {
			st, body = srv.Do(t, "GET", p, alice.AccessToken, nil)
			if st != http.StatusBadRequest || body["errcode"] == nil {
				t.Errorf("GET %s: %d %v, want 400", p, st, body)
			}
		}
	}

	// Nothing refused reached the room: alice's own timeline holds no new event.
	res := syncOnce(t, alice, aliceSince, 0)
	if jr, ok := res.Rooms.Join[room.RoomID]; ok && len(jr.Timeline.Events) > 0 {
		t.Fatalf("refused requests sent events: %v", bodies(jr.Timeline.Events))
	}
}
