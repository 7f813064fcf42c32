package e2ekeys

import (
	"slices"
	"testing"
)

const dehydrated = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device"

func TestDehydratedDevice(t *testing.T) {
	srv := start(t)
	alice := newDevice(t, register(t, srv, "alice"))
	bob := register(t, srv, "bob")
	tok := alice.cli.AccessToken
	au := string(alice.cli.UserID)

	code, body := srv.Do(t, "GET", "/_matrix/client/versions", "", nil)
	if code != 200 || get(body, "unstable_features", "org.matrix.msc3814") != true {
		t.Fatalf("versions %v", body)
	}
	code, body = srv.Do(t, "GET", dehydrated, tok, nil)
	wantStatus(t, "none yet", code, body, 404, "M_NOT_FOUND")
	code, body = srv.Do(t, "DELETE", dehydrated, tok, nil)
	wantStatus(t, "delete none", code, body, 404, "M_NOT_FOUND")
	code, body = srv.Do(t, "PUT", dehydrated, tok, map[string]any{"device_data": map[string]any{"algorithm": "x"}})
	wantStatus(t, "no device_id", code, body, 400, "M_MISSING_PARAM")
	code, body = srv.Do(t, "PUT", dehydrated, tok, map[string]any{"device_id": "DEHY1"})
	wantStatus(t, "no device_data", code, body, 400, "M_MISSING_PARAM")
	code, body = srv.Do(t, "PUT", dehydrated, tok, map[string]any{"device_id": string(alice.cli.DeviceID), "device_data": map[string]any{}})
	wantStatus(t, "the ID of a real device", code, body, 400, "M_INVALID_PARAM")

	// The dehydrated device's keys must be its own and signed.
	dehy := &device{cli: srv.Client(t), key: newSigner(t)}
	dehy.cli.UserID, dehy.cli.DeviceID = alice.cli.UserID, "DEHY1"
	dk := dehy.deviceKeys(t)
	dk["dehydrated"] = true
	dk = dehy.key.sign(t, dk, alice.cli.UserID, "ed25519:DEHY1")
	forged := newSigner(t).sign(t, dk, alice.cli.UserID, "ed25519:DEHY1")
	code, body = srv.Do(t, "PUT", dehydrated, tok, map[string]any{"device_id": "DEHY1", "device_data": map[string]any{"a": 1},
		"device_keys": forged})
	wantStatus(t, "forged keys", code, body, 400, "M_INVALID_SIGNATURE")
	code, body = srv.Do(t, "GET", dehydrated, tok, nil)
	wantStatus(t, "nothing stored by the failed PUT", code, body, 404, "M_NOT_FOUND")

	code, body = srv.Do(t, "PUT", dehydrated, tok, map[string]any{"device_id": "DEHY1", "device_data": map[string]any{"a": 1},
		"initial_device_display_name": "Dehydrated", "device_keys": dk,
		"one_time_keys": map[string]any{"signed_curve25519:O1": dehy.otk(t, "o1")},
		"fallback_keys": map[string]any{"signed_curve25519:F1": dehy.otk(t, "f1")}})
	if code != 200 || body["device_id"] != "DEHY1" {
		t.Fatalf("PUT: %d %v", code, body)
	}
	code, body = srv.Do(t, "GET", dehydrated, tok, nil)
	if code != 200 || body["device_id"] != "DEHY1" || get(body, "device_data", "a") != 1.0 {
		t.Fatalf("GET: %d %v", code, body)
	}
	// Others see the device and can claim its keys.
	body = mustDo(t, "query", srv, bob, "POST", "/keys/query", map[string]any{"device_keys": map[string]any{au: []string{}}})
	if get(body, "device_keys", au, "DEHY1", "dehydrated") != true {
		t.Fatalf("query %v", body)
	}
	body = mustDo(t, "claim", srv, bob, "POST", "/keys/claim", map[string]any{"one_time_keys": map[string]any{au: map[string]any{"DEHY1": "signed_curve25519"}}})
	if get(body, "one_time_keys", au, "DEHY1", "signed_curve25519:O1") == nil {
		t.Fatalf("claim %v", body)
	}

	// To-device messages wait for it; events pages through them.
	for i, txn := range []string{"t1", "t2"} {
		mustDo(t, "send to device", srv, bob, "PUT", "/sendToDevice/m.test/"+txn, map[string]any{"messages": map[string]any{
			au: map[string]any{"DEHY1": map[string]any{"n": i}}}})
	}
	code, body = srv.Do(t, "POST", dehydrated+"/"+string(alice.cli.DeviceID)+"/events", tok, map[string]any{})
	wantStatus(t, "events of another device", code, body, 403, "M_FORBIDDEN")
	code, body = srv.Do(t, "POST", dehydrated+"/DEHY1/events", tok, map[string]any{"next_batch": "nope"})
	wantStatus(t, "bad next_batch", code, body, 400, "M_INVALID_PARAM")
	code, body = srv.Do(t, "POST", dehydrated+"/DEHY1/events", tok, map[string]any{})
	evs, _ := body["events"].([]any)
	if code != 200 || len(evs) != 2 || get(evs[0], "content", "n") != 0.0 || get(evs[0], "sender") != string(bob.UserID) {
		t.Fatalf("events: %d %v", code, body)
	}
	next, _ := body["next_batch"].(string)
	code, body = srv.Do(t, "POST", dehydrated+"/DEHY1/events", tok, map[string]any{"next_batch": next})
	if evs, _ := body["events"].([]any); code != 200 || len(evs) != 0 {
		t.Fatalf("events after next_batch: %d %v", code, body)
	}

	// A new dehydrated device replaces the old one, whose keys go.
	dehy2 := &device{cli: srv.Client(t), key: newSigner(t)}
	dehy2.cli.UserID, dehy2.cli.DeviceID = alice.cli.UserID, "DEHY2"
	code, body = srv.Do(t, "PUT", dehydrated, tok, map[string]any{"device_id": "DEHY2", "device_data": map[string]any{"a": 2},
		"device_keys": dehy2.deviceKeys(t)})
	if code != 200 {
		t.Fatalf("replace: %d %v", code, body)
	}
	body = mustDo(t, "query", srv, bob, "POST", "/keys/query", map[string]any{"device_keys": map[string]any{au: []string{}}})
	if get(body, "device_keys", au, "DEHY1") != nil || get(body, "device_keys", au, "DEHY2") == nil {
		t.Fatalf("after replacing: %v", body)
	}
	devs, err := alice.cli.GetDevicesInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, d := range devs.Devices {
		ids = append(ids, string(d.DeviceID))
	}
	if slices.Contains(ids, "DEHY1") || !slices.Contains(ids, "DEHY2") {
		t.Fatalf("devices %v", ids)
	}
	code, body = srv.Do(t, "DELETE", dehydrated, tok, nil)
	if code != 200 || body["device_id"] != "DEHY2" {
		t.Fatalf("DELETE: %d %v", code, body)
	}
	code, body = srv.Do(t, "GET", dehydrated, tok, nil)
	wantStatus(t, "after delete", code, body, 404, "M_NOT_FOUND")
	body = mustDo(t, "query", srv, bob, "POST", "/keys/query", map[string]any{"device_keys": map[string]any{au: []string{}}})
	if get(body, "device_keys", au, "DEHY2") != nil {
		t.Fatalf("keys of the deleted device: %v", body)
	}
}
