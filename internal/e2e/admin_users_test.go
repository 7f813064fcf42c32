package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/synapseadmin"

	"github.com/tributary-hs/tributary/internal/testserver"
	"github.com/tributary-hs/tributary/storage/sqlite"
)

// adminClient makes an admin account through the CLI and logs it in.
func adminClient(t *testing.T, srv *testserver.Server) *synapseadmin.Client {
	t.Helper()
	if out, err := srv.Run(t, "", "user", "add", "admin", "--password", "admin password", "--admin"); err != nil {
		t.Fatalf("user add admin: %v\n%s", err, out)
	}
	return &synapseadmin.Client{Client: login(t, srv, passwordLogin("admin", "admin password"))}
}

// The user part of Synapse's admin API, driven with mautrix's synapseadmin
// client (what bridges use) and raw HTTP where it has no method.
func TestAdminUsers(t *testing.T) {
	srv := startOpen(t)
	adm := adminClient(t, srv)
	ctx := t.Context()
	alice := register(t, srv, "alice", defaultPassword)
	admTok := adm.Client.AccessToken

	t.Run("non-admins are refused", func(t *testing.T) {
		nonAdmin := &synapseadmin.Client{Client: alice}
		_, err := nonAdmin.GetUserInfo(ctx, alice.UserID)
		wantErr(t, err, mautrix.RespError{ErrCode: "M_FORBIDDEN", StatusCode: http.StatusForbidden})
		for _, path := range []string{"/_synapse/admin/v2/users", "/_synapse/admin/v1/whois/@alice:localhost",
			"/_synapse/admin/v1/server_version", "/_synapse/admin/v1/users/@alice:localhost/joined_rooms"} {
			st, body := srv.Do(t, "GET", path, alice.AccessToken, nil)
			wantStatus(t, path, st, body, http.StatusForbidden, "M_FORBIDDEN")
		}
		st, body := srv.Do(t, "GET", "/_synapse/admin/v2/users", "", nil)
		wantStatus(t, "no token", st, body, http.StatusUnauthorized, "M_MISSING_TOKEN")
	})

	t.Run("create, query and modify", func(t *testing.T) {
		bob := id.UserID("@bob:localhost")
		admin, locked := false, false
		if err := adm.CreateOrModifyAccount(ctx, bob, synapseadmin.ReqCreateOrModifyAccount{Password: "bob's password 1",
			Displayname: "Bob", Admin: &admin, Locked: &locked}); err != nil {
			t.Fatal(err)
		}
		info, err := adm.GetUserInfo(ctx, bob)
		if err != nil {
			t.Fatal(err)
		}
		if info.UserID != bob || info.DisplayName != "Bob" || info.Admin || info.Deactivated || info.CreationTS.IsZero() {
			t.Fatalf("bob as created: %+v", info)
		}
		if year := info.CreationTS.Year(); year < 2020 || year > 2100 {
			t.Fatalf("creation_ts is not in seconds: %v", info.CreationTS)
		}
		bobClient := login(t, srv, passwordLogin("bob", "bob's password 1"))
		// Modify: a new name, admin, and a new password that logs bob out.
		yes := true
		if err := adm.CreateOrModifyAccount(ctx, bob, synapseadmin.ReqCreateOrModifyAccount{Displayname: "Robert",
			Password: "bob's password 2", Admin: &yes}); err != nil {
			t.Fatal(err)
		}
		if info, err = adm.GetUserInfo(ctx, bob); err != nil || info.DisplayName != "Robert" || !info.Admin {
			t.Fatalf("bob modified: %+v %v", info, err)
		}
		_, err = bobClient.Whoami(ctx)
		wantErr(t, err, mautrix.RespError{ErrCode: "M_UNKNOWN_TOKEN", StatusCode: http.StatusUnauthorized})
		login(t, srv, passwordLogin("bob", "bob's password 2"))
		// The profile change reached bob's rooms... he has none; his
		// profile has it.
		name, err := alice.GetDisplayName(ctx, bob)
		if err != nil || name.DisplayName != "Robert" {
			t.Fatalf("bob's profile: %+v %v", name, err)
		}
		// Creating answers 201, modifying 200; a remote user is refused.
		st, body := srv.Do(t, "PUT", "/_synapse/admin/v2/users/@carol:localhost", admTok, map[string]any{"password": "carol's password"})
		wantStatus(t, "create carol", st, body, http.StatusCreated, "")
		st, body = srv.Do(t, "PUT", "/_synapse/admin/v2/users/@carol:localhost", admTok, map[string]any{"displayname": "Carol"})
		wantStatus(t, "modify carol", st, body, http.StatusOK, "")
		if body["displayname"] != "Carol" || body["name"] != "@carol:localhost" {
			t.Fatalf("carol: %v", body)
		}
		st, body = srv.Do(t, "PUT", "/_synapse/admin/v2/users/@dave:elsewhere.example", admTok, map[string]any{})
		wantStatus(t, "remote user", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		st, body = srv.Do(t, "GET", "/_synapse/admin/v2/users/@nobody:localhost", admTok, nil)
		wantStatus(t, "unknown user", st, body, http.StatusNotFound, "M_NOT_FOUND")
		st, body = srv.Do(t, "PUT", "/_synapse/admin/v2/users/@carol:localhost", admTok, map[string]any{"admin": "yes"})
		wantStatus(t, "admin not a boolean", st, body, http.StatusBadRequest, "M_BAD_JSON")
	})

	t.Run("list", func(t *testing.T) {
		st, body := srv.Do(t, "GET", "/_synapse/admin/v2/users?limit=2", admTok, nil)
		wantStatus(t, "list", st, body, http.StatusOK, "")
		list, _ := body["users"].([]any)
		if len(list) != 2 || body["total"] != float64(4) || body["next_token"] != "2" {
			t.Fatalf("first page of 4 users (admin, alice, bob, carol): %v", body)
		}
		st, body = srv.Do(t, "GET", "/_synapse/admin/v2/users?from=2&limit=2", admTok, nil)
		wantStatus(t, "second page", st, body, http.StatusOK, "")
		if list, _ = body["users"].([]any); len(list) != 2 || body["next_token"] != nil {
			t.Fatalf("second page: %v", body)
		}
		st, body = srv.Do(t, "GET", "/_synapse/admin/v2/users?name=rob", admTok, nil)
		wantStatus(t, "by display name", st, body, http.StatusOK, "")
		if list, _ = body["users"].([]any); len(list) != 1 || list[0].(map[string]any)["name"] != "@bob:localhost" {
			t.Fatalf("name=rob: %v", body)
		}
		st, body = srv.Do(t, "GET", "/_synapse/admin/v2/users?admins=true&order_by=name&dir=b", admTok, nil)
		wantStatus(t, "admins", st, body, http.StatusOK, "")
		if list, _ = body["users"].([]any); len(list) != 2 || list[0].(map[string]any)["name"] != "@bob:localhost" {
			t.Fatalf("admins, backwards: %v", body)
		}
		st, body = srv.Do(t, "GET", "/_synapse/admin/v2/users?limit=-1", admTok, nil)
		wantStatus(t, "bad limit", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		st, body = srv.Do(t, "GET", "/_synapse/admin/v2/users?order_by=password", admTok, nil)
		wantStatus(t, "bad order", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
	})

	t.Run("devices, whois, joined rooms, login as", func(t *testing.T) {
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		if err != nil {
			t.Fatal(err)
		}
		devices, err := adm.ListDevices(ctx, alice.UserID)
		if err != nil || devices.Total != 1 || len(devices.Devices) != 1 || devices.Devices[0].DeviceID != alice.DeviceID {
			t.Fatalf("alice's devices: %+v %v", devices, err)
		}
		st, body := srv.Do(t, "GET", "/_synapse/admin/v1/whois/"+alice.UserID.String(), admTok, nil)
		wantStatus(t, "whois", st, body, http.StatusOK, "")
		if ds, _ := body["devices"].(map[string]any); ds[string(alice.DeviceID)] == nil {
			t.Fatalf("whois: %v", body)
		}
		st, body = srv.Do(t, "GET", "/_synapse/admin/v1/users/"+alice.UserID.String()+"/joined_rooms", admTok, nil)
		wantStatus(t, "joined rooms", st, body, http.StatusOK, "")
		if rs, _ := body["joined_rooms"].([]any); len(rs) != 1 || rs[0] != room.RoomID.String() || body["total"] != float64(1) {
			t.Fatalf("joined rooms: %v", body)
		}
		// Log in as alice: a device of hers, which the admin can delete.
		st, body = srv.Do(t, "POST", "/_synapse/admin/v1/users/"+alice.UserID.String()+"/login", admTok, map[string]any{})
		wantStatus(t, "login as", st, body, http.StatusOK, "")
		puppet := clientFor(t, srv, alice.UserID, "", str(t, body, "access_token"))
		who, err := puppet.Whoami(ctx)
		if err != nil || who.UserID != alice.UserID {
			t.Fatalf("whoami as alice: %+v %v", who, err)
		}
		if devices, err = adm.ListDevices(ctx, alice.UserID); err != nil || devices.Total != 2 {
			t.Fatalf("alice's devices after the admin login: %+v %v", devices, err)
		}
		st, body = srv.Do(t, "DELETE", "/_synapse/admin/v2/users/"+alice.UserID.String()+"/devices/"+string(who.DeviceID), admTok, nil)
		wantStatus(t, "delete device", st, body, http.StatusOK, "")
		_, err = puppet.Whoami(ctx)
		wantErr(t, err, mautrix.RespError{ErrCode: "M_UNKNOWN_TOKEN", StatusCode: http.StatusUnauthorized})
		if _, err := alice.Whoami(ctx); err != nil {
			t.Fatalf("alice's own device went too: %v", err)
		}
		st, body = srv.Do(t, "POST", "/_synapse/admin/v1/users/@admin:localhost/login", admTok, map[string]any{})
		wantStatus(t, "login as self", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
	})

	t.Run("admin flag, reset password, suspend, deactivate", func(t *testing.T) {
		st, body := srv.Do(t, "GET", "/_synapse/admin/v1/users/@carol:localhost/admin", admTok, nil)
		wantStatus(t, "carol admin?", st, body, http.StatusOK, "")
		if body["admin"] != false {
			t.Fatalf("carol admin: %v", body)
		}
		st, body = srv.Do(t, "PUT", "/_synapse/admin/v1/users/@admin:localhost/admin", admTok, map[string]any{"admin": false})
		wantStatus(t, "demote self", st, body, http.StatusBadRequest, "M_INVALID_PARAM")

		carol := login(t, srv, passwordLogin("carol", "carol's password"))
		if err := adm.ResetPassword(ctx, synapseadmin.ReqResetPassword{UserID: carol.UserID, NewPassword: "carol's new password",
			LogoutDevices: true}); err != nil {
			t.Fatal(err)
		}
		_, err := carol.Whoami(ctx)
		wantErr(t, err, mautrix.RespError{ErrCode: "M_UNKNOWN_TOKEN", StatusCode: http.StatusUnauthorized})
		carol = login(t, srv, passwordLogin("carol", "carol's new password"))

		if err := adm.SuspendAccount(ctx, carol.UserID, synapseadmin.ReqSuspendUser{Suspend: true}); err != nil {
			t.Fatal(err)
		}
		_, err = carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		wantErr(t, err, mautrix.RespError{ErrCode: "M_USER_SUSPENDED", StatusCode: http.StatusForbidden})
		if err := adm.SuspendAccount(ctx, carol.UserID, synapseadmin.ReqSuspendUser{Suspend: false}); err != nil {
			t.Fatal(err)
		}

		if err := adm.DeactivateAccount(ctx, carol.UserID, synapseadmin.ReqDeleteUser{Erase: true}); err != nil {
			t.Fatal(err)
		}
		_, err = carol.Whoami(ctx)
		wantErr(t, err, mautrix.RespError{ErrCode: "M_UNKNOWN_TOKEN", StatusCode: http.StatusUnauthorized})
		info, err := adm.GetUserInfo(ctx, carol.UserID)
		if err != nil || !info.Deactivated || !info.Erased || info.DisplayName != "" {
			t.Fatalf("carol after deactivation with erase: %+v %v", info, err)
		}
		st, body = srv.Do(t, "PUT", "/_synapse/admin/v2/users/@carol:localhost", admTok, map[string]any{"deactivated": false})
		wantStatus(t, "reactivate", st, body, http.StatusBadRequest, "M_INVALID_PARAM")

		// Every action is logged with the admin who did it.
		for _, action := range []string{`"action":"reset password"`, `"action":"suspend"`, `"action":"deactivate"`} {
			found := false
			for _, line := range strings.Split(srv.Logs(), "\n") {
				if strings.Contains(line, action) && strings.Contains(line, `"admin":"@admin:localhost"`) &&
					strings.Contains(line, `"user":"@carol:localhost"`) {
					found = true
				}
			}
			if !found {
				t.Errorf("no log line of %s by @admin:localhost on carol", action)
			}
		}
	})

	t.Run("server version and username availability", func(t *testing.T) {
		st, body := srv.Do(t, "GET", "/_synapse/admin/v1/server_version", admTok, nil)
		wantStatus(t, "server_version", st, body, http.StatusOK, "")
		if v, _ := body["server_version"].(string); v == "" {
			t.Fatalf("server_version: %v", body)
		}
		if _, err := adm.UsernameAvailable(ctx, "zed"); err != nil {
			t.Fatal(err)
		}
		_, err := adm.UsernameAvailable(ctx, "alice")
		var re mautrix.HTTPError
		if !errors.As(err, &re) || re.RespError == nil || !strings.Contains(re.RespError.ErrCode, "M_USER_IN_USE") {
			t.Fatalf("alice taken: %v", err)
		}
	})
}

// The room part of the admin API: list, details, members, state.
func TestAdminRooms(t *testing.T) {
	srv := startOpen(t)
	adm := adminClient(t, srv)
	ctx := t.Context()
	alice, bob, pub := aliceAndBobInPublicRoom(t, srv)
	if _, err := alice.SendStateEvent(ctx, pub.RoomID, event.StateRoomName, "", map[string]any{"name": "Town square"}); err != nil {
		t.Fatal(err)
	}
	priv, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Bob's den"})
	if err != nil {
		t.Fatal(err)
	}

	list, err := adm.ListRooms(ctx, synapseadmin.ReqListRoom{})
	if err != nil {
		t.Fatal(err)
	}
	if list.TotalRooms != 2 || len(list.Rooms) != 2 || list.Rooms[0].Name != "Bob's den" || list.Rooms[1].Name != "Town square" {
		t.Fatalf("rooms by name: %+v", list)
	}
	list, err = adm.ListRooms(ctx, synapseadmin.ReqListRoom{OrderBy: "joined_members", Direction: mautrix.DirectionBackward, Limit: 1})
	if err != nil || len(list.Rooms) != 1 || list.Rooms[0].RoomID != pub.RoomID || list.Rooms[0].JoinedMembers != 2 || list.NextBatch != 1 {
		t.Fatalf("most members first, one per page: %+v %v", list, err)
	}
	list, err = adm.ListRooms(ctx, synapseadmin.ReqListRoom{SearchTerm: "den"})
	if err != nil || len(list.Rooms) != 1 || list.Rooms[0].RoomID != priv.RoomID {
		t.Fatalf("search den: %+v %v", list, err)
	}

	info, err := adm.RoomInfo(ctx, priv.RoomID)
	if err != nil {
		t.Fatal(err)
	}
	if info.Creator != bob.UserID || info.JoinedMembers != 1 || info.JoinedLocalMembers != 1 || info.JoinRules != "invite" ||
		info.Version == "" || !info.Federatable || info.Public || info.StateEvents < 5 {
		t.Fatalf("bob's den: %+v", info)
	}
	members, err := adm.RoomMembers(ctx, pub.RoomID)
	if err != nil || members.Total != 2 {
		t.Fatalf("members of the public room: %+v %v", members, err)
	}
	st, body := srv.Do(t, "GET", "/_synapse/admin/v1/rooms/"+string(priv.RoomID)+"/state", adm.Client.AccessToken, nil)
	wantStatus(t, "state of bob's den (the admin is no member)", st, body, http.StatusOK, "")
	if state, _ := body["state"].([]any); len(state) != info.StateEvents {
		t.Fatalf("state: %d events, want %d", len(state), info.StateEvents)
	}
	st, body = srv.Do(t, "GET", "/_synapse/admin/v1/rooms/!nowhere:localhost", adm.Client.AccessToken, nil)
	wantStatus(t, "unknown room", st, body, http.StatusNotFound, "M_NOT_FOUND")
	st, body = srv.Do(t, "GET", "/_synapse/admin/v1/rooms/not-a-room", adm.Client.AccessToken, nil)
	wantStatus(t, "not a room ID", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
	st, body = srv.Do(t, "GET", "/_synapse/admin/v1/rooms", alice.AccessToken, nil)
	wantStatus(t, "a non-admin", st, body, http.StatusForbidden, "M_FORBIDDEN")
}

// Event reports: what users report reaches the admins, who can read and
// delete them.
func TestAdminEventReports(t *testing.T) {
	srv := startOpen(t)
	adm := adminClient(t, srv)
	ctx := t.Context()
	alice, bob, room := aliceAndBobInPublicRoom(t, srv)
	spam, err := bob.SendText(ctx, room.RoomID, "buy now")
	if err != nil {
		t.Fatal(err)
	}
	other, err := bob.SendText(ctx, room.RoomID, "or later")
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.ReportEvent(ctx, room.RoomID, spam.EventID, "spam"); err != nil {
		t.Fatal(err)
	}
	if err := alice.ReportEvent(ctx, room.RoomID, other.EventID, "more spam"); err != nil {
		t.Fatal(err)
	}
	tok := adm.Client.AccessToken
	st, body := srv.Do(t, "GET", "/_synapse/admin/v1/event_reports?dir=f&limit=1", tok, nil)
	wantStatus(t, "reports", st, body, http.StatusOK, "")
	list, _ := body["event_reports"].([]any)
	if len(list) != 1 || body["total"] != float64(2) || body["next_token"] != float64(1) {
		t.Fatalf("first of two reports: %v", body)
	}
	// Both reports may share a millisecond: find the spam's in the full list.
	st, body = srv.Do(t, "GET", "/_synapse/admin/v1/event_reports", tok, nil)
	wantStatus(t, "all reports", st, body, http.StatusOK, "")
	var first map[string]any
	for _, r := range body["event_reports"].([]any) {
		if r.(map[string]any)["event_id"] == spam.EventID.String() {
			first = r.(map[string]any)
		}
	}
	if first == nil || first["event_id"] != spam.EventID.String() || first["user_id"] != alice.UserID.String() ||
		first["sender"] != bob.UserID.String() || first["reason"] != "spam" || first["room_id"] != room.RoomID.String() {
		t.Fatalf("the report of the spam: %v", first)
	}
	reportID := str(t, first, "id")
	st, body = srv.Do(t, "GET", "/_synapse/admin/v1/event_reports/"+reportID, tok, nil)
	wantStatus(t, "one report", st, body, http.StatusOK, "")
	if ev, _ := body["event_json"].(map[string]any); ev["type"] != "m.room.message" || ev["sender"] != bob.UserID.String() {
		t.Fatalf("event_json of the report: %v", body)
	}
	st, body = srv.Do(t, "GET", "/_synapse/admin/v1/event_reports/"+reportID, alice.AccessToken, nil)
	wantStatus(t, "a non-admin", st, body, http.StatusForbidden, "M_FORBIDDEN")
	st, body = srv.Do(t, "DELETE", "/_synapse/admin/v1/event_reports/"+reportID, tok, nil)
	wantStatus(t, "delete", st, body, http.StatusOK, "")
	st, body = srv.Do(t, "GET", "/_synapse/admin/v1/event_reports/"+reportID, tok, nil)
	wantStatus(t, "deleted", st, body, http.StatusNotFound, "M_NOT_FOUND")
	st, body = srv.Do(t, "GET", "/_synapse/admin/v1/event_reports?room_id="+string(room.RoomID), tok, nil)
	wantStatus(t, "reports of the room", st, body, http.StatusOK, "")
	if body["total"] != float64(1) {
		t.Fatalf("after the delete: %v", body)
	}
}

// Blocking a room keeps this server's users out; an admin joins a user to
// a public room, and to a private one the admin can invite to.
func TestAdminBlockAndJoin(t *testing.T) {
	srv := startOpen(t)
	adm := adminClient(t, srv)
	ctx := t.Context()
	alice, bob, pub := aliceAndBobInPublicRoom(t, srv)
	carol := register(t, srv, "carol", defaultPassword)

	if err := adm.BlockRoom(ctx, pub.RoomID, synapseadmin.ReqBlockRoom{Block: true}); err != nil {
		t.Fatal(err)
	}
	status, err := adm.GetRoomBlockStatus(ctx, pub.RoomID)
	if err != nil || !status.Block || status.UserID != adm.Client.UserID {
		t.Fatalf("block status: %+v %v", status, err)
	}
	_, err = carol.JoinRoomByID(ctx, pub.RoomID)
	wantErr(t, err, mautrix.RespError{ErrCode: "M_FORBIDDEN", StatusCode: http.StatusForbidden})
	if err := adm.BlockRoom(ctx, pub.RoomID, synapseadmin.ReqBlockRoom{Block: false}); err != nil {
		t.Fatal(err)
	}
	if status, err = adm.GetRoomBlockStatus(ctx, pub.RoomID); err != nil || status.Block {
		t.Fatalf("unblocked status: %+v %v", status, err)
	}

	// Join carol to the public room.
	if err := adm.JoinUserToRoom(ctx, pub.RoomID, synapseadmin.ReqJoinUserToRoom{UserID: carol.UserID}); err != nil {
		t.Fatal(err)
	}
	members, err := alice.JoinedMembers(ctx, pub.RoomID)
	if _, in := members.Joined[carol.UserID]; err != nil || !in || len(members.Joined) != 3 {
		t.Fatalf("members after the admin join: %+v %v", members, err)
	}
	// A private room of bob's, which the admin is not in: refused.
	priv, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	err = adm.JoinUserToRoom(ctx, priv.RoomID, synapseadmin.ReqJoinUserToRoom{UserID: carol.UserID})
	wantErr(t, err, mautrix.RespError{ErrCode: "M_FORBIDDEN", StatusCode: http.StatusForbidden})
	st, body := srv.Do(t, "POST", "/_synapse/admin/v1/join/"+string(pub.RoomID), adm.Client.AccessToken,
		map[string]any{"user_id": "@someone:elsewhere.example"})
	wantStatus(t, "a remote user", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
	st, body = srv.Do(t, "PUT", "/_synapse/admin/v1/rooms/"+string(pub.RoomID)+"/block", alice.AccessToken, map[string]any{"block": true})
	wantStatus(t, "a non-admin blocks", st, body, http.StatusForbidden, "M_FORBIDDEN")
}

// Deleting a room: its local members are moved out (into a new room),
// its aliases go, it is blocked, and the purge leaves no row of it in the
// database. The asynchronous (v2) deletion reports its status.
func TestAdminDeleteRoom(t *testing.T) {
	srv := startOpen(t)
	adm := adminClient(t, srv)
	ctx := t.Context()
	alice, bob, room := aliceAndBobInPublicRoom(t, srv)
	var sent []id.EventID
	for _, text := range []string{"hello", "illegal content"} {
		r, err := bob.SendText(ctx, room.RoomID, text)
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, r.EventID)
	}
	if _, err := alice.CreateAlias(ctx, "#doomed:localhost", room.RoomID); err != nil {
		t.Fatal(err)
	}
	if err := alice.ReportEvent(ctx, room.RoomID, sent[1], "illegal"); err != nil {
		t.Fatal(err)
	}

	del, err := adm.DeleteRoom(ctx, room.RoomID, synapseadmin.ReqDeleteRoom{Purge: true, Block: true,
		NewRoomUserID: "@abuse:localhost", Message: "This room was removed."})
	if err != nil {
		t.Fatal(err)
	}
	var status synapseadmin.RespDeleteRoomStatus
	deadline := time.Now().Add(30 * time.Second)
	for {
		if status, err = adm.DeleteRoomStatus(ctx, del.DeleteID); err != nil {
			t.Fatal(err)
		}
		if status.Status == "complete" || status.Status == "failed" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling a background job: the API has no way to wait
	}
	if status.Status != "complete" {
		t.Fatalf("deletion status %+v", status)
	}
	res := status.ShutdownRoom
	slices.Sort(res.KickedUsers)
	if !slices.Equal(res.KickedUsers, []id.UserID{alice.UserID, bob.UserID}) || len(res.FailedToKickUsers) != 0 ||
		!slices.Equal(res.LocalAliases, []id.RoomAlias{"#doomed:localhost"}) || res.NewRoomID == "" {
		t.Fatalf("deletion result %+v", res)
	}
	// The members are in the new room, with its message, and not in the old.
	for _, cli := range []*mautrix.Client{alice, bob} {
		joined, err := cli.JoinedRooms(ctx)
		if err != nil || !slices.Equal(joined.JoinedRooms, []id.RoomID{res.NewRoomID}) {
			t.Fatalf("%s's rooms after the deletion: %+v %v", cli.UserID, joined, err)
		}
	}
	msgs, err := bob.Messages(ctx, res.NewRoomID, "", "", mautrix.DirectionBackward, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range msgs.Chunk {
		found = found || (e.Sender == "@abuse:localhost" && e.Content.Raw["body"] == "This room was removed.")
	}
	if !found {
		t.Fatal("the new room has no message from its creator")
	}
	// The alias is gone, the room is blocked.
	_, err = alice.ResolveAlias(ctx, "#doomed:localhost")
	wantErr(t, err, mautrix.RespError{ErrCode: "M_NOT_FOUND", StatusCode: http.StatusNotFound})
	_, err = alice.JoinRoomByID(ctx, room.RoomID)
	wantErr(t, err, mautrix.RespError{ErrCode: "M_FORBIDDEN", StatusCode: http.StatusForbidden})
	st, body := srv.Do(t, "GET", "/_synapse/admin/v2/rooms/"+string(room.RoomID)+"/delete_status", adm.Client.AccessToken, nil)
	wantStatus(t, "status by room", st, body, http.StatusOK, "")
	if rs, _ := body["results"].([]any); len(rs) != 1 {
		t.Fatalf("status by room: %v", body)
	}

	// In the database: nothing of the room but its block.
	srv.Stop()
	db, err := sqlite.Open(ctx, filepath.Join(srv.DataDir, "tributary.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	left, err := db.RoomRows(ctx, room.RoomID, sent, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(left) != "map[blocked_rooms:1]" {
		t.Fatalf("rows of the purged room: %v", left)
	}
}

// The synchronous (v1) deletion without a purge: the members are out, the
// history stays.
func TestAdminDeleteRoomWithoutPurge(t *testing.T) {
	srv := startOpen(t)
	adm := adminClient(t, srv)
	ctx := t.Context()
	alice, bob, room := aliceAndBobInPublicRoom(t, srv)
	st, body := srv.Do(t, "DELETE", "/_synapse/admin/v1/rooms/"+string(room.RoomID), adm.Client.AccessToken, map[string]any{"purge": false})
	wantStatus(t, "delete without purge", st, body, http.StatusOK, "")
	if kicked, _ := body["kicked_users"].([]any); len(kicked) != 2 {
		t.Fatalf("v1 result %v", body)
	}
	for _, cli := range []*mautrix.Client{alice, bob} {
		joined, err := cli.JoinedRooms(ctx)
		if err != nil || len(joined.JoinedRooms) != 0 {
			t.Fatalf("%s's rooms: %+v %v", cli.UserID, joined, err)
		}
	}
	info, err := adm.RoomInfo(ctx, room.RoomID)
	if err != nil || info.JoinedMembers != 0 {
		t.Fatalf("the room, kept: %+v %v", info, err)
	}
}
