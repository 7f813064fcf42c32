package e2efed

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// remoteDevices is C's side of one of its users' device lists: what C
// answers to /user/keys/query and /user/devices, and how often A asked.
type remoteDevices struct {
	mu           sync.Mutex
	user         id.UserID
	streamID     int64
	devices      map[id.DeviceID]map[string]any
	keysAsked    int
	devicesAsked int
}

func deviceKeysOf(user id.UserID, dev id.DeviceID) map[string]any {
	return map[string]any{"user_id": user, "device_id": dev, "algorithms": []string{"m.olm.v1.curve25519-aes-sha2"},
		"keys": map[string]any{"curve25519:" + string(dev): "curve-" + string(dev), "ed25519:" + string(dev): "ed-" + string(dev)}}
}

func (d *remoteDevices) set(streamID int64, devs ...id.DeviceID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.streamID = streamID
	d.devices = map[id.DeviceID]map[string]any{}
	for _, dev := range devs {
		d.devices[dev] = deviceKeysOf(d.user, dev)
	}
}

func (d *remoteDevices) asked() (keys, devices int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.keysAsked, d.devicesAsked
}

func (d *remoteDevices) serve(w http.ResponseWriter, r *http.Request) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case r.URL.Path == "/_matrix/federation/v1/user/keys/query":
		d.keysAsked++
		writeJSON(w, http.StatusOK, map[string]any{"device_keys": map[id.UserID]any{d.user: d.devices}})
	case r.URL.Path == "/_matrix/federation/v1/user/devices/"+string(d.user):
		d.devicesAsked++
		var devs []map[string]any
		for dev, k := range d.devices {
			devs = append(devs, map[string]any{"device_id": dev, "keys": k})
		}
		writeJSON(w, http.StatusOK, map[string]any{"user_id": d.user, "stream_id": d.streamID, "devices": devs})
	default:
		return false
	}
	return true
}

// queryDevices is alice's /keys/query for user: the device IDs and the
// whole answer.
func queryDevices(t *testing.T, a *testserver.Server, cli *mautrix.Client, user id.UserID) ([]string, gjson.Result) {
	t.Helper()
	code, body := a.DoRaw(t, http.MethodPost, "/_matrix/client/v3/keys/query", cli.AccessToken,
		map[string]any{"device_keys": map[id.UserID][]string{user: {}}})
	if code != http.StatusOK {
		t.Fatalf("keys/query: %d %s", code, body)
	}
	res := gjson.ParseBytes(body)
	var devs []string
	res.Get("device_keys." + gjsonKey(string(user))).ForEach(func(k, _ gjson.Result) bool {
		devs = append(devs, k.Str)
		return true
	})
	slices.Sort(devs)
	return devs, res
}

func deviceListUpdate(user id.UserID, dev id.DeviceID, streamID int64, prev []int64, deleted bool) map[string]any {
	c := map[string]any{"user_id": user, "device_id": dev, "stream_id": streamID, "prev_id": prev}
	if deleted {
		c["deleted"] = true
	} else {
		c["keys"] = deviceKeysOf(user, dev)
	}
	return map[string]any{"edu_type": "m.device_list_update", "content": c}
}

// TestInboundEDUs: C's EDUs reach A (presence, to-device messages, device
// list and cross-signing key updates), each about C's own users only; bad
// EDUs are dropped without failing their transaction. A keeps a copy of
// carol's device list: its first /keys/query asks C, the next are answered
// from the copy, which C's updates keep current; an update A cannot place
// (an unknown prev_id) makes A fetch the list again with /user/devices;
// once carol leaves the only room she shared with alice, alice's sync says
// so and the copy is no longer used. Sliding sync's e2ee extension reports
// carol's changes as /sync does. alice may sign carol's master key with
// her user-signing key, and sees her signature in /keys/query.
func TestInboundEDUs(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { inboundEDUs(t, start(t)) })
	t.Run("postgres", func(t *testing.T) { inboundEDUs(t, start(t, "--database-url", pgtest.URL(t))) })
}

