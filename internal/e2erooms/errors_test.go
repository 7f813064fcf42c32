package e2erooms

import (
	"net/http"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func TestBadRequests(t *testing.T) { badRequestsFlow(t, newEnv(t)) }

func badRequestsFlow(t *testing.T, e *env) {
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	room := createRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "taken"})
	join(t, bob, room)
	msg := sendText(t, alice, room, "hello")
	send := func(room, evType, txn string) string { return p("v3", "rooms", room, "send", evType, txn) }

	cases := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"send to an unknown room", http.MethodPut, send("!unknown:localhost", "m.room.message", "t1"),
			map[string]any{"body": "x"}, http.StatusForbidden, "M_FORBIDDEN"},
		{"state to an unknown room", http.MethodPut, p("v3", "rooms", "!unknown:localhost", "state", "m.room.name", ""),
			map[string]any{"name": "x"}, http.StatusForbidden, "M_FORBIDDEN"},
		{"GET an unknown event", http.MethodGet, p("v3", "rooms", room, "event", "$unknown"), nil,
			http.StatusNotFound, "M_NOT_FOUND"},
		{"invalid room ID in path (send)", http.MethodPut, send("not-a-room", "m.room.message", "t2"),
			map[string]any{"body": "x"}, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"invalid room ID in path (messages)", http.MethodGet, q(p("v3", "rooms", "#alias:localhost", "messages"), "dir", "b"), nil,
			http.StatusBadRequest, "M_INVALID_PARAM"},
		{"invalid room ID in path (state)", http.MethodGet, p("v3", "rooms", "room", "state"), nil,
			http.StatusBadRequest, "M_INVALID_PARAM"},
		{"event type over 255 bytes", http.MethodPut, send(string(room), strings.Repeat("x", 256), "t3"),
			map[string]any{"body": "x"}, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"state key over 255 bytes", http.MethodPut, p("v3", "rooms", room, "state", "org.example", strings.Repeat("k", 256)),
			map[string]any{}, http.StatusBadRequest, "M_INVALID_PARAM"},
		{"content is an array", http.MethodPut, send(string(room), "m.room.message", "t4"), `[1,2]`,
			http.StatusBadRequest, "M_NOT_JSON"},
		{"content is a string", http.MethodPut, send(string(room), "m.room.message", "t5"), `"text"`,
			http.StatusBadRequest, "M_NOT_JSON"},
		{"content is not JSON", http.MethodPut, send(string(room), "m.room.message", "t6"), `{nope`,
			http.StatusBadRequest, "M_NOT_JSON"},
		{"state content is not an object", http.MethodPut, p("v3", "rooms", room, "state", "m.room.topic", ""), `null`,
			http.StatusBadRequest, "M_NOT_JSON"},
		{"event over 65536 bytes", http.MethodPut, send(string(room), "m.room.message", "t7"),
			map[string]any{"msgtype": "m.text", "body": strings.Repeat("a", 70_000)}, http.StatusRequestEntityTooLarge, "M_TOO_LARGE"},
		{"state event over 65536 bytes", http.MethodPut, p("v3", "rooms", room, "state", "org.example.big", ""),
			map[string]any{"v": strings.Repeat("a", 66_000)}, http.StatusRequestEntityTooLarge, "M_TOO_LARGE"},
		{"createRoom version 99", http.MethodPost, p("v3", "createRoom"), map[string]any{"room_version": "99"},
			http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION"},
		{"createRoom version 0", http.MethodPost, p("v3", "createRoom"), map[string]any{"room_version": "0"},
			http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION"},
		{"createRoom unknown preset", http.MethodPost, p("v3", "createRoom"), map[string]any{"preset": "everyone_welcome"},
			http.StatusBadRequest, "M_INVALID_PARAM"},
		{"createRoom bad visibility", http.MethodPost, p("v3", "createRoom"), map[string]any{"visibility": "secret"},
			http.StatusBadRequest, "M_INVALID_PARAM"},
		{"createRoom invalid invitee", http.MethodPost, p("v3", "createRoom"), map[string]any{"invite": []string{"bob"}},
			http.StatusBadRequest, "M_INVALID_PARAM"},
		{"createRoom alias taken", http.MethodPost, p("v3", "createRoom"), map[string]any{"room_alias_name": "taken"},
			http.StatusBadRequest, "M_ROOM_IN_USE"},
		{"createRoom alias with a colon", http.MethodPost, p("v3", "createRoom"), map[string]any{"room_alias_name": "a:b"},
			http.StatusBadRequest, "M_INVALID_PARAM"},
		{"createRoom with an m.room.member in initial_state", http.MethodPost, p("v3", "createRoom"),
			map[string]any{"initial_state": []any{map[string]any{"type": "m.room.member", "state_key": string(bob.UserID),
				"content": map[string]any{"membership": "join"}}}}, http.StatusBadRequest, "M_BAD_JSON"},
		{"createRoom invalid power override", http.MethodPost, p("v3", "createRoom"),
			map[string]any{"power_level_content_override": map[string]any{"ban": "lots"}}, http.StatusBadRequest, "M_BAD_JSON"},
		{"createRoom body not JSON", http.MethodPost, p("v3", "createRoom"), `{{`, http.StatusBadRequest, "M_NOT_JSON"},
		{"send m.room.create", http.MethodPut, p("v3", "rooms", room, "state", "m.room.create", ""),
			map[string]any{"room_version": "12"}, http.StatusForbidden, "M_FORBIDDEN"},
		{"send a redaction through /send without redacts", http.MethodPut, send(string(room), "m.room.redaction", "t8"),
			map[string]any{"reason": "no target"}, http.StatusBadRequest, "M_BAD_JSON"},
		{"messages without dir", http.MethodGet, p("v3", "rooms", room, "messages"), nil,
			http.StatusBadRequest, "M_INVALID_PARAM"},
		{"messages with a bad dir", http.MethodGet, q(p("v3", "rooms", room, "messages"), "dir", "up"), nil,
			http.StatusBadRequest, "M_INVALID_PARAM"},
		{"messages with a bad from token", http.MethodGet, q(p("v3", "rooms", room, "messages"), "dir", "b", "from", "garbage"), nil,
			http.StatusBadRequest, "M_INVALID_PARAM"},
		{"messages with a bad to token", http.MethodGet, q(p("v3", "rooms", room, "messages"), "dir", "b", "to", "t_1"), nil,
			http.StatusBadRequest, "M_INVALID_PARAM"},
		{"messages with a negative limit", http.MethodGet, q(p("v3", "rooms", room, "messages"), "dir", "b", "limit", "-1"), nil,
			http.StatusBadRequest, "M_INVALID_PARAM"},
		{"messages with a bad filter", http.MethodGet, q(p("v3", "rooms", room, "messages"), "dir", "b", "filter", "{"), nil,
			http.StatusBadRequest, "M_BAD_JSON"},
		{"context with a negative limit", http.MethodGet, q(p("v3", "rooms", room, "context", msg), "limit", "-2"), nil,
			http.StatusBadRequest, "M_INVALID_PARAM"},
		{"redact an unknown event", http.MethodPut, p("v3", "rooms", room, "redact", "$unknown", "t9"), map[string]any{},
			http.StatusNotFound, "M_NOT_FOUND"},
		{"invite an invalid user ID", http.MethodPost, p("v3", "rooms", room, "invite"), map[string]any{"user_id": "bob"},
			http.StatusBadRequest, "M_INVALID_PARAM"},
		{"invite without user_id", http.MethodPost, p("v3", "rooms", room, "invite"), map[string]any{},
			http.StatusBadRequest, "M_MISSING_PARAM"},
		{"kick without user_id", http.MethodPost, p("v3", "rooms", room, "kick"), map[string]any{},
			http.StatusBadRequest, "M_MISSING_PARAM"},
		{"join an unknown room ID", http.MethodPost, p("v3", "join", "!unknown:localhost"), map[string]any{},
			http.StatusNotFound, "M_NOT_FOUND"},
		{"join something that is not a room", http.MethodPost, p("v3", "join", "bob"), map[string]any{},
			http.StatusBadRequest, "M_INVALID_PARAM"},
		{"report an unknown event", http.MethodPost, p("v3", "rooms", room, "report", "$unknown"), map[string]any{"reason": "x"},
			http.StatusNotFound, "M_NOT_FOUND"},
		{"report with a bad score", http.MethodPost, p("v3", "rooms", room, "report", msg), map[string]any{"score": 5},
			http.StatusBadRequest, "M_INVALID_PARAM"},
		{"relations with a bad dir", http.MethodGet, q(p("v1", "rooms", room, "relations", msg), "dir", "sideways"), nil,
			http.StatusBadRequest, "M_INVALID_PARAM"},
		{"no access token", http.MethodGet, p("v3", "joined_rooms"), nil, http.StatusUnauthorized, "M_MISSING_TOKEN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cli := bob
			if c.code == "M_MISSING_TOKEN" {
				cli = nil
			}
			status, body := e.do(t, cli, c.method, c.path, c.body)
			wantStatus(t, c.name, status, body, c.status, c.code)
		})
	}

	t.Run("nothing was stored by the failed requests", func(t *testing.T) {
		equal(t, "messages", bodies(timeline(t, alice, room, mautrix.DirectionForward, 100)), []string{"hello"})
		err := alice.StateEvent(ctx(t), room, event.Type{Type: "org.example.big", Class: event.StateEventType}, "", &map[string]any{})
		wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
	})

	t.Run("reports", func(t *testing.T) {
		if err := bob.ReportEvent(ctx(t), room, msg, "offensive"); err != nil {
			t.Fatal(err)
		}
		if err := bob.ReportRoom(ctx(t), room, "whole room"); err != nil {
			t.Fatal(err)
		}
		err := bob.ReportEvent(ctx(t), room, "$unknown", "x")
		wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
		// Someone who cannot see the event cannot report it.
		outsider := e.user(t, "outsider")
		private := createRoom(t, alice, nil)
		pm := sendText(t, alice, private, "private")
		err = outsider.ReportEvent(ctx(t), private, pm, "x")
		wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
		err = outsider.ReportRoom(ctx(t), "!unknown:localhost", "x")
		wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
	})

	t.Run("createRoom errors through mautrix", func(t *testing.T) {
		_, err := alice.CreateRoom(ctx(t), &mautrix.ReqCreateRoom{RoomVersion: "99"})
		wantErr(t, err, http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION")
		_, err = alice.CreateRoom(ctx(t), &mautrix.ReqCreateRoom{Preset: "nope"})
		wantErr(t, err, http.StatusBadRequest, "M_INVALID_PARAM")
		_, err = alice.CreateRoom(ctx(t), &mautrix.ReqCreateRoom{Invite: []id.UserID{"not-a-user"}})
		wantErr(t, err, http.StatusBadRequest, "M_INVALID_PARAM")
		_, err = alice.CreateRoom(ctx(t), &mautrix.ReqCreateRoom{RoomAliasName: "taken"})
		wantErr(t, err, http.StatusBadRequest, "M_ROOM_IN_USE")
		_, err = alice.SendStateEvent(ctx(t), room, event.StateCreate, "", map[string]any{})
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = alice.SendText(ctx(t), "!unknown:localhost", "x")
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
	})

	t.Run("context limit counts both sides", func(t *testing.T) {
		for range 4 {
			sendText(t, alice, room, "filler")
		}
		all := timeline(t, alice, room, mautrix.DirectionForward, 100)
		mid := all[len(all)-3].ID
		for _, limit := range []int{1, 2, 3} {
			res := must(alice.Context(ctx(t), room, mid, nil, limit)).of(t)
			if n := len(res.EventsBefore) + len(res.EventsAfter); n > limit {
				t.Fatalf("limit %d: %d before + %d after", limit, len(res.EventsBefore), len(res.EventsAfter))
			}
		}
	})
}
