package e2erooms

import (
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func TestAliases(t *testing.T) { aliasesFlow(t, newEnv(t)) }

func aliasesFlow(t *testing.T, e *env) {
	alice, bob, carol := e.user(t, "alice"), e.user(t, "bob"), e.user(t, "carol")
	room := publicRoom(t, alice, "")
	join(t, bob, room)
	other := createRoom(t, carol, nil)
	alias := id.RoomAlias("#lobby:localhost")

	must(alice.CreateAlias(ctx(t), alias, room)).of(t)
	res := must(bob.ResolveAlias(ctx(t), alias)).of(t)
	if res.RoomID != room || !slices.Equal(res.Servers, []string{"localhost"}) {
		t.Fatalf("resolve: %+v", res)
	}
	// Resolving needs no access token.
	status, body := e.do(t, nil, http.MethodGet, p("v3", "directory", "room", alias), nil)
	if status != http.StatusOK || body["room_id"] != string(room) {
		t.Fatalf("anonymous resolve: HTTP %d %v", status, body)
	}
	// Duplicate → 409; an alias of another server → 400; a malformed alias → 400.
	_, err := carol.CreateAlias(ctx(t), alias, other)
	wantErr(t, err, http.StatusConflict, "M_UNKNOWN")
	_, err = alice.CreateAlias(ctx(t), "#lobby:elsewhere.example", room)
	wantErr(t, err, http.StatusBadRequest, "M_INVALID_PARAM")
	_, err = alice.CreateAlias(ctx(t), "#nocolon", room)
	wantErr(t, err, http.StatusBadRequest, "M_INVALID_PARAM")
	// An alias for a room that does not exist.
	_, err = alice.CreateAlias(ctx(t), "#ghost:localhost", "!nosuchroom:localhost")
	wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
	_, err = bob.ResolveAlias(ctx(t), "#unknown:localhost")
	wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")

	must(alice.CreateAlias(ctx(t), "#lobby2:localhost", room)).of(t)
	list := must(bob.GetAliases(ctx(t), room)).of(t)
	slices.Sort(list.Aliases)
	equal(t, "room aliases", list.Aliases, []id.RoomAlias{"#lobby2:localhost", alias})
	_, err = carol.GetAliases(ctx(t), room) // public room, but shared history: carol is not a member
	wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")

	// Canonical alias: only aliases pointing to the room.
	sendState(t, alice, room, "m.room.canonical_alias", "", map[string]any{"alias": alias, "alt_aliases": []string{"#lobby2:localhost"}})
	must(carol.CreateAlias(ctx(t), "#carols:localhost", other)).of(t)
	for _, content := range []map[string]any{
		{"alias": "#carols:localhost"},
		{"alias": alias, "alt_aliases": []string{"#carols:localhost"}},
		{"alias": "#missing:localhost"},
	} {
		_, err = alice.SendStateEvent(ctx(t), room, event.StateCanonicalAlias, "", content)
		wantErr(t, err, http.StatusBadRequest, "M_BAD_ALIAS")
	}
	status, body = e.do(t, alice, http.MethodPut, p("v3", "rooms", room, "state", "m.room.canonical_alias", ""), map[string]any{"alias": "not an alias"})
	wantStatus(t, "malformed canonical alias", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
	// Removing the canonical alias is fine.
	sendState(t, alice, room, "m.room.canonical_alias", "", map[string]any{})

	// Deleting: bob (not the creator, power 0) may not; carol (not in the room) may not; alice may.
	_, err = bob.DeleteAlias(ctx(t), "#lobby2:localhost")
	wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
	_, err = carol.DeleteAlias(ctx(t), "#lobby2:localhost")
	wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
	must(alice.DeleteAlias(ctx(t), "#lobby2:localhost")).of(t)
	_, err = bob.ResolveAlias(ctx(t), "#lobby2:localhost")
	wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
	_, err = alice.DeleteAlias(ctx(t), "#lobby2:localhost")
	wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
	// A room moderator may delete an alias someone else created.
	must(bob.CreateAlias(ctx(t), "#bobs:localhost", room)).of(t)
	must(alice.DeleteAlias(ctx(t), "#bobs:localhost")).of(t)
	// The alias can be reused once deleted.
	must(carol.CreateAlias(ctx(t), "#lobby2:localhost", other)).of(t)
	equal(t, "aliases after delete", must(alice.GetAliases(ctx(t), room)).of(t).Aliases, []id.RoomAlias{alias})
	// Join through an alias; unknown alias → 404.
	dave := e.user(t, "dave")
	if res := must(dave.JoinRoom(ctx(t), string(alias), nil)).of(t); res.RoomID != room {
		t.Fatalf("join via alias: %s", res.RoomID)
	}
	_, err = dave.JoinRoom(ctx(t), "#unknown:localhost", nil)
	wantErr(t, err, http.StatusNotFound, "M_NOT_FOUND")
}

// publicRooms lists the directory as cli (nil: anonymously through GET).
func (e *env) publicRooms(t testing.TB, cli *mautrix.Client, body map[string]any) *mautrix.RespPublicRooms {
	t.Helper()
	var res mautrix.RespPublicRooms
	if body == nil {
		e.doInto(t, cli, http.MethodGet, p("v3", "publicRooms"), nil, &res)
	} else {
		e.doInto(t, cli, http.MethodPost, p("v3", "publicRooms"), body, &res)
	}
	return &res
}

func TestDirectory(t *testing.T) { directoryFlow(t, newEnv(t)) }

func directoryFlow(t *testing.T, e *env) {
	alice, bob, carol := e.user(t, "alice"), e.user(t, "bob"), e.user(t, "carol")
	// Three public rooms with 3, 2 and 1 members, and a private one.
	alpha := createRoom(t, alice, &mautrix.ReqCreateRoom{Visibility: "public", Preset: "public_chat", Name: "Alpha chat",
		Topic: "first letters", RoomAliasName: "alpha"})
	beta := createRoom(t, alice, &mautrix.ReqCreateRoom{Visibility: "public", Preset: "public_chat", Name: "Beta chat"})
	gamma := createRoom(t, alice, &mautrix.ReqCreateRoom{Visibility: "public", Preset: "public_chat", Name: "Gamma",
		Topic: "the BETA tester's room"})
	hidden := createRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Hidden"})
	join(t, bob, alpha)
	join(t, carol, alpha)
	join(t, bob, beta)

	all := e.publicRooms(t, nil, nil) // anonymous GET
	var got []id.RoomID
	for _, r := range all.Chunk {
		got = append(got, r.RoomID)
	}
	equal(t, "directory by member count", got, []id.RoomID{alpha, beta, gamma})
	if all.TotalRoomCountEstimate != 3 || all.NextBatch != "" {
		t.Fatalf("total %d next %q", all.TotalRoomCountEstimate, all.NextBatch)
	}
	a := all.Chunk[0]
	if a.Name != "Alpha chat" || a.Topic != "first letters" || a.NumJoinedMembers != 3 || a.CanonicalAlias != "#alpha:localhost" ||
		a.JoinRule != "public" || a.WorldReadable || a.GuestCanJoin {
		t.Fatalf("alpha entry %+v", a)
	}

	// Pagination with since.
	p1 := must(bob.PublicRooms(ctx(t), &mautrix.ReqPublicRooms{Limit: 2})).of(t)
	if len(p1.Chunk) != 2 || p1.Chunk[0].RoomID != alpha || p1.Chunk[1].RoomID != beta || p1.NextBatch == "" {
		t.Fatalf("first page %+v", p1)
	}
	p2 := must(bob.PublicRooms(ctx(t), &mautrix.ReqPublicRooms{Limit: 2, Since: p1.NextBatch})).of(t)
	if len(p2.Chunk) != 1 || p2.Chunk[0].RoomID != gamma || p2.NextBatch != "" || p2.PrevBatch == "" {
		t.Fatalf("second page %+v", p2)
	}
	back := must(bob.PublicRooms(ctx(t), &mautrix.ReqPublicRooms{Limit: 2, Since: p2.PrevBatch})).of(t)
	if len(back.Chunk) != 2 || back.Chunk[0].RoomID != alpha {
		t.Fatalf("prev page %+v", back)
	}
	status, body := e.do(t, nil, http.MethodGet, q(p("v3", "publicRooms"), "since", "garbage"), nil)
	wantStatus(t, "bad since", status, body, http.StatusBadRequest, "M_INVALID_PARAM")

	// Search (POST, authenticated): name, topic and alias, case-insensitively.
	search := func(term string) []id.RoomID {
		res := e.publicRooms(t, bob, map[string]any{"filter": map[string]any{"generic_search_term": term}})
		var out []id.RoomID
		for _, r := range res.Chunk {
			out = append(out, r.RoomID)
		}
		return out
	}
	equal(t, "search beta", search("beta"), []id.RoomID{beta, gamma})
	equal(t, "search CHAT", search("CHAT"), []id.RoomID{alpha, beta})
	equal(t, "search alias", search("#alpha"), []id.RoomID{alpha})
	if got := search("hidden"); len(got) != 0 {
		t.Fatalf("unpublished room found: %v", got)
	}
	res := e.publicRooms(t, bob, map[string]any{"limit": 1, "filter": map[string]any{"generic_search_term": "chat"}})
	if len(res.Chunk) != 1 || res.Chunk[0].RoomID != alpha || res.NextBatch == "" {
		t.Fatalf("search with limit %+v", res)
	}
	res = e.publicRooms(t, bob, map[string]any{"limit": 1, "since": res.NextBatch, "filter": map[string]any{"generic_search_term": "chat"}})
	if len(res.Chunk) != 1 || res.Chunk[0].RoomID != beta || res.NextBatch != "" {
		t.Fatalf("search page 2 %+v", res)
	}
	status, body = e.do(t, nil, http.MethodPost, p("v3", "publicRooms"), map[string]any{})
	wantStatus(t, "anonymous POST", status, body, http.StatusUnauthorized, "M_MISSING_TOKEN")

	// Publishing and hiding: only those who may set the canonical alias (50).
	visibility := func(room id.RoomID) string {
		var v struct {
			Visibility string `json:"visibility"`
		}
		e.doInto(t, nil, http.MethodGet, p("v3", "directory", "list", "room", room), nil, &v)
		return v.Visibility
	}
	if visibility(hidden) != "private" {
		t.Fatal("hidden room is published")
	}
	status, body = e.do(t, bob, http.MethodPut, p("v3", "directory", "list", "room", beta), map[string]any{"visibility": "private"})
	wantStatus(t, "bob hides beta", status, body, http.StatusForbidden, "M_FORBIDDEN")
	e.doInto(t, alice, http.MethodPut, p("v3", "directory", "list", "room", hidden), map[string]any{"visibility": "public"}, nil)
	e.doInto(t, alice, http.MethodPut, p("v3", "directory", "list", "room", beta), map[string]any{"visibility": "private"}, nil)
	if visibility(hidden) != "public" || visibility(beta) != "private" {
		t.Fatal("visibility not changed")
	}
	got = nil
	for _, r := range e.publicRooms(t, nil, nil).Chunk {
		got = append(got, r.RoomID)
	}
	want := []id.RoomID{gamma, hidden} // one member each: room ID order
	slices.Sort(want)
	equal(t, "directory after changes", got, append([]id.RoomID{alpha}, want...))
	status, body = e.do(t, alice, http.MethodPut, p("v3", "directory", "list", "room", beta), map[string]any{"visibility": "secret"})
	wantStatus(t, "bad visibility", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
	status, body = e.do(t, nil, http.MethodGet, p("v3", "directory", "list", "room", "!unknown:localhost"), nil)
	wantStatus(t, "unknown room visibility", status, body, http.StatusNotFound, "M_NOT_FOUND")
	// Directory entries follow state changes.
	sendState(t, alice, alpha, "m.room.topic", "", map[string]any{"topic": "renamed topic"})
	leave(t, carol, alpha)
	if first := e.publicRooms(t, nil, nil).Chunk[0]; first.RoomID != alpha || first.Topic != "renamed topic" || first.NumJoinedMembers != 2 {
		t.Fatalf("alpha after changes %+v", first)
	}
}

func TestSpaceHierarchy(t *testing.T) { spaceHierarchyFlow(t, newEnv(t)) }

func spaceHierarchyFlow(t *testing.T, e *env) {
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	space := createRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Space",
		CreationContent: map[string]any{"type": "m.space"}})
	childA := createRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Child A", Topic: "a"})
	subspace := createRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Subspace",
		CreationContent: map[string]any{"type": "m.space"}})
	grandchild := createRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Grandchild"})
	secret := createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Secret"}) // invite-only
	via := map[string]any{"via": []string{"localhost"}}
	sendState(t, alice, space, "m.space.child", string(childA), map[string]any{"via": []string{"localhost"}, "suggested": true})
	sendState(t, alice, space, "m.space.child", string(subspace), via)
	sendState(t, alice, space, "m.space.child", string(secret), via)
	sendState(t, alice, subspace, "m.space.child", string(grandchild), via)
	sendState(t, alice, subspace, "m.space.child", string(space), via) // a cycle
	// A child without via is not a child; one that does not exist is skipped.
	sendState(t, alice, space, "m.space.child", "!removed:localhost", map[string]any{})
	sendState(t, alice, space, "m.space.child", "!unknown:localhost", via)

	hierarchy := func(cli *mautrix.Client, req *mautrix.ReqHierarchy) (map[id.RoomID]*mautrix.ChildRoomsChunk, []id.RoomID, string) {
		t.Helper()
		res := must(cli.Hierarchy(ctx(t), space, req)).of(t)
		out := map[id.RoomID]*mautrix.ChildRoomsChunk{}
		var order []id.RoomID
		for _, r := range res.Rooms {
			if out[r.RoomID] != nil {
				t.Fatalf("room %s listed twice", r.RoomID)
			}
			out[r.RoomID] = r
			order = append(order, r.RoomID)
		}
		return out, order, res.NextBatch
	}
	// Bob is in none of the rooms: he sees the public ones, not the invite-only child.
	rooms, order, _ := hierarchy(bob, nil)
	if len(order) != 4 || order[0] != space || rooms[secret] != nil || rooms[childA] == nil || rooms[subspace] == nil ||
		rooms[grandchild] == nil {
		t.Fatalf("hierarchy for bob: %v", order)
	}
	root := rooms[space]
	if root.RoomType != event.RoomTypeSpace || root.Name != "Space" || root.NumJoinedMembers != 1 {
		t.Fatalf("space entry %+v", root.PublicRoomInfo)
	}
	var children []string
	for _, cs := range root.ChildrenState {
		if cs.Type.Type != "m.space.child" || cs.StateKey == nil {
			t.Fatalf("children_state entry %+v", cs)
		}
		children = append(children, *cs.StateKey)
	}
	slices.Sort(children)
	wantChildren := []string{string(childA), string(subspace), string(secret), "!unknown:localhost"}
	slices.Sort(wantChildren)
	equal(t, "children_state of the space", children, wantChildren)
	for _, cs := range root.ChildrenState {
		if cs.Timestamp == 0 || cs.Sender != alice.UserID {
			t.Fatalf("children_state entry lacks origin_server_ts or sender: %+v", cs)
		}
	}
	if rooms[childA].Topic != "a" || rooms[subspace].RoomType != event.RoomTypeSpace || len(rooms[subspace].ChildrenState) != 2 {
		t.Fatalf("children: %+v %+v", rooms[childA].PublicRoomInfo, rooms[subspace].PublicRoomInfo)
	}
	// Alice, a member of the secret room, sees it.
	rooms, _, _ = hierarchy(alice, nil)
	if rooms[secret] == nil || len(rooms) != 5 {
		t.Fatalf("hierarchy for alice: %d rooms", len(rooms))
	}
	// max_depth.
	zero, one := 0, 1
	_, order, _ = hierarchy(bob, &mautrix.ReqHierarchy{MaxDepth: &zero})
	equal(t, "max_depth 0", order, []id.RoomID{space})
	rooms, _, _ = hierarchy(bob, &mautrix.ReqHierarchy{MaxDepth: &one})
	if len(rooms) != 3 || rooms[grandchild] != nil {
		t.Fatalf("max_depth 1: %d rooms", len(rooms))
	}
	// suggested_only.
	rooms, _, _ = hierarchy(bob, &mautrix.ReqHierarchy{SuggestedOnly: true})
	if len(rooms) != 2 || rooms[childA] == nil {
		t.Fatalf("suggested_only: %d rooms", len(rooms))
	}
	// Pagination: pages of one, nothing repeated or lost.
	var paged []id.RoomID
	from := ""
	for range 10 {
		res := must(bob.Hierarchy(ctx(t), space, &mautrix.ReqHierarchy{Limit: 1, From: from})).of(t)
		for _, r := range res.Rooms {
			paged = append(paged, r.RoomID)
		}
		if res.NextBatch == "" {
			break
		}
		from = res.NextBatch
	}
	_, full, _ := hierarchy(bob, nil)
	equal(t, "paged hierarchy", paged, full)
	// A restricted child is listed for members of a room it allows.
	members := createRoom(t, alice, &mautrix.ReqCreateRoom{Name: "Members only", InitialState: []*event.Event{{
		Type: event.StateJoinRules, Content: event.Content{Raw: map[string]any{"join_rule": "restricted",
			"allow": []any{map[string]any{"type": "m.room_membership", "room_id": subspace}}}}}}})
	sendState(t, alice, space, "m.space.child", string(members), via)
	if rooms, _, _ = hierarchy(bob, nil); rooms[members] != nil {
		t.Fatal("a restricted child is listed for a user in none of its allowed rooms")
	}
	join(t, bob, subspace)
	if rooms, _, _ = hierarchy(bob, nil); rooms[members] == nil {
		t.Fatal("a restricted child is not listed for a member of its allowed room")
	}
	// A redacted link is no child.
	link := must(alice.FullStateEvent(ctx(t), space, event.StateSpaceChild, string(childA))).of(t)
	must(alice.RedactEvent(ctx(t), space, link.ID)).of(t)
	if rooms, _, _ = hierarchy(bob, nil); rooms[childA] != nil {
		t.Fatal("a child whose m.space.child was redacted is still listed")
	}
	// A private space the user cannot see at all is 403.
	privateSpace := createRoom(t, alice, &mautrix.ReqCreateRoom{CreationContent: map[string]any{"type": "m.space"}})
	_, err := bob.Hierarchy(ctx(t), privateSpace, nil)
	wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
	status, body := e.do(t, bob, http.MethodGet, q(p("v1", "rooms", space, "hierarchy"), "max_depth", "-1"), nil)
	wantStatus(t, "negative max_depth", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
}
