package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// put sends a JSON PUT from any goroutine (srv.Do may only be used from
// the test's own) and returns the status and errcode.
func put(srv *testserver.Server, token, path string, body any) (int, string, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return 0, "", err
	}
	req, err := http.NewRequest(http.MethodPut, srv.URL+path, bytes.NewReader(raw))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var out struct {
		Errcode string `json:"errcode"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.Errcode, nil
}

// An event the database cannot store (a NUL in its type, which PostgreSQL
// refuses) is refused with a 400 and never fails the honest sends of the
// room batched with it: on PostgreSQL 70% of them failed during the attack.
func TestPoisonedSendsFailAlone(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			args := openArgs
			if db == "postgres" {
				args = append([]string{"--database-url", pgtest.URL(t)}, openArgs...)
			}
			srv := testserver.Start(t, testserver.Options{Args: args})
			alice := register(t, srv, "alice", defaultPassword)
			mallory := register(t, srv, "mallory", defaultPassword)
			room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := mallory.JoinRoomByID(t.Context(), room.RoomID); err != nil {
				t.Fatal(err)
			}
			base := "/_matrix/client/v3/rooms/" + url.PathEscape(room.RoomID.String())
			const senders, each = 16, 20
			var wg sync.WaitGroup
			errs := make(chan string, senders*each+200)
			stop := make(chan struct{})
			attacks := 0
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					attacks++
					for _, path := range []string{"/send/a%00b/poison", "/state/a%00b/k", "/state/m.room.name/a%00b"} {
						code, errcode, err := put(srv, mallory.AccessToken, fmt.Sprintf("%s%s%d", base, path, i),
							map[string]any{"msgtype": "m.text", "body": "poison"})
						if err != nil || code != 400 || errcode != "M_INVALID_PARAM" {
							errs <- fmt.Sprintf("poisoned %s: HTTP %d %s %v", path, code, errcode, err)
						}
					}
				}
			})
			var honest sync.WaitGroup
			for s := range senders {
				honest.Go(func() {
					for i := range each {
						code, errcode, err := put(srv, alice.AccessToken, fmt.Sprintf("%s/send/m.room.message/h%d-%d", base, s, i),
							map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("honest %d %d", s, i)})
						if err != nil || code != 200 {
							errs <- fmt.Sprintf("honest send %d/%d: HTTP %d %s %v", s, i, code, errcode, err)
						}
					}
				})
			}
			honest.Wait()
			close(stop)
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
			if attacks == 0 {
				t.Fatal("the attacker never sent")
			}
			msgs, err := alice.Messages(t.Context(), room.RoomID, "", "", mautrix.DirectionBackward, nil, 1000)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, ev := range msgs.Chunk {
				if ev.Type == event.EventMessage {
					n++
				}
			}
			if n != senders*each {
				t.Fatalf("%d honest messages stored, want %d", n, senders*each)
			}
		})
	}
}

// User IDs that break the grammar are refused wherever a client names
// one: invites, createRoom's invite list, kicks and bans. None ends up as
// room state.
func TestMalformedUserIDsRefused(t *testing.T) {
	// Without federation, an invite of a remote user is stored here
	// alone: this test is about the grammar, not about reaching
	// example.org (with federation, its server must sign the invite).
	srv := startOpen(t, "--no-federation")
	alice := register(t, srv, "alice", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	bad := []string{
		"@nul\x00:localhost", "@new\nline:localhost", "@rtl\u202e:localhost", "@zero\u200bwidth:localhost",
		"@ｆｕｌｌ:localhost", "@emoji😀:localhost", "@sp ace:localhost", "@" + strings.Repeat("x", 250) + ":localhost",
		"@@x:localhost", "@UPPER:localhost", "@:localhost", "@x", "x:localhost", "@x:bad_server", "@x:-bad..server:99999",
		"@x:localhost:0", "@x:[::1", "@remote\u00e9:example.org",
	}
	for _, u := range bad {
		base := "/_matrix/client/v3/rooms/" + url.PathEscape(room.RoomID.String())
		for _, op := range []string{"invite", "kick", "ban"} {
			code, body := srv.Do(t, "POST", base+"/"+op, alice.AccessToken, map[string]any{"user_id": u})
			if code != 400 || body["errcode"] != "M_INVALID_PARAM" {
				t.Errorf("%s %q: HTTP %d %v", op, u, code, body)
			}
		}
		code, body := srv.Do(t, "POST", "/_matrix/client/v3/createRoom", alice.AccessToken, map[string]any{"invite": []string{u}})
		if code != 400 || body["errcode"] != "M_INVALID_PARAM" {
			t.Errorf("createRoom inviting %q: HTTP %d %v", u, code, body)
		}
	}
	// Valid IDs still work: a local user and a remote one with a
	// historical (but compliant) localpart.
	for _, u := range []id.UserID{"@bob:localhost", "@Old.Style_User:example.org"} {
		if _, err := alice.InviteUser(t.Context(), room.RoomID, &mautrix.ReqInviteUser{UserID: u}); err != nil {
			t.Errorf("inviting %s: %v", u, err)
		}
	}
	members, err := alice.Members(t.Context(), room.RoomID)
	if err != nil {
		t.Fatal(err)
	}
	if len(members.Chunk) != 3 {
		var keys []string
		for _, m := range members.Chunk {
			keys = append(keys, *m.StateKey)
		}
		t.Fatalf("members %q, want alice and the two valid invites", keys)
	}
	// Path parameters follow the same grammar.
	for _, path := range []string{
		"/_matrix/client/v3/profile/" + url.PathEscape("@bad\x00:localhost"),
		"/_matrix/client/v3/profile/" + url.PathEscape("@x:bad_server"),
		"/_matrix/client/v3/rooms/" + url.PathEscape("!room\n:localhost") + "/state",
		"/_matrix/client/v3/rooms/" + url.PathEscape(room.RoomID.String()) + "/state/" + url.PathEscape("a\x0bb"),
		"/_matrix/client/v3/directory/room/" + url.PathEscape("#no_server"),
	} {
		code, body := srv.Do(t, "GET", path, alice.AccessToken, nil)
		if code != 400 || body["errcode"] != "M_INVALID_PARAM" {
			t.Errorf("GET %s: HTTP %d %v", path, code, body)
		}
	}
}

// The count of a search is only of what the searcher may see: a later
// joiner of a room with "joined" history visibility learns nothing of what
// was said before they joined, from the count or the groups.
func TestSearchCountHidesHistory(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat",
		InitialState: []*event.Event{{Type: event.StateHistoryVisibility,
			Content: event.Content{Parsed: &event.HistoryVisibilityEventContent{HistoryVisibility: event.HistoryVisibilityJoined}}}}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := alice.SendText(t.Context(), room.RoomID, "the zeppelin plan"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bob.JoinRoomByID(t.Context(), room.RoomID); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(t.Context(), room.RoomID, "zeppelin again"); err != nil {
		t.Fatal(err)
	}
	for _, groupBy := range []string{"", "room_id", "sender"} {
		criteria := map[string]any{"search_term": "zeppelin"}
		if groupBy != "" {
			criteria["groupings"] = map[string]any{"group_by": []map[string]any{{"key": groupBy}}}
		}
		code, body := srv.Do(t, "POST", "/_matrix/client/v3/search", bob.AccessToken,
			map[string]any{"search_categories": map[string]any{"room_events": criteria}})
		if code != 200 {
			t.Fatalf("search: HTTP %d %v", code, body)
		}
		events := body["search_categories"].(map[string]any)["room_events"].(map[string]any)
		if count := events["count"]; count != float64(1) {
			t.Errorf("grouped by %q: count %v, want 1 (the message after bob joined)", groupBy, count)
		}
		if results := events["results"].([]any); len(results) != 1 {
			t.Errorf("grouped by %q: %d results, want 1", groupBy, len(results))
		}
		if groupBy != "" {
			for key, g := range events["groups"].(map[string]any)[groupBy].(map[string]any) {
				if nb := g.(map[string]any)["next_batch"]; nb != nil {
					t.Errorf("group %s has a next_batch (%v) for history bob may not see", key, nb)
				}
			}
		}
	}
}
