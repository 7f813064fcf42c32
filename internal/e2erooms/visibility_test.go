package e2erooms

import (
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// roomWithVisibility is an invite-only room with the given history visibility.
func roomWithVisibility(t testing.TB, cli *mautrix.Client, hv string) id.RoomID {
	t.Helper()
	return createRoom(t, cli, &mautrix.ReqCreateRoom{InitialState: []*event.Event{{Type: event.StateHistoryVisibility,
		StateKey: ptr(""), Content: event.Content{Raw: map[string]any{"history_visibility": hv}}}}})
}

func TestHistoryVisibility(t *testing.T) { historyVisibilityFlow(t, newEnv(t)) }

func historyVisibilityFlow(t *testing.T, e *env) {

	t.Run("joined", func(t *testing.T) {
		alice, bob := e.user(t, "alice"), e.user(t, "bob")
		room := roomWithVisibility(t, alice, "joined")
		early := sendText(t, alice, room, "early")
		invite(t, alice, room, bob.UserID)
		between := sendText(t, alice, room, "between invite and join")
		join(t, bob, room)
		late := sendText(t, alice, room, "late")
		equal(t, "bob's messages", bodies(timeline(t, bob, room, mautrix.DirectionBackward, 2)), []string{"late"})
		equal(t, "bob's messages forwards", bodies(timeline(t, bob, room, mautrix.DirectionForward, 2)), []string{"late"})
		equal(t, "alice's messages", bodies(timeline(t, alice, room, mautrix.DirectionForward, 100)),
			[]string{"early", "between invite and join", "late"})
		for _, eid := range []id.EventID{early, between} {
			_, err := bob.GetEvent(ctx(t), room, eid)
			wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
			_, err = bob.Context(ctx(t), room, eid, nil, 10)
			wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
		}
		res := must(bob.Context(ctx(t), room, late, nil, 10)).of(t)
		for _, ev := range res.EventsBefore {
			if ev.ID == early || ev.ID == between {
				t.Fatalf("/context of a visible event leaks %s", ev.ID)
			}
		}
		if ev := must(bob.GetEvent(ctx(t), room, late)).of(t); ev.Content.Raw["body"] != "late" {
			t.Fatalf("late event %v", ev.Content.Raw)
		}
		// Relations of a hidden event are hidden as well.
		_, err := bob.GetRelations(ctx(t), room, early, &mautrix.ReqGetRelations{})
		wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
	})

	t.Run("shared", func(t *testing.T) {
		alice, bob := e.user(t, "alice"), e.user(t, "bob")
		room := roomWithVisibility(t, alice, "shared")
		early := sendText(t, alice, room, "early")
		invite(t, alice, room, bob.UserID)
		join(t, bob, room)
		sendText(t, alice, room, "late")
		equal(t, "bob's messages", bodies(timeline(t, bob, room, mautrix.DirectionForward, 3)), []string{"early", "late"})
		must(bob.GetEvent(ctx(t), room, early)).of(t)
		must(bob.Context(ctx(t), room, early, nil, 4)).of(t)
	})

	t.Run("invited", func(t *testing.T) {
		alice, bob := e.user(t, "alice"), e.user(t, "bob")
		room := roomWithVisibility(t, alice, "invited")
		early := sendText(t, alice, room, "before the invite")
		invite(t, alice, room, bob.UserID)
		sendText(t, alice, room, "after the invite")
		join(t, bob, room)
		sendText(t, alice, room, "after the join")
		equal(t, "bob's messages", bodies(timeline(t, bob, room, mautrix.DirectionForward, 2)),
			[]string{"after the invite", "after the join"})
		_, err := bob.GetEvent(ctx(t), room, early)
		wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
	})

	t.Run("visibility changes apply per event", func(t *testing.T) {
		alice, bob := e.user(t, "alice"), e.user(t, "bob")
		room := roomWithVisibility(t, alice, "joined")
		sendText(t, alice, room, "under joined")
		sendState(t, alice, room, "m.room.history_visibility", "", map[string]any{"history_visibility": "shared"})
		sendText(t, alice, room, "under shared")
		invite(t, alice, room, bob.UserID)
		join(t, bob, room)
		equal(t, "bob's messages", bodies(timeline(t, bob, room, mautrix.DirectionForward, 4)), []string{"under shared"})
	})

	t.Run("world_readable", func(t *testing.T) {
		alice, outsider := e.user(t, "alice"), e.user(t, "outsider")
		room := roomWithVisibility(t, alice, "world_readable")
		sendState(t, alice, room, "m.room.name", "", map[string]any{"name": "open book"})
		msg := sendText(t, alice, room, "anyone may read this")
		equal(t, "outsider's messages", bodies(timeline(t, outsider, room, mautrix.DirectionBackward, 5)),
			[]string{"anyone may read this"})
		state := must(outsider.State(ctx(t), room)).of(t)
		if state[event.StateRoomName][""] == nil || state[event.StateRoomName][""].Content.Raw["name"] != "open book" {
			t.Fatal("outsider cannot read the state of a world_readable room")
		}
		if got := stateOf(t, outsider, room, "m.room.name", ""); got["name"] != "open book" {
			t.Fatalf("name %v", got)
		}
		must(outsider.GetEvent(ctx(t), room, msg)).of(t)
		must(outsider.Context(ctx(t), room, msg, nil, 4)).of(t)
		if m := members(t, outsider, room, mautrix.ReqMembers{}); len(m) != 1 || m[alice.UserID] != "join" {
			t.Fatalf("members %v", m)
		}
		// Reading is not writing.
		_, err := outsider.SendText(ctx(t), room, "hello?")
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		// Once the room stops being world_readable, the outsider is shut out.
		sendState(t, alice, room, "m.room.history_visibility", "", map[string]any{"history_visibility": "shared"})
		_, err = outsider.Messages(ctx(t), room, "", "", mautrix.DirectionBackward, nil, 5)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
	})

	t.Run("a user who left", func(t *testing.T) {
		alice, bob := e.user(t, "alice"), e.user(t, "bob")
		room := createRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "before"}) // shared
		sendText(t, alice, room, "before bob joined")
		join(t, bob, room)
		while := sendText(t, alice, room, "while bob was there")
		leave(t, bob, room)
		after := sendText(t, alice, room, "after bob left")
		sendState(t, alice, room, "m.room.name", "", map[string]any{"name": "after"})

		// Shared history: bob was joined after the first two messages were sent.
		equal(t, "bob's messages", bodies(timeline(t, bob, room, mautrix.DirectionBackward, 2)),
			[]string{"while bob was there", "before bob joined"})
		must(bob.GetEvent(ctx(t), room, while)).of(t)
		_, err := bob.GetEvent(ctx(t), room, after)
		wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = bob.Context(ctx(t), room, after, nil, 4)
		wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
		c := must(bob.Context(ctx(t), room, while, nil, 10)).of(t)
		for _, ev := range c.EventsAfter {
			if ev.ID == after {
				t.Fatal("/context after the leave leaks a later event")
			}
		}
		// The state bob sees is the state when he left.
		if got := stateOf(t, bob, room, "m.room.name", ""); got["name"] != "before" {
			t.Fatalf("bob sees name %v", got)
		}
		if m := members(t, bob, room, mautrix.ReqMembers{}); m[bob.UserID] != "leave" {
			t.Fatalf("bob's members view %v", m)
		}
		// joined_members is for members only.
		_, err = bob.JoinedMembers(ctx(t), room)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		// Bob sees his own leave event.
		all := timeline(t, bob, room, mautrix.DirectionForward, 10)
		if last := all[len(all)-1]; last.Type != event.StateMember || *last.StateKey != string(bob.UserID) ||
			last.Content.Raw["membership"] != "leave" {
			t.Fatalf("bob's last visible event is %s %v", last.Type.Type, last.Content.Raw)
		}
	})

	t.Run("a non-member of a private room", func(t *testing.T) {
		alice, outsider := e.user(t, "alice"), e.user(t, "outsider")
		room := createRoom(t, alice, nil)
		msg := sendText(t, alice, room, "private")
		_, err := outsider.Messages(ctx(t), room, "", "", mautrix.DirectionBackward, nil, 10)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = outsider.State(ctx(t), room)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		err = outsider.StateEvent(ctx(t), room, event.StateCreate, "", &map[string]any{})
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = outsider.Members(ctx(t), room)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = outsider.JoinedMembers(ctx(t), room)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = outsider.GetEvent(ctx(t), room, msg)
		wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = outsider.Context(ctx(t), room, msg, nil, 4)
		wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
		status, body := e.do(t, outsider, http.MethodGet, p("v1", "rooms", room, "threads"), nil)
		wantStatus(t, "threads", status, body, http.StatusForbidden, "M_FORBIDDEN")
		_, err = outsider.GetAliases(ctx(t), room)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		// An invitee is not a member yet.
		invitee := e.user(t, "invitee")
		invite(t, alice, room, invitee.UserID)
		_, err = invitee.Messages(ctx(t), room, "", "", mautrix.DirectionBackward, nil, 10)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		// The same answers for a room that does not exist.
		_, err = outsider.Messages(ctx(t), "!nowhere:localhost", "", "", mautrix.DirectionBackward, nil, 10)
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = outsider.Members(ctx(t), "!nowhere:localhost")
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
		if slices.Contains(must(outsider.JoinedRooms(ctx(t))).of(t).JoinedRooms, room) {
			t.Fatal("outsider lists the room")
		}
	})
}
