package e2e

import (
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// This file holds the sync conformance tests of issue 13 (items 8 and 22):
// left rooms, unsigned.membership (MSC4115), state_after (MSC4222, spec
// v1.16) and invite blocking and filtering (spec v1.18, MSC4155).

// onBothDatabases runs a test against a server on SQLite, then on
// PostgreSQL (skipped when none can be had, unless TRIBUTARY_REQUIRE_POSTGRES=1).
func onBothDatabases(t *testing.T, test func(t *testing.T, srv *testserver.Server)) {
	t.Run("sqlite", func(t *testing.T) { test(t, startOpen(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, startOpen(t, "--database-url", pgtest.URL(t))) })
}

// syncQuery runs GET /sync with extra query parameters and returns the answer.
func syncQuery(t *testing.T, srv *testserver.Server, token string, q url.Values) map[string]any {
	t.Helper()
	q.Set("timeout", "0")
	code, body := srv.Do(t, "GET", "/_matrix/client/v3/sync?"+q.Encode(), token, nil)
	wantStatus(t, "sync", code, body, http.StatusOK, "")
	return body
}

// section digs a room's part of a sync answer (kind: join, leave, invite).
func section(body map[string]any, kind string, room id.RoomID) map[string]any {
	rs, _ := body["rooms"].(map[string]any)
	k, _ := rs[kind].(map[string]any)
	r, _ := k[string(room)].(map[string]any)
	return r
}

// eventsOf lists the events of a room part's field (timeline, state…).
func eventsOf(room map[string]any, field string) []map[string]any {
	f, _ := room[field].(map[string]any)
	evs, _ := f["events"].([]any)
	out := make([]map[string]any, 0, len(evs))
	for _, e := range evs {
		m, _ := e.(map[string]any)
		out = append(out, m)
	}
	return out
}

func unsignedOf(ev map[string]any) map[string]any {
	u, _ := ev["unsigned"].(map[string]any)
	return u
}

func bodyOf(ev map[string]any) string {
	c, _ := ev["content"].(map[string]any)
	s, _ := c["body"].(string)
	return s
}

// isLeaveOf reports whether ev is user's leave.
func isLeaveOf(ev map[string]any, user id.UserID) bool {
	c, _ := ev["content"].(map[string]any)
	return ev["type"] == "m.room.member" && ev["state_key"] == string(user) && c["membership"] == "leave"
}

// A room left since the token that the client held as a joined room
// carries the events since the token up to and including the leave, and
// no state unless something is missing before the timeline; a refused
// invite carries its leave alone, with no state; an initial sync with
// include_leave carries the state at the timeline's start, as Synapse does.
func TestLeftRoomInSync(t *testing.T) { onBothDatabases(t, testLeftRoomInSync) }

func testLeftRoomInSync(t *testing.T, srv *testserver.Server) {
	alice, bob := register(t, srv, "alice", defaultPassword), register(t, srv, "bob", defaultPassword)
	carol := register(t, srv, "carol", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.InviteUser(t.Context(), room.RoomID, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	bobFirst := syncQuery(t, srv, bob.AccessToken, url.Values{})
	carolFirst := syncQuery(t, srv, carol.AccessToken, url.Values{})
	if section(carolFirst, "invite", room.RoomID) == nil {
		t.Fatal("carol's invite is not in her sync")
	}
	if _, err := alice.SendText(t.Context(), room.RoomID, "before bob leaves"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.LeaveRoom(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.LeaveRoom(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(t.Context(), room.RoomID, "after bob left"); err != nil {
		t.Fatal(err)
	}

	left := section(syncQuery(t, srv, bob.AccessToken, url.Values{"since": {str(t, bobFirst, "next_batch")}}), "leave", room.RoomID)
	if left == nil {
		t.Fatal("bob's leave is not in his incremental sync")
	}
	tl := eventsOf(left, "timeline")
	if len(tl) != 2 || bodyOf(tl[0]) != "before bob leaves" || !isLeaveOf(tl[1], bob.UserID) {
		t.Fatalf("bob's left room timeline: %v", tl)
	}
	if st := eventsOf(left, "state"); len(st) != 0 {
		t.Fatalf("bob's left room carries %d state events the client has: %v", len(st), st)
	}
	if unsignedOf(tl[0])["membership"] != "join" || unsignedOf(tl[1])["membership"] != "leave" {
		t.Fatalf("bob's membership along the left room's timeline: %v, %v", unsignedOf(tl[0]), unsignedOf(tl[1]))
	}

	refused := section(syncQuery(t, srv, carol.AccessToken, url.Values{"since": {str(t, carolFirst, "next_batch")}}), "leave", room.RoomID)
	if refused == nil {
		t.Fatal("carol's refusal is not in her incremental sync")
	}
	tl = eventsOf(refused, "timeline")
	if len(tl) != 1 || tl[0]["type"] != "m.room.member" || tl[0]["state_key"] != string(carol.UserID) {
		t.Fatalf("carol's refused invite timeline: %v", tl)
	}
	if st := eventsOf(refused, "state"); len(st) != 0 {
		t.Fatalf("carol's refused invite carries state: %v", st)
	}

	// An initial sync shows left rooms only with include_leave, then with
	// their state (the client has none), the timeline ending at the leave.
	if section(syncQuery(t, srv, bob.AccessToken, url.Values{}), "leave", room.RoomID) != nil {
		t.Fatal("a left room in an initial sync without include_leave")
	}
	archived := section(syncQuery(t, srv, bob.AccessToken, url.Values{"filter": {`{"room":{"include_leave":true,"timeline":{"limit":2}}}`}}),
		"leave", room.RoomID)
	if archived == nil || len(eventsOf(archived, "state")) == 0 {
		t.Fatalf("initial sync with include_leave: %v", archived)
	}
	tl = eventsOf(archived, "timeline")
	if len(tl) == 0 || !isLeaveOf(tl[len(tl)-1], bob.UserID) {
		t.Fatalf("include_leave timeline does not end at the leave: %v", tl)
	}
}

// Events carry the requesting user's membership at the event
// (unsigned.membership, MSC4115, spec v1.11) in /sync, /messages,
// /context and /event, filtered or not.
func TestUnsignedMembership(t *testing.T) { onBothDatabases(t, testUnsignedMembership) }

func testUnsignedMembership(t *testing.T, srv *testserver.Server) {
	alice, bob := register(t, srv, "alice", defaultPassword), register(t, srv, "bob", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	send := func(body string) id.EventID {
		t.Helper()
		r, err := alice.SendText(t.Context(), room.RoomID, body)
		if err != nil {
			t.Fatal(err)
		}
		return r.EventID
	}
	before := send("before the invite")
	if _, err := alice.InviteUser(t.Context(), room.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	invited := send("while invited")
	if _, err := bob.JoinRoomByID(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	joined := send("joined")
	want := map[string]string{"before the invite": "leave", "while invited": "invite", "joined": "join"}
	check := func(what string, evs []map[string]any) {
		t.Helper()
		seen := 0
		for _, ev := range evs {
			if w, ok := want[bodyOf(ev)]; ok {
				seen++
				if got := unsignedOf(ev)["membership"]; got != w {
					t.Fatalf("%s: %q carries membership %v, want %s", what, bodyOf(ev), got, w)
				}
			}
			if ev["type"] == "m.room.member" && ev["state_key"] == string(bob.UserID) {
				c, _ := ev["content"].(map[string]any)
				if unsignedOf(ev)["membership"] != c["membership"] {
					t.Fatalf("%s: bob's own %v event carries membership %v", what, c["membership"], unsignedOf(ev)["membership"])
				}
			}
		}
		if seen != len(want) {
			t.Fatalf("%s: %d of the messages, want %d: %v", what, seen, len(want), evs)
		}
	}
	for _, filter := range []string{"", `{"room":{"timeline":{"types":["m.room.message"]}}}`} {
		q := url.Values{}
		if filter != "" {
			q.Set("filter", filter)
		}
		check("sync "+filter, eventsOf(section(syncQuery(t, srv, bob.AccessToken, q), "join", room.RoomID), "timeline"))
		mq := url.Values{"dir": {"b"}, "limit": {"20"}}
		if filter != "" {
			mq.Set("filter", `{"types":["m.room.message"]}`)
		}
		code, page := srv.Do(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(room.RoomID.String())+"/messages?"+mq.Encode(),
			bob.AccessToken, nil)
		wantStatus(t, "messages", code, page, http.StatusOK, "")
		var chunk []map[string]any
		for _, e := range page["chunk"].([]any) {
			chunk = append(chunk, e.(map[string]any))
		}
		check("messages "+filter, chunk)
	}
	// Sliding sync's timeline too.
	code, ss := srv.Do(t, "POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync?timeout=0", bob.AccessToken,
		map[string]any{"room_subscriptions": map[string]any{room.RoomID.String(): map[string]any{"timeline_limit": 20}}})
	wantStatus(t, "sliding sync", code, ss, http.StatusOK, "")
	ssRoom, _ := ss["rooms"].(map[string]any)[room.RoomID.String()].(map[string]any)
	var ssTimeline []map[string]any
	for _, e := range ssRoom["timeline"].([]any) {
		ssTimeline = append(ssTimeline, e.(map[string]any))
	}
	check("sliding sync", ssTimeline)
	code, ctxBody := srv.Do(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(room.RoomID.String())+"/context/"+
		url.PathEscape(invited.String())+"?limit=10", bob.AccessToken, nil)
	wantStatus(t, "context", code, ctxBody, http.StatusOK, "")
	all := []map[string]any{ctxBody["event"].(map[string]any)}
	for _, k := range []string{"events_before", "events_after"} {
		for _, e := range ctxBody[k].([]any) {
			all = append(all, e.(map[string]any))
		}
	}
	check("context", all)
	for eid, w := range map[id.EventID]string{before: "leave", invited: "invite", joined: "join"} {
		code, ev := srv.Do(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(room.RoomID.String())+"/event/"+
			url.PathEscape(eid.String()), bob.AccessToken, nil)
		wantStatus(t, "event", code, ev, http.StatusOK, "")
		if got := unsignedOf(ev)["membership"]; got != w {
			t.Fatalf("GET /event %s: membership %v, want %s", eid, got, w)
		}
	}
}

// /members?at= gives the membership at a point of the timeline, whether
// the token is a sync token or a pagination token (prev_batch).
func TestMembersAtPaginationToken(t *testing.T) { onBothDatabases(t, testMembersAtPaginationToken) }

func testMembersAtPaginationToken(t *testing.T, srv *testserver.Server) {
	alice, bob, room := aliceAndBobInPublicRoom(t, srv)
	withBob, err := alice.SyncRequest(t.Context(), 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.LeaveRoom(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(t.Context(), room.RoomID, "after"); err != nil {
		t.Fatal(err)
	}
	// The timeline of a sync limited to the last message starts after the
	// leave: its prev_batch is the point just before that message.
	after, err := alice.SyncRequest(t.Context(), 0, "", `{"room":{"timeline":{"limit":1}}}`, false, "")
	if err != nil {
		t.Fatal(err)
	}
	membership := func(at string) event.Membership {
		t.Helper()
		members, err := alice.Members(t.Context(), room.RoomID, mautrix.ReqMembers{At: at})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range members.Chunk {
			if m.GetStateKey() == bob.UserID.String() {
				return m.Content.AsMember().Membership
			}
		}
		return ""
	}
	if got := membership(withBob.NextBatch); got != event.MembershipJoin {
		t.Fatalf("at the sync token: bob is %q", got)
	}
	if got := membership(after.Rooms.Join[room.RoomID].Timeline.PrevBatch); got != event.MembershipLeave {
		t.Fatalf("at the prev_batch after the leave: bob is %q", got)
	}
}

// use_state_after (spec v1.16, MSC4222) answers state_after, the state at
// the end of the timeline, in place of state; MSC4222's unstable name gets
// the unstable field.
func TestSyncStateAfter(t *testing.T) { onBothDatabases(t, testSyncStateAfter) }

func testSyncStateAfter(t *testing.T, srv *testserver.Server) {
	alice, bob := register(t, srv, "alice", defaultPassword), register(t, srv, "bob", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "first"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	stateOf := func(room map[string]any, field string) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, e := range eventsOf(room, field) {
			out[e["type"].(string)+"|"+e["state_key"].(string)] = e
		}
		return out
	}
	first := syncQuery(t, srv, bob.AccessToken, url.Values{"use_state_after": {"true"}})
	jr := section(first, "join", room.RoomID)
	if _, has := jr["state"]; has || jr["state_after"] == nil {
		t.Fatalf("initial sync with use_state_after: %v", jr)
	}
	// The state after the timeline has bob's join, which is in the timeline too.
	if st := stateOf(jr, "state_after"); st["m.room.member|"+string(bob.UserID)] == nil || st["m.room.name|"] == nil {
		t.Fatalf("state_after lacks bob's join or the name: %v", st)
	}
	if _, err := alice.SendStateEvent(t.Context(), room.RoomID, event.StateRoomName, "", map[string]any{"name": "second"}); err != nil {
		t.Fatal(err)
	}
	since := str(t, first, "next_batch")
	next := section(syncQuery(t, srv, bob.AccessToken, url.Values{"since": {since}, "use_state_after": {"true"}}), "join", room.RoomID)
	name := stateOf(next, "state_after")["m.room.name|"]
	if _, has := next["state"]; has || name == nil || name["content"].(map[string]any)["name"] != "second" {
		t.Fatalf("incremental state_after: %v", next)
	}
	// Without the parameter: state (at the start of the timeline: empty).
	plain := section(syncQuery(t, srv, bob.AccessToken, url.Values{"since": {since}}), "join", room.RoomID)
	if _, has := plain["state_after"]; has || len(eventsOf(plain, "state")) != 0 || plain["state"] == nil {
		t.Fatalf("incremental sync without use_state_after: %v", plain)
	}
	unstable := section(syncQuery(t, srv, bob.AccessToken, url.Values{"since": {since},
		"org.matrix.msc4222.use_state_after": {"true"}}), "join", room.RoomID)
	if _, has := unstable["state"]; has || stateOf(unstable, "org.matrix.msc4222.state_after")["m.room.name|"] == nil {
		t.Fatalf("incremental sync with the unstable parameter: %v", unstable)
	}
	// A room left since the token: its state after the leave.
	if _, err := bob.LeaveRoom(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	left := section(syncQuery(t, srv, bob.AccessToken, url.Values{"since": {since}, "use_state_after": {"true"}}), "leave", room.RoomID)
	if mem := stateOf(left, "state_after")["m.room.member|"+string(bob.UserID)]; mem == nil || !isLeaveOf(mem, bob.UserID) {
		t.Fatalf("left room state_after: %v", left)
	}
	code, body := srv.Do(t, "GET", "/_matrix/client/v3/sync?use_state_after=yes", bob.AccessToken, nil)
	wantStatus(t, "bad use_state_after", code, body, http.StatusBadRequest, "M_INVALID_PARAM")
	wantUnstableFeature(t, srv, "org.matrix.msc4222")
}

// wantUnstableFeature checks that /versions advertises an unstable feature.
func wantUnstableFeature(t *testing.T, srv *testserver.Server, name string) {
	t.Helper()
	code, body := srv.Do(t, "GET", "/_matrix/client/versions", "", nil)
	wantStatus(t, "versions", code, body, http.StatusOK, "")
	if f, _ := body["unstable_features"].(map[string]any); f[name] != true {
		t.Fatalf("/versions does not advertise %s: %v", name, body["unstable_features"])
	}
}

// slidingInvites lists the invited rooms of a sliding sync answer.
func slidingInvites(t *testing.T, srv *testserver.Server, token string) map[string]any {
	t.Helper()
	code, body := srv.Do(t, "POST", "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync?timeout=0", token,
		map[string]any{"lists": map[string]any{"all": map[string]any{"ranges": [][]int{{0, 50}}, "timeline_limit": 1}}})
	wantStatus(t, "sliding sync", code, body, http.StatusOK, "")
	out := map[string]any{}
	rs, _ := body["rooms"].(map[string]any)
	for r, v := range rs {
		if st, _ := v.(map[string]any)["invite_state"].([]any); len(st) > 0 {
			out[r] = v
		}
	}
	return out
}

// Invites from ignored users are hidden from incremental syncs and sliding
// sync too, not only from initial syncs.
func TestIgnoredInvitesIncrementalAndSliding(t *testing.T) {
	onBothDatabases(t, testIgnoredInvitesIncrementalAndSliding)
}

func testIgnoredInvitesIncrementalAndSliding(t *testing.T, srv *testserver.Server) {
	alice, bob := register(t, srv, "alice", defaultPassword), register(t, srv, "bob", defaultPassword)
	if err := bob.SetAccountData(t.Context(), "m.ignored_user_list",
		map[string]any{"ignored_users": map[string]any{alice.UserID.String(): map[string]any{}}}); err != nil {
		t.Fatal(err)
	}
	first := syncQuery(t, srv, bob.AccessToken, url.Values{})
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Invite: []id.UserID{bob.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	if section(syncQuery(t, srv, bob.AccessToken, url.Values{"since": {str(t, first, "next_batch")}}), "invite", room.RoomID) != nil {
		t.Fatal("an ignored user's invite in an incremental sync")
	}
	if inv := slidingInvites(t, srv, bob.AccessToken); inv[string(room.RoomID)] != nil {
		t.Fatalf("an ignored user's invite in sliding sync: %v", inv)
	}
}

// Invite blocking (spec v1.18): with m.invite_permission_config's
// default_action "block", the invite endpoints answer 403 M_INVITE_BLOCKED
// and invites made before are hidden. MSC4155's filtering: its globs allow,
// ignore (made, hidden) or block (refused with its unstable code).
func TestInviteBlocking(t *testing.T) { onBothDatabases(t, testInviteBlocking) }

func testInviteBlocking(t *testing.T, srv *testserver.Server) {
	alice, bob := register(t, srv, "alice", defaultPassword), register(t, srv, "bob", defaultPassword)
	carol, dave := register(t, srv, "carol", defaultPassword), register(t, srv, "dave", defaultPassword)
	early, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Invite: []id.UserID{bob.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.SetAccountData(t.Context(), "m.invite_permission_config", map[string]any{"default_action": "block"}); err != nil {
		t.Fatal(err)
	}
	blocked := mautrix.RespError{ErrCode: "M_INVITE_BLOCKED", StatusCode: http.StatusForbidden}
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = alice.InviteUser(t.Context(), room.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID})
	wantErr(t, err, blocked)
	_, err = alice.SendStateEvent(t.Context(), room.RoomID, event.StateMember, bob.UserID.String(),
		map[string]any{"membership": "invite"})
	wantErr(t, err, blocked)
	_, err = alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Invite: []id.UserID{bob.UserID}})
	wantErr(t, err, blocked)
	if section(syncQuery(t, srv, bob.AccessToken, url.Values{}), "invite", early.RoomID) != nil {
		t.Fatal("an invite made before blocking is in sync")
	}
	if inv := slidingInvites(t, srv, bob.AccessToken); inv[string(early.RoomID)] != nil {
		t.Fatalf("an invite made before blocking is in sliding sync: %v", inv)
	}
	// Lifting the block (the event without default_action) lets invites in.
	if err := bob.SetAccountData(t.Context(), "m.invite_permission_config", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.InviteUser(t.Context(), room.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}

	// MSC4155: only carol may invite; dave's invites are ignored.
	if err := bob.SetAccountData(t.Context(), "org.matrix.msc4155.invite_permission_config", map[string]any{
		"allowed_users": []string{"@car*:localhost"}, "ignored_users": []string{dave.UserID.String()},
		"blocked_servers": []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	first := syncQuery(t, srv, bob.AccessToken, url.Values{})
	_, err = alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Invite: []id.UserID{bob.UserID}})
	wantErr(t, err, mautrix.RespError{ErrCode: "ORG.MATRIX.MSC4155.M_INVITE_BLOCKED", StatusCode: http.StatusForbidden})
	fromCarol, err := carol.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Invite: []id.UserID{bob.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	fromDave, err := dave.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Invite: []id.UserID{bob.UserID}})
	if err != nil {
		t.Fatalf("an ignored invite is made as if accepted: %v", err)
	}
	next := syncQuery(t, srv, bob.AccessToken, url.Values{"since": {str(t, first, "next_batch")}})
	if section(next, "invite", fromCarol.RoomID) == nil || section(next, "invite", fromDave.RoomID) != nil {
		t.Fatalf("invites in sync under MSC4155: %v", next["rooms"])
	}
	inv := slidingInvites(t, srv, bob.AccessToken)
	if inv[string(fromCarol.RoomID)] == nil || inv[string(fromDave.RoomID)] != nil {
		t.Fatalf("invites in sliding sync under MSC4155: %v", inv)
	}
	// "enabled": false turns the rules off.
	if err := bob.SetAccountData(t.Context(), "org.matrix.msc4155.invite_permission_config", map[string]any{
		"enabled": false, "blocked_servers": []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Invite: []id.UserID{bob.UserID}}); err != nil {
		t.Fatalf("disabled MSC4155 rules still block: %v", err)
	}
	wantUnstableFeature(t, srv, "org.matrix.msc4155")
}

// Rooms of version 12 are created with m.room.tombstone above the admins'
// level (spec v1.16, MSC4289: "explicitly higher than state_default", e.g.
// 150), so that only creators upgrade them by default; older versions keep 100.
func TestV12TombstonePower(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	for version, want := range map[id.RoomVersion]float64{"12": 150, "11": 100} {
		room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{RoomVersion: version})
		if err != nil {
			t.Fatal(err)
		}
		code, pl := srv.Do(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(room.RoomID.String())+
			"/state/m.room.power_levels/", alice.AccessToken, nil)
		wantStatus(t, "power levels", code, pl, http.StatusOK, "")
		if got := pl["events"].(map[string]any)["m.room.tombstone"]; got != want {
			t.Fatalf("room v%s: m.room.tombstone needs %v, want %v", version, got, want)
		}
	}
}

// The server says that it does not forget rooms on leave (spec v1.18,
// m.forget_forced_upon_leave): a left room stays until the user forgets it.
func TestForgetForcedUponLeaveCapability(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	code, body := srv.Do(t, "GET", "/_matrix/client/v3/capabilities", alice.AccessToken, nil)
	wantStatus(t, "capabilities", code, body, http.StatusOK, "")
	caps, _ := body["capabilities"].(map[string]any)
	if c, _ := caps["m.forget_forced_upon_leave"].(map[string]any); c == nil || c["enabled"] != false {
		t.Fatalf("m.forget_forced_upon_leave: %v", caps["m.forget_forced_upon_leave"])
	}
}

// A join that replaces a join — a display name change, which rewrites the
// user's membership in every room, or a second join — leaves the room as
// the client holds it: the next incremental sync carries the changes since
// the token, not the room's whole timeline and state again (which a client
// would take for new events). A rejoin after a leave is new to the client
// and comes whole. (A bridge joining its user by double puppeting before
// the user's own join made TestIRCPlugin see its backfilled history twice.)
func TestProfileChangeKeepsRoomIncremental(t *testing.T) {
	onBothDatabases(t, testProfileChangeKeepsRoomIncremental)
}

func testProfileChangeKeepsRoomIncremental(t *testing.T, srv *testserver.Server) {
	alice, bob, room := aliceAndBobInPublicRoom(t, srv)
	if _, err := alice.SendText(t.Context(), room.RoomID, "before the token"); err != nil {
		t.Fatal(err)
	}
	since := str(t, syncQuery(t, srv, bob.AccessToken, url.Values{}), "next_batch")

	hasType := func(evs []map[string]any, typ string) bool {
		for _, ev := range evs {
			if ev["type"] == typ {
				return true
			}
		}
		return false
	}
	bobJoins := func(evs []map[string]any) int {
		n := 0
		for _, ev := range evs {
			c, _ := ev["content"].(map[string]any)
			if ev["type"] == "m.room.member" && ev["state_key"] == string(bob.UserID) && c["membership"] == "join" {
				n++
			}
		}
		return n
	}
	for _, change := range []struct {
		name string
		do   func() error
	}{
		{"display name", func() error { return bob.SetDisplayName(t.Context(), "Bob B.") }},
		// A join with other content (an identical one is no new event),
		// as a bridge's double-puppeted join and the user's own differ.
		{"second join", func() error {
			_, err := bob.JoinRoom(t.Context(), room.RoomID.String(), &mautrix.ReqJoinRoom{Reason: "once more"})
			return err
		}},
	} {
		if err := change.do(); err != nil {
			t.Fatalf("%s: %v", change.name, err)
		}
		if _, err := alice.SendText(t.Context(), room.RoomID, "after the "+change.name); err != nil {
			t.Fatal(err)
		}
		body := syncQuery(t, srv, bob.AccessToken, url.Values{"since": {since}})
		joined := section(body, "join", room.RoomID)
		tl, st := eventsOf(joined, "timeline"), eventsOf(joined, "state")
		if len(tl) != 2 || bobJoins(tl) != 1 || bodyOf(tl[1]) != "after the "+change.name {
			t.Fatalf("%s: the incremental timeline is not bob's new join and the message after it: %v", change.name, tl)
		}
		if len(st) != 0 || hasType(tl, "m.room.create") {
			t.Fatalf("%s: the room came whole again (state %v)", change.name, st)
		}
		since = str(t, body, "next_batch")
	}

	// A leave and a rejoin since the token: the room is new again.
	if _, err := bob.LeaveRoom(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	joined := section(syncQuery(t, srv, bob.AccessToken, url.Values{"since": {since}}), "join", room.RoomID)
	if all := append(eventsOf(joined, "state"), eventsOf(joined, "timeline")...); !hasType(all, "m.room.create") {
		t.Fatalf("a rejoin after a leave did not bring the room's whole state: %v", all)
	}

	// Invited at the token, then joined and renamed since: the room is new
	// to the client, though the latest join followed a join.
	carol := register(t, srv, "carol", defaultPassword)
	if _, err := alice.InviteUser(t.Context(), room.RoomID, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	carolSince := str(t, syncQuery(t, srv, carol.AccessToken, url.Values{}), "next_batch")
	if _, err := carol.JoinRoomByID(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	if err := carol.SetDisplayName(t.Context(), "Carol C."); err != nil {
		t.Fatal(err)
	}
	joined = section(syncQuery(t, srv, carol.AccessToken, url.Values{"since": {carolSince}}), "join", room.RoomID)
	if all := append(eventsOf(joined, "state"), eventsOf(joined, "timeline")...); !hasType(all, "m.room.create") {
		t.Fatalf("a room joined since the token came without its whole state: %v", all)
	}
}
