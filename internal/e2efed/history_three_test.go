package e2efed

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// bridgeRegistration writes an appservice registration for a bridge whose
// ghosts are @_bridge_*, and returns its path.
func bridgeRegistration(t *testing.T) string {
	t.Helper()
	reg := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(reg, []byte(`id: bridge
url: null
as_token: bridge-as-token
hs_token: bridge-hs-token
sender_localpart: bridgebot
rate_limited: false
namespaces:
  users:
    - regex: '@_bridge_.*'
      exclusive: true
  aliases: []
  rooms: []
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return reg
}

// Two real servers and history: alice's room on A has 30 messages, and a
// bridge on A inserted older history backward into it (batch send with
// forward false); then bob of B joins. Paging back, bob gets the 30
// messages from A (backfill) down to the room's creation, and never the
// history inserted backward; alice sees it.
func TestTwoServersBackfillWithoutBackwardHistory(t *testing.T) {
	a, b := start(t, "--appservice", bridgeRegistration(t)), start(t)
	ctx := t.Context()
	alice, bob := register(t, a, "alice"), register(t, b, "bob")
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "History"})
	if err != nil {
		t.Fatal(err)
	}
	room := created.RoomID
	ghost := id.NewUserID("_bridge_ghost", a.Opts.ServerName)
	if code, body := a.Do(t, http.MethodPost, "/_matrix/client/v3/register", "bridge-as-token", map[string]any{
		"type": "m.login.application_service", "username": ghost.Localpart(), "inhibit_login": true}); code != http.StatusOK {
		t.Fatalf("register the ghost: %d %v", code, body)
	}
	if code, body := a.Do(t, http.MethodPost, "/_matrix/client/v3/rooms/"+url.PathEscape(room.String())+"/join?user_id="+
		url.QueryEscape(ghost.String()), "bridge-as-token", map[string]any{}); code != http.StatusOK {
		t.Fatalf("ghost joins: %d %v", code, body)
	}
	var want []string
	for i := range 30 {
		body := fmt.Sprintf("old %d", i)
		want = append(want, body)
		if _, err := alice.SendText(ctx, room, body); err != nil {
			t.Fatal(err)
		}
	}
	code, body := a.Do(t, http.MethodPost, "/_matrix/client/unstable/com.beeper.backfill/rooms/"+url.PathEscape(room.String())+
		"/batch_send", "bridge-as-token", map[string]any{"forward": false, "events": []any{
		map[string]any{"type": "m.room.message", "sender": ghost, "origin_server_ts": 1000,
			"content": map[string]any{"msgtype": "m.text", "body": "bridged history 1"}},
		map[string]any{"type": "m.room.message", "sender": ghost, "origin_server_ts": 2000,
			"content": map[string]any{"msgtype": "m.text", "body": "bridged history 2"}},
	}})
	if ids, _ := body["event_ids"].([]any); code != http.StatusOK || len(ids) != 2 {
		t.Fatalf("backward batch: %d %v", code, body)
	}
	if got, _ := history(t, alice, room); !slices.Contains(got, "bridged history 1") {
		t.Fatalf("alice does not see the bridged history: %q", got)
	}

	if _, err := bob.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{a.Opts.ServerName}}); err != nil {
		t.Fatal(err)
	}
	joinedState(t, bob, room)
	got, create := history(t, bob, room)
	if !slices.Equal(got, want) || !create {
		t.Fatalf("bob pages through %q (create event: %v), want %q", got, create, want)
	}
	// Live messages go on both ways after the backfill.
	if _, err := bob.SendText(ctx, room, "bob after the backfill"); err != nil {
		t.Fatal(err)
	}
	waitBodies(t, alice, room, "", "bob after the backfill")
}

// pngImage is a w×h PNG.
func pngImage(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := range w {
		for y := range h {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 200, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bob of B sets a display name and an avatar uploaded to B and joins
// alice's room on A: alice sees his name and avatar in the room and in his
// profile (asked of B), and gets the avatar and a thumbnail of it through
// A. alice's restricted room, open to members of her space, admits bob once
// he is in the space (A, where alice can invite, authorises the join) and
// not erin, who is not.
func TestTwoServersProfilesMediaRestricted(t *testing.T) {
	a, b := start(t), start(t)
	ctx := t.Context()
	alice, bob, erin := register(t, a, "alice"), register(t, b, "bob"), register(t, b, "erin")
	avatar := pngImage(t, 200, 160)
	up, err := bob.UploadBytesWithName(ctx, avatar, "image/png", "bob.png")
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.SetDisplayName(ctx, "Bob of B"); err != nil {
		t.Fatal(err)
	}
	if err := bob.SetAvatarURL(ctx, up.ContentURI); err != nil {
		t.Fatal(err)
	}
	space, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Space",
		CreationContent: map[string]any{"type": "m.space"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoom(ctx, space.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{a.Opts.ServerName}}); err != nil {
		t.Fatalf("bob joins the space: %v", err)
	}
	st, _ := joinedState(t, alice, space.RoomID)
	_ = st
	waitForSync(t, alice, "bob in the space", func(*mautrix.RespSync) bool {
		var m event.MemberEventContent
		return alice.StateEvent(ctx, space.RoomID, event.StateMember, bob.UserID.String(), &m) == nil &&
			m.Membership == event.MembershipJoin
	})
	var member event.MemberEventContent
	if err := alice.StateEvent(ctx, space.RoomID, event.StateMember, bob.UserID.String(), &member); err != nil ||
		member.Displayname != "Bob of B" || member.AvatarURL != up.ContentURI.CUString() {
		t.Fatalf("bob's membership as alice sees it: %+v, %v", member, err)
	}
	prof, err := alice.GetProfile(ctx, bob.UserID)
	if err != nil || prof.DisplayName != "Bob of B" || prof.AvatarURL != up.ContentURI {
		t.Fatalf("bob's profile from A: %+v, %v", prof, err)
	}
	got, err := alice.DownloadBytes(ctx, prof.AvatarURL)
	if err != nil || !bytes.Equal(got, avatar) {
		t.Fatalf("bob's avatar through A: %d bytes, %v", len(got), err)
	}
	code, thumb := a.DoRaw(t, http.MethodGet, "/_matrix/client/v1/media/thumbnail/"+b.Opts.ServerName+"/"+
		up.ContentURI.FileID+"?width=32&height=32&method=scale", alice.AccessToken, nil)
	if code != http.StatusOK {
		t.Fatalf("thumbnail of bob's avatar through A: %d %s", code, thumb)
	}
	if cfg, format, err := image.DecodeConfig(bytes.NewReader(thumb)); err != nil || cfg.Width > 64 || cfg.Height > 64 {
		t.Fatalf("thumbnail of bob's avatar: %s %dx%d, %v", format, cfg.Width, cfg.Height, err)
	}

	restricted, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Members only",
		InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Raw: map[string]any{
			"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": space.RoomID}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoom(ctx, restricted.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{a.Opts.ServerName}}); err != nil {
		t.Fatalf("bob joins the restricted room: %v", err)
	}
	st, _ = joinedState(t, bob, restricted.RoomID)
	join := st[[2]string{"m.room.member", bob.UserID.String()}]
	if join == nil || gjson.GetBytes(join.Content.VeryRaw, "join_authorised_via_users_server").Str != alice.UserID.String() {
		t.Fatalf("bob's join of the restricted room: %v", join)
	}
	waitBodies(t, bob, restricted.RoomID, "") // nothing yet: just the room synced
	if _, err := alice.SendText(ctx, restricted.RoomID, "welcome, member"); err != nil {
		t.Fatal(err)
	}
	waitBodies(t, bob, restricted.RoomID, "", "welcome, member")
	_, err = erin.JoinRoom(ctx, restricted.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{a.Opts.ServerName}})
	if err == nil || !strings.Contains(err.Error(), "M_FORBIDDEN") {
		t.Fatalf("erin, not in the space, joins the restricted room: %v", err)
	}
}
