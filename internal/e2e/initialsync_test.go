package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// The sync-era endpoints: GET /rooms/{roomId}/initialSync, GET /initialSync
// and GET /events (with room_id for peeking).

const clientV3 = "/_matrix/client/v3"

// getJSON is a GET that reports failures instead of failing the test, so
// that long-polls can run in goroutines.
func getJSON(srv *testserver.Server, path, token string) (int, map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	out := map[string]any{}
	if err := json.Unmarshal(raw, &out); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("answer %q: %w", raw, err)
	}
	return resp.StatusCode, out, nil
}

// getOK is getJSON for the test goroutine: it wants 200.
func getOK(t *testing.T, srv *testserver.Server, path, token string) map[string]any {
	t.Helper()
	code, body, err := getJSON(srv, path, token)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, code, body)
	}
	return body
}

// objects reads a list of JSON objects from a field (every element must be one).
func objects(t *testing.T, body map[string]any, key string) []map[string]any {
	t.Helper()
	raw, ok := body[key].([]any)
	if !ok {
		t.Fatalf("no list %q in %v", key, body)
	}
	out := make([]map[string]any, len(raw))
	for i, r := range raw {
		if out[i], ok = r.(map[string]any); !ok {
			t.Fatalf("%s[%d] is not an object: %v", key, i, r)
		}
	}
	return out
}

// messageBodies are the bodies of the m.room.message events of a list.
func messageBodies(evs []map[string]any) []string {
	var out []string
	for _, e := range evs {
		if e["type"] == "m.room.message" {
			c, _ := e["content"].(map[string]any)
			out = append(out, fmt.Sprint(c["body"]))
		}
	}
	return out
}

// stateKeys lists "type|state_key" of state events.
func stateKeys(evs []map[string]any) []string {
	var out []string
	for _, e := range evs {
		sk, _ := e["state_key"].(string)
		out = append(out, fmt.Sprint(e["type"])+"|"+sk)
	}
	return out
}

func sendTexts(t *testing.T, cli *mautrix.Client, room id.RoomID, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if _, err := cli.SendText(context.Background(), room, s); err != nil {
			t.Fatalf("send %q: %v", s, err)
		}
	}
}

func roomPath(room id.RoomID, rest string) string {
	return clientV3 + "/rooms/" + url.PathEscape(string(room)) + rest
}

// worldReadableRoom creates a public room anyone may read without joining.
func worldReadableRoom(t *testing.T, srv *testserver.Server, cli *mautrix.Client, name string) id.RoomID {
	t.Helper()
	code, body := srv.Do(t, "POST", clientV3+"/createRoom", cli.AccessToken, map[string]any{"preset": "public_chat", "name": name,
		"initial_state": []any{map[string]any{"type": "m.room.history_visibility", "state_key": "",
			"content": map[string]any{"history_visibility": "world_readable"}}}})
	if code != 200 {
		t.Fatalf("createRoom: %d %v", code, body)
	}
	return id.RoomID(str(t, body, "room_id"))
}

