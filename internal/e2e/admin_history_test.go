package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/synapseadmin"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
	"github.com/tributary-hs/tributary/storage/postgres"
	"github.com/tributary-hs/tributary/storage/sqldb"
	"github.com/tributary-hs/tributary/storage/sqlite"
)

// onBothDatabasesURL runs test against a server on SQLite and one on
// PostgreSQL; test gets the server and its database URL ("" for SQLite).
func onBothDatabasesURL(t *testing.T, test func(t *testing.T, srv *testserver.Server, dbURL string)) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			var args []string
			dbURL := ""
			if backend == "postgres" {
				dbURL = pgtest.URL(t)
				args = []string{"--database-url", dbURL}
			}
			test(t, startOpen(t, args...), dbURL)
		})
	}
}

// adminClientOn is adminClient for a server on the database at dbURL
// ("" for SQLite in its data directory).
func adminClientOn(t *testing.T, srv *testserver.Server, dbURL string) *synapseadmin.Client {
	t.Helper()
	args := []string{"user", "add", "admin", "--password", "admin password", "--admin"}
	if dbURL != "" {
		args = append(args, "--database-url", dbURL)
	}
	if out, err := srv.Run(t, "", args...); err != nil {
		t.Fatalf("user add admin: %v\n%s", err, out)
	}
	return &synapseadmin.Client{Client: login(t, srv, passwordLogin("admin", "admin password"))}
}

