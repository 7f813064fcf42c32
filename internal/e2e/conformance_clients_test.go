package e2e

import (
	"net/http"
	"net/url"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// onEachDatabase runs a test against an open server on SQLite and on
// PostgreSQL (skipped where none can be had, see pgtest).
func onEachDatabase(t *testing.T, test func(t *testing.T, srv *testserver.Server)) {
	t.Run("sqlite", func(t *testing.T) { test(t, startOpen(t)) })
	t.Run("postgres", func(t *testing.T) { test(t, startOpen(t, "--database-url", pgtest.URL(t))) })
}

// joined_members entries always have display_name and avatar_url (null when
// unset); the user directory finds users by their global display name, not
// a name they use in one room, and never lists the searcher (issue 13,
// item 15).
func TestJoinedMembersAndUserDirectory(t *testing.T) {
	onEachDatabase(t, testJoinedMembersAndUserDirectory)
}

func testJoinedMembersAndUserDirectory(t *testing.T, srv *testserver.Server) {
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetDisplayName(t.Context(), "Alice Global"); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetAvatarURL(t.Context(), id.ContentURI{Homeserver: "localhost", FileID: "alice"}); err != nil {
		t.Fatal(err)
	}
	// Bob has no display name and no avatar.
	st, res := srv.Do(t, "DELETE", "/_matrix/client/v3/profile/"+url.PathEscape(string(bob.UserID))+"/displayname",
		bob.AccessToken, nil)
	wantStatus(t, "delete bob's name", st, res, http.StatusOK, "")
	// Alice uses another name in this room only.
	if _, err := alice.SendStateEvent(t.Context(), room.RoomID, event.StateMember, string(alice.UserID), map[string]any{
		"membership": "join", "displayname": "Secret Room Name", "avatar_url": "mxc://localhost/alice"}); err != nil {
		t.Fatal(err)
	}

	st, res = srv.Do(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(string(room.RoomID))+"/joined_members", alice.AccessToken, nil)
	wantStatus(t, "joined_members", st, res, http.StatusOK, "")
	joined, _ := res["joined"].(map[string]any)
	a, _ := joined[string(alice.UserID)].(map[string]any)
	b, _ := joined[string(bob.UserID)].(map[string]any)
	if len(joined) != 2 || a["display_name"] != "Secret Room Name" || a["avatar_url"] != "mxc://localhost/alice" {
		t.Fatalf("joined members %v", joined)
	}
	for _, k := range []string{"display_name", "avatar_url"} {
		if v, ok := b[k]; !ok || v != nil {
			t.Fatalf("bob's entry %v: want %s present and null", b, k)
		}
	}

	search := func(cli *mautrix.Client, term string) []map[string]any {
		t.Helper()
		st, res := srv.Do(t, "POST", "/_matrix/client/v3/user_directory/search", cli.AccessToken,
			map[string]any{"search_term": term})
		wantStatus(t, "search "+term, st, res, http.StatusOK, "")
		var out []map[string]any
		for _, r := range res["results"].([]any) {
			out = append(out, r.(map[string]any))
		}
		return out
	}
	if got := search(bob, "secret"); len(got) != 0 {
		t.Errorf("search for alice's room name: %v, want nothing", got)
	}
	got := search(bob, "global")
	if len(got) != 1 || got[0]["user_id"] != string(alice.UserID) || got[0]["display_name"] != "Alice Global" ||
		got[0]["avatar_url"] != "mxc://localhost/alice" {
		t.Errorf("search for alice's global name: %v", got)
	}
	if got := search(bob, "alice"); len(got) != 1 || got[0]["display_name"] != "Alice Global" {
		t.Errorf("search for alice's user ID: %v", got)
	}
	// Not the searcher.
	if got := search(bob, "bob"); len(got) != 0 {
		t.Errorf("bob's search for bob: %v, want nothing", got)
	}
	if got := search(alice, ""); len(got) != 1 || got[0]["user_id"] != string(bob.UserID) {
		t.Errorf("alice's search for everyone: %v, want bob only", got)
	}
}

// One-time keys are claimed in the order they were uploaded, whatever
// their key IDs (issue 13, item 16; the spec, /keys/claim).
func TestClaimInUploadOrder(t *testing.T) { onEachDatabase(t, testClaimInUploadOrder) }

func testClaimInUploadOrder(t *testing.T, srv *testserver.Server) {
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	upload := func(ids ...string) {
		t.Helper()
		keys := map[string]any{}
		for _, id := range ids {
			keys["curve25519:"+id] = "key-" + id
		}
		st, res := srv.Do(t, "POST", "/_matrix/client/v3/keys/upload", alice.AccessToken, map[string]any{"one_time_keys": keys})
		wantStatus(t, "upload", st, res, http.StatusOK, "")
	}
	upload("ZZZ")
	upload("BBB", "AAA")
	upload("MMM")
	upload("ZZZ") // the same key again is no new upload
	claim := func() string {
		t.Helper()
		st, res := srv.Do(t, "POST", "/_matrix/client/v3/keys/claim", bob.AccessToken, map[string]any{"one_time_keys": map[string]any{
			string(alice.UserID): map[string]any{string(alice.DeviceID): "curve25519"}}})
		wantStatus(t, "claim", st, res, http.StatusOK, "")
		keys, _ := res["one_time_keys"].(map[string]any)[string(alice.UserID)].(map[string]any)[string(alice.DeviceID)].(map[string]any)
		if len(keys) != 1 {
			t.Fatalf("claimed %v", res)
		}
		for k := range keys {
			return k
		}
		return ""
	}
	var got []string
	for range 4 {
		got = append(got, claim())
	}
	// Keys of one upload have no order among themselves.
	if got[0] != "curve25519:ZZZ" || got[3] != "curve25519:MMM" ||
		!slices.Equal(slices.Sorted(slices.Values(got[1:3])), []string{"curve25519:AAA", "curve25519:BBB"}) {
		t.Fatalf("claimed %v, want ZZZ, then AAA and BBB, then MMM", got)
	}
}

// What Synapse accepts and the spec allows: an avatar URL that is not
// mxc:// (profiles and member events), device keys without signatures
// (issue 13, item 19).
func TestLenientProfilesAndKeys(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	profile := "/_matrix/client/v3/profile/" + url.PathEscape(string(alice.UserID))
	for _, avatar := range []string{"https://example.org/a.png", "not a URL at all"} {
		st, res := srv.Do(t, "PUT", profile+"/avatar_url", alice.AccessToken, map[string]any{"avatar_url": avatar})
		wantStatus(t, "set avatar "+avatar, st, res, http.StatusOK, "")
		st, res = srv.Do(t, "GET", profile+"/avatar_url", "", nil)
		if st != http.StatusOK || res["avatar_url"] != avatar {
			t.Fatalf("avatar after setting %q: %d %v", avatar, st, res)
		}
		var member map[string]any
		if err := alice.StateEvent(t.Context(), room.RoomID, event.StateMember, string(alice.UserID), &member); err != nil {
			t.Fatal(err)
		}
		if member["avatar_url"] != avatar {
			t.Fatalf("member event after setting %q: %v", avatar, member)
		}
	}
	if _, err := alice.SendStateEvent(t.Context(), room.RoomID, event.StateMember, string(alice.UserID), map[string]any{
		"membership": "join", "avatar_url": "http://example.org/room.png"}); err != nil {
		t.Fatalf("member event with an http avatar: %v", err)
	}

	dev := string(alice.DeviceID)
	for i, signatures := range []any{map[string]any{}, nil} {
		dk := map[string]any{"user_id": string(alice.UserID), "device_id": dev,
			"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
			"keys":       map[string]any{"ed25519:" + dev: "ed25519-key", "curve25519:" + dev: "curve-key"}}
		if signatures != nil {
			dk["signatures"] = signatures
		}
		dk["unsigned"] = map[string]any{"n": i}
		st, res := srv.Do(t, "POST", "/_matrix/client/v3/keys/upload", alice.AccessToken, map[string]any{"device_keys": dk})
		wantStatus(t, "unsigned device keys", st, res, http.StatusOK, "")
	}
	st, res := srv.Do(t, "POST", "/_matrix/client/v3/keys/query", bob.AccessToken,
		map[string]any{"device_keys": map[string]any{string(alice.UserID): []string{}}})
	wantStatus(t, "query", st, res, http.StatusOK, "")
	keys, _ := res["device_keys"].(map[string]any)[string(alice.UserID)].(map[string]any)[dev].(map[string]any)
	if k, _ := keys["keys"].(map[string]any); k["ed25519:"+dev] != "ed25519-key" {
		t.Fatalf("alice's device keys as bob sees them: %v", res)
	}
}
