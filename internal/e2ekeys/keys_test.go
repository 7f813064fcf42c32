package e2ekeys

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

const v3 = "/_matrix/client/v3"

// signer is an ed25519 key that signs JSON objects as the spec says.
type signer struct {
	pub  string
	priv ed25519.PrivateKey
}

func newSigner(t *testing.T) *signer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{pub: base64.RawStdEncoding.EncodeToString(pub), priv: priv}
}

// sign adds the signature of obj (without signatures and unsigned) by
// user's key keyID.
func (s *signer) sign(t *testing.T, obj map[string]any, user id.UserID, keyID string) map[string]any {
	t.Helper()
	bare := map[string]any{}
	for k, v := range obj {
		if k != "signatures" && k != "unsigned" {
			bare[k] = v
		}
	}
	raw, err := canonicaljson.Marshal(bare)
	if err != nil {
		t.Fatal(err)
	}
	sig := base64.RawStdEncoding.EncodeToString(ed25519.Sign(s.priv, raw))
	// Copies: obj's signature maps stay as they are.
	sigs := map[string]any{}
	if old, ok := obj["signatures"].(map[string]any); ok {
		for u, v := range old {
			m := map[string]any{}
			for k, s := range v.(map[string]any) {
				m[k] = s
			}
			sigs[u] = m
		}
	}
	by, _ := sigs[string(user)].(map[string]any)
	if by == nil {
		by = map[string]any{}
	}
	by[keyID] = sig
	sigs[string(user)] = by
	out := map[string]any{}
	for k, v := range obj {
		out[k] = v
	}
	out["signatures"] = sigs
	return out
}

// device is a client's device with its own ed25519 key.
type device struct {
	cli *mautrix.Client
	key *signer
}

func newDevice(t *testing.T, cli *mautrix.Client) *device {
	return &device{cli: cli, key: newSigner(t)}
}

func (d *device) deviceKeys(t *testing.T) map[string]any {
	dev := string(d.cli.DeviceID)
	obj := map[string]any{"user_id": string(d.cli.UserID), "device_id": dev,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]any{"ed25519:" + dev: d.key.pub, "curve25519:" + dev: "curve" + dev}}
	return d.key.sign(t, obj, d.cli.UserID, "ed25519:"+dev)
}

func (d *device) otk(t *testing.T, key string) map[string]any {
	return d.key.sign(t, map[string]any{"key": key}, d.cli.UserID, "ed25519:"+string(d.cli.DeviceID))
}

func do(t *testing.T, srv *testserver.Server, cli *mautrix.Client, method, path string, body any) (int, map[string]any) {
	t.Helper()
	return srv.Do(t, method, v3+path, cli.AccessToken, body)
}

func mustDo(t *testing.T, what string, srv *testserver.Server, cli *mautrix.Client, method, path string, body any) map[string]any {
	t.Helper()
	code, resp := do(t, srv, cli, method, path, body)
	if code != http.StatusOK {
		t.Fatalf("%s: HTTP %d %v", what, code, resp)
	}
	return resp
}

func get(m any, path ...string) any {
	for _, p := range path {
		mm, _ := m.(map[string]any)
		m = mm[p]
	}
	return m
}

