package e2erooms

import (
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func TestState(t *testing.T) { stateFlow(t, newEnv(t)) }

func stateFlow(t *testing.T, e *env) {
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	room := createRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "first"})
	join(t, bob, room)

	t.Run("empty state key with and without trailing slash", func(t *testing.T) {
		// PUT without the trailing slash (raw), GET both ways.
		var put struct {
			EventID id.EventID `json:"event_id"`
		}
		e.doInto(t, alice, http.MethodPut, p("v3", "rooms", room, "state", "m.room.topic"), map[string]any{"topic": "t1"}, &put)
		if put.EventID == "" {
			t.Fatal("no event ID")
		}
		for _, path := range []string{p("v3", "rooms", room, "state", "m.room.topic"), p("v3", "rooms", room, "state", "m.room.topic") + "/"} {
			var got map[string]any
			e.doInto(t, bob, http.MethodGet, path, nil, &got)
			if len(got) != 1 || got["topic"] != "t1" {
				t.Fatalf("GET %s: %v", path, got)
			}
		}
		// PUT with the trailing slash (mautrix builds it so).
		id2 := sendState(t, alice, room, "m.room.topic", "", map[string]any{"topic": "t2"})
		if got := stateOf(t, bob, room, "m.room.topic", ""); got["topic"] != "t2" {
			t.Fatalf("topic %v", got)
		}
		// format=event gives the whole event, with the replaced state.
		ev := must(bob.FullStateEvent(ctx(t), room, event.StateTopic, "")).of(t)
		if ev.ID != id2 || ev.Sender != alice.UserID || ev.StateKey == nil || *ev.StateKey != "" || ev.Type.Type != "m.room.topic" ||
			ev.RoomID != room || ev.Timestamp == 0 {
			t.Fatalf("format=event: %+v", ev)
		}
		if ev.Unsigned.ReplacesState != put.EventID || ev.Unsigned.PrevContent == nil || ev.Unsigned.PrevContent.Raw["topic"] != "t1" {
			t.Fatalf("unsigned of a replacing state event: %+v", ev.Unsigned)
		}
		var raw map[string]any
		e.doInto(t, bob, http.MethodGet, q(p("v3", "rooms", room, "state", "m.room.topic", ""), "format", "event"), nil, &raw)
		if raw["event_id"] != string(id2) || path(raw, "content", "topic") != "t2" {
			t.Fatalf("format=event raw %v", raw)
		}
	})

	t.Run("state keys", func(t *testing.T) {
		evType := event.Type{Type: "org.example.settings", Class: event.StateEventType}
		for key, v := range map[string]float64{"plain": 1, "with/slash": 2, string(alice.UserID): 3, "with space": 4} {
			sendState(t, alice, room, evType.Type, key, map[string]any{"v": v})
		}
		for key, v := range map[string]float64{"plain": 1, "with/slash": 2, string(alice.UserID): 3, "with space": 4} {
			if got := stateOf(t, bob, room, evType.Type, key); got["v"] != v {
				t.Fatalf("state key %q: %v", key, got)
			}
		}
		// The empty key is a different state entry.
		err := bob.StateEvent(ctx(t), room, evType, "", &map[string]any{})
		wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
		state := must(bob.State(ctx(t), room)).of(t)
		if len(state[evType]) != 4 {
			t.Fatalf("GET /state has %d %s entries", len(state[evType]), evType.Type)
		}
		if state[event.StateCreate][""] == nil || state[event.StatePowerLevels][""] == nil ||
			state[event.StateMember][string(bob.UserID)] == nil {
			t.Fatalf("GET /state misses core state: %v", keysOf(state))
		}
		// Overwriting keeps one entry.
		sendState(t, alice, room, evType.Type, "plain", map[string]any{"v": 10})
		state = must(bob.State(ctx(t), room)).of(t)
		if len(state[evType]) != 4 || state[evType]["plain"].Content.Raw["v"] != float64(10) {
			t.Fatalf("after overwrite: %v", state[evType]["plain"].Content.Raw)
		}
		// Power: bob (0) cannot send state (state_default 50), even custom.
		_, err = bob.SendStateEvent(ctx(t), room, evType, "plain", map[string]any{"v": 0})
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
	})

	t.Run("unknown state", func(t *testing.T) {
		err := bob.StateEvent(ctx(t), room, event.Type{Type: "org.example.none", Class: event.StateEventType}, "", &map[string]any{})
		wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
		status, body := e.do(t, bob, http.MethodGet, q(p("v3", "rooms", room, "state", "org.example.none", "x"), "format", "event"), nil)
		wantStatus(t, "unknown state, format=event", status, body, http.StatusNotFound, "M_NOT_FOUND")
	})

	t.Run("state events are in the timeline", func(t *testing.T) {
		eid := sendState(t, alice, room, "m.room.name", "", map[string]any{"name": "second"})
		res := page(t, bob, room, "", "", mautrix.DirectionBackward, 1, nil)
		if len(res.Chunk) != 1 || res.Chunk[0].ID != eid || res.Chunk[0].Unsigned.PrevContent == nil ||
			res.Chunk[0].Unsigned.PrevContent.Raw["name"] != "first" {
			t.Fatalf("latest timeline event %+v", res.Chunk)
		}
	})

	t.Run("member state rules", func(t *testing.T) {
		// Membership goes through the membership endpoints or PUT state; a user
		// may not set someone else's member event to join.
		_, err := alice.SendStateEvent(ctx(t), room, event.StateMember, string(bob.UserID)+"x",
			map[string]any{"membership": "join"})
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		// Bob may change his own display name in the room.
		sendState(t, bob, room, "m.room.member", string(bob.UserID), map[string]any{"membership": "join", "displayname": "Bobby"})
		jm := must(alice.JoinedMembers(ctx(t), room)).of(t)
		if jm.Joined[bob.UserID].DisplayName != "Bobby" {
			t.Fatalf("joined_members %v", jm.Joined)
		}
	})
}

func keysOf(m mautrix.RoomStateMap) []string {
	var out []string
	for k := range m {
		out = append(out, k.Type)
	}
	return out
}