func TestRoomInitialSync(t *testing.T) {
	srv := startOpen(t)
	ctx := context.Background()
	alice := register(t, srv, "aliceris", defaultPassword)
	bob := register(t, srv, "bobris", defaultPassword)
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Snapshots"})
	if err != nil {
		t.Fatal(err)
	}
	sendTexts(t, alice, room.RoomID, "m0", "m1", "m2")
	if err := alice.SetRoomAccountData(ctx, room.RoomID, "m.tag", map[string]any{"tags": map[string]any{"u.work": map[string]any{}}}); err != nil {
		t.Fatal(err)
	}

	t.Run("member", func(t *testing.T) {
		body := getOK(t, srv, roomPath(room.RoomID, "/initialSync?limit=2"), alice.AccessToken)
		if body["room_id"] != string(room.RoomID) || body["membership"] != "join" || body["visibility"] != "private" {
			t.Fatalf("room info: %v", body)
		}
		msgs, _ := body["messages"].(map[string]any)
		chunk := objects(t, msgs, "chunk")
		if got := messageBodies(chunk); !slices.Equal(got, []string{"m1", "m2"}) || len(chunk) != 2 {
			t.Fatalf("messages %v (%d events), want the last two, oldest first", got, len(chunk))
		}
		for _, e := range chunk {
			if e["room_id"] != string(room.RoomID) || e["event_id"] == nil {
				t.Fatalf("not a client event: %v", e)
			}
		}
		keys := stateKeys(objects(t, body, "state"))
		for _, want := range []string{"m.room.create|", "m.room.name|", "m.room.member|" + string(alice.UserID), "m.room.power_levels|"} {
			if !slices.Contains(keys, want) {
				t.Fatalf("state %v lacks %s", keys, want)
			}
		}
		if ad := objects(t, body, "account_data"); len(ad) != 1 || ad[0]["type"] != "m.tag" {
			t.Fatalf("room account data %v", ad)
		}
		if _, ok := body["presence"].([]any); !ok {
			t.Fatalf("no presence list: %v", body)
		}
		// start pages back to what came before; end forward to nothing.
		start, end := str(t, msgs, "start"), str(t, msgs, "end")
		before := getOK(t, srv, roomPath(room.RoomID, "/messages?dir=b&limit=1&from="+url.QueryEscape(start)), alice.AccessToken)
		if got := messageBodies(objects(t, before, "chunk")); !slices.Equal(got, []string{"m0"}) {
			t.Fatalf("messages before start: %v", got)
		}
		after := getOK(t, srv, roomPath(room.RoomID, "/messages?dir=f&from="+url.QueryEscape(end)), alice.AccessToken)
		if got := objects(t, after, "chunk"); len(got) != 0 {
			t.Fatalf("messages after end: %v", got)
		}
		// limit=0: no messages, the state all the same.
		none := getOK(t, srv, roomPath(room.RoomID, "/initialSync?limit=0"), alice.AccessToken)
		if m := none["messages"].(map[string]any); len(objects(t, m, "chunk")) != 0 || len(objects(t, none, "state")) == 0 {
			t.Fatalf("limit=0: %v", none)
		}
		// The r0 path answers too.
		if r0 := getOK(t, srv, "/_matrix/client/r0/rooms/"+url.PathEscape(string(room.RoomID))+"/initialSync", alice.AccessToken); r0["room_id"] != string(room.RoomID) {
			t.Fatalf("r0: %v", r0)
		}
	})

	t.Run("directory visibility", func(t *testing.T) {
		if code, body := srv.Do(t, "PUT", clientV3+"/directory/list/room/"+url.PathEscape(string(room.RoomID)), alice.AccessToken,
			map[string]any{"visibility": "public"}); code != 200 {
			t.Fatalf("publish: %d %v", code, body)
		}
		if body := getOK(t, srv, roomPath(room.RoomID, "/initialSync"), alice.AccessToken); body["visibility"] != "public" {
			t.Fatalf("published room: %v", body)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			name, path, token string
			status            int
			code              string
		}{
			{"non-member", roomPath(room.RoomID, "/initialSync"), bob.AccessToken, 403, "M_FORBIDDEN"},
			{"unknown room", roomPath("!nowhere:localhost", "/initialSync"), alice.AccessToken, 403, "M_FORBIDDEN"},
			{"not a room ID", roomPath("nowhere", "/initialSync"), alice.AccessToken, 400, "M_INVALID_PARAM"},
			{"negative limit", roomPath(room.RoomID, "/initialSync?limit=-1"), alice.AccessToken, 400, "M_INVALID_PARAM"},
			{"bad limit", roomPath(room.RoomID, "/initialSync?limit=many"), alice.AccessToken, 400, "M_INVALID_PARAM"},
			{"no token", roomPath(room.RoomID, "/initialSync"), "", 401, "M_MISSING_TOKEN"},
		} {
			code, body := srv.Do(t, "GET", tc.path, tc.token, nil)
			wantStatus(t, tc.name, code, body, tc.status, tc.code)
		}
	})

	t.Run("invited only", func(t *testing.T) {
		if _, err := alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
			t.Fatal(err)
		}
		code, body := srv.Do(t, "GET", roomPath(room.RoomID, "/initialSync"), bob.AccessToken, nil)
		wantStatus(t, "invited, never joined", code, body, 403, "M_FORBIDDEN")
	})

	t.Run("left", func(t *testing.T) {
		if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
			t.Fatal(err)
		}
		sendTexts(t, bob, room.RoomID, "bob was here")
		if _, err := bob.LeaveRoom(ctx, room.RoomID); err != nil {
			t.Fatal(err)
		}
		sendTexts(t, alice, room.RoomID, "after bob left")
		if _, err := alice.SendStateEvent(ctx, room.RoomID, event.StateTopic, "", map[string]any{"topic": "secret topic"}); err != nil {
			t.Fatal(err)
		}
		body := getOK(t, srv, roomPath(room.RoomID, "/initialSync?limit=5"), bob.AccessToken)
		if body["membership"] != "leave" {
			t.Fatalf("membership %v", body["membership"])
		}
		chunk := objects(t, body["messages"].(map[string]any), "chunk")
		got := messageBodies(chunk)
		if slices.Contains(got, "after bob left") || !slices.Contains(got, "bob was here") {
			t.Fatalf("leaver's messages %v", got)
		}
		if last := chunk[len(chunk)-1]; last["type"] != "m.room.member" || last["state_key"] != string(bob.UserID) {
			t.Fatalf("leaver's timeline does not end with their leave: %v", last)
		}
		var sawLeave bool
		for _, e := range objects(t, body, "state") {
			if e["type"] == "m.room.topic" {
				t.Fatalf("state after the leave reached the leaver: %v", e)
			}
			if e["type"] == "m.room.member" && e["state_key"] == string(bob.UserID) {
				sawLeave = e["content"].(map[string]any)["membership"] == "leave"
			}
		}
		if !sawLeave {
			t.Fatal("state at the leave lacks the leave")
		}
	})
}