func TestKeysUploadErrors(t *testing.T) {
	srv := start(t)
	d := newDevice(t, register(t, srv, "alice"))
	other := newDevice(t, register(t, srv, "bob"))
	dev := string(d.cli.DeviceID)

	code, body := srv.Do(t, "POST", v3+"/keys/upload", d.cli.AccessToken, "not json")
	wantStatus(t, "not JSON", code, body, 400, "M_NOT_JSON")
	code, body = do(t, srv, d.cli, "POST", "/keys/upload", map[string]any{"device_keys": []int{1}})
	wantStatus(t, "device_keys not an object", code, body, 400, "M_BAD_JSON")
	// Keys of another user or device.
	code, body = do(t, srv, d.cli, "POST", "/keys/upload", map[string]any{"device_keys": other.deviceKeys(t)})
	wantStatus(t, "other user's keys", code, body, 400, "M_BAD_JSON")
	// Wrongly signed.
	dk := d.deviceKeys(t)
	delete(dk, "signatures")
	forged := newSigner(t).sign(t, dk, d.cli.UserID, "ed25519:"+dev)
	code, body = do(t, srv, d.cli, "POST", "/keys/upload", map[string]any{"device_keys": forged})
	wantStatus(t, "forged", code, body, 400, "M_INVALID_SIGNATURE")
	// Key IDs that do not name the device.
	bad := d.deviceKeys(t)
	bad["keys"].(map[string]any)["curve25519:OTHER"] = "x"
	bad = d.key.sign(t, bad, d.cli.UserID, "ed25519:"+dev)
	code, body = do(t, srv, d.cli, "POST", "/keys/upload", map[string]any{"device_keys": bad})
	wantStatus(t, "key ID of another device", code, body, 400, "M_BAD_JSON")
	// Signed one-time keys before any device keys.
	code, body = do(t, srv, d.cli, "POST", "/keys/upload", map[string]any{
		"one_time_keys": map[string]any{"signed_curve25519:AAAA": d.otk(t, "k0")}})
	wantStatus(t, "signed key without device keys", code, body, 400, "M_INVALID_PARAM")
	// Unsigned device keys are stored (clients check the signature).
	mustDo(t, "unsigned device keys", srv, d.cli, "POST", "/keys/upload", map[string]any{"device_keys": dk})

	// A good upload.
	body = mustDo(t, "upload", srv, d.cli, "POST", "/keys/upload", map[string]any{"device_keys": d.deviceKeys(t),
		"one_time_keys": map[string]any{"signed_curve25519:AAAA": d.otk(t, "k1"), "signed_curve25519:AAAB": d.otk(t, "k2")},
		"fallback_keys": map[string]any{"signed_curve25519:FB": d.otk(t, "fb")}})
	if n := get(body, "one_time_key_counts", "signed_curve25519"); n != 2.0 {
		t.Fatalf("counts %v", body)
	}
	// A batch with one bad key stores nothing of it.
	wrongSig := d.otk(t, "k3")
	wrongSig["key"] = "tampered"
	code, body = do(t, srv, d.cli, "POST", "/keys/upload", map[string]any{"one_time_keys": map[string]any{
		"signed_curve25519:AAAC": d.otk(t, "k4"), "signed_curve25519:AAAD": wrongSig}})
	wantStatus(t, "tampered one-time key", code, body, 400, "M_INVALID_SIGNATURE")
	code, body = do(t, srv, d.cli, "POST", "/keys/upload", map[string]any{"one_time_keys": map[string]any{
		"signed_curve25519:AAAE": d.otk(t, "k5"), "signed_curve25519:AAAA": d.otk(t, "different")}})
	wantStatus(t, "reused key ID", code, body, 400, "M_INVALID_PARAM")
	code, body = do(t, srv, d.cli, "POST", "/keys/upload", map[string]any{"one_time_keys": map[string]any{"nocolon": "x"}})
	wantStatus(t, "malformed key ID", code, body, 400, "M_INVALID_PARAM")
	code, body = do(t, srv, d.cli, "POST", "/keys/upload", map[string]any{"one_time_keys": map[string]any{"signed_curve25519:X": "plain"}})
	wantStatus(t, "unsigned signed_curve25519", code, body, 400, "M_INVALID_PARAM")
	body = mustDo(t, "counts", srv, d.cli, "POST", "/keys/upload", map[string]any{})
	if n := get(body, "one_time_key_counts", "signed_curve25519"); n != 2.0 {
		t.Fatalf("failed uploads stored keys: %v", body)
	}
	// The identity key cannot change.
	d2 := &device{cli: d.cli, key: newSigner(t)}
	code, body = do(t, srv, d.cli, "POST", "/keys/upload", map[string]any{"device_keys": d2.deviceKeys(t)})
	wantStatus(t, "new identity key", code, body, 400, "M_INVALID_PARAM")
	// Too many keys at once.
	many := map[string]any{}
	for i := range 1001 {
		many["curve25519:"+string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676))] = "k"
	}
	code, body = do(t, srv, d.cli, "POST", "/keys/upload", map[string]any{"one_time_keys": many})
	wantStatus(t, "too many keys", code, body, 413, "M_TOO_LARGE")
	// Unauthenticated.
	code, body = srv.Do(t, "POST", v3+"/keys/upload", "", map[string]any{})
	wantStatus(t, "no token", code, body, 401, "M_MISSING_TOKEN")
}

// uploadKeys uploads a device's identity keys and one-time/fallback keys.
func uploadKeys(t *testing.T, srv *testserver.Server, d *device, otks, fallbacks map[string]any) {
	t.Helper()
	mustDo(t, "upload", srv, d.cli, "POST", "/keys/upload", map[string]any{"device_keys": d.deviceKeys(t),
		"one_time_keys": otks, "fallback_keys": fallbacks})
}

