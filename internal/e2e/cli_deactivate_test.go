package e2e

import (
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// TestCLIDeactivateReachesTheRunningServer: `tributary user deactivate`
// while the server runs takes effect in it at once — the user's tokens stop
// working and they have left every room (the same service method as
// POST /account/deactivate) — and, with no server running, the CLI does the
// same itself.
func TestCLIDeactivateReachesTheRunningServer(t *testing.T) {
	srv := startOpen(t)
	bob := register(t, srv, "bob", defaultPassword)
	room, err := bob.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := bob.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	joinAndInvite := func(t *testing.T, name string) *mautrix.Client {
		t.Helper()
		cli := register(t, srv, name, defaultPassword)
		if _, err := cli.JoinRoomByID(t.Context(), room.RoomID); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.InviteUser(t.Context(), other.RoomID, &mautrix.ReqInviteUser{UserID: cli.UserID}); err != nil {
			t.Fatal(err)
		}
		return cli
	}
	membership := func(t *testing.T, roomID id.RoomID, user id.UserID) string {
		t.Helper()
		members, err := bob.Members(t.Context(), roomID)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range members.Chunk {
			if ev.GetStateKey() == string(user) {
				return string(ev.Content.AsMember().Membership)
			}
		}
		return ""
	}

	carol := joinAndInvite(t, "carol")
	out, err := srv.Run(t, "", "user", "deactivate", "carol")
	if err != nil || !strings.Contains(out, "Deactivated @carol:localhost (through the running server)") {
		t.Fatalf("user deactivate: %v\n%s", err, out)
	}
	// At once: no waiting, no restart.
	wantTokenDead(t, srv, carol.AccessToken)
	if m := membership(t, room.RoomID, carol.UserID); m != "leave" {
		t.Fatalf("carol's membership in the room she joined is %q after deactivation", m)
	}
	if m := membership(t, other.RoomID, carol.UserID); m != "leave" {
		t.Fatalf("carol's invite is %q after deactivation, want it refused (leave)", m)
	}
	joined, err := bob.JoinedMembers(t.Context(), room.RoomID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := joined.Joined[carol.UserID]; ok {
		t.Fatal("carol is still listed as joined")
	}

	// A second server on the same data directory is refused.
	out2, code := runBinary(t, "", "serve", "--data-dir", srv.DataDir, "--listen", "127.0.0.1:0")
	if code == 0 || !strings.Contains(out2, "another tributary server is running") {
		t.Fatalf("a second server on the same data directory: exit %d\n%s", code, out2)
	}

	// With the server stopped, the CLI does the same on its own.
	dave := joinAndInvite(t, "dave")
	srv.Stop()
	out, err = testserver.RunCLI(t, srv.DataDir, srv.Opts.ServerName, "", nil, "user", "deactivate", "dave")
	if err != nil || !strings.Contains(out, "Deactivated @dave:localhost") || strings.Contains(out, "running server") {
		t.Fatalf("user deactivate without a server: %v\n%s", err, out)
	}
	srv = testserver.Start(t, srv.Opts)
	bob = clientFor(t, srv, bob.UserID, bob.DeviceID, bob.AccessToken)
	wantTokenDead(t, srv, dave.AccessToken)
	for _, r := range []id.RoomID{room.RoomID, other.RoomID} {
		if m := membership(t, r, dave.UserID); m != "leave" {
			t.Fatalf("dave's membership in %s is %q after an offline deactivation", r, m)
		}
	}
	// The server's writers pick up where the CLI left the rooms.
	if _, err := bob.SendText(t.Context(), room.RoomID, "still here"); err != nil {
		t.Fatal(err)
	}
	if got, err := bob.JoinedRooms(t.Context()); err != nil || !slices.Contains(got.JoinedRooms, room.RoomID) {
		t.Fatalf("bob's rooms: %v %v", got, err)
	}
}
