package e2eappservice

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/url"
	"testing"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// TestAppServiceDeviceManagement: appservices manage their users' devices
// without logging them in (spec v1.17, MSC4190): PUT /devices/{deviceId}
// creates a device (201) or updates it (200), the appservice then acts as
// it with ?device_id=, deletes devices without user-interactive auth and
// replaces cross-signing keys without it too. Users keep their rules.
func TestAppServiceDeviceManagement(t *testing.T) {
	reg := writeFile(t, registration("bridge", asToken, hsToken, "@_bridge_.*:localhost"))
	srv := testserver.Start(t, testserver.Options{Args: []string{"--appservice", reg, "--disable-rate-limits"}})
	const ghost = "@_bridge_alice:localhost"
	if code, body := do(t, srv, "POST", "/_matrix/client/v3/register", asToken, map[string]any{
		"type": "m.login.application_service", "username": "_bridge_alice", "inhibit_login": true}); code != 200 {
		t.Fatalf("ghost: %d %v", code, body)
	}
	as := func(path string, query ...string) string {
		q := url.Values{"user_id": {ghost}}
		for i := 0; i+1 < len(query); i += 2 {
			q.Set(query[i], query[i+1])
		}
		return path + "?" + q.Encode()
	}

	// Created, then updated.
	code, body := do(t, srv, "PUT", as("/_matrix/client/v3/devices/BRIDGEDEV"), asToken, map[string]any{"display_name": "Bridge"})
	if code != 201 || len(body) != 0 {
		t.Fatalf("creating a device: %d %v, want 201 {}", code, body)
	}
	code, body = do(t, srv, "PUT", as("/_matrix/client/v3/devices/BRIDGEDEV"), asToken, map[string]any{})
	if code != 200 || len(body) != 0 {
		t.Fatalf("putting an existing device: %d %v, want 200 {}", code, body)
	}
	code, body = do(t, srv, "GET", as("/_matrix/client/v3/devices/BRIDGEDEV"), asToken, nil)
	if code != 200 || body["display_name"] != "Bridge" {
		t.Fatalf("the device after a PUT without a name: %d %v", code, body)
	}
	code, body = do(t, srv, "PUT", as("/_matrix/client/v3/devices/BRIDGEDEV"), asToken, map[string]any{"display_name": "Renamed"})
	if code != 200 {
		t.Fatalf("renaming the device: %d %v", code, body)
	}
	code, body = do(t, srv, "GET", as("/_matrix/client/v3/devices/BRIDGEDEV"), asToken, nil)
	if code != 200 || body["display_name"] != "Renamed" {
		t.Fatalf("the renamed device: %d %v", code, body)
	}
	// The appservice acts as the device (MSC4326), which now exists.
	code, body = do(t, srv, "GET", as("/_matrix/client/v3/account/whoami", "device_id", "BRIDGEDEV"), asToken, nil)
	if code != 200 || body["user_id"] != ghost || body["device_id"] != "BRIDGEDEV" {
		t.Fatalf("whoami as the device: %d %v", code, body)
	}
	// Application service API, "Identity assertion": a device the user
	// does not have is 400 M_UNKNOWN_DEVICE.
	code, body = do(t, srv, "GET", as("/_matrix/client/v3/account/whoami", "device_id", "NOPE"), asToken, nil)
	if code != 400 || body["errcode"] != "M_UNKNOWN_DEVICE" {
		t.Fatalf("whoami as an unknown device: %d %v, want 400 M_UNKNOWN_DEVICE", code, body)
	}
	// Without user_id: a device of the appservice's own user.
	if code, body := do(t, srv, "PUT", "/_matrix/client/v3/devices/BOTDEV", asToken, map[string]any{}); code != 201 {
		t.Fatalf("creating a device of the appservice's sender: %d %v", code, body)
	}
	code, body = do(t, srv, "GET", "/_matrix/client/v3/account/whoami?device_id=BOTDEV", asToken, nil)
	if code != 200 || body["user_id"] != "@bridgebot:localhost" || body["device_id"] != "BOTDEV" {
		t.Fatalf("whoami as the sender's device: %d %v", code, body)
	}
	for _, bad := range []string{"/_matrix/client/v3/devices/" + url.PathEscape("with space"),
		"/_matrix/client/v3/devices/" + url.PathEscape("tab\there")} {
		if code, body := do(t, srv, "PUT", as(bad), asToken, map[string]any{}); code != 400 {
			t.Fatalf("PUT %s: %d %v, want 400", bad, code, body)
		}
	}

	// A user still only updates devices they have.
	human := loginHuman(t, srv)
	code, body = do(t, srv, "PUT", "/_matrix/client/v3/devices/NEWDEV", human.AccessToken, map[string]any{"display_name": "x"})
	if code != 404 {
		t.Fatalf("a user creating a device: %d %v, want 404", code, body)
	}
	code, body = do(t, srv, "DELETE", "/_matrix/client/v3/devices/"+string(human.DeviceID), human.AccessToken, map[string]any{})
	if code != 401 || body["flows"] == nil {
		t.Fatalf("a user deleting a device without auth: %d %v, want 401 with flows", code, body)
	}

	// Cross-signing keys are replaced without UIA (spec v1.17).
	for i := range 2 {
		code, body := do(t, srv, "POST", as("/_matrix/client/v3/keys/device_signing/upload"), asToken,
			map[string]any{"master_key": masterKey(t, ghost)})
		if code != 200 {
			t.Fatalf("cross-signing upload %d by the appservice: %d %v, want 200", i, code, body)
		}
	}

	// Deletion without UIA, one device or several; deleting a device that
	// is gone already succeeds (spec: "or had been removed previously").
	for _, dev := range []string{"BRIDGEDEV", "BRIDGEDEV"} {
		if code, body := do(t, srv, "DELETE", as("/_matrix/client/v3/devices/"+dev), asToken, nil); code != 200 {
			t.Fatalf("DELETE /devices/%s by the appservice: %d %v, want 200", dev, code, body)
		}
	}
	if code, body := do(t, srv, "GET", as("/_matrix/client/v3/devices/BRIDGEDEV"), asToken, nil); code != 404 {
		t.Fatalf("the deleted device: %d %v", code, body)
	}
	for _, dev := range []string{"D1", "D2"} {
		if code, body := do(t, srv, "PUT", as("/_matrix/client/v3/devices/"+dev), asToken, map[string]any{}); code != 201 {
			t.Fatalf("creating %s: %d %v", dev, code, body)
		}
	}
	code, body = do(t, srv, "POST", as("/_matrix/client/v3/delete_devices"), asToken, map[string]any{"devices": []string{"D1", "D2"}})
	if code != 200 {
		t.Fatalf("delete_devices by the appservice: %d %v, want 200", code, body)
	}
	code, body = do(t, srv, "GET", as("/_matrix/client/v3/devices"), asToken, nil)
	if devs, _ := body["devices"].([]any); code != 200 || len(devs) != 0 {
		t.Fatalf("the ghost's devices after deleting them all: %d %v", code, body)
	}
}

// masterKey is a new cross-signing master key of the user.
func masterKey(t *testing.T, user string) map[string]any {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawStdEncoding.EncodeToString(pub)
	return map[string]any{"user_id": user, "usage": []string{"master"}, "keys": map[string]any{"ed25519:" + b64: b64}}
}