func TestKeysQueryClaim(t *testing.T) {
	srv := start(t)
	alice := newDevice(t, register(t, srv, "alice"))
	bob := newDevice(t, register(t, srv, "bob"))
	uploadKeys(t, srv, alice, nil, nil)
	uploadKeys(t, srv, bob, map[string]any{"signed_curve25519:B1": bob.otk(t, "b1")},
		map[string]any{"signed_curve25519:BF": bob.otk(t, "bf")})

	code, body := do(t, srv, alice.cli, "POST", "/keys/query", map[string]any{})
	wantStatus(t, "query without device_keys", code, body, 400, "M_MISSING_PARAM")
	code, body = do(t, srv, alice.cli, "POST", "/keys/query", map[string]any{"device_keys": map[string]any{"not a user": []string{}}})
	wantStatus(t, "query of a malformed user ID", code, body, 400, "M_INVALID_PARAM")
	code, body = do(t, srv, alice.cli, "POST", "/keys/claim", map[string]any{"one_time_keys": map[string]any{"nope": map[string]any{"D": "x"}}})
	wantStatus(t, "claim for a malformed user ID", code, body, 400, "M_INVALID_PARAM")
	body = mustDo(t, "query of a remote user", srv, alice.cli, "POST", "/keys/query", map[string]any{"device_keys": map[string]any{"@x:remote.example": []string{}}})
	if get(body, "failures", "remote.example") == nil {
		t.Fatalf("remote query: %v", body)
	}
	body = mustDo(t, "query", srv, alice.cli, "POST", "/keys/query", map[string]any{"device_keys": map[string]any{
		string(alice.cli.UserID): []string{}, string(bob.cli.UserID): []string{string(bob.cli.DeviceID)},
		"@nobody:localhost": []string{}}})
	mine := get(body, "device_keys", string(alice.cli.UserID), string(alice.cli.DeviceID))
	if get(mine, "unsigned", "device_display_name") != "first device" {
		t.Fatalf("own device has no display name: %v", mine)
	}
	theirs := get(body, "device_keys", string(bob.cli.UserID), string(bob.cli.DeviceID))
	if theirs == nil || get(theirs, "unsigned", "device_display_name") != nil {
		t.Fatalf("bob's device: %v", theirs)
	}
	if get(theirs, "keys", "ed25519:"+string(bob.cli.DeviceID)) != bob.key.pub {
		t.Fatalf("bob's keys: %v", theirs)
	}

	code, body = do(t, srv, alice.cli, "POST", "/keys/claim", map[string]any{})
	wantStatus(t, "claim without one_time_keys", code, body, 400, "M_MISSING_PARAM")
	code, body = do(t, srv, alice.cli, "POST", "/keys/claim", map[string]any{"one_time_keys": map[string]any{
		string(bob.cli.UserID): map[string]any{string(bob.cli.DeviceID): ""}}})
	wantStatus(t, "claim without algorithm", code, body, 400, "M_INVALID_PARAM")
	claim := func() map[string]any {
		body := mustDo(t, "claim", srv, alice.cli, "POST", "/keys/claim", map[string]any{"one_time_keys": map[string]any{
			string(bob.cli.UserID): map[string]any{string(bob.cli.DeviceID): "signed_curve25519", "NODEVICE": "signed_curve25519"}}})
		keys, _ := get(body, "one_time_keys", string(bob.cli.UserID), string(bob.cli.DeviceID)).(map[string]any)
		return keys
	}
	if k := claim(); get(k, "signed_curve25519:B1", "key") != "b1" {
		t.Fatalf("first claim %v", k)
	}
	// Then the fallback key, as often as asked.
	for range 2 {
		if k := claim(); get(k, "signed_curve25519:BF", "key") != "bf" {
			t.Fatalf("fallback claim %v", k)
		}
	}
	// Bob's sync shows the used fallback key and no one-time keys left.
	resp, err := bob.cli.SyncRequest(t.Context(), 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if resp.DeviceOTKCount.SignedCurve25519 != 0 {
		t.Fatalf("one-time key count %+v", resp.DeviceOTKCount)
	}
	if len(resp.FallbackKeys) != 0 {
		t.Fatalf("unused fallback types %v", resp.FallbackKeys)
	}
	// An empty list, not a missing one: the server supports fallback keys.
	code, raw := srv.Do(t, "GET", v3+"/sync", bob.cli.AccessToken, nil)
	if types, ok := raw["device_unused_fallback_key_types"].([]any); code != 200 || !ok || len(types) != 0 {
		t.Fatalf("raw sync: %d %v", code, raw)
	}
}

func TestKeysChangesAndSync(t *testing.T) {
	srv := start(t)
	alice := newDevice(t, register(t, srv, "alice"))
	bob := newDevice(t, register(t, srv, "bob"))
	carol := newDevice(t, register(t, srv, "carol"))
	ctx := t.Context()

	code, body := do(t, srv, alice.cli, "GET", "/keys/changes?from=s0", nil)
	wantStatus(t, "changes without to", code, body, 400, "M_MISSING_PARAM")
	code, body = do(t, srv, alice.cli, "GET", "/keys/changes?from=bogus&to=s0", nil)
	wantStatus(t, "bad token", code, body, 400, "M_INVALID_PARAM")

	room, err := alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.cli.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	first, err := alice.cli.SyncRequest(ctx, 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	uploadKeys(t, srv, bob, nil, nil)
	uploadKeys(t, srv, carol, nil, nil) // shares no room with alice
	// The long-poll wakes for bob's change.
	next, err := alice.cli.SyncRequest(ctx, 10000, first.NextBatch, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(next.DeviceLists.Changed, bob.cli.UserID) || slices.Contains(next.DeviceLists.Changed, carol.cli.UserID) {
		t.Fatalf("device_lists %+v", next.DeviceLists)
	}
	body = mustDo(t, "changes", srv, alice.cli, "GET", "/keys/changes?from="+first.NextBatch+"&to="+next.NextBatch, nil)
	if changed, _ := body["changed"].([]any); !slices.Contains(changed, any(string(bob.cli.UserID))) || len(changed) != 1 {
		t.Fatalf("changes %v", body)
	}

	// Bob leaves: he is in left, and his later changes are not shown.
	if _, err := bob.cli.LeaveRoom(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	afterLeave, err := alice.cli.SyncRequest(ctx, 10000, next.NextBatch, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(afterLeave.DeviceLists.Left, bob.cli.UserID) {
		t.Fatalf("device_lists after leave %+v", afterLeave.DeviceLists)
	}

	// Alice joins carol's room: carol now shares a room with her (changed);
	// alice leaves it: carol is in left.
	carolRoom, err := carol.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.cli.JoinRoomByID(ctx, carolRoom.RoomID); err != nil {
		t.Fatal(err)
	}
	joinedCarol, err := alice.cli.SyncRequest(ctx, 10000, afterLeave.NextBatch, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(joinedCarol.DeviceLists.Changed, carol.cli.UserID) {
		t.Fatalf("device_lists after joining carol's room %+v", joinedCarol.DeviceLists)
	}
	if _, err := alice.cli.LeaveRoom(ctx, carolRoom.RoomID); err != nil {
		t.Fatal(err)
	}
	leftCarol, err := alice.cli.SyncRequest(ctx, 10000, joinedCarol.NextBatch, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(leftCarol.DeviceLists.Left, carol.cli.UserID) {
		t.Fatalf("device_lists after leaving carol's room %+v", leftCarol.DeviceLists)
	}

	// Alice's own new device: her device list changed, and deleting it does again.
	second := newDevice(t, login(t, srv, "alice"))
	uploadKeys(t, srv, second, nil, nil)
	own, err := alice.cli.SyncRequest(ctx, 10000, leftCarol.NextBatch, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(own.DeviceLists.Changed, alice.cli.UserID) {
		t.Fatalf("own device_lists %+v", own.DeviceLists)
	}
	if _, err := second.cli.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	gone, err := alice.cli.SyncRequest(ctx, 10000, own.NextBatch, "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(gone.DeviceLists.Changed, alice.cli.UserID) {
		t.Fatalf("device_lists after logout %+v", gone.DeviceLists)
	}
	body = mustDo(t, "query", srv, alice.cli, "POST", "/keys/query", map[string]any{"device_keys": map[string]any{
		string(alice.cli.UserID): []string{}}})
	if devs, _ := get(body, "device_keys", string(alice.cli.UserID)).(map[string]any); devs[string(second.cli.DeviceID)] != nil {
		t.Fatalf("the logged-out device's keys remain: %v", devs)
	}
}