// openStopped opens the database of a stopped server.
func openStopped(t *testing.T, srv *testserver.Server, dbURL string) *sqldb.DB {
	t.Helper()
	var db *sqldb.DB
	var err error
	if dbURL == "" {
		db, err = sqlite.Open(t.Context(), filepath.Join(srv.DataDir, "tributary.db"))
	} else {
		db, err = postgres.Open(t.Context(), dbURL)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// waitTask polls an admin status endpoint until its status is one of done
// (the admin API has no way to wait on a background job).
func waitTask(t *testing.T, srv *testserver.Server, token, path string, done ...string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, body := srv.Do(t, "GET", path, token, nil)
		wantStatus(t, path, st, body, http.StatusOK, "")
		if s, _ := body["status"].(string); slices.Contains(done, s) || time.Now().After(deadline) {
			return body
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pageBack pages a room's timeline back from its end as cli, until the
// start, and returns the event IDs, newest first.
func pageBack(t *testing.T, cli *mautrix.Client, roomID id.RoomID) []id.EventID {
	t.Helper()
	var out []id.EventID
	from := ""
	for range 50 {
		page, err := cli.Messages(t.Context(), roomID, from, "", mautrix.DirectionBackward, nil, 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Chunk {
			out = append(out, e.ID)
		}
		if page.End == "" || len(page.Chunk) == 0 {
			return out
		}
		from = page.End
	}
	t.Fatal("paginating never reached the start of the room")
	return nil
}

// TestAdminPurgeHistory: POST /_synapse/admin/v1/purge_history on both
// databases. The events before the point go from the database with what
// depends on them; the room's state stays, so members keep sending and
// syncing and a newcomer sees the room as it is; clients paginating back
// stop at the point.
func TestAdminPurgeHistory(t *testing.T) {
	onBothDatabasesURL(t, testAdminPurgeHistory)
}

func testAdminPurgeHistory(t *testing.T, srv *testserver.Server, dbURL string) {
	adm := adminClientOn(t, srv, dbURL)
	admTok := adm.Client.AccessToken
	ctx := t.Context()
	alice, bob, room := aliceAndBobInPublicRoom(t, srv)
	send := func(cli *mautrix.Client, text string) id.EventID {
		t.Helper()
		r, err := cli.SendText(ctx, room.RoomID, text)
		if err != nil {
			t.Fatal(err)
		}
		return r.EventID
	}
	// alice's client last synced before the history that will be purged.
	early := syncOnce(t, alice, "", 0).NextBatch
	var old []id.EventID
	for i := range 4 {
		old = append(old, send(bob, fmt.Sprintf("old %d", i)))
	}
	if _, err := alice.SendStateEvent(ctx, room.RoomID, event.StateTopic, "", map[string]any{"topic": "set before the point"}); err != nil {
		t.Fatal(err)
	}
	old = append(old, send(alice, "old 4"))
	point := send(bob, "the point")
	after := send(alice, "after the point")
	before := pageBack(t, bob, room.RoomID)
	if !slices.Contains(before, old[0]) {
		t.Fatalf("before the purge the history reaches the first message: %v", before)
	}

	base := "/_synapse/admin/v1/purge_history/" + url.PathEscape(string(room.RoomID))
	t.Run("refusals", func(t *testing.T) {
		st, body := srv.Do(t, "POST", base+"/"+url.PathEscape(string(point)), bob.AccessToken, map[string]any{})
		wantStatus(t, "a non-admin", st, body, http.StatusForbidden, "M_FORBIDDEN")
		st, body = srv.Do(t, "POST", base, admTok, map[string]any{"delete_local_events": true})
		wantStatus(t, "no point", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		st, body = srv.Do(t, "POST", base, admTok, map[string]any{"purge_up_to_ts": "yesterday"})
		wantStatus(t, "a timestamp that is not a number", st, body, http.StatusBadRequest, "M_BAD_JSON")
		st, body = srv.Do(t, "POST", base+"/"+url.PathEscape("$nowhere"), admTok, map[string]any{})
		wantStatus(t, "an unknown event", st, body, http.StatusNotFound, "M_NOT_FOUND")
		st, body = srv.Do(t, "POST", "/_synapse/admin/v1/purge_history/"+url.PathEscape("!nowhere:localhost"), admTok,
			map[string]any{"purge_up_to_ts": 1})
		wantStatus(t, "an unknown room", st, body, http.StatusNotFound, "M_NOT_FOUND")
		st, body = srv.Do(t, "POST", "/_synapse/admin/v1/purge_history/not-a-room", admTok, map[string]any{"purge_up_to_ts": 1})
		wantStatus(t, "not a room ID", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		st, body = srv.Do(t, "GET", "/_synapse/admin/v1/purge_history_status/nope", admTok, nil)
		wantStatus(t, "an unknown purge", st, body, http.StatusNotFound, "M_NOT_FOUND")
	})

	st, body := srv.Do(t, "POST", base+"/"+url.PathEscape(string(point)), admTok, map[string]any{"delete_local_events": true})
	wantStatus(t, "purge up to the point", st, body, http.StatusOK, "")
	purgeID := str(t, body, "purge_id")
	statusPath := "/_synapse/admin/v1/purge_history_status/" + purgeID
	st, body = srv.Do(t, "GET", statusPath, bob.AccessToken, nil)
	wantStatus(t, "a non-admin's status", st, body, http.StatusForbidden, "M_FORBIDDEN")
	if body := waitTask(t, srv, admTok, statusPath, "complete", "failed"); body["status"] != "complete" {
		t.Fatalf("purge status %v", body)
	}

	// Paginating back stops at the point, for members and admins alike.
	got := pageBack(t, bob, room.RoomID)
	if !slices.Equal(got, []id.EventID{after, point}) {
		t.Fatalf("history after the purge: %v, want [%s %s]", got, after, point)
	}
	msgs, err := adm.RoomMessages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 50)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs.Chunk) != 2 || msgs.Chunk[0].ID != after || msgs.Chunk[1].ID != point {
		t.Fatalf("admin's history after the purge: %+v", msgs.Chunk)
	}
	_, err = bob.GetEvent(ctx, room.RoomID, old[0])
	wantErr(t, err, mautrix.MNotFound.WithStatus(http.StatusNotFound))

	// The room goes on: its state is whole, members send and sync, a
	// newcomer joins and sees the state.
	var topic event.TopicEventContent
	if err := bob.StateEvent(ctx, room.RoomID, event.StateTopic, "", &topic); err != nil || topic.Topic != "set before the point" {
		t.Fatalf("topic after the purge: %+v %v", topic, err)
	}
	// alice's client, back from before the purged history, learns the
	// state that changed in it (a limited timeline and the state before it).
	resp, err := alice.SyncRequest(ctx, 0, early, `{"room":{"timeline":{"limit":1}}}`, false, "")
	if err != nil {
		t.Fatal(err)
	}
	jr, ok := resp.Rooms.Join[room.RoomID]
	if !ok || !jr.Timeline.Limited {
		t.Fatalf("alice's sync from before the purge: %+v", jr)
	}
	if !slices.ContainsFunc(jr.State.Events, func(e *event.Event) bool {
		return e.Type == event.StateTopic && e.Content.Raw["topic"] == "set before the point"
	}) {
		t.Fatalf("alice's sync from before the purge lacks the topic set in the purged history: %d state events", len(jr.State.Events))
	}
	since := syncOnce(t, alice, "", 0).NextBatch
	newer := send(bob, "after the purge")
	if _, n := waitForBody(t, alice, room.RoomID, since, "after the purge"); n != 1 {
		t.Fatalf("alice saw the message after the purge %d times", n)
	}
	carol := register(t, srv, "carol", defaultPassword)
	if _, err := carol.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	first := syncOnce(t, carol, "", 0)
	jr, ok = first.Rooms.Join[room.RoomID]
	if !ok {
		t.Fatal("carol's first sync lacks the room")
	}
	hasTopic := false
	for _, e := range append(jr.State.Events, jr.Timeline.Events...) {
		hasTopic = hasTopic || (e.Type == event.StateTopic && e.Content.Raw["topic"] == "set before the point")
	}
	if !hasTopic {
		t.Fatal("carol's first sync lacks the room's topic")
	}
	if got := pageBack(t, carol, room.RoomID); !slices.Contains(got, newer) || slices.Contains(got, old[0]) {
		t.Fatalf("carol's history: %v", got)
	}

	// In the database: the purged events and their transaction rows are gone.
	srv.Stop()
	db := openStopped(t, srv, dbURL)
	evs, err := db.GetEvents(context.Background(), old)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 0 {
		t.Fatalf("%d purged events are still stored", len(evs))
	}
	left, err := db.RoomRows(context.Background(), "!none:localhost", old, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("rows pointing at purged events: %v", left)
	}
}

// TestAdminPurgeHistoryKeepsLocalEvents: by default (and by timestamp) the
// events of this server's users stay in the database, but clients still
// stop at the point.
func TestAdminPurgeHistoryKeepsLocalEvents(t *testing.T) {
	srv := startOpen(t)
	adm := adminClient(t, srv)
	ctx := t.Context()
	alice, bob, room := aliceAndBobInPublicRoom(t, srv)
	oldMsg, err := bob.SendText(ctx, room.RoomID, "old")
	if err != nil {
		t.Fatal(err)
	}
	point, err := alice.SendText(ctx, room.RoomID, "the point")
	if err != nil {
		t.Fatal(err)
	}
	pointEv, err := alice.GetEvent(ctx, room.RoomID, point.EventID)
	if err != nil {
		t.Fatal(err)
	}
	st, body := srv.Do(t, "POST", "/_synapse/admin/v1/purge_history/"+url.PathEscape(string(room.RoomID)), adm.Client.AccessToken,
		map[string]any{"purge_up_to_ts": pointEv.Timestamp})
	wantStatus(t, "purge by time", st, body, http.StatusOK, "")
	if body := waitTask(t, srv, adm.Client.AccessToken, "/_synapse/admin/v1/purge_history_status/"+str(t, body, "purge_id"),
		"complete", "failed"); body["status"] != "complete" {
		t.Fatalf("purge status %v", body)
	}
	if got := pageBack(t, bob, room.RoomID); len(got) != 1 || got[0] != point.EventID {
		t.Fatalf("history after the purge: %v, want [%s]", got, point.EventID)
	}
	// bob's message is kept (a local user's): the admin can still fetch
	// it by its ID through the context API.
	st, body = srv.Do(t, "GET", "/_synapse/admin/v1/rooms/"+url.PathEscape(string(room.RoomID))+"/context/"+
		url.PathEscape(string(oldMsg.EventID)), adm.Client.AccessToken, nil)
	wantStatus(t, "context of a kept event", st, body, http.StatusOK, "")
}

// TestAdminRedactUser: POST /_synapse/admin/v1/user/{userId}/redact on both
// databases: every message of the user in every room they have been in is
// redacted (by the user, puppeted), their state is not, others' messages
// are untouched; the status says when it is done.
func TestAdminRedactUser(t *testing.T) {
	onBothDatabasesURL(t, testAdminRedactUser)
}

func testAdminRedactUser(t *testing.T, srv *testserver.Server, dbURL string) {
	adm := adminClientOn(t, srv, dbURL)
	ctx := t.Context()
	alice, bob, room := aliceAndBobInPublicRoom(t, srv)
	other, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, other.RoomID); err != nil {
		t.Fatal(err)
	}
	var spam []struct {
		room id.RoomID
		ev   id.EventID
	}
	for i, r := range []id.RoomID{room.RoomID, room.RoomID, other.RoomID} {
		res, err := bob.SendText(ctx, r, fmt.Sprintf("spam %d", i))
		if err != nil {
			t.Fatal(err)
		}
		spam = append(spam, struct {
			room id.RoomID
			ev   id.EventID
		}{r, res.EventID})
	}
	// bob leaves the second room: it is one he has been in, but he may
	// no longer redact there (and the admin, no member, may not either).
	if _, err := bob.LeaveRoom(ctx, other.RoomID); err != nil {
		t.Fatal(err)
	}
	kept, err := alice.SendText(ctx, room.RoomID, "alice's own")
	if err != nil {
		t.Fatal(err)
	}

	_, err = (&synapseadmin.Client{Client: alice}).RedactUser(ctx, bob.UserID, synapseadmin.ReqRedactUser{})
	wantErr(t, err, mautrix.MForbidden.WithStatus(http.StatusForbidden))
	st, body := srv.Do(t, "POST", "/_synapse/admin/v1/user/"+url.PathEscape(string(bob.UserID))+"/redact", adm.Client.AccessToken,
		map[string]any{})
	wantStatus(t, "no rooms", st, body, http.StatusBadRequest, "M_MISSING_PARAM")
	st, body = srv.Do(t, "POST", "/_synapse/admin/v1/user/not-a-user/redact", adm.Client.AccessToken, map[string]any{"rooms": []string{}})
	wantStatus(t, "not a user ID", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
	st, body = srv.Do(t, "POST", "/_synapse/admin/v1/user/"+url.PathEscape(string(bob.UserID))+"/redact", adm.Client.AccessToken,
		map[string]any{"rooms": []string{"nope"}})
	wantStatus(t, "not a room ID", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
	_, err = adm.RedactUserStatus(ctx, "nope")
	wantErr(t, err, mautrix.MNotFound.WithStatus(http.StatusNotFound))

	res, err := adm.RedactUser(ctx, bob.UserID, synapseadmin.ReqRedactUser{Reason: "spam"})
	if err != nil {
		t.Fatal(err)
	}
	var status synapseadmin.RespRedactUserStatus
	deadline := time.Now().Add(30 * time.Second)
	for {
		if status, err = adm.RedactUserStatus(ctx, res.RedactID); err != nil {
			t.Fatal(err)
		}
		if status.Status == "completed" || status.Status == "failed" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling a background job: the API has no way to wait
	}
	if status.Status != "completed" || len(status.FailedRedactions) != 1 || status.FailedRedactions[spam[2].ev] == "" {
		t.Fatalf("redaction status %+v, want completed with %s failed", status, spam[2].ev)
	}
	for _, s := range spam[:2] {
		ev, err := alice.GetEvent(ctx, s.room, s.ev)
		if err != nil {
			t.Fatal(err)
		}
		if len(ev.Content.Raw) != 0 || ev.Unsigned.RedactedBecause == nil || ev.Unsigned.RedactedBecause.Sender != bob.UserID ||
			ev.Unsigned.RedactedBecause.Content.Raw["reason"] != "spam" {
			t.Fatalf("%s after the redaction: content %v, redacted because %+v", s.ev, ev.Content.Raw, ev.Unsigned.RedactedBecause)
		}
	}
	ev, err := alice.GetEvent(ctx, room.RoomID, kept.EventID)
	if err != nil || ev.Content.Raw["body"] != "alice's own" {
		t.Fatalf("alice's message: %+v %v", ev, err)
	}
	var member event.MemberEventContent
	if err := alice.StateEvent(ctx, room.RoomID, event.StateMember, string(bob.UserID), &member); err != nil ||
		member.Membership != event.MembershipJoin {
		t.Fatalf("bob's membership is state and stays: %+v %v", member, err)
	}
}
