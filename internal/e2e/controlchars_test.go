package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// controlCodePoints are the code points canonical JSON must carry: every
// C0 and C1 control, DEL, the line and paragraph separators and astral
// characters. U+000B (which office programs put into pasted text), U+000E,
// U+000F and U+001A–U+001F used to give 500 "canonical JSON mismatch".
func controlCodePoints() []rune {
	var rs []rune
	for r := rune(0); r <= 0x1F; r++ {
		rs = append(rs, r)
	}
	for r := rune(0x7F); r <= 0x9F; r++ {
		rs = append(rs, r)
	}
	return append(rs, 0x2028, 0x2029, 0x1F600, 0x10FFFF)
}

func TestControlCharactersInEvents(t *testing.T) { controlCharacters(t, startOpen(t)) }

// On PostgreSQL too: a display name holding U+0000 is stored (as JSON) and
// goes into member events.
func TestControlCharactersInEventsPostgres(t *testing.T) {
	controlCharacters(t, testserver.Start(t, testserver.Options{Args: append([]string{"--database-url", pgtest.URL(t)}, openArgs...)}))
}

func controlCharacters(t *testing.T, srv *testserver.Server) {
	ctx := t.Context()
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	bobSince := syncOnce(t, bob, "", 0).NextBatch
	var all strings.Builder
	for _, r := range controlCodePoints() {
		all.WriteRune(r)
	}

	t.Run("send, state and to-device", func(t *testing.T) {
		for _, r := range controlCodePoints() {
			text := "a" + string(r) + "b"
			if _, err := alice.SendMessageEvent(ctx, room.RoomID, event.EventMessage,
				map[string]any{"msgtype": "m.text", "body": text, "k" + text: text}); err != nil {
				t.Fatalf("message with U+%04X: %v", r, err)
			}
			if _, err := alice.SendStateEvent(ctx, room.RoomID, event.NewEventType("com.example.state"), fmt.Sprintf("%x", r),
				map[string]any{"v": text}); err != nil {
				t.Fatalf("state event with U+%04X: %v", r, err)
			}
			if _, err := alice.SendToDevice(ctx, event.NewEventType("com.example.cc"), &mautrix.ReqSendToDevice{
				Messages: map[id.UserID]map[id.DeviceID]*event.Content{bob.UserID: {"*": {Raw: map[string]any{"v": text}}}},
			}); err != nil {
				t.Fatalf("to-device with U+%04X: %v", r, err)
			}
		}
		// Bob gets every one of them as sent.
		page, err := bob.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 1000)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, ev := range page.Chunk {
			if ev.Type == event.EventMessage {
				got[ev.Content.Raw["body"].(string)] = ev.Content.Raw["k"+ev.Content.Raw["body"].(string)] != nil
			}
		}
		for _, r := range controlCodePoints() {
			if !got["a"+string(r)+"b"] {
				t.Fatalf("bob has no message with U+%04X (in body and key)", r)
			}
			var state map[string]any
			if err := bob.StateEvent(ctx, room.RoomID, event.NewEventType("com.example.state"), fmt.Sprintf("%x", r), &state); err != nil || state["v"] != "a"+string(r)+"b" {
				t.Fatalf("state with U+%04X: %v %v", r, state, err)
			}
		}
		sync := syncOnce(t, bob, bobSince, 0)
		toDevice := map[string]bool{}
		for _, ev := range sync.ToDevice.Events {
			toDevice[fmt.Sprint(ev.Content.Raw["v"])] = true
		}
		for _, r := range controlCodePoints() {
			if !toDevice["a"+string(r)+"b"] {
				t.Fatalf("bob's device did not get the to-device message with U+%04X", r)
			}
		}
	})

	t.Run("display names", func(t *testing.T) {
		// One user with every code point in their name, one with only the
		// vertical tab of pasted text: both can create, join, be invited.
		for local, name := range map[string]string{"carol": all.String(), "dave": "Dave\vSmith"} {
			u := register(t, srv, local, defaultPassword)
			if err := u.SetDisplayName(ctx, name); err != nil {
				t.Fatalf("%s: set display name: %v", local, err)
			}
			if got, err := alice.GetDisplayName(ctx, u.UserID); err != nil || got.DisplayName != name {
				t.Fatalf("%s: display name %+v, %v", local, got, err)
			}
			if _, err := u.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: name, Topic: name}); err != nil {
				t.Fatalf("%s: create a room: %v", local, err)
			}
			if _, err := u.JoinRoomByID(ctx, room.RoomID); err != nil {
				t.Fatalf("%s: join: %v", local, err)
			}
			var member event.MemberEventContent
			if err := bob.StateEvent(ctx, room.RoomID, event.StateMember, string(u.UserID), &member); err != nil ||
				member.Displayname != name {
				t.Fatalf("%s: member event %+v, %v", local, member, err)
			}
			other, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := alice.InviteUser(ctx, other.RoomID, &mautrix.ReqInviteUser{UserID: u.UserID, Reason: name}); err != nil {
				t.Fatalf("%s: invite: %v", local, err)
			}
			if _, err := u.JoinRoomByID(ctx, other.RoomID); err != nil {
				t.Fatalf("%s: join after invite: %v", local, err)
			}
			// Renaming again, with the user in three rooms, updates them all.
			if err := u.SetDisplayName(ctx, name+"!"); err != nil {
				t.Fatalf("%s: rename: %v", local, err)
			}
		}
	})

	t.Run("raw escapes", func(t *testing.T) {
		// Escapes a client may write, upper and lower case, come back as
		// the characters they stand for.
		path := "/_matrix/client/v3/rooms/" + url.PathEscape(string(room.RoomID)) + "/send/m.room.message/raw"
		st, body := srv.Do(t, "PUT", path, alice.AccessToken,
			`{"msgtype":"m.text","body":"\u000B\u000e\u001F\u001a\/\ud83d\ude00"}`)
		wantStatus(t, "raw escapes", st, body, http.StatusOK, "")
		ev, err := bob.GetEvent(ctx, room.RoomID, id.EventID(str(t, body, "event_id")))
		if err != nil || ev.Content.Raw["body"] != "\v\x0e\x1f\x1a/😀" {
			t.Fatalf("event %+v, %v", ev, err)
		}
	})
}