func TestRoomInitialSyncPeeking(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alicepeek", defaultPassword)
	bob := register(t, srv, "bobpeek", defaultPassword)
	room := worldReadableRoom(t, srv, alice, "Open book")
	sendTexts(t, alice, room, "before the peek")

	body := getOK(t, srv, roomPath(room, "/initialSync"), bob.AccessToken)
	if body["room_id"] != string(room) {
		t.Fatalf("peek: %v", body)
	}
	if m, ok := body["membership"]; ok {
		t.Fatalf("a peeker has no membership, got %v", m)
	}
	msgs := body["messages"].(map[string]any)
	if got := messageBodies(objects(t, msgs, "chunk")); !slices.Equal(got, []string{"before the peek"}) {
		t.Fatalf("peeked messages %v", got)
	}
	if keys := stateKeys(objects(t, body, "state")); !slices.Contains(keys, "m.room.history_visibility|") {
		t.Fatalf("peeked state %v", keys)
	}
	if ad := objects(t, body, "account_data"); len(ad) != 0 {
		t.Fatalf("peeker's room account data %v", ad)
	}

	// Following the room with GET /events?room_id= from the snapshot's end:
	// the next message, and nothing already seen.
	end := str(t, msgs, "end")
	type answer struct {
		code int
		body map[string]any
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		code, body, err := getJSON(srv, clientV3+"/events?timeout=20000&room_id="+url.QueryEscape(string(room))+"&from="+url.QueryEscape(end), bob.AccessToken)
		done <- answer{code, body, err}
	}()
	sendTexts(t, alice, room, "while peeking")
	var got answer
	select {
	case got = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("peeking /events not woken by a message")
	}
	if got.err != nil || got.code != 200 {
		t.Fatalf("peeking /events: %d %v %v", got.code, got.body, got.err)
	}
	if bodies := messageBodies(objects(t, got.body, "chunk")); !slices.Equal(bodies, []string{"while peeking"}) {
		t.Fatalf("peeked stream %v", bodies)
	}
	next := str(t, got.body, "end")
	quiet := getOK(t, srv, clientV3+"/events?timeout=0&room_id="+url.QueryEscape(string(room))+"&from="+url.QueryEscape(next), bob.AccessToken)
	if chunk := objects(t, quiet, "chunk"); len(chunk) != 0 {
		t.Fatalf("stream repeated %v", chunk)
	}

	// A room that is not world_readable is not open to peeking.
	private, err := alice.CreateRoom(context.Background(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	code, resp := srv.Do(t, "GET", roomPath(private.RoomID, "/initialSync"), bob.AccessToken, nil)
	wantStatus(t, "initialSync of a shared-history room", code, resp, 403, "M_FORBIDDEN")
	code, resp = srv.Do(t, "GET", clientV3+"/events?timeout=0&room_id="+url.QueryEscape(string(private.RoomID)), bob.AccessToken, nil)
	wantStatus(t, "peeking /events of a shared-history room", code, resp, 403, "M_FORBIDDEN")
	code, resp = srv.Do(t, "GET", clientV3+"/events?timeout=0&room_id=nowhere", bob.AccessToken, nil)
	wantStatus(t, "/events with a bad room_id", code, resp, 400, "M_INVALID_PARAM")
	code, resp = srv.Do(t, "GET", clientV3+"/events?timeout=0&room_id="+url.QueryEscape("!nowhere:localhost"), bob.AccessToken, nil)
	wantStatus(t, "/events of an unknown room", code, resp, 403, "M_FORBIDDEN")
}

func TestGlobalInitialSync(t *testing.T) {
	srv := startOpen(t)
	ctx := context.Background()
	alice := register(t, srv, "aliceinit", defaultPassword)
	carol := register(t, srv, "carolinit", defaultPassword)

	joined, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Joined"})
	if err != nil {
		t.Fatal(err)
	}
	sendTexts(t, alice, joined.RoomID, "j0", "j1", "j2")
	invited, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Invited",
		Invite: []id.UserID{alice.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	left, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Left"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.JoinRoomByID(ctx, left.RoomID); err != nil {
		t.Fatal(err)
	}
	sendTexts(t, alice, left.RoomID, "goodbye")
	if _, err := alice.LeaveRoom(ctx, left.RoomID); err != nil {
		t.Fatal(err)
	}
	sendTexts(t, carol, left.RoomID, "after alice left")
	if err := alice.SetAccountData(ctx, "com.example.global", map[string]any{"k": 1}); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetRoomAccountData(ctx, joined.RoomID, "com.example.room", map[string]any{"k": 2}); err != nil {
		t.Fatal(err)
	}

	byRoom := func(body map[string]any) map[string]map[string]any {
		out := map[string]map[string]any{}
		for _, r := range objects(t, body, "rooms") {
			out[fmt.Sprint(r["room_id"])] = r
		}
		return out
	}
	body := getOK(t, srv, clientV3+"/initialSync?limit=2", alice.AccessToken)
	str(t, body, "end")
	if _, ok := body["presence"].([]any); !ok {
		t.Fatalf("no presence list: %v", body)
	}
	var global []string
	for _, e := range objects(t, body, "account_data") {
		global = append(global, fmt.Sprint(e["type"]))
	}
	if !slices.Contains(global, "com.example.global") || !slices.Contains(global, "m.push_rules") {
		t.Fatalf("global account data %v", global)
	}
	rooms := byRoom(body)
	if len(rooms) != 2 {
		t.Fatalf("rooms %v, want the joined and the invited one", rooms)
	}
	j := rooms[string(joined.RoomID)]
	if j == nil || j["membership"] != "join" || j["visibility"] != "private" {
		t.Fatalf("joined room %v", j)
	}
	if got := messageBodies(objects(t, j["messages"].(map[string]any), "chunk")); !slices.Equal(got, []string{"j1", "j2"}) {
		t.Fatalf("joined room messages %v", got)
	}
	if keys := stateKeys(objects(t, j, "state")); !slices.Contains(keys, "m.room.name|") {
		t.Fatalf("joined room state %v", keys)
	}
	if ad := objects(t, j, "account_data"); len(ad) != 1 || ad[0]["type"] != "com.example.room" {
		t.Fatalf("joined room account data %v", ad)
	}
	inv := rooms[string(invited.RoomID)]
	if inv == nil || inv["membership"] != "invite" {
		t.Fatalf("invited room %v", inv)
	}
	ev, _ := inv["invite"].(map[string]any)
	if ev["type"] != "m.room.member" || ev["state_key"] != string(alice.UserID) || ev["sender"] != string(carol.UserID) ||
		ev["content"].(map[string]any)["membership"] != "invite" {
		t.Fatalf("invite event %v", ev)
	}
	unsigned, _ := ev["unsigned"].(map[string]any)
	stripped, _ := unsigned["invite_room_state"].([]any)
	var strippedTypes []string
	for _, s := range stripped {
		strippedTypes = append(strippedTypes, fmt.Sprint(s.(map[string]any)["type"]))
	}
	if !slices.Contains(strippedTypes, "m.room.name") || !slices.Contains(strippedTypes, "m.room.create") {
		t.Fatalf("invite_room_state %v", stripped)
	}
	if _, ok := inv["messages"]; ok {
		t.Fatalf("an invite shows the room's messages: %v", inv)
	}

	// archived=true adds the room alice left, as it was when she left.
	archived := byRoom(getOK(t, srv, clientV3+"/initialSync?archived=true&limit=10", alice.AccessToken))
	l := archived[string(left.RoomID)]
	if len(archived) != 3 || l == nil || l["membership"] != "leave" {
		t.Fatalf("archived rooms %v", archived)
	}
	got := messageBodies(objects(t, l["messages"].(map[string]any), "chunk"))
	if !slices.Contains(got, "goodbye") || slices.Contains(got, "after alice left") {
		t.Fatalf("left room messages %v", got)
	}
	// A forgotten room is gone from the archive.
	if _, err := alice.ForgetRoom(ctx, left.RoomID); err != nil {
		t.Fatal(err)
	}
	if archived := byRoom(getOK(t, srv, clientV3+"/initialSync?archived=true", alice.AccessToken)); archived[string(left.RoomID)] != nil {
		t.Fatal("forgotten room listed")
	}

	// A rejected invite is archived with what alice may see: her own
	// membership events, no state.
	if _, err := alice.LeaveRoom(ctx, invited.RoomID); err != nil {
		t.Fatal(err)
	}
	archived = byRoom(getOK(t, srv, clientV3+"/initialSync?archived=true", alice.AccessToken))
	rejected := archived[string(invited.RoomID)]
	if rejected == nil || rejected["membership"] != "leave" || len(objects(t, rejected, "state")) != 0 {
		t.Fatalf("rejected invite %v", rejected)
	}
	for _, e := range objects(t, rejected["messages"].(map[string]any), "chunk") {
		if e["type"] != "m.room.member" || e["state_key"] != string(alice.UserID) {
			t.Fatalf("the room of a rejected invite shows %v", e)
		}
	}
	if without := byRoom(getOK(t, srv, clientV3+"/initialSync", alice.AccessToken)); len(without) != 1 {
		t.Fatalf("without archived: %v", without)
	}

	code, resp := srv.Do(t, "GET", clientV3+"/initialSync?archived=maybe", alice.AccessToken, nil)
	wantStatus(t, "bad archived", code, resp, 400, "M_INVALID_PARAM")
	code, resp = srv.Do(t, "GET", clientV3+"/initialSync?limit=x", alice.AccessToken, nil)
	wantStatus(t, "bad limit", code, resp, 400, "M_INVALID_PARAM")
	if r0 := getOK(t, srv, "/_matrix/client/r0/initialSync", carol.AccessToken); len(objects(t, r0, "rooms")) != 2 {
		t.Fatalf("r0 initialSync: %v", r0)
	}
}

func TestEventStream(t *testing.T) {
	srv := startOpen(t)
	ctx := context.Background()
	alice := register(t, srv, "aliceev", defaultPassword)
	bob := register(t, srv, "bobev", defaultPassword)
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	sendTexts(t, bob, room.RoomID, "before the stream")
	from := str(t, getOK(t, srv, clientV3+"/initialSync?limit=0", alice.AccessToken), "end")

	type answer struct {
		code int
		body map[string]any
		err  error
	}
	poll := func(from string) chan answer {
		done := make(chan answer, 1)
		go func() {
			code, body, err := getJSON(srv, clientV3+"/events?timeout=20000&from="+url.QueryEscape(from), alice.AccessToken)
			done <- answer{code, body, err}
		}()
		return done
	}
	wait := func(done chan answer, what string) map[string]any {
		t.Helper()
		select {
		case a := <-done:
			if a.err != nil || a.code != 200 {
				t.Fatalf("%s: %d %v %v", what, a.code, a.body, a.err)
			}
			return a.body
		case <-time.After(15 * time.Second):
			t.Fatalf("%s: long-poll not woken", what)
			return nil
		}
	}

	// A long-poll wakes for a message sent after it started.
	done := poll(from)
	sendTexts(t, bob, room.RoomID, "hello")
	body := wait(done, "message")
	chunk := objects(t, body, "chunk")
	if got := messageBodies(chunk); !slices.Equal(got, []string{"hello"}) {
		t.Fatalf("woken stream %v", got)
	}
	if chunk[0]["room_id"] != string(room.RoomID) || chunk[0]["sender"] != string(bob.UserID) {
		t.Fatalf("stream event %v", chunk[0])
	}
	if body["start"] != from {
		t.Fatalf("start %v, want the from token %s", body["start"], from)
	}
	from = str(t, body, "end")

	// An invite to a new room wakes it too.
	done = poll(from)
	other, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{alice.UserID}})
	if err != nil {
		t.Fatal(err)
	}
	body = wait(done, "invite")
	// alice is not in the room yet: of its creation she sees her invite only.
	if c := objects(t, body, "chunk"); len(c) != 1 || c[0]["room_id"] != string(other.RoomID) ||
		c[0]["type"] != "m.room.member" || c[0]["state_key"] != string(alice.UserID) {
		t.Fatalf("invite stream %v", c)
	}
	from = str(t, body, "end")
	if _, err := alice.JoinRoomByID(ctx, other.RoomID); err != nil {
		t.Fatal(err)
	}

	// Continuity: messages in two rooms while alice streams with
	// long-polls; every message arrives exactly once, in order.
	const concurrent = 30
	var sent []string
	for i := range concurrent {
		sent = append(sent, fmt.Sprintf("c%03d", i))
	}
	senderDone := make(chan error, 1)
	go func() {
		for i, msg := range sent {
			target := room.RoomID
			if i%3 == 0 {
				target = other.RoomID
			}
			if _, err := bob.SendText(ctx, target, msg); err != nil {
				senderDone <- err
				return
			}
		}
		senderDone <- nil
	}()
	var streamed []string
	finished := false
	for rounds := 0; ; rounds++ {
		if rounds > 10*concurrent {
			t.Fatalf("stream did not converge: %d of %d", len(streamed), len(sent))
		}
		timeout := 5000
		if !finished {
			select {
			case err := <-senderDone:
				if err != nil {
					t.Fatal(err)
				}
				finished = true
			default:
			}
		}
		if finished {
			timeout = 0 // everything is sent: drain
		}
		body := getOK(t, srv, fmt.Sprintf("%s/events?timeout=%d&from=%s", clientV3, timeout, url.QueryEscape(from)), alice.AccessToken)
		chunk := objects(t, body, "chunk")
		streamed = append(streamed, messageBodies(chunk)...)
		from = str(t, body, "end")
		if finished && len(chunk) == 0 {
			break
		}
	}
	if !slices.Equal(streamed, sent) {
		t.Fatalf("streamed %d messages %v, want %d %v", len(streamed), streamed, len(sent), sent)
	}

	// More than one answer holds: 100 events, then the rest, then nothing.
	var backlog []string
	for i := range 105 {
		backlog = append(backlog, fmt.Sprintf("b%03d", i))
	}
	sendTexts(t, bob, room.RoomID, backlog...)
	var got []string
	for _, want := range []int{100, 5, 0} {
		body := getOK(t, srv, clientV3+"/events?timeout=0&from="+url.QueryEscape(from), alice.AccessToken)
		chunk := objects(t, body, "chunk")
		if len(chunk) != want {
			t.Fatalf("answer of %d events, want %d", len(chunk), want)
		}
		got = append(got, messageBodies(chunk)...)
		from = str(t, body, "end")
	}
	if !slices.Equal(got, backlog) {
		t.Fatalf("backlog streamed as %v", got)
	}

	// Input errors.
	for _, tc := range []struct {
		name, query string
		status      int
		code        string
	}{
		{"garbage from", "from=garbage", 400, "M_INVALID_PARAM"},
		{"negative timeout", "timeout=-5", 400, "M_INVALID_PARAM"},
		{"bad timeout", "timeout=soon", 400, "M_INVALID_PARAM"},
	} {
		code, resp := srv.Do(t, "GET", clientV3+"/events?"+tc.query, alice.AccessToken, nil)
		wantStatus(t, tc.name, code, resp, tc.status, tc.code)
	}
	code, resp := srv.Do(t, "GET", clientV3+"/events?timeout=0", "", nil)
	wantStatus(t, "no token", code, resp, 401, "M_MISSING_TOKEN")
	// Without from, the stream starts now: nothing old.
	if now := getOK(t, srv, clientV3+"/events?timeout=0", alice.AccessToken); len(objects(t, now, "chunk")) != 0 || str(t, now, "end") == "" {
		t.Fatalf("stream from now: %v", now)
	}
	// /events/{eventId} still answers beside /events.
	if code, _ := srv.Do(t, "GET", clientV3+"/events/$nothing", alice.AccessToken, nil); code != 404 {
		t.Fatalf("/events/{eventId}: %d", code)
	}
}
