package e2erooms

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func TestCreateRoom(t *testing.T) { createRoomFlow(t, newEnv(t)) }

func createRoomFlow(t *testing.T, e *env) {

	t.Run("defaults", func(t *testing.T) {
		alice := e.user(t, "alice")
		room := createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Room", Topic: "About"})
		create := must(alice.FullStateEvent(ctx(t), room, event.StateCreate, "")).of(t)
		if create.Content.Raw["room_version"] != "12" {
			t.Fatalf("default room version %v, want 12", create.Content.Raw["room_version"])
		}
		if _, ok := create.Content.Raw["creator"]; ok {
			t.Fatal("v12 create event has a creator key")
		}
		if create.Sender != alice.UserID {
			t.Fatalf("create sender %s", create.Sender)
		}
		// Room version 12: the room ID is the create event's ID.
		if string(room) != "!"+strings.TrimPrefix(string(create.ID), "$") {
			t.Fatalf("room ID %s, create event %s", room, create.ID)
		}
		checks := map[string][2]string{
			"m.room.join_rules":         {"join_rule", "invite"},
			"m.room.history_visibility": {"history_visibility", "shared"},
			"m.room.guest_access":       {"guest_access", "can_join"},
			"m.room.name":               {"name", "Room"},
			"m.room.topic":              {"topic", "About"},
		}
		for typ, kv := range checks {
			if got := stateOf(t, alice, room, typ, ""); got[kv[0]] != kv[1] {
				t.Errorf("%s = %v, want %s=%s", typ, got, kv[0], kv[1])
			}
		}
		pl := stateOf(t, alice, room, "m.room.power_levels", "")
		if users, _ := pl["users"].(map[string]any); users[string(alice.UserID)] != nil {
			t.Errorf("v12 creator listed in power levels users: %v", users)
		}
		state := must(alice.State(ctx(t), room)).of(t)
		if m := state[event.StateMember][string(alice.UserID)]; m == nil || m.Content.AsMember().Membership != event.MembershipJoin {
			t.Fatalf("creator's member event %v", m)
		}
		joined := must(alice.JoinedRooms(ctx(t))).of(t)
		if !slices.Contains(joined.JoinedRooms, room) {
			t.Fatalf("joined_rooms %v lacks %s", joined.JoinedRooms, room)
		}
		// The creator (room v12) may do anything, such as change history visibility.
		sendState(t, alice, room, "m.room.history_visibility", "", map[string]any{"history_visibility": "joined"})
		// Private rooms are not in the directory.
		status, body := e.do(t, nil, http.MethodGet, p("v3", "directory", "list", "room", room), nil)
		if status != http.StatusOK || body["visibility"] != "private" {
			t.Fatalf("directory visibility HTTP %d %v", status, body)
		}
	})

	t.Run("public_chat with alias", func(t *testing.T) {
		alice := e.user(t, "alice")
		local := strings.TrimPrefix(alice.UserID.Localpart(), "@") + "-room"
		room := createRoom(t, alice, &mautrix.ReqCreateRoom{Visibility: "public", RoomAliasName: local})
		alias := id.RoomAlias("#" + local + ":localhost")
		if got := stateOf(t, alice, room, "m.room.join_rules", ""); got["join_rule"] != "public" {
			t.Fatalf("join_rules %v", got)
		}
		if got := stateOf(t, alice, room, "m.room.guest_access", ""); got["guest_access"] != "forbidden" {
			t.Fatalf("guest_access %v", got)
		}
		if got := stateOf(t, alice, room, "m.room.canonical_alias", ""); got["alias"] != string(alias) {
			t.Fatalf("canonical_alias %v", got)
		}
		res := must(alice.ResolveAlias(ctx(t), alias)).of(t)
		if res.RoomID != room || !slices.Contains(res.Servers, "localhost") {
			t.Fatalf("alias resolves to %+v", res)
		}
		status, body := e.do(t, nil, http.MethodGet, p("v3", "directory", "list", "room", room), nil)
		if status != http.StatusOK || body["visibility"] != "public" {
			t.Fatalf("directory visibility HTTP %d %v", status, body)
		}
		bob := e.user(t, "bob")
		if res := must(bob.JoinRoom(ctx(t), string(alias), nil)).of(t); res.RoomID != room {
			t.Fatalf("join by alias gave %s", res.RoomID)
		}
	})

	t.Run("trusted_private_chat direct invite", func(t *testing.T) {
		alice, bob := e.user(t, "alice"), e.user(t, "bob")
		room := createRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", Invite: []id.UserID{bob.UserID},
			IsDirect: true})
		m := members(t, alice, room, mautrix.ReqMembers{})
		if m[bob.UserID] != "invite" || m[alice.UserID] != "join" {
			t.Fatalf("members %v", m)
		}
		ev := must(alice.FullStateEvent(ctx(t), room, event.StateMember, string(bob.UserID))).of(t)
		if ev.Content.Raw["is_direct"] != true || ev.Sender != alice.UserID {
			t.Fatalf("invite of bob %v from %s", ev.Content.Raw, ev.Sender)
		}
		// Room version 12: the invitee is a creator (infinite power, not
		// listed in the power levels), as Synapse makes them.
		create := stateOf(t, alice, room, "m.room.create", "")
		if extra, _ := create["additional_creators"].([]any); len(extra) != 1 || extra[0] != string(bob.UserID) {
			t.Fatalf("trusted_private_chat creators %v", create)
		}
		join(t, bob, room)
		// As an admin bob may now change the name.
		sendState(t, bob, room, "m.room.name", "", map[string]any{"name": "ours"})
	})

	t.Run("initial_state, power override and creation_content", func(t *testing.T) {
		alice, bob := e.user(t, "alice"), e.user(t, "bob")
		room := createRoom(t, alice, &mautrix.ReqCreateRoom{
			Name:            "the name key wins",
			CreationContent: map[string]any{"m.federate": false},
			InitialState: []*event.Event{
				{Type: event.StateHistoryVisibility, StateKey: ptr(""), Content: event.Content{Raw: map[string]any{"history_visibility": "joined"}}},
				{Type: event.Type{Type: "org.example.config", Class: event.StateEventType}, StateKey: ptr("k"), Content: event.Content{Raw: map[string]any{"v": 1}}},
				{Type: event.StateRoomName, StateKey: ptr(""), Content: event.Content{Raw: map[string]any{"name": "initial"}}},
			},
			PowerLevelOverride: &event.PowerLevelsEventContent{EventsDefault: 10, Users: map[id.UserID]int{bob.UserID: 10}},
			Invite:             []id.UserID{bob.UserID},
		})
		if got := stateOf(t, alice, room, "m.room.create", ""); got["m.federate"] != false {
			t.Fatalf("create content %v", got)
		}
		if got := stateOf(t, alice, room, "m.room.history_visibility", ""); got["history_visibility"] != "joined" {
			t.Fatalf("history_visibility %v", got)
		}
		if got := stateOf(t, alice, room, "org.example.config", "k"); got["v"] != float64(1) {
			t.Fatalf("custom state %v", got)
		}
		if got := stateOf(t, alice, room, "m.room.name", ""); got["name"] != "the name key wins" {
			t.Fatalf("name %v", got)
		}
		pl := stateOf(t, alice, room, "m.room.power_levels", "")
		if pl["events_default"] != float64(10) || path(pl, "users", string(bob.UserID)) != float64(10) {
			t.Fatalf("power levels %v", pl)
		}
		join(t, bob, room)
		sendText(t, bob, room, "bob has events_default")
		carol := e.user(t, "carol")
		invite(t, alice, room, carol.UserID)
		join(t, carol, room)
		_, err := carol.SendText(ctx(t), room, "carol has 0 < events_default 10")
		wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
	})

	t.Run("every supported version", func(t *testing.T) {
		alice := e.user(t, "alice")
		for _, rv := range []id.RoomVersion{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"} {
			room := createRoom(t, alice, &mautrix.ReqCreateRoom{RoomVersion: rv})
			create := stateOf(t, alice, room, "m.room.create", "")
			if create["room_version"] != string(rv) {
				t.Fatalf("v%s: create %v", rv, create)
			}
			wantCreator := rv != "11" && rv != "12"
			if _, has := create["creator"]; has != wantCreator {
				t.Fatalf("v%s: create content %v, creator expected %v", rv, create, wantCreator)
			}
			hasServer := strings.HasSuffix(string(room), ":localhost")
			if hasServer != (rv != "12") {
				t.Fatalf("v%s: room ID %s", rv, room)
			}
			sendText(t, alice, room, "hello "+string(rv))
			if got := bodies(timeline(t, alice, room, mautrix.DirectionBackward, 50)); !slices.Equal(got, []string{"hello " + string(rv)}) {
				t.Fatalf("v%s: messages %v", rv, got)
			}
		}
	})

	t.Run("additional creators", func(t *testing.T) {
		alice, bob := e.user(t, "alice"), e.user(t, "bob")
		room := createRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat",
			CreationContent: map[string]any{"additional_creators": []id.UserID{bob.UserID}}})
		join(t, bob, room)
		// Bob is a creator: unlimited power without being in the users map.
		sendState(t, bob, room, "m.room.name", "", map[string]any{"name": "co-created"})
		carol := e.user(t, "carol")
		join(t, carol, room)
		if _, err := bob.KickUser(ctx(t), room, &mautrix.ReqKickUser{UserID: carol.UserID}); err != nil {
			t.Fatal(err)
		}
	})
}

func ptr[T any](v T) *T { return &v }
