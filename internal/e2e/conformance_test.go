package e2e

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// rooms.default_version sets the version of rooms created without one
// (12 by default, as the spec recommends) and what /capabilities says;
// a version the server cannot make stops it at start.
func TestDefaultRoomVersionSetting(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	caps, err := alice.Capabilities(t.Context())
	if err != nil || caps.RoomVersions == nil || caps.RoomVersions.Default != "12" {
		t.Fatalf("default capabilities: %+v %v", caps.RoomVersions, err)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tributary.yaml"), []byte("rooms:\n  default_version: \"10\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := testserver.Start(t, testserver.Options{DataDir: dir, Args: openArgs})
	bob := register(t, old, "bob", defaultPassword)
	caps, err = bob.Capabilities(t.Context())
	if err != nil || caps.RoomVersions == nil || caps.RoomVersions.Default != "10" {
		t.Fatalf("capabilities with default_version 10: %+v %v", caps.RoomVersions, err)
	}
	room, err := bob.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{})
	if err != nil {
		t.Fatal(err)
	}
	var create event.CreateEventContent
	if err := bob.StateEvent(t.Context(), room.RoomID, event.StateCreate, "", &create); err != nil {
		t.Fatal(err)
	}
	if create.RoomVersion != "10" {
		t.Fatalf("room version %q, want 10", create.RoomVersion)
	}
	// Naming one still wins.
	room, err = bob.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{RoomVersion: "12"})
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.StateEvent(t.Context(), room.RoomID, event.StateCreate, "", &create); err != nil || create.RoomVersion != "12" {
		t.Fatalf("room version %q (%v), want 12", create.RoomVersion, err)
	}

	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "tributary.yaml"), []byte("rooms:\n  default_version: \"99\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testserver.Binary(t), "serve", "--data-dir", bad, "--listen", "127.0.0.1:0",
		"--server-name", "localhost").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "99") {
		t.Fatalf("serve with default_version 99: %v\n%s", err, out)
	}
}

// Room details Synapse users rely on: createRoom's topic also in its rich
// form (m.topic), extra keys of a /join body in the member event, and an
// alias deleted from the directory leaving the canonical alias event.
func TestRoomDetails(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat", Topic: "Plans",
		RoomAliasName: "plans"})
	if err != nil {
		t.Fatal(err)
	}
	var topic map[string]any
	if err := alice.StateEvent(t.Context(), room.RoomID, event.StateTopic, "", &topic); err != nil {
		t.Fatal(err)
	}
	rich, _ := topic["m.topic"].(map[string]any)
	texts, _ := rich["m.text"].([]any)
	if topic["topic"] != "Plans" || len(texts) != 1 || texts[0].(map[string]any)["body"] != "Plans" ||
		texts[0].(map[string]any)["mimetype"] != "text/plain" {
		t.Fatalf("topic content %v", topic)
	}

	code, body := srv.Do(t, "POST", "/_matrix/client/v3/join/"+room.RoomID.String(), bob.AccessToken,
		map[string]any{"reason": "hello", "com.example.note": map[string]any{"x": 1}, "membership": "leave"})
	if code != 200 {
		t.Fatalf("join: %d %v", code, body)
	}
	var member map[string]any
	if err := bob.StateEvent(t.Context(), room.RoomID, event.StateMember, bob.UserID.String(), &member); err != nil {
		t.Fatal(err)
	}
	if member["membership"] != "join" || member["reason"] != "hello" || member["com.example.note"] == nil {
		t.Fatalf("member content %v", member)
	}

	alias := "#plans:localhost"
	if code, body := srv.Do(t, "PUT", "/_matrix/client/v3/directory/room/"+url.PathEscape("#plans2:localhost"),
		alice.AccessToken, map[string]any{"room_id": room.RoomID}); code != 200 {
		t.Fatalf("second alias: %d %v", code, body)
	}
	if _, err := alice.SendStateEvent(t.Context(), room.RoomID, event.StateCanonicalAlias, "",
		map[string]any{"alias": alias, "alt_aliases": []string{"#plans2:localhost"}}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{alias, "#plans2:localhost"} {
		if code, body := srv.Do(t, "DELETE", "/_matrix/client/v3/directory/room/"+url.PathEscape(a), alice.AccessToken, nil); code != 200 {
			t.Fatalf("delete %s: %d %v", a, code, body)
		}
	}
	var canonical map[string]any
	if err := alice.StateEvent(t.Context(), room.RoomID, event.StateCanonicalAlias, "", &canonical); err != nil {
		t.Fatal(err)
	}
	if canonical["alias"] != nil || len(canonical["alt_aliases"].([]any)) != 0 {
		t.Fatalf("canonical alias after deleting both aliases: %v", canonical)
	}
}

