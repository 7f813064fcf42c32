package e2ekeys

import (
	"slices"
	"testing"

	"maunium.net/go/mautrix"
)

const slidingPath = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"

// TestSlidingE2EE: sliding sync's e2ee extension carries key counts,
// fallback key types and device list changes, and its long-poll wakes for them.
func TestSlidingE2EE(t *testing.T) {
	srv := start(t)
	alice := newDevice(t, register(t, srv, "alice"))
	bob := newDevice(t, register(t, srv, "bob"))
	ctx := t.Context()
	room, err := alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.cli.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	uploadKeys(t, srv, alice, map[string]any{"signed_curve25519:A1": alice.otk(t, "a1"), "signed_curve25519:A2": alice.otk(t, "a2")},
		map[string]any{"signed_curve25519:AF": alice.otk(t, "af")})
	body := map[string]any{"conn_id": "keys", "extensions": map[string]any{"e2ee": map[string]any{"enabled": true}}}
	code, first := srv.Do(t, "POST", slidingPath, alice.cli.AccessToken, body)
	if code != 200 {
		t.Fatalf("first: %d %v", code, first)
	}
	e2ee := get(first, "extensions", "e2ee")
	if get(e2ee, "device_one_time_keys_count", "signed_curve25519") != 2.0 {
		t.Fatalf("counts: %v", e2ee)
	}
	if types, _ := get(e2ee, "device_unused_fallback_key_types").([]any); !slices.Contains(types, any("signed_curve25519")) {
		t.Fatalf("fallback types: %v", e2ee)
	}
	pos, _ := first["pos"].(string)
	uploadKeys(t, srv, bob, nil, nil)
	code, next := srv.Do(t, "POST", slidingPath+"?timeout=10000&pos="+pos, alice.cli.AccessToken, body)
	if code != 200 {
		t.Fatalf("next: %d %v", code, next)
	}
	changed, _ := get(next, "extensions", "e2ee", "device_lists", "changed").([]any)
	if !slices.Contains(changed, any(string(bob.cli.UserID))) {
		t.Fatalf("device_lists: %v", next)
	}
}