func inboundEDUs(t *testing.T, a *testserver.Server) {
	alice, c, r, carol := setupRoom(t, a)
	d := &remoteDevices{user: carol}
	d.set(4, "C1")
	serve := d.serve
	c.extra.Store(&serve)
	dave := id.UserID("@dave:elsewhere.example")

	wantDevices := func(what string, want ...string) gjson.Result {
		t.Helper()
		got, res := queryDevices(t, a, alice, carol)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: carol's devices %v, want %v (%s)", what, got, want, res.Raw)
		}
		return res
	}
	wantAsked := func(what string, keys, devices int) {
		t.Helper()
		if k, dv := d.asked(); k != keys || dv != devices {
			t.Fatalf("%s: C was asked %d key queries and %d device lists, want %d and %d", what, k, dv, keys, devices)
		}
	}
	// eventually polls A until carol's devices are want and a query no
	// longer asks C (the copy is current again after a resync).
	eventually := func(what string, want ...string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			before, _ := d.asked()
			got, _ := queryDevices(t, a, alice, carol)
			if after, _ := d.asked(); slices.Equal(got, want) && after == before {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: carol's devices %v, want %v answered from A's copy", what, got, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// The first query asks C; the second is answered from A's copy.
	wantDevices("first query", "C1")
	wantAsked("first query", 1, 0)
	wantDevices("second query", "C1")
	wantAsked("second query", 1, 0)

	// A copy from /user/keys/query has no stream ID: the first update
	// cannot be placed, so A fetches the list with /user/devices, and
	// alice's sync says carol's devices changed.
	since := syncToken(t, alice)
	d.set(5, "C1", "C2")
	c.sendEDUs(t, a, deviceListUpdate(carol, "C2", 5, []int64{4}, false))
	waitForSyncFrom(t, alice, since, "carol's new device", func(resp *mautrix.RespSync) bool {
		return slices.Contains(resp.DeviceLists.Changed, carol)
	})
	eventually("after the resync", "C1", "C2")
	keysAsked, devicesAsked := d.asked()
	if devicesAsked != 1 {
		t.Fatalf("A asked C for carol's device list %d times, want 1", devicesAsked)
	}

	// Updates that follow are applied to the copy: C is not asked (and
	// would not know C3). Sliding sync's e2ee extension says carol's
	// devices changed.
	const slidingPath = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"
	sliding := map[string]any{"conn_id": "keys", "extensions": map[string]any{"e2ee": map[string]any{"enabled": true}}}
	code, first := a.DoRaw(t, http.MethodPost, slidingPath, alice.AccessToken, sliding)
	if code != http.StatusOK {
		t.Fatalf("sliding sync: %d %s", code, first)
	}
	c.sendEDUs(t, a, deviceListUpdate(carol, "C3", 6, []int64{5}, false))
	code, next := a.DoRaw(t, http.MethodPost, slidingPath+"?timeout=10000&pos="+gjson.GetBytes(first, "pos").Str,
		alice.AccessToken, sliding)
	if changed := gjson.GetBytes(next, "extensions.e2ee.device_lists.changed").Array(); code != http.StatusOK ||
		!slices.ContainsFunc(changed, func(u gjson.Result) bool { return u.Str == string(carol) }) {
		t.Fatalf("sliding sync after carol's update: %d %s", code, next)
	}
	wantDevices("a new device", "C1", "C2", "C3")
	c.sendEDUs(t, a, deviceListUpdate(carol, "C2", 7, []int64{6}, true))
	wantDevices("a deleted device", "C1", "C3")
	// A retried old update changes nothing.
	c.sendEDUs(t, a, deviceListUpdate(carol, "C2", 5, []int64{4}, false))
	wantDevices("an old update again", "C1", "C3")
	masterKey := map[string]any{"user_id": carol, "usage": []string{"master"}, "keys": map[string]any{"ed25519:M": "M"}}
	c.sendEDUs(t, a, map[string]any{"edu_type": "m.signing_key_update", "content": map[string]any{"user_id": carol,
		"master_key": masterKey}})
	res := wantDevices("cross-signing keys", "C1", "C3")
	if got := res.Get("master_keys." + gjsonKey(string(carol)) + ".keys.ed25519:M").Str; got != "M" {
		t.Fatalf("carol's master key: %s", res.Get("master_keys").Raw)
	}
	wantAsked("updates applied", keysAsked, 1)

	// alice signs carol's master key with her user-signing key (she
	// verified carol): A checks it against carol's key and shows the
	// signature to alice only.
	masterPub, masterPriv := newKey(t)
	uskPub, uskPriv := newKey(t)
	aliceMaster := map[string]any{"user_id": alice.UserID, "usage": []string{"master"},
		"keys": map[string]any{"ed25519:" + masterPub: masterPub}}
	aliceUSK := signJSON(t, map[string]any{"user_id": alice.UserID, "usage": []string{"user_signing"},
		"keys": map[string]any{"ed25519:" + uskPub: uskPub}}, masterPriv, alice.UserID, "ed25519:"+masterPub)
	if code, body := a.Do(t, http.MethodPost, "/_matrix/client/v3/keys/device_signing/upload", alice.AccessToken,
		map[string]any{"master_key": aliceMaster, "user_signing_key": aliceUSK}); code != http.StatusOK {
		t.Fatalf("device_signing/upload: %d %v", code, body)
	}
	signed := signJSON(t, masterKey, uskPriv, alice.UserID, "ed25519:"+uskPub)
	forged := signJSON(t, map[string]any{"user_id": carol, "usage": []string{"master"}, "keys": map[string]any{"ed25519:N": "N"}},
		uskPriv, alice.UserID, "ed25519:"+uskPub)
	code, up := a.DoRaw(t, http.MethodPost, "/_matrix/client/v3/keys/signatures/upload", alice.AccessToken,
		map[id.UserID]any{carol: map[string]any{"M": signed, "N": forged}})
	if failures := gjson.GetBytes(up, "failures."+gjsonKey(string(carol))); code != http.StatusOK ||
		failures.Get("M").Exists() || !failures.Get("N").Exists() {
		t.Fatalf("signatures/upload of carol's master key: %d %s", code, up)
	}
	res = wantDevices("carol's master key signed", "C1", "C3")
	sigPath := "master_keys." + gjsonKey(string(carol)) + ".signatures." + gjsonKey(string(alice.UserID)) + "." +
		gjsonKey("ed25519:"+uskPub)
	if res.Get(sigPath).Str == "" {
		t.Fatalf("alice does not see her signature of carol's master key: %s", res.Get("master_keys").Raw)
	}
	erin := register(t, a, "erin")
	if _, res := queryDevices(t, a, erin, carol); res.Get(sigPath).Exists() {
		t.Fatalf("erin sees alice's signature of carol's master key: %s", res.Get("master_keys").Raw)
	}
	wantAsked("signatures", keysAsked, 1)

	// Bad EDUs are dropped, the good ones of the same transaction taken.
	since = syncToken(t, alice)
	toDevice := func(sender id.UserID, messageID string, n int) map[string]any {
		return map[string]any{"edu_type": "m.direct_to_device", "content": map[string]any{"sender": sender,
			"type": "org.example.ping", "message_id": messageID, "messages": map[id.UserID]any{
				alice.UserID: map[string]any{"*": map[string]any{"n": n}}, dave: map[string]any{"X": map[string]any{"n": n}}}}}
	}
	c.sendEDUs(t, a,
		map[string]any{"edu_type": "m.device_list_update", "content": "not an object"},
		deviceListUpdate(dave, "D1", 8, []int64{7}, false),
		deviceListUpdate(alice.UserID, "FORGED", 8, []int64{7}, false),
		map[string]any{"edu_type": "m.device_list_update", "content": map[string]any{"user_id": carol, "device_id": "C9",
			"stream_id": 8, "prev_id": []int64{7}, "keys": deviceKeysOf(dave, "C9")}},
		map[string]any{"edu_type": "m.signing_key_update", "content": map[string]any{"user_id": dave, "master_key": masterKey}},
		map[string]any{"edu_type": "m.presence", "content": map[string]any{"push": []any{
			map[string]any{"user_id": dave, "presence": "online", "last_active_ago": 0},
			map[string]any{"user_id": carol, "presence": "busy", "last_active_ago": 0},
			map[string]any{"user_id": carol, "presence": "unavailable", "status_msg": "at lunch", "last_active_ago": 1000},
		}}},
		toDevice(dave, "x1", 0),
		toDevice(carol, "m1", 1),
		map[string]any{"edu_type": "org.example.unknown", "content": map[string]any{}},
	)
	wantDevices("after bad updates", "C1", "C3")
	wantAsked("bad updates", keysAsked, 1)
	if _, res := queryDevices(t, a, alice, alice.UserID); res.Get("device_keys." + gjsonKey(string(alice.UserID)) + ".FORGED").Exists() {
		t.Fatalf("C changed alice's devices: %s", res.Raw)
	}
	// The same to-device message again (a retried EDU) and a new one.
	c.sendEDUs(t, a, toDevice(carol, "m1", 1), toDevice(carol, "m2", 2))
	var pings []int64
	presence := ""
	waitForSyncFrom(t, alice, since, "carol's presence and to-device messages", func(resp *mautrix.RespSync) bool {
		for _, ev := range resp.Presence.Events {
			if ev.Sender == dave {
				t.Fatalf("presence of another server's user: %s", ev.Content.VeryRaw)
			}
			if ev.Sender == carol {
				presence = gjson.GetBytes(ev.Content.VeryRaw, "presence").Str + "/" + gjson.GetBytes(ev.Content.VeryRaw, "status_msg").Str
			}
		}
		for _, ev := range resp.ToDevice.Events {
			if ev.Sender != carol || ev.Type.Type != "org.example.ping" {
				t.Fatalf("unexpected to-device message: %s from %s", ev.Type.Type, ev.Sender)
			}
			pings = append(pings, gjson.GetBytes(ev.Content.VeryRaw, "n").Int())
		}
		return presence != "" && len(pings) >= 2
	})
	if presence != "unavailable/at lunch" || !slices.Equal(pings, []int64{1, 2}) {
		t.Fatalf("carol's presence %q, to-device messages %v", presence, pings)
	}

	// An update A cannot place: A fetches the list again.
	d.set(20, "C1", "C4")
	c.sendEDUs(t, a, deviceListUpdate(carol, "C4", 20, []int64{19}, false))
	eventually("after a lost update", "C1", "C4")
	if _, dv := d.asked(); dv != 2 {
		t.Fatalf("A asked C for carol's device list %d times, want 2", dv)
	}

	// carol leaves the only room she shared with alice: alice's sync says
	// so, and A asks C again.
	since = syncToken(t, alice)
	c.leave(t, a, r.roomID, carol, false)
	waitForSyncFrom(t, alice, since, "carol gone from alice's device lists", func(resp *mautrix.RespSync) bool {
		return slices.Contains(resp.DeviceLists.Left, carol)
	})
	before, _ := d.asked()
	wantDevices("after carol left", "C1", "C4")
	if after, _ := d.asked(); after != before+1 {
		t.Fatalf("after carol left, A answered from its copy (C asked %d → %d)", before, after)
	}
	if strings.Contains(a.Logs(), "panic") {
		t.Fatal("the server panicked")
	}
}