// Identical state sent twice, or a second join with nothing changed, makes
// no new event: the answer is the existing one's ID (as Synapse answers).
func TestIdenticalStateIsNotRepeated(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	topic := map[string]any{"topic": "same"}
	first, err := alice.SendStateEvent(t.Context(), room.RoomID, event.StateTopic, "", topic)
	if err != nil {
		t.Fatal(err)
	}
	again, err := alice.SendStateEvent(t.Context(), room.RoomID, event.StateTopic, "", topic)
	if err != nil || again.EventID != first.EventID {
		t.Fatalf("identical topic: %v %v, want %s", again, err, first.EventID)
	}
	// Another sender, or other content, is a change.
	if _, err := alice.SendStateEvent(t.Context(), room.RoomID, event.StateTopic, "", map[string]any{"topic": "other"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	var joined map[string]any
	if err := bob.StateEvent(t.Context(), room.RoomID, event.StateMember, bob.UserID.String(), &joined); err != nil {
		t.Fatal(err)
	}
	before, err := bob.Messages(t.Context(), room.RoomID, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	after, err := bob.Messages(t.Context(), room.RoomID, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Chunk) != len(before.Chunk) || after.Chunk[0].ID != before.Chunk[0].ID {
		t.Fatalf("a second join made an event: %d events before, %d after", len(before.Chunk), len(after.Chunk))
	}
}

// Restricted rooms: a member of an allowed room joins, with a local member
// who may invite named in join_authorised_via_users_server as the auth
// rules require; others are refused; hierarchies show the allowed rooms.
func TestRestrictedJoin(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	carol := register(t, srv, "carol", defaultPassword)
	for _, version := range []id.RoomVersion{"10", "12"} {
		space, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat", RoomVersion: version})
		if err != nil {
			t.Fatal(err)
		}
		room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "private_chat", RoomVersion: version,
			InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Raw: map[string]any{
				"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": space.RoomID}}}}}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := carol.JoinRoomByID(t.Context(), room.RoomID); err == nil {
			t.Fatalf("v%s: carol, in no allowed room, joined", version)
		}
		if _, err := bob.JoinRoomByID(t.Context(), space.RoomID); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.JoinRoomByID(t.Context(), room.RoomID); err != nil {
			t.Fatalf("v%s: bob, in the allowed room, could not join: %v", version, err)
		}
		var member map[string]any
		if err := bob.StateEvent(t.Context(), room.RoomID, event.StateMember, bob.UserID.String(), &member); err != nil {
			t.Fatal(err)
		}
		if member["membership"] != "join" || member["join_authorised_via_users_server"] != alice.UserID.String() {
			t.Fatalf("v%s: bob's member event %v", version, member)
		}
		code, body := srv.Do(t, "GET", "/_matrix/client/v1/rooms/"+url.PathEscape(room.RoomID.String())+"/hierarchy",
			alice.AccessToken, nil)
		rooms, _ := body["rooms"].([]any)
		if code != 200 || len(rooms) == 0 {
			t.Fatalf("hierarchy: %d %v", code, body)
		}
		allowed, _ := rooms[0].(map[string]any)["allowed_room_ids"].([]any)
		if len(allowed) != 1 || allowed[0] != space.RoomID.String() {
			t.Fatalf("v%s: allowed_room_ids %v", version, rooms[0])
		}
	}
}

