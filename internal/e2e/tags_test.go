package e2e

import (
	"context"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

func TestRoomTagsAndUserDirectory(t *testing.T) {
	srv := startOpen(t)
	ctx := context.Background()
	alice := register(t, srv, "alicedir", defaultPassword)
	bob := register(t, srv, "bobdir", defaultPassword)
	register(t, srv, "zoe", defaultPassword)
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.AddTag(ctx, room.RoomID, event.RoomTagFavourite, 0.5); err != nil {
		t.Fatal(err)
	}
	if err := alice.AddTag(ctx, room.RoomID, "u.work", 0.1); err != nil {
		t.Fatal(err)
	}
	if err := alice.RemoveTag(ctx, room.RoomID, "u.work"); err != nil {
		t.Fatal(err)
	}
	tags, err := alice.GetTags(ctx, room.RoomID)
	if err != nil {
		t.Fatal(err)
	}
	if len(tags.Tags) != 1 || tags.Tags[event.RoomTagFavourite].Order.String() != "0.5" {
		t.Fatalf("tags %+v", tags.Tags)
	}
	code, body := srv.Do(t, "PUT", "/_matrix/client/v3/user/"+string(alice.UserID)+"/rooms/"+string(room.RoomID)+"/tags/m.lowpriority",
		alice.AccessToken, map[string]any{"order": "high"})
	wantStatus(t, "non-numeric order", code, body, http.StatusBadRequest, "M_BAD_JSON")
	code, body = srv.Do(t, "GET", "/_matrix/client/v3/user/"+string(alice.UserID)+"/rooms/"+string(room.RoomID)+"/tags",
		bob.AccessToken, nil)
	wantStatus(t, "another user's tags", code, body, http.StatusForbidden, "M_FORBIDDEN")

	// The directory shows users sharing a room with the searcher, not strangers.
	if _, err := alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	// Raw: the spec names the field display_name, which mautrix's type does not read.
	code, body = srv.Do(t, "POST", "/_matrix/client/v3/user_directory/search", alice.AccessToken,
		map[string]any{"search_term": "bob"})
	results, _ := body["results"].([]any)
	if code != 200 || len(results) != 1 {
		t.Fatalf("search bob: %d %v", code, body)
	}
	if r := results[0].(map[string]any); r["user_id"] != string(bob.UserID) || r["display_name"] != "bobdir" {
		t.Fatalf("search bob: %v", r)
	}
	res, err := alice.SearchUserDirectory(ctx, "zoe", 10)
	if err != nil || len(res.Results) != 0 {
		t.Fatalf("a stranger was found: %+v %v", res, err)
	}
	code, body = srv.Do(t, "POST", "/_matrix/client/v3/user_directory/search", alice.AccessToken, map[string]any{})
	wantStatus(t, "no search term", code, body, http.StatusBadRequest, "M_MISSING_PARAM")
}
