package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/synapseadmin"
)

// TestAdminRoomTools: the room endpoints an admin reads a room with
// (messages, context, timestamp_to_event, forward extremities, media)
// whatever their membership and the room's history visibility, and those
// that change it (make room admin, trim extremities, quarantine its media);
// background jobs; every one refuses a non-admin.
func TestAdminRoomTools(t *testing.T) {
	srv := startOpen(t)
	adm := adminClient(t, srv)
	admTok := adm.Client.AccessToken
	ctx := t.Context()
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	// bob's private room, history shared with members only, alias #den.
	den, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomAliasName: "den",
		InitialState: []*event.Event{{Type: event.StateHistoryVisibility,
			Content: event.Content{Parsed: &event.HistoryVisibilityEventContent{HistoryVisibility: event.HistoryVisibilityJoined}}}}})
	if err != nil {
		t.Fatal(err)
	}
	up, err := bob.UploadBytesWithName(ctx, []byte("a picture"), "image/png", "pic.png")
	if err != nil {
		t.Fatal(err)
	}
	var sent []*event.Event
	for i := range 5 {
		content := map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("den %d", i)}
		if i == 2 {
			content = map[string]any{"msgtype": "m.image", "body": "pic.png", "url": up.ContentURI.String(),
				"info": map[string]any{"thumbnail_url": "mxc://elsewhere.example/thumb"}}
		}
		r, err := bob.SendMessageEvent(ctx, den.RoomID, event.EventMessage, content)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := bob.GetEvent(ctx, den.RoomID, r.EventID)
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, ev)
	}
	roomPath := "/_synapse/admin/v1/rooms/" + url.PathEscape(string(den.RoomID))

	t.Run("non-admins are refused", func(t *testing.T) {
		for _, r := range [][2]string{
			{"GET", roomPath + "/messages"},
			{"GET", roomPath + "/context/" + url.PathEscape(string(sent[0].ID))},
			{"GET", roomPath + "/timestamp_to_event?ts=1"},
			{"POST", roomPath + "/make_room_admin"},
			{"GET", roomPath + "/forward_extremities"},
			{"DELETE", roomPath + "/forward_extremities"},
			{"GET", "/_synapse/admin/v1/room/" + url.PathEscape(string(den.RoomID)) + "/media"},
			{"POST", "/_synapse/admin/v1/room/" + url.PathEscape(string(den.RoomID)) + "/media/quarantine"},
			{"POST", "/_synapse/admin/v1/purge_media_cache?before_ts=1"},
			{"GET", "/_synapse/admin/v1/background_updates/enabled"},
			{"POST", "/_synapse/admin/v1/background_updates/enabled"},
			{"GET", "/_synapse/admin/v1/background_updates/status"},
			{"POST", "/_synapse/admin/v1/purge_history/" + url.PathEscape(string(den.RoomID))},
			{"GET", "/_synapse/admin/v1/purge_history_status/x"},
			{"POST", "/_synapse/admin/v1/user/" + url.PathEscape(string(bob.UserID)) + "/redact"},
			{"GET", "/_synapse/admin/v1/user/redact_status/x"},
			{"GET", "/_synapse/admin/v1/users/" + url.PathEscape(string(bob.UserID)) + "/accountdata"},
			{"GET", "/_synapse/admin/v1/users/" + url.PathEscape(string(bob.UserID)) + "/override_ratelimit"},
			{"POST", "/_synapse/admin/v1/users/" + url.PathEscape(string(bob.UserID)) + "/override_ratelimit"},
			{"DELETE", "/_synapse/admin/v1/users/" + url.PathEscape(string(bob.UserID)) + "/override_ratelimit"},
			{"POST", "/_synapse/admin/v1/users/" + url.PathEscape(string(bob.UserID)) + "/shadow_ban"},
			{"DELETE", "/_synapse/admin/v1/users/" + url.PathEscape(string(bob.UserID)) + "/shadow_ban"},
		} {
			st, body := srv.Do(t, r[0], r[1], alice.AccessToken, map[string]any{})
			wantStatus(t, r[0]+" "+r[1], st, body, http.StatusForbidden, "M_FORBIDDEN")
		}
	})

	t.Run("messages", func(t *testing.T) {
		page, err := adm.RoomMessages(ctx, den.RoomID, "", "", mautrix.DirectionBackward, nil, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Chunk) != 3 || page.Chunk[0].ID != sent[4].ID || page.Chunk[2].ID != sent[2].ID || page.End == "" {
			t.Fatalf("the last 3 events, newest first: %+v", page)
		}
		next, err := adm.RoomMessages(ctx, den.RoomID, page.End, "", mautrix.DirectionBackward, nil, 2)
		if err != nil || len(next.Chunk) != 2 || next.Chunk[0].ID != sent[1].ID {
			t.Fatalf("the next page: %+v %v", next, err)
		}
		fwd, err := adm.RoomMessages(ctx, den.RoomID, "", "", mautrix.DirectionForward, &mautrix.FilterPart{Types: []event.Type{event.StateCreate}}, 10)
		if err != nil || len(fwd.Chunk) != 1 || fwd.Chunk[0].Type != event.StateCreate {
			t.Fatalf("forwards, create events only: %+v %v", fwd, err)
		}
		// bob's own view is the same; alice, no member, gets nothing.
		_, err = alice.Messages(ctx, den.RoomID, "", "", mautrix.DirectionBackward, nil, 3)
		wantErr(t, err, mautrix.MForbidden.WithStatus(http.StatusForbidden))
		for _, q := range []string{"dir=x", "limit=-1", "from=garbage", "filter=nope"} {
			st, body := srv.Do(t, "GET", roomPath+"/messages?"+q, admTok, nil)
			if st != http.StatusBadRequest {
				t.Fatalf("messages?%s: %d %v", q, st, body)
			}
		}
		st, body := srv.Do(t, "GET", "/_synapse/admin/v1/rooms/"+url.PathEscape("!nowhere:localhost")+"/messages", admTok, nil)
		wantStatus(t, "an unknown room", st, body, http.StatusNotFound, "M_NOT_FOUND")
	})

	t.Run("context", func(t *testing.T) {
		st, body := srv.Do(t, "GET", roomPath+"/context/"+url.PathEscape(string(sent[2].ID))+"?limit=2", admTok, nil)
		wantStatus(t, "context", st, body, http.StatusOK, "")
		ev, _ := body["event"].(map[string]any)
		before, _ := body["events_before"].([]any)
		after, _ := body["events_after"].([]any)
		state, _ := body["state"].([]any)
		if ev["event_id"] != string(sent[2].ID) || len(before) != 1 || len(after) != 1 || len(state) == 0 {
			t.Fatalf("context of the image: %v", body)
		}
		if b, _ := before[0].(map[string]any); b["event_id"] != string(sent[1].ID) {
			t.Fatalf("event before: %v", before)
		}
		st, body = srv.Do(t, "GET", roomPath+"/context/"+url.PathEscape("$nowhere"), admTok, nil)
		wantStatus(t, "an unknown event", st, body, http.StatusNotFound, "M_NOT_FOUND")
		st, body = srv.Do(t, "GET", roomPath+"/context/"+url.PathEscape(string(sent[2].ID))+"?limit=x", admTok, nil)
		wantStatus(t, "a bad limit", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
	})

	t.Run("timestamp_to_event", func(t *testing.T) {
		for _, c := range []struct {
			q    string
			want id.EventID
		}{
			{fmt.Sprintf("ts=%d&dir=f", sent[3].Timestamp), sent[3].ID},
			{fmt.Sprintf("ts=%d&dir=b", sent[4].Timestamp+60_000), sent[4].ID},
		} {
			st, body := srv.Do(t, "GET", roomPath+"/timestamp_to_event?"+c.q, admTok, nil)
			wantStatus(t, c.q, st, body, http.StatusOK, "")
			if body["event_id"] != string(c.want) || body["origin_server_ts"] == nil {
				t.Fatalf("%s: %v, want %s", c.q, body, c.want)
			}
		}
		st, body := srv.Do(t, "GET", roomPath+fmt.Sprintf("/timestamp_to_event?ts=%d&dir=f", sent[4].Timestamp+60_000), admTok, nil)
		wantStatus(t, "after the last event", st, body, http.StatusNotFound, "M_NOT_FOUND")
		st, body = srv.Do(t, "GET", roomPath+"/timestamp_to_event", admTok, nil)
		wantStatus(t, "no ts", st, body, http.StatusBadRequest, "M_MISSING_PARAM")
		st, body = srv.Do(t, "GET", roomPath+"/timestamp_to_event?ts=1&dir=up", admTok, nil)
		wantStatus(t, "a bad direction", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
	})

	t.Run("forward extremities", func(t *testing.T) {
		st, body := srv.Do(t, "GET", "/_synapse/admin/v1/rooms/"+url.PathEscape("#den:localhost")+"/forward_extremities", admTok, nil)
		wantStatus(t, "extremities by alias", st, body, http.StatusOK, "")
		results, _ := body["results"].([]any)
		if body["count"] != float64(1) || len(results) != 1 {
			t.Fatalf("extremities: %v", body)
		}
		if r, _ := results[0].(map[string]any); r["event_id"] != string(sent[4].ID) || r["depth"] == nil || r["state_group"] == nil {
			t.Fatalf("extremity: %v", r)
		}
		st, body = srv.Do(t, "DELETE", roomPath+"/forward_extremities", admTok, nil)
		wantStatus(t, "delete extremities", st, body, http.StatusOK, "")
		if body["deleted"] != float64(0) {
			t.Fatalf("the only extremity stays: %v", body)
		}
		st, body = srv.Do(t, "GET", "/_synapse/admin/v1/rooms/"+url.PathEscape("#nowhere:localhost")+"/forward_extremities", admTok, nil)
		wantStatus(t, "an unknown alias", st, body, http.StatusNotFound, "M_NOT_FOUND")
		st, body = srv.Do(t, "GET", "/_synapse/admin/v1/rooms/den/forward_extremities", admTok, nil)
		wantStatus(t, "neither ID nor alias", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
	})

	t.Run("media", func(t *testing.T) {
		mediaPath := "/_synapse/admin/v1/room/" + url.PathEscape(string(den.RoomID)) + "/media"
		st, body := srv.Do(t, "GET", mediaPath, admTok, nil)
		wantStatus(t, "room media", st, body, http.StatusOK, "")
		if fmt.Sprint(body["local"]) != fmt.Sprint([]any{up.ContentURI.String()}) ||
			fmt.Sprint(body["remote"]) != fmt.Sprint([]any{"mxc://elsewhere.example/thumb"}) {
			t.Fatalf("room media: %v", body)
		}
		if _, err := bob.DownloadBytes(ctx, up.ContentURI); err != nil {
			t.Fatalf("before the quarantine: %v", err)
		}
		st, body = srv.Do(t, "POST", mediaPath+"/quarantine", admTok, nil)
		wantStatus(t, "quarantine room media", st, body, http.StatusOK, "")
		if body["num_quarantined"] != float64(1) {
			t.Fatalf("quarantined: %v", body)
		}
		if _, err := bob.DownloadBytes(ctx, up.ContentURI); err == nil {
			t.Fatal("quarantined media is still served")
		}
		st, body = srv.Do(t, "GET", "/_synapse/admin/v1/room/"+url.PathEscape("!nowhere:localhost")+"/media", admTok, nil)
		wantStatus(t, "an unknown room", st, body, http.StatusNotFound, "M_NOT_FOUND")
		st, body = srv.Do(t, "POST", "/_synapse/admin/v1/purge_media_cache", admTok, nil)
		wantStatus(t, "no before_ts", st, body, http.StatusBadRequest, "M_MISSING_PARAM")
	})

	t.Run("make room admin", func(t *testing.T) {
		if err := adm.MakeRoomAdmin(ctx, "#den:localhost", synapseadmin.ReqMakeRoomAdmin{UserID: alice.UserID}); err != nil {
			t.Fatal(err)
		}
		joined, err := alice.JoinedRooms(ctx)
		if err != nil || !slices.Contains(joined.JoinedRooms, den.RoomID) {
			t.Fatalf("alice's rooms: %+v %v", joined, err)
		}
		var pl event.PowerLevelsEventContent
		if err := alice.StateEvent(ctx, den.RoomID, event.StatePowerLevels, "", &pl); err != nil {
			t.Fatal(err)
		}
		var bobLevel int
		if err := bob.StateEvent(ctx, den.RoomID, event.StateCreate, "", &event.CreateEventContent{}); err != nil {
			t.Fatal(err)
		}
		// bob created the room: in room version 12 he has all power and
		// alice gets the highest level there is; else his own.
		bobLevel = pl.GetUserLevel(bob.UserID)
		if pl.GetUserLevel(alice.UserID) < max(bobLevel, 100) {
			t.Fatalf("alice's level %d, bob's %d: %+v", pl.GetUserLevel(alice.UserID), bobLevel, pl.Users)
		}
		// She can now do what only admins may.
		if _, err := alice.SendStateEvent(ctx, den.RoomID, event.StateRoomName, "", map[string]any{"name": "Alice's now"}); err != nil {
			t.Fatal(err)
		}
		// In a room version where the creator is listed in the power
		// levels, the user gets the creator's level.
		old, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomVersion: "10"})
		if err != nil {
			t.Fatal(err)
		}
		if err := adm.MakeRoomAdmin(ctx, string(old.RoomID), synapseadmin.ReqMakeRoomAdmin{UserID: alice.UserID}); err != nil {
			t.Fatal(err)
		}
		var oldPL event.PowerLevelsEventContent
		if err := alice.StateEvent(ctx, old.RoomID, event.StatePowerLevels, "", &oldPL); err != nil ||
			oldPL.GetUserLevel(alice.UserID) != 100 || oldPL.GetUserLevel(bob.UserID) != 100 {
			t.Fatalf("power levels of the v10 room: %+v %v", oldPL.Users, err)
		}
		// The admin, by default; not a member, then joined.
		if err := adm.MakeRoomAdmin(ctx, string(den.RoomID), synapseadmin.ReqMakeRoomAdmin{}); err != nil {
			t.Fatal(err)
		}
		if joined, err := adm.Client.JoinedRooms(ctx); err != nil || !slices.Contains(joined.JoinedRooms, den.RoomID) {
			t.Fatalf("the admin's rooms: %+v %v", joined, err)
		}
		err = adm.MakeRoomAdmin(ctx, string(den.RoomID), synapseadmin.ReqMakeRoomAdmin{UserID: "@carol:elsewhere.example"})
		wantErr(t, err, mautrix.RespError{ErrCode: "M_INVALID_PARAM", StatusCode: http.StatusBadRequest})
		err = adm.MakeRoomAdmin(ctx, string(den.RoomID), synapseadmin.ReqMakeRoomAdmin{UserID: "@nobody:localhost"})
		wantErr(t, err, mautrix.MNotFound.WithStatus(http.StatusNotFound))
		err = adm.MakeRoomAdmin(ctx, "!nowhere:localhost", synapseadmin.ReqMakeRoomAdmin{})
		wantErr(t, err, mautrix.MNotFound.WithStatus(http.StatusNotFound))
	})

	t.Run("background updates", func(t *testing.T) {
		st, body := srv.Do(t, "GET", "/_synapse/admin/v1/background_updates/status", admTok, nil)
		wantStatus(t, "status", st, body, http.StatusOK, "")
		if body["enabled"] != true || fmt.Sprint(body["current_updates"]) != "map[]" {
			t.Fatalf("background updates: %v", body)
		}
		st, body = srv.Do(t, "POST", "/_synapse/admin/v1/background_updates/enabled", admTok, map[string]any{"enabled": false})
		wantStatus(t, "pause", st, body, http.StatusOK, "")
		st, body = srv.Do(t, "GET", "/_synapse/admin/v1/background_updates/enabled", admTok, nil)
		if st != http.StatusOK || body["enabled"] != false {
			t.Fatalf("paused: %d %v", st, body)
		}
		st, body = srv.Do(t, "POST", "/_synapse/admin/v1/background_updates/enabled", admTok, map[string]any{"enabled": "yes"})
		wantStatus(t, "not a boolean", st, body, http.StatusBadRequest, "M_BAD_JSON")
	})
}
