package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// adminCLI runs `tributary admin …` on a server's data directory (and
// database, dbURL "" for SQLite) and returns its stdout, its stderr and
// its exit code; the CLI logs to stderr when it works on the data itself.
func adminCLI(t *testing.T, srv *testserver.Server, dbURL string, args ...string) (string, string, int) {
	t.Helper()
	full := append(append([]string{"admin"}, args...), "--data-dir", srv.DataDir, "--server-name", srv.Opts.ServerName)
	if dbURL != "" {
		full = append(full, "--database-url", dbURL)
	}
	cmd := exec.CommandContext(t.Context(), testserver.Binary(t), full...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	t.Fatalf("tributary %v: %v", full, err)
	return "", "", -1
}

// adminCLIOK runs a verb that must succeed and returns its stdout.
func adminCLIOK(t *testing.T, srv *testserver.Server, dbURL string, args ...string) string {
	t.Helper()
	out, errOut, code := adminCLI(t, srv, dbURL, args...)
	if code != 0 {
		t.Fatalf("tributary admin %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
	}
	return out
}

// adminCLIFails runs a verb that must fail: a non-zero exit, nothing on
// stdout, and the error as the last line of stderr, naming each of want.
func adminCLIFails(t *testing.T, srv *testserver.Server, dbURL string, want []string, args ...string) {
	t.Helper()
	out, errOut, code := adminCLI(t, srv, dbURL, args...)
	l := lines(errOut)
	if code == 0 || len(l) == 0 {
		t.Fatalf("tributary admin %v: exit %d, want a failure\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
	}
	last := l[len(l)-1]
	if !strings.HasPrefix(last, "tributary: ") {
		t.Fatalf("tributary admin %v: the last line of stderr is not the error: %q", args, last)
	}
	for _, w := range want {
		if !strings.Contains(last, w) {
			t.Fatalf("tributary admin %v: error %q does not mention %q", args, last, w)
		}
	}
	if strings.Contains(out, "Deleted") || strings.Contains(out, "Purged") || strings.Contains(out, "Quarantined") {
		t.Fatalf("tributary admin %v failed but reported success:\n%s", args, out)
	}
}

// tableRows are a table's rows by their first column.
func tableRows(t *testing.T, out string) map[string][]string {
	t.Helper()
	l := lines(out)
	if len(l) == 0 {
		t.Fatalf("no table header in %q", out)
	}
	rows := map[string][]string{}
	for _, line := range l[1:] {
		f := strings.Fields(line)
		rows[f[0]] = f[1:]
	}
	return rows
}

// TestCLIAdmin: each `tributary admin` verb, through a running server
// (the control socket) and on a stopped server's data, on SQLite; and on
// PostgreSQL both ways too. The verbs have the same effects as the admin
// API: clients see them at once (running) or after a restart (stopped).
func TestCLIAdmin(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, running := range []bool{true, false} {
			name := backend + "/" + map[bool]string{true: "running", false: "stopped"}[running]
			t.Run(name, func(t *testing.T) {
				var args []string
				dbURL := ""
				if backend == "postgres" {
					dbURL = pgtest.URL(t)
					args = []string{"--database-url", dbURL}
				}
				testCLIAdmin(t, startOpen(t, args...), dbURL, running)
			})
		}
	}
}

func testCLIAdmin(t *testing.T, srv *testserver.Server, dbURL string, running bool) {
	ctx := t.Context()
	alice, bob, garden := aliceAndBobInPublicRoom(t, srv)
	carol := register(t, srv, "carol", defaultPassword)
	if _, err := alice.SendStateEvent(ctx, garden.RoomID, event.StateRoomName, "", &event.RoomNameEventContent{Name: "Garden"}); err != nil {
		t.Fatal(err)
	}
	// The room to delete: alice's, with bob in it and an alias.
	doomed, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Doomed", RoomAliasName: "doomed"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, doomed.RoomID); err != nil {
		t.Fatal(err)
	}
	gone, err := bob.SendText(ctx, doomed.RoomID, "soon gone")
	if err != nil {
		t.Fatal(err)
	}
	// History to purge in the garden, and media: one quarantined by its
	// URI, one by the room that refers to it, bob's by his name.
	upload := func(cli *mautrix.Client, content string) id.ContentURI {
		t.Helper()
		resp, err := cli.UploadBytesWithName(ctx, []byte(content), "text/plain", "file.txt")
		if err != nil {
			t.Fatal(err)
		}
		return resp.ContentURI
	}
	single, inRoom, bobs, kept := upload(alice, "single"), upload(alice, "in the room"), upload(bob, "bob's"), upload(alice, "kept")
	if _, err := alice.SendMessageEvent(ctx, garden.RoomID, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgFile, Body: "file.txt", URL: inRoom.CUString()}); err != nil {
		t.Fatal(err)
	}
	var old []id.EventID
	for i := range 3 {
		r, err := bob.SendText(ctx, garden.RoomID, fmt.Sprintf("old %d", i))
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, r.EventID)
	}
	point, err := bob.SendText(ctx, garden.RoomID, "the point")
	if err != nil {
		t.Fatal(err)
	}
	after, err := alice.SendText(ctx, garden.RoomID, "after the point")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := srv.Run(t, "", append([]string{"user", "deactivate", "carol"}, dbArgs(dbURL)...)...); err != nil {
		t.Fatalf("user deactivate carol: %v\n%s", err, out)
	}
	_ = carol

	if !running {
		srv.Stop()
	}
	via := func(out string) {
		t.Helper()
		if got := strings.Contains(out, "(through the running server)"); got != running {
			t.Fatalf("through the running server: %v, want %v:\n%s", got, running, out)
		}
	}

	t.Run("users list", func(t *testing.T) {
		rows := tableRows(t, adminCLIOK(t, srv, dbURL, "users", "list"))
		if rows["@alice:localhost"] == nil || rows["@bob:localhost"] == nil || rows["@carol:localhost"] != nil {
			t.Fatalf("users list (carol is deactivated): %v", rows)
		}
		if got := rows["@alice:localhost"]; got[0] != "alice" || got[1] != "false" || got[2] != "false" {
			t.Fatalf("alice's row: %v", got)
		}
		rows = tableRows(t, adminCLIOK(t, srv, dbURL, "users", "list", "--deactivated", "--name", "CAR"))
		if len(rows) != 1 || rows["@carol:localhost"] == nil || rows["@carol:localhost"][2] != "true" {
			t.Fatalf("users list --deactivated --name CAR: %v", rows)
		}
		rows = tableRows(t, adminCLIOK(t, srv, dbURL, "users", "list", "--admins"))
		if len(rows) != 0 {
			t.Fatalf("users list --admins (there are none): %v", rows)
		}
		var page struct {
			Users []struct {
				Name        id.UserID `json:"name"`
				Admin       bool      `json:"admin"`
				Deactivated bool      `json:"deactivated"`
				CreationTS  int64     `json:"creation_ts"`
			} `json:"users"`
			Total int `json:"total"`
		}
		if err := json.Unmarshal([]byte(adminCLIOK(t, srv, dbURL, "users", "list", "--json", "--admins=false")), &page); err != nil {
			t.Fatal(err)
		}
		if page.Total != 2 || len(page.Users) != 2 || page.Users[0].Name != alice.UserID || page.Users[1].Name != bob.UserID ||
			page.Users[0].CreationTS <= 0 {
			t.Fatalf("users list --json: %+v", page)
		}
	})

	t.Run("rooms list", func(t *testing.T) {
		rows := tableRows(t, adminCLIOK(t, srv, dbURL, "rooms", "list"))
		if len(rows) != 2 || rows[string(garden.RoomID)] == nil || rows[string(doomed.RoomID)] == nil {
			t.Fatalf("rooms list: %v", rows)
		}
		if got := rows[string(doomed.RoomID)]; got[0] != "Doomed" || got[1] != "#doomed:localhost" || got[2] != "2" {
			t.Fatalf("the doomed room's row: %v", got)
		}
		rows = tableRows(t, adminCLIOK(t, srv, dbURL, "rooms", "list", "--search", "gard"))
		if len(rows) != 1 || rows[string(garden.RoomID)] == nil {
			t.Fatalf("rooms list --search gard: %v", rows)
		}
		var page struct {
			Rooms []struct {
				RoomID        id.RoomID `json:"room_id"`
				Name          string    `json:"name"`
				JoinedMembers int       `json:"joined_members"`
			} `json:"rooms"`
			TotalRooms int `json:"total_rooms"`
			Offset     int `json:"offset"`
		}
		if err := json.Unmarshal([]byte(adminCLIOK(t, srv, dbURL, "rooms", "list", "--json", "--search", "DOOM")), &page); err != nil {
			t.Fatal(err)
		}
		if page.TotalRooms != 1 || len(page.Rooms) != 1 || page.Rooms[0].RoomID != doomed.RoomID || page.Rooms[0].JoinedMembers != 2 {
			t.Fatalf("rooms list --json: %+v", page)
		}
	})

	t.Run("refusals", func(t *testing.T) {
		adminCLIFails(t, srv, dbURL, []string{"#nowhere:localhost"}, "rooms", "delete", "#nowhere:localhost")
		adminCLIFails(t, srv, dbURL, []string{"not-a-room", "neither a room ID"}, "rooms", "delete", "not-a-room")
		adminCLIFails(t, srv, dbURL, []string{"Unknown room"}, "rooms", "delete", "!nowhere:localhost")
		adminCLIFails(t, srv, dbURL, []string{"exactly one"}, "history", "purge", string(garden.RoomID))
		adminCLIFails(t, srv, dbURL, []string{"exactly one"}, "history", "purge", string(garden.RoomID), "--before", "1h",
			"--before-ts", "5")
		adminCLIFails(t, srv, dbURL, []string{"Unknown room"}, "history", "purge", "!nowhere:localhost", "--before", "1h")
		adminCLIFails(t, srv, dbURL, []string{"$nowhere"}, "history", "purge", string(garden.RoomID), "--before-event", "$nowhere")
		adminCLIFails(t, srv, dbURL, []string{"not an mxc"}, "media", "quarantine", "https://example.org/x")
		adminCLIFails(t, srv, dbURL, []string{"local media"}, "media", "quarantine", "mxc://elsewhere.example/abc")
		adminCLIFails(t, srv, dbURL, []string{"local users"}, "media", "quarantine-user", "@bob:elsewhere.example")
		adminCLIFails(t, srv, dbURL, []string{"Invalid room ID"}, "media", "quarantine-room", "garden")
	})

	t.Run("media quarantine", func(t *testing.T) {
		out := adminCLIOK(t, srv, dbURL, "media", "quarantine", single.String())
		if !strings.Contains(out, "Quarantined "+single.String()) {
			t.Fatalf("media quarantine: %q", out)
		}
		via(out)
		out = adminCLIOK(t, srv, dbURL, "media", "quarantine", single.String())
		if !strings.Contains(out, "Nothing quarantined") {
			t.Fatalf("media quarantine again: %q", out)
		}
		out = adminCLIOK(t, srv, dbURL, "media", "quarantine-room", string(garden.RoomID))
		if !strings.Contains(out, "Quarantined 1 media of "+string(garden.RoomID)) {
			t.Fatalf("media quarantine-room: %q", out)
		}
		var n struct {
			NumQuarantined int `json:"num_quarantined"`
		}
		if err := json.Unmarshal([]byte(adminCLIOK(t, srv, dbURL, "media", "quarantine-user", "@bob:localhost", "--json")), &n); err != nil ||
			n.NumQuarantined != 1 {
			t.Fatalf("media quarantine-user --json: %+v %v", n, err)
		}
	})

	t.Run("history purge", func(t *testing.T) {
		out := adminCLIOK(t, srv, dbURL, "history", "purge", string(garden.RoomID), "--before-event", string(point.EventID),
			"--delete-local-events")
		if !strings.Contains(out, "Purged history of "+string(garden.RoomID)+": complete") {
			t.Fatalf("history purge: %q", out)
		}
		via(out)
		// A time before any event purges nothing, and says so in JSON.
		var st struct {
			Status string `json:"status"`
		}
		if err := json.Unmarshal([]byte(adminCLIOK(t, srv, dbURL, "history", "purge", string(garden.RoomID), "--before-ts", "1", "--json")),
			&st); err != nil || st.Status != "complete" {
			t.Fatalf("history purge --json: %+v %v", st, err)
		}
	})

	t.Run("rooms delete", func(t *testing.T) {
		out := adminCLIOK(t, srv, dbURL, "rooms", "delete", "#doomed:localhost", "--purge", "--block",
			"--new-room-user-id", "@moderator:localhost", "--message", "The room is gone.")
		for _, want := range []string{"Deleting " + string(doomed.RoomID), "Deleted " + string(doomed.RoomID) + " (blocked, purged)",
			"removed members: @alice:localhost, @bob:localhost", "removed aliases: #doomed:localhost", "new room: !"} {
			if !strings.Contains(out, want) {
				t.Fatalf("rooms delete output lacks %q:\n%s", want, out)
			}
		}
		via(out)
		rows := tableRows(t, adminCLIOK(t, srv, dbURL, "rooms", "list"))
		if rows[string(doomed.RoomID)] != nil {
			t.Fatalf("the deleted room is still listed: %v", rows)
		}
		var st struct {
			Status       string `json:"status"`
			ShutdownRoom struct {
				KickedUsers []id.UserID `json:"kicked_users"`
			} `json:"shutdown_room"`
		}
		// A deleted room deleted again: nothing left to remove.
		if err := json.Unmarshal([]byte(adminCLIOK(t, srv, dbURL, "rooms", "delete", string(doomed.RoomID), "--block", "--json")),
			&st); err != nil || st.Status != "complete" || len(st.ShutdownRoom.KickedUsers) != 0 {
			t.Fatalf("rooms delete --json: %+v %v", st, err)
		}
	})

	if !running {
		srv = testserver.Start(t, srv.Opts)
		alice = clientFor(t, srv, alice.UserID, alice.DeviceID, alice.AccessToken)
		bob = clientFor(t, srv, bob.UserID, bob.DeviceID, bob.AccessToken)
	}

	// The effects, as clients see them.
	download := func(uri id.ContentURI) int {
		t.Helper()
		st, _ := srv.DoRaw(t, "GET", "/_matrix/client/v1/media/download/"+uri.Homeserver+"/"+uri.FileID, alice.AccessToken, nil)
		return st
	}
	for _, u := range []id.ContentURI{single, inRoom, bobs} {
		if st := download(u); st != http.StatusNotFound {
			t.Fatalf("quarantined %s downloads: %d", u, st)
		}
	}
	if st := download(kept); st != http.StatusOK {
		t.Fatalf("media never quarantined: %d", st)
	}
	if got := pageBack(t, bob, garden.RoomID); !slices.Equal(got, []id.EventID{after.EventID, point.EventID}) {
		t.Fatalf("the garden's history after the purge: %v, want [%s %s]", got, after.EventID, point.EventID)
	}
	if _, err := bob.GetEvent(ctx, garden.RoomID, old[0]); err == nil {
		t.Fatal("a purged event is still served")
	}
	// The garden still works.
	if _, err := bob.SendText(ctx, garden.RoomID, "still here"); err != nil {
		t.Fatal(err)
	}
	joined, err := bob.JoinedRooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(joined.JoinedRooms, doomed.RoomID) || !slices.Contains(joined.JoinedRooms, garden.RoomID) {
		t.Fatalf("bob's rooms after the deletion: %v", joined.JoinedRooms)
	}
	if len(joined.JoinedRooms) != 2 {
		t.Fatalf("bob was not moved into the new room: %v", joined.JoinedRooms)
	}
	// Blocked: no one of this server joins it again.
	_, err = alice.JoinRoomByID(ctx, doomed.RoomID)
	wantErr(t, err, mautrix.MForbidden)
	if _, err := srv.Client(t).ResolveAlias(ctx, "#doomed:localhost"); err == nil {
		t.Fatal("the deleted room's alias still resolves")
	}
	if running {
		// The running server logged the operator's actions.
		logs := srv.Logs()
		for _, action := range []string{"delete room", "purge history", "quarantine media", "quarantine room media",
			"quarantine media of user"} {
			if !strings.Contains(logs, `"action":"`+action+`","admin":"@tributary-operator:localhost","via":"cli"`) {
				t.Fatalf("the server did not log %q as the operator:\n%s", action, logs)
			}
		}
	}
	// In the database: nothing of the deleted room but its block.
	srv.Stop()
	left, err := openStopped(t, srv, dbURL).RoomRows(ctx, doomed.RoomID, []id.EventID{gone.EventID}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(left) != "map[blocked_rooms:1]" {
		t.Fatalf("rows of the purged room: %v", left)
	}
}

// dbArgs are the flags that point a CLI command at the database.
func dbArgs(dbURL string) []string {
	if dbURL == "" {
		return nil
	}
	return []string{"--database-url", dbURL}
}
