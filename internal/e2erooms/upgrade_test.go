package e2erooms

import (
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

func (e *env) upgrade(t testing.TB, cli *mautrix.Client, room id.RoomID, version string) (int, map[string]any) {
	t.Helper()
	return e.do(t, cli, http.MethodPost, p("v3", "rooms", room, "upgrade"), map[string]any{"new_version": version})
}

func TestUpgrade(t *testing.T) { upgradeFlows(t, newEnv(t)) }

func upgradeFlows(t *testing.T, e *env) {
	for _, c := range []struct{ from, to string }{{"10", "12"}, {"12", "12"}, {"11", "10"}, {"12", "11"}} {
		t.Run(c.from+" to "+c.to, func(t *testing.T) { upgradeFlow(t, e, id.RoomVersion(c.from), c.to) })
	}
}

func upgradeFlow(t *testing.T, e *env, from id.RoomVersion, to string) {
	alice, bob := e.user(t, "alice"), e.user(t, "bob")
	local := "up-" + alice.UserID.Localpart()
	alias := id.RoomAlias("#" + local + ":localhost")
	old := createRoom(t, alice, &mautrix.ReqCreateRoom{RoomVersion: from, Preset: "public_chat", Visibility: "public",
		Name: "Old name", Topic: "Old topic", RoomAliasName: local})
	join(t, bob, old)
	must(alice.CreateAlias(ctx(t), id.RoomAlias("#"+local+"-alt:localhost"), old)).of(t)
	sendText(t, bob, old, "before the upgrade")
	// Raise bob to 50 so that the power levels carried over can be checked.
	pl := stateOf(t, alice, old, "m.room.power_levels", "")
	users, _ := pl["users"].(map[string]any)
	if users == nil {
		users = map[string]any{}
	}
	users[string(bob.UserID)] = 50
	pl["users"] = users
	sendState(t, alice, old, "m.room.power_levels", "", pl)
	// Bob mutes the room: his rule follows it to the new room.
	status, body := e.do(t, bob, http.MethodPut, p("v3", "pushrules", "global", "room", old), map[string]any{"actions": []any{}})
	if status != http.StatusOK {
		t.Fatalf("bob's room rule: HTTP %d %v", status, body)
	}

	// Bob (50) may not upgrade: tombstone needs 100.
	status, body = e.upgrade(t, bob, old, to)
	wantStatus(t, "bob upgrades", status, body, http.StatusForbidden, "M_FORBIDDEN")
	status, body = e.upgrade(t, alice, old, "99")
	wantStatus(t, "upgrade to 99", status, body, http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION")
	status, body = e.upgrade(t, alice, old, to)
	if status != http.StatusOK {
		t.Fatalf("upgrade: HTTP %d %v", status, body)
	}
	newRoom := id.RoomID(body["replacement_room"].(string))
	if newRoom == "" || newRoom == old {
		t.Fatalf("replacement room %q", newRoom)
	}

	// Old room: tombstone, muted, unpublished, canonical alias gone.
	tomb := stateOf(t, bob, old, "m.room.tombstone", "")
	if tomb["replacement_room"] != string(newRoom) || tomb["body"] == "" {
		t.Fatalf("tombstone %v", tomb)
	}
	oldPL := stateOf(t, bob, old, "m.room.power_levels", "")
	if oldPL["events_default"] != float64(50) || oldPL["invite"] != float64(50) {
		t.Fatalf("old room power levels not raised: %v", oldPL)
	}
	late := e.user(t, "late")
	join(t, late, old) // still joinable (public), but muted for power 0
	_, err := late.SendText(ctx(t), old, "anyone here?")
	wantErr(t, err, http.StatusForbidden, "M_FORBIDDEN")
	sendText(t, bob, old, "bob is a moderator: still allowed") // 50 ≥ 50
	if got := stateOf(t, bob, old, "m.room.canonical_alias", ""); got["alias"] != nil {
		t.Fatalf("old room canonical alias %v", got)
	}

	// New room: create with predecessor and version, copied state, aliases.
	create := must(alice.FullStateEvent(ctx(t), newRoom, event.StateCreate, "")).of(t)
	if create.Content.Raw["room_version"] != to || path(create.Content.Raw, "predecessor", "room_id") != string(old) {
		t.Fatalf("new create event %v", create.Content.Raw)
	}
	if got := stateOf(t, alice, newRoom, "m.room.name", ""); got["name"] != "Old name" {
		t.Fatalf("name %v", got)
	}
	if got := stateOf(t, alice, newRoom, "m.room.topic", ""); got["topic"] != "Old topic" {
		t.Fatalf("topic %v", got)
	}
	if got := stateOf(t, alice, newRoom, "m.room.join_rules", ""); got["join_rule"] != "public" {
		t.Fatalf("join_rules %v", got)
	}
	newPL := stateOf(t, alice, newRoom, "m.room.power_levels", "")
	if path(newPL, "users", string(bob.UserID)) != float64(50) {
		t.Fatalf("bob's power in the new room: %v", newPL["users"])
	}
	_, aliceListed := newPL["users"].(map[string]any)[string(alice.UserID)]
	if aliceListed != (to != "12") {
		t.Fatalf("alice listed in the new power levels = %v (room version %s)", aliceListed, to)
	}
	if got := stateOf(t, alice, newRoom, "m.room.canonical_alias", ""); got["alias"] != string(alias) {
		t.Fatalf("new canonical alias %v", got)
	}
	if res := must(bob.ResolveAlias(ctx(t), alias)).of(t); res.RoomID != newRoom {
		t.Fatalf("alias now resolves to %s", res.RoomID)
	}
	if res := must(bob.ResolveAlias(ctx(t), id.RoomAlias("#"+local+"-alt:localhost"))).of(t); res.RoomID != newRoom {
		t.Fatalf("second alias resolves to %s", res.RoomID)
	}
	if v := e.visibility(t, newRoom); v != "public" {
		t.Fatalf("new room visibility %s", v)
	}
	if v := e.visibility(t, old); v != "private" {
		t.Fatalf("old room visibility %s", v)
	}
	status, body = e.do(t, bob, http.MethodGet, p("v3", "pushrules", "global", "room", newRoom), nil)
	if status != http.StatusOK || body["rule_id"] != string(newRoom) {
		t.Fatalf("bob's room rule for the new room: HTTP %d %v", status, body)
	}
	// Bob follows the tombstone.
	join(t, bob, newRoom)
	sendText(t, bob, newRoom, "after the upgrade")
	equal(t, "new room messages", bodies(timeline(t, alice, newRoom, mautrix.DirectionForward, 10)), []string{"after the upgrade"})
	// Upgrading an unknown room, or as a non-member.
	status, body = e.upgrade(t, alice, "!nope:localhost", to)
	wantStatus(t, "unknown room", status, body, http.StatusForbidden, "M_FORBIDDEN")
	status, body = e.do(t, alice, http.MethodPost, p("v3", "rooms", newRoom, "upgrade"), map[string]any{})
	wantStatus(t, "missing new_version", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
}

func (e *env) visibility(t testing.TB, room id.RoomID) string {
	t.Helper()
	var v struct {
		Visibility string `json:"visibility"`
	}
	e.doInto(t, nil, http.MethodGet, p("v3", "directory", "list", "room", room), nil, &v)
	return v.Visibility
}
