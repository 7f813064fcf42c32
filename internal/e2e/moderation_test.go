package e2e

import (
	"errors"
	"testing"

	"maunium.net/go/mautrix"
)

// TestSuspendAndLock: admins suspend and lock accounts (v1.18 admin API).
// A suspended user still reads, leaves and redacts their own events but
// cannot send, join, invite or change their profile; a locked user can
// only log out, keeps their sessions, and cannot log in again until
// unlocked.
func TestSuspendAndLock(t *testing.T) {
	srv := startOpen(t)
	ctx := t.Context()
	if out, err := srv.Run(t, "", "user", "add", "mod", "--password", "mod password", "--admin"); err != nil {
		t.Fatalf("user add: %v %s", err, out)
	}
	mod := login(t, srv, passwordLogin("mod", "mod password"))
	alice := register(t, srv, "alicemod", defaultPassword)
	bob := register(t, srv, "bobmod", defaultPassword)
	room, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	mine, err := alice.SendText(ctx, room.RoomID, "before")
	if err != nil {
		t.Fatal(err)
	}
	bobs, err := bob.SendText(ctx, room.RoomID, "bob's")
	if err != nil {
		t.Fatal(err)
	}
	const v1 = "/_matrix/client/v1/admin/"
	suspendPath := v1 + "suspend/" + string(alice.UserID)

	// Only admins, only local users who exist, never themselves or admins.
	for _, tc := range []struct {
		token, path string
		status      int
	}{
		{bob.AccessToken, suspendPath, 403},
		{mod.AccessToken, v1 + "suspend/@nobody:localhost", 404},
		{mod.AccessToken, v1 + "suspend/@someone:elsewhere.example", 400},
		{mod.AccessToken, v1 + "suspend/" + string(mod.UserID), 403},
	} {
		if code, body := srv.Do(t, "PUT", tc.path, tc.token, map[string]any{"suspended": true}); code != tc.status {
			t.Errorf("PUT %s: %d %v, want %d", tc.path, code, body, tc.status)
		}
	}
	if code, body := srv.Do(t, "PUT", suspendPath, mod.AccessToken, map[string]any{}); code != 400 {
		t.Errorf("no suspended field: %d %v", code, body)
	}
	if code, body := srv.Do(t, "PUT", suspendPath, mod.AccessToken, map[string]any{"suspended": true}); code != 200 || body["suspended"] != true {
		t.Fatalf("suspend: %d %v", code, body)
	}
	if code, body := srv.Do(t, "GET", suspendPath, mod.AccessToken, nil); code != 200 || body["suspended"] != true {
		t.Errorf("suspended? %d %v", code, body)
	}
	code, body := srv.Do(t, "GET", "/_matrix/client/v3/capabilities", mod.AccessToken, nil)
	if mc, _ := body["capabilities"].(map[string]any)["m.account_moderation"].(map[string]any); code != 200 || mc["suspend"] != true || mc["lock"] != true {
		t.Errorf("admin capabilities: %d %v", code, body)
	}
	if _, body := srv.Do(t, "GET", "/_matrix/client/v3/capabilities", bob.AccessToken, nil); body["capabilities"].(map[string]any)["m.account_moderation"] != nil {
		t.Errorf("a user's capabilities offer moderation: %v", body)
	}

	// Suspended: reading works, writing does not.
	suspended := func(what string, err error) {
		t.Helper()
		if !isErr(err, "M_USER_SUSPENDED", 403) {
			t.Errorf("%s while suspended: %v", what, err)
		}
	}
	if _, err := alice.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 10); err != nil {
		t.Errorf("reading while suspended: %v", err)
	}
	_, err = alice.SendText(ctx, room.RoomID, "during")
	suspended("sending", err)
	_, err = alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
	suspended("creating a room", err)
	suspended("setting a display name", alice.SetDisplayName(ctx, "Suspended Alice"))
	_, err = alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: mod.UserID})
	suspended("inviting", err)
	_, err = alice.RedactEvent(ctx, room.RoomID, bobs.EventID)
	suspended("redacting someone else's event", err)
	if _, err := alice.RedactEvent(ctx, room.RoomID, mine.EventID); err != nil {
		t.Errorf("redacting an own event while suspended: %v", err)
	}
	if _, err := alice.LeaveRoom(ctx, room.RoomID); err != nil {
		t.Errorf("leaving while suspended: %v", err)
	}
	_, err = alice.JoinRoomByID(ctx, room.RoomID)
	suspended("joining", err)
	if code, body := srv.Do(t, "PUT", suspendPath, mod.AccessToken, map[string]any{"suspended": false}); code != 200 || body["suspended"] != false {
		t.Fatalf("unsuspend: %d %v", code, body)
	}
	if _, err := alice.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Errorf("joining after the suspension: %v", err)
	}

	// Locked: everything but logging out answers M_USER_LOCKED with
	// soft_logout, the session survives, and logging in is refused.
	lockPath := v1 + "lock/" + string(alice.UserID)
	if code, body := srv.Do(t, "PUT", lockPath, mod.AccessToken, map[string]any{"locked": true}); code != 200 || body["locked"] != true {
		t.Fatalf("lock: %d %v", code, body)
	}
	code, body = srv.Do(t, "GET", "/_matrix/client/v3/account/whoami", alice.AccessToken, nil)
	if code != 401 || body["errcode"] != "M_USER_LOCKED" || body["soft_logout"] != true {
		t.Errorf("whoami while locked: %d %v", code, body)
	}
	if _, err := srv.Client(t).Login(ctx, passwordLogin("alicemod", defaultPassword)); !isErr(err, "M_USER_LOCKED", 401) {
		t.Errorf("login while locked: %v", err)
	}
	if code, body := srv.Do(t, "GET", lockPath, mod.AccessToken, nil); code != 200 || body["locked"] != true {
		t.Errorf("locked? %d %v", code, body)
	}
	if code, body := srv.Do(t, "PUT", lockPath, mod.AccessToken, map[string]any{"locked": false}); code != 200 {
		t.Fatalf("unlock: %d %v", code, body)
	}
	if resp, err := alice.Whoami(ctx); err != nil || resp.UserID != alice.UserID {
		t.Errorf("the session after unlocking: %v %+v", err, resp)
	}
	// Logging out works while locked.
	if code, body := srv.Do(t, "PUT", lockPath, mod.AccessToken, map[string]any{"locked": true}); code != 200 {
		t.Fatalf("lock again: %d %v", code, body)
	}
	if code, body := srv.Do(t, "POST", "/_matrix/client/v3/logout", alice.AccessToken, map[string]any{}); code != 200 {
		t.Errorf("logout while locked: %d %v", code, body)
	}
}

// isErr reports whether err is the Matrix error code with the status.
func isErr(err error, code string, status int) bool {
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.RespError == nil {
		return false
	}
	return he.RespError.ErrCode == code && he.Response != nil && he.Response.StatusCode == status
}
