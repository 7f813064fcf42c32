package e2efed

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// A server newly sharing a room with a local user is sent her latest
// device update, though her devices did not change since: the spec
// ("Device Management") has m.device_list_update EDUs sent "when that user
// joins a room which contains servers which are not already receiving
// updates for that user's device list". D, whose dave joins alice's room,
// and E, whose room alice joins, each get it.
func TestOutboundDeviceListsToNewServers(t *testing.T) {
	a := start(t)
	ctx := t.Context()
	alice := register(t, a, "alice")
	pub := uploadDeviceKeys(t, a, alice)
	wantUpdate := func(f *fakeServer, what string) {
		t.Helper()
		f.inbox.waitFor(t, what, func(acc []receivedTxn, _ []string) bool {
			return anyEDU(acc, "m.device_list_update", func(e gjson.Result) bool {
				return e.Get("user_id").Str == string(alice.UserID) && e.Get("device_id").Str == string(alice.DeviceID) &&
					e.Get("stream_id").Int() > 0 && e.Get("keys.keys."+gjsonKey("ed25519:"+string(alice.DeviceID))).Str == pub
			})
		})
	}

	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	d := newFakeServer(t)
	r := d.join(t, a, created.RoomID, id.NewUserID("dave", d.name))
	waitForEvent(t, alice, created.RoomID, r.last)
	wantUpdate(d, "alice's device list at D after dave joined her room")

	e := newFakeServer(t)
	h := e.host(t)
	hosted := h.createRoom(id.RoomV11, id.NewUserID("erin", e.name), "public", "shared")
	if _, err := alice.JoinRoomByID(ctx, hosted.roomID); err != nil {
		t.Fatal(err)
	}
	wantUpdate(e, "alice's device list at E after alice joined its room")
}

// C sends an update of carol's, who shares a room with alice, and A has no
// copy of her list: A fetches it at once (/user/devices, whose stream_id
// the next updates follow) and answers alice's key queries from it; the
// next update applies to the copy without asking C.
func TestDeviceListUpdateStartsCopy(t *testing.T) {
	a := start(t)
	alice, c, _, carol := setupRoom(t, a)
	d := &remoteDevices{user: carol}
	d.set(4, "C1")
	serve := d.serve
	c.extra.Store(&serve)

	c.sendEDUs(t, a, deviceListUpdate(carol, "C1", 4, []int64{3}, false))
	deadline := time.Now().Add(30 * time.Second)
	for {
		before, _ := d.asked()
		got, _ := queryDevices(t, a, alice, carol)
		if after, _ := d.asked(); slices.Equal(got, []string{"C1"}) && after == before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("carol's devices %v, not answered from A's copy", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	keysAsked, devicesAsked := d.asked()
	if devicesAsked != 1 {
		t.Fatalf("A asked C for carol's device list %d times, want 1 (on her update)", devicesAsked)
	}

	d.set(5, "C1", "C2")
	c.sendEDUs(t, a, deviceListUpdate(carol, "C2", 5, []int64{4}, false))
	if got, res := queryDevices(t, a, alice, carol); !slices.Equal(got, []string{"C1", "C2"}) {
		t.Fatalf("after carol's next update: %v (%s)", got, res.Raw)
	}
	if k, dv := d.asked(); k != keysAsked || dv != 1 {
		t.Fatalf("the next update: C asked %d key queries and %d device lists, want %d and 1", k, dv, keysAsked)
	}
}

// bob of B joins alice's room on A; alice then logs in on a second device.
// The new device reaches B through A's m.device_list_update (bob's sync
// says alice's devices changed) and B answers bob's key queries from its
// copy of alice's list, which it fetched with /user/devices when A's
// updates began: B never asks A's /user/keys/query.
func TestTwoServersDeviceListAfterJoin(t *testing.T) {
	a, b := start(t), start(t)
	ctx := t.Context()
	alice := register(t, a, "alice")
	uploadDeviceKeys(t, a, alice)
	bob := register(t, b, "bob")
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoom(ctx, created.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{a.Opts.ServerName}}); err != nil {
		t.Fatal(err)
	}
	since := syncToken(t, bob)
	second := login(t, a, "alice")
	uploadDeviceKeys(t, a, second)
	waitForSyncFrom(t, bob, since, "alice's devices changed", func(resp *mautrix.RespSync) bool {
		return slices.Contains(resp.DeviceLists.Changed, alice.UserID)
	})
	want := []string{string(alice.DeviceID), string(second.DeviceID)}
	slices.Sort(want)
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, res := queryDevices(t, b, bob, alice.UserID)
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B's answer for alice's devices: %s", res.Raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	routes := func(route string) int {
		return strings.Count(a.Logs(), `"route":"`+route)
	}
	// (A logs a request once it has answered it.)
	for routes("/_matrix/federation/v1/user/devices/") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("B never fetched alice's list with /user/devices")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := routes("/_matrix/federation/v1/user/keys/query"); n != 0 {
		t.Fatalf("B asked A's /user/keys/query %d times; its copy of alice's list should answer", n)
	}
}