// createRoom: trusted_private_chat in room version 12 makes the invitees
// creators; invalid creators or power levels are 400, not 403.
func TestCreateRoomCreators(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", RoomVersion: "12",
		Invite: []id.UserID{bob.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	var create map[string]any
	if err := alice.StateEvent(t.Context(), room.RoomID, event.StateCreate, "", &create); err != nil {
		t.Fatal(err)
	}
	if extra, _ := create["additional_creators"].([]any); len(extra) != 1 || extra[0] != bob.UserID.String() {
		t.Fatalf("create content %v", create)
	}
	for name, body := range map[string]map[string]any{
		"creators not user IDs": {"room_version": "12", "creation_content": map[string]any{"additional_creators": []any{"bob"}}},
		"creators not a list":   {"room_version": "12", "creation_content": map[string]any{"additional_creators": "bob"}},
		"levels not numbers":    {"power_level_content_override": map[string]any{"users": map[string]any{"@bob:localhost": "high"}}},
	} {
		code, answer := srv.Do(t, "POST", "/_matrix/client/v3/createRoom", alice.AccessToken, body)
		if code != 400 || answer["errcode"] != "M_BAD_JSON" {
			t.Errorf("%s: %d %v", name, code, answer)
		}
	}
}

// Paging details clients rely on: /search says when there is more; /messages
// gives an end token unless the start of the room was reached; /context
// with limit=0 gives the event alone; MSC3874's not_rel_types leaves
// thread replies out.
func TestPagingDetails(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	var root id.EventID
	for i := range 15 {
		resp, err := alice.SendText(t.Context(), room.RoomID, fmt.Sprintf("findme %d", i))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			root = resp.EventID
		}
	}
	reply, err := alice.SendMessageEvent(t.Context(), room.RoomID, event.EventMessage, map[string]any{"msgtype": "m.text",
		"body": "in a thread", "m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}})
	if err != nil {
		t.Fatal(err)
	}

	for _, order := range []string{"rank", "recent"} {
		criteria := map[string]any{"search_term": "findme", "order_by": order}
		code, body := srv.Do(t, "POST", "/_matrix/client/v3/search", alice.AccessToken,
			map[string]any{"search_categories": map[string]any{"room_events": criteria}})
		res := body["search_categories"].(map[string]any)["room_events"].(map[string]any)
		if code != 200 || len(res["results"].([]any)) != 10 || res["next_batch"] == nil {
			t.Fatalf("search by %s: %d results %d, next_batch %v", order, code, len(res["results"].([]any)), res["next_batch"])
		}
		code, body = srv.Do(t, "POST", "/_matrix/client/v3/search?next_batch="+url.QueryEscape(res["next_batch"].(string)),
			alice.AccessToken, map[string]any{"search_categories": map[string]any{"room_events": criteria}})
		res = body["search_categories"].(map[string]any)["room_events"].(map[string]any)
		if code != 200 || len(res["results"].([]any)) != 5 || res["next_batch"] != nil {
			t.Fatalf("search by %s, page 2: %d results %d, next_batch %v", order, code, len(res["results"].([]any)), res["next_batch"])
		}
	}

	base := "/_matrix/client/v3/rooms/" + url.PathEscape(room.RoomID.String())
	code, body := srv.Do(t, "GET", base+"/messages?dir=f&limit=1000", alice.AccessToken, nil)
	if code != 200 || body["end"] == nil {
		t.Fatalf("forward /messages to the live end has no end token: %d %v", code, body["end"])
	}
	code, body = srv.Do(t, "GET", base+"/messages?dir=b&limit=1000", alice.AccessToken, nil)
	if code != 200 || body["end"] != nil {
		t.Fatalf("backward /messages to the start of the room has an end token: %d %v", code, body["end"])
	}
	filter := url.QueryEscape(`{"org.matrix.msc3874.not_rel_types":["m.thread"]}`)
	code, body = srv.Do(t, "GET", base+"/messages?dir=b&limit=5&filter="+filter, alice.AccessToken, nil)
	for _, e := range body["chunk"].([]any) {
		if e.(map[string]any)["event_id"] == reply.EventID.String() {
			t.Fatalf("not_rel_types m.thread returned the thread reply (%d)", code)
		}
	}

	code, body = srv.Do(t, "GET", base+"/context/"+url.PathEscape(root.String())+"?limit=0", alice.AccessToken, nil)
	if code != 200 || len(body["events_before"].([]any)) != 0 || len(body["events_after"].([]any)) != 0 {
		t.Fatalf("/context limit=0: %d before %v after %v", code, body["events_before"], body["events_after"])
	}
	code, body = srv.Do(t, "GET", base+"/context/"+url.PathEscape(root.String()), alice.AccessToken, nil)
	if code != 200 || len(body["events_after"].([]any)) == 0 {
		t.Fatalf("/context without a limit: %d after %v", code, body["events_after"])
	}
}

// Push rules in the spec's form: a set_tweak without a value has no
// "value" key (mautrix writes null, which matrix-js-sdk reads as no
// highlight and nheko refuses), in /pushrules and in sync's m.push_rules.
func TestPushRulesWithoutNullTweaks(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	code, raw := srv.DoRaw(t, "GET", "/_matrix/client/v3/pushrules/", alice.AccessToken, nil)
	if code != 200 || !strings.Contains(string(raw), `"set_tweak":"highlight"`) || strings.Contains(string(raw), `"value":null`) {
		t.Fatalf("GET /pushrules/: %d %s", code, raw)
	}
	// A stored ruleset (after a change) and sync's copy of it.
	code, body := srv.Do(t, "PUT", "/_matrix/client/v3/pushrules/global/override/com.example.hl", alice.AccessToken,
		map[string]any{"actions": []any{"notify", map[string]any{"set_tweak": "highlight"}}, "conditions": []any{}})
	if code != 200 {
		t.Fatalf("put rule: %d %v", code, body)
	}
	code, raw = srv.DoRaw(t, "GET", "/_matrix/client/v3/pushrules/global/override/com.example.hl", alice.AccessToken, nil)
	if code != 200 || strings.Contains(string(raw), `"value":null`) {
		t.Fatalf("GET rule: %d %s", code, raw)
	}
	code, raw = srv.DoRaw(t, "GET", "/_matrix/client/v3/sync", alice.AccessToken, nil)
	if code != 200 || !strings.Contains(string(raw), `"m.push_rules"`) || strings.Contains(string(raw), `"value":null`) {
		t.Fatalf("sync: %d %s", code, raw)
	}
}

// An invite's stripped state names the inviter (their member event), so
// clients can show who invited.
func TestInviteStateNamesInviter(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	if err := alice.SetDisplayName(t.Context(), "Alice A."); err != nil {
		t.Fatal(err)
	}
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bob.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := bob.SyncRequest(t.Context(), 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	invite := resp.Rooms.Invite[room.RoomID]
	if invite == nil {
		t.Fatal("no invite in sync")
	}
	for _, ev := range invite.State.Events {
		if ev.Type == event.StateMember && ev.GetStateKey() == alice.UserID.String() {
			if ev.Content.Raw["displayname"] != "Alice A." {
				t.Fatalf("inviter's member event %v", ev.Content.Raw)
			}
			return
		}
	}
	t.Fatalf("invite state has no member event of the inviter (%d events)", len(invite.State.Events))
}

// GET /event gives the sending device its transaction ID, as sync does.
func TestEventTransactionID(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := alice.SendMessageEvent(t.Context(), room.RoomID, event.EventMessage, map[string]any{"msgtype": "m.text",
		"body": "hi"}, mautrix.ReqSendEvent{TransactionID: "my-txn"})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := alice.GetEvent(t.Context(), room.RoomID, resp.EventID)
	if err != nil || ev.Unsigned.TransactionID != "my-txn" {
		t.Fatalf("GET /event: transaction_id %q (%v)", ev.Unsigned.TransactionID, err)
	}
	other := login(t, srv, passwordLogin("alice", defaultPassword))
	if ev, err := other.GetEvent(t.Context(), room.RoomID, resp.EventID); err != nil || ev.Unsigned.TransactionID != "" {
		t.Fatalf("another device sees transaction_id %q (%v)", ev.Unsigned.TransactionID, err)
	}
}

// /members?at= with a sync token gives the membership at that point.
func TestMembersAt(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := alice.SyncRequest(t.Context(), 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   string
		want int
	}{{resp.NextBatch, 1}, {"", 2}} {
		members, err := alice.Members(t.Context(), room.RoomID, mautrix.ReqMembers{At: tc.at})
		if err != nil || len(members.Chunk) != tc.want {
			t.Fatalf("members at %q: %d (%v), want %d", tc.at, len(members.Chunk), err, tc.want)
		}
	}
}

// Account data can be deleted (MSC3391): reads answer 404 and sync carries
// an empty object, so the user's other devices drop it too.
func TestDeleteAccountData(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	path := "/user/" + url.PathEscape(alice.UserID.String()) + "/account_data/com.example.gone"
	if err := alice.SetAccountData(t.Context(), "com.example.gone", map[string]any{"x": 1}); err != nil {
		t.Fatal(err)
	}
	resp, err := alice.SyncRequest(t.Context(), 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	code, body := srv.Do(t, "DELETE", "/_matrix/client/unstable/org.matrix.msc3391"+path, alice.AccessToken, nil)
	if code != 200 {
		t.Fatalf("delete: %d %v", code, body)
	}
	code, body = srv.Do(t, "GET", "/_matrix/client/v3"+path, alice.AccessToken, nil)
	wantStatus(t, "read after delete", code, body, 404, "M_NOT_FOUND")
	next, err := alice.SyncRequest(t.Context(), 0, resp.NextBatch, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range next.AccountData.Events {
		if ev.Type.Type == "com.example.gone" {
			found = len(ev.Content.Raw) == 0
		}
	}
	if !found {
		t.Fatal("sync did not carry the deletion as an empty object")
	}
	code, body = srv.Do(t, "DELETE", "/_matrix/client/unstable/org.matrix.msc3391/user/@bob:localhost/account_data/x",
		alice.AccessToken, nil)
	wantStatus(t, "someone else's", code, body, 403, "M_FORBIDDEN")
}

// Invites from ignored users do not appear in sync (spec, "Ignoring Users").
func TestIgnoredInvites(t *testing.T) {
	srv := startOpen(t)
	alice, bob := register(t, srv, "alice", defaultPassword), register(t, srv, "bob", defaultPassword)
	carol := register(t, srv, "carol", defaultPassword)
	if err := bob.SetAccountData(t.Context(), "m.ignored_user_list",
		map[string]any{"ignored_users": map[string]any{alice.UserID.String(): map[string]any{}}}); err != nil {
		t.Fatal(err)
	}
	fromAlice, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Invite: []id.UserID{bob.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	fromCarol, err := carol.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Invite: []id.UserID{bob.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := bob.SyncRequest(t.Context(), 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Rooms.Invite[fromAlice.RoomID] != nil || resp.Rooms.Invite[fromCarol.RoomID] == nil {
		t.Fatalf("invites in sync: %v", resp.Rooms.Invite)
	}
}

// A room joined since the last sync comes with a limited timeline when it
// holds more than the timeline shows (clients then paginate back).
func TestNewlyJoinedRoomLimited(t *testing.T) {
	srv := startOpen(t)
	alice, bob := register(t, srv, "alice", defaultPassword), register(t, srv, "bob", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 15 {
		if _, err := alice.SendText(t.Context(), room.RoomID, fmt.Sprintf("before %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	first, err := bob.SyncRequest(t.Context(), 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	next, err := bob.SyncRequest(t.Context(), 0, first.NextBatch, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	jr := next.Rooms.Join[room.RoomID]
	if jr == nil || !jr.Timeline.Limited || jr.Timeline.PrevBatch == "" {
		t.Fatalf("newly joined room: %+v", jr)
	}
}

// A room left and forgotten between two syncs still shows its leave in the
// next one, so the user's other clients drop it.
func TestForgottenRoomLeaveInSync(t *testing.T) {
	srv := startOpen(t)
	_, bob, room := aliceAndBobInPublicRoom(t, srv)
	first, err := bob.SyncRequest(t.Context(), 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.LeaveRoom(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.ForgetRoom(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	next, err := bob.SyncRequest(t.Context(), 0, first.NextBatch, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if next.Rooms.Leave[room.RoomID] == nil {
		t.Fatalf("the forgotten room's leave is not in the next sync: %+v", next.Rooms)
	}
	// And not in later ones.
	later, err := bob.SyncRequest(t.Context(), 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if later.Rooms.Leave[room.RoomID] != nil {
		t.Fatal("a forgotten room shows in an initial sync")
	}
}

// The events of an ignored user other than state are hidden from the one
// who ignores them (spec, "Ignoring Users") in /sync, /messages and
// /event, and do not notify them; un-ignoring shows new events again.
func TestIgnoredUsersEvents(t *testing.T) {
	srv := startOpen(t)
	ctx := t.Context()
	alice, bob, room := aliceAndBobInPublicRoom(t, srv)
	first, err := bob.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	ignore := func(users ...id.UserID) {
		set := map[string]any{}
		for _, u := range users {
			set[u.String()] = map[string]any{}
		}
		if err := bob.SetAccountData(ctx, "m.ignored_user_list", map[string]any{"ignored_users": set}); err != nil {
			t.Fatal(err)
		}
	}
	ignore(alice.UserID)
	hidden, err := alice.SendText(ctx, room.RoomID, "you cannot see me")
	if err != nil {
		t.Fatal(err)
	}
	topic, err := alice.SendStateEvent(ctx, room.RoomID, event.StateTopic, "", map[string]any{"topic": "still seen"})
	if err != nil {
		t.Fatal(err)
	}
	next, err := bob.SyncRequest(ctx, 0, first.NextBatch, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[id.EventID]bool{}
	for _, ev := range next.Rooms.Join[room.RoomID].Timeline.Events {
		seen[ev.ID] = true
	}
	if seen[hidden.EventID] || !seen[topic.EventID] {
		t.Fatalf("bob's timeline: message shown %v, topic shown %v; want the state only", seen[hidden.EventID], seen[topic.EventID])
	}
	if n, _ := counts(t, next, room.RoomID); n != 0 {
		t.Fatalf("bob has %d notifications from an ignored user", n)
	}
	msgs, err := bob.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 50)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range msgs.Chunk {
		if ev.ID == hidden.EventID {
			t.Fatal("/messages shows the ignored user's message")
		}
	}
	if _, err := bob.GetEvent(ctx, room.RoomID, hidden.EventID); err == nil {
		t.Fatal("/event shows the ignored user's message")
	}
	ignore()
	shown, err := alice.SendText(ctx, room.RoomID, "hello again")
	if err != nil {
		t.Fatal(err)
	}
	last, err := bob.SyncRequest(ctx, 0, next.NextBatch, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range last.Rooms.Join[room.RoomID].Timeline.Events {
		found = found || ev.ID == shown.EventID
	}
	if n, _ := counts(t, last, room.RoomID); !found || n != 1 {
		t.Fatalf("after un-ignoring: message shown %v, %d notifications; want it and 1", found, n)
	}
}
