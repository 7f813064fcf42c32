package e2ekeys

import (
	"testing"
)

const backupAlg = "m.megolm_backup.v1.curve25519-aes-sha2"

func session(fmi, fc int, verified bool, data string) map[string]any {
	return map[string]any{"first_message_index": fmi, "forwarded_count": fc, "is_verified": verified,
		"session_data": map[string]any{"ciphertext": data}}
}

func TestKeyBackup(t *testing.T) {
	srv := start(t)
	alice := register(t, srv, "alice")
	bob := register(t, srv, "bob")
	d := func(method, path string, body any) (int, map[string]any) {
		return do(t, srv, alice, method, path, body)
	}
	must := func(what, method, path string, body any) map[string]any {
		t.Helper()
		return mustDo(t, what, srv, alice, method, path, body)
	}

	code, body := d("GET", "/room_keys/version", nil)
	wantStatus(t, "no backup yet", code, body, 404, "M_NOT_FOUND")
	code, body = d("POST", "/room_keys/version", map[string]any{"auth_data": map[string]any{}})
	wantStatus(t, "no algorithm", code, body, 400, "M_MISSING_PARAM")
	code, body = d("POST", "/room_keys/version", map[string]any{"algorithm": backupAlg})
	wantStatus(t, "no auth_data", code, body, 400, "M_MISSING_PARAM")
	code, body = d("POST", "/room_keys/version", map[string]any{"algorithm": backupAlg, "auth_data": "x"})
	wantStatus(t, "auth_data not an object", code, body, 400, "M_BAD_JSON")
	v1 := must("create", "POST", "/room_keys/version", map[string]any{"algorithm": backupAlg,
		"auth_data": map[string]any{"public_key": "pk1"}})["version"].(string)
	body = must("latest", "GET", "/room_keys/version", nil)
	if body["version"] != v1 || body["count"] != 0.0 || body["algorithm"] != backupAlg || get(body, "auth_data", "public_key") != "pk1" {
		t.Fatalf("latest %v", body)
	}
	code, body = do(t, srv, bob, "GET", "/room_keys/version/"+v1, nil)
	wantStatus(t, "another user's version", code, body, 404, "M_NOT_FOUND")

	// Keys: the version parameter is required and must be the current one.
	code, body = d("PUT", "/room_keys/keys/!r:localhost/s1", session(0, 0, false, "a"))
	wantStatus(t, "no version", code, body, 400, "M_MISSING_PARAM")
	code, body = d("PUT", "/room_keys/keys/!r:localhost/s1?version=99", session(0, 0, false, "a"))
	wantStatus(t, "unknown version", code, body, 404, "M_NOT_FOUND")
	code, body = d("PUT", "/room_keys/keys/!r:localhost/s1?version="+v1, map[string]any{"first_message_index": 1})
	wantStatus(t, "incomplete session", code, body, 400, "M_MISSING_PARAM")
	body = must("put session", "PUT", "/room_keys/keys/!r:localhost/s1?version="+v1, session(5, 1, false, "first"))
	if body["count"] != 1.0 || body["etag"] == "" {
		t.Fatalf("put answer %v", body)
	}
	etag1 := body["etag"]

	// Replacement rules: verified beats unverified, then the lower first
	// message index, then the lower forwarded count.
	put := func(fmi, fc int, verified bool, data string) {
		t.Helper()
		must("put", "PUT", "/room_keys/keys/!r:localhost/s1?version="+v1, session(fmi, fc, verified, data))
	}
	current := func() string {
		t.Helper()
		return get(must("get session", "GET", "/room_keys/keys/!r:localhost/s1?version="+v1, nil), "session_data", "ciphertext").(string)
	}
	put(6, 0, false, "higher index")
	if got := current(); got != "first" {
		t.Fatalf("a higher first_message_index replaced the key: %s", got)
	}
	put(2, 3, false, "lower index")
	if got := current(); got != "lower index" {
		t.Fatalf("a lower first_message_index did not replace the key: %s", got)
	}
	put(2, 1, false, "fewer forwards")
	if got := current(); got != "fewer forwards" {
		t.Fatalf("a lower forwarded_count did not replace the key: %s", got)
	}
	put(9, 9, true, "verified")
	if got := current(); got != "verified" {
		t.Fatalf("a verified key did not replace an unverified one: %s", got)
	}
	put(0, 0, false, "unverified")
	if got := current(); got != "verified" {
		t.Fatalf("an unverified key replaced a verified one: %s", got)
	}

	// Room and all levels.
	must("put room", "PUT", "/room_keys/keys/!r:localhost?version="+v1, map[string]any{"sessions": map[string]any{
		"s2": session(0, 0, false, "s2")}})
	body = must("put all", "PUT", "/room_keys/keys?version="+v1, map[string]any{"rooms": map[string]any{
		"!q:localhost": map[string]any{"sessions": map[string]any{"s3": session(0, 0, false, "s3")}}}})
	if body["count"] != 3.0 || body["etag"] == etag1 {
		t.Fatalf("after three sessions: %v", body)
	}
	code, body = d("PUT", "/room_keys/keys?version="+v1, map[string]any{})
	wantStatus(t, "all without rooms", code, body, 400, "M_MISSING_PARAM")
	body = must("get all", "GET", "/room_keys/keys?version="+v1, nil)
	if get(body, "rooms", "!q:localhost", "sessions", "s3") == nil || get(body, "rooms", "!r:localhost", "sessions", "s2") == nil {
		t.Fatalf("all keys %v", body)
	}
	body = must("get room", "GET", "/room_keys/keys/!r:localhost?version="+v1, nil)
	if s, _ := body["sessions"].(map[string]any); len(s) != 2 {
		t.Fatalf("room keys %v", body)
	}
	body = must("get empty room", "GET", "/room_keys/keys/!none:localhost?version="+v1, nil)
	if s, ok := body["sessions"].(map[string]any); !ok || len(s) != 0 {
		t.Fatalf("empty room %v", body)
	}
	// Session IDs are standard base64: "+" and "/" survive the path.
	must("put odd session", "PUT", "/room_keys/keys/!r:localhost/a%2Bb%2Fc?version="+v1, session(0, 0, false, "odd"))
	if get(must("get all", "GET", "/room_keys/keys?version="+v1, nil), "rooms", "!r:localhost", "sessions", "a+b/c") == nil {
		t.Fatal("session a+b/c not stored under its ID")
	}
	if get(must("get odd", "GET", "/room_keys/keys/!r:localhost/a%2Bb%2Fc?version="+v1, nil), "session_data", "ciphertext") != "odd" {
		t.Fatal("session a+b/c not found by its ID")
	}
	must("delete odd", "DELETE", "/room_keys/keys/!r:localhost/a%2Bb%2Fc?version="+v1, nil)
	code, body = d("GET", "/room_keys/keys/!r:localhost/nope?version="+v1, nil)
	wantStatus(t, "missing session", code, body, 404, "M_NOT_FOUND")
	code, body = d("GET", "/room_keys/keys?version=77", nil)
	wantStatus(t, "keys of an unknown version", code, body, 404, "M_NOT_FOUND")

	// A new version: writing to the old one is refused with the current one named.
	v2 := must("create v2", "POST", "/room_keys/version", map[string]any{"algorithm": backupAlg,
		"auth_data": map[string]any{"public_key": "pk2"}})["version"].(string)
	code, body = d("PUT", "/room_keys/keys/!r:localhost/s9?version="+v1, session(0, 0, false, "old"))
	wantStatus(t, "old version", code, body, 403, "M_WRONG_ROOM_KEYS_VERSION")
	if body["current_version"] != v2 {
		t.Fatalf("current_version %v, want %s", body["current_version"], v2)
	}
	// The old version can still be read and emptied.
	body = must("delete session", "DELETE", "/room_keys/keys/!r:localhost/s1?version="+v1, nil)
	if body["count"] != 2.0 {
		t.Fatalf("after deleting a session %v", body)
	}
	body = must("delete room", "DELETE", "/room_keys/keys/!r:localhost?version="+v1, nil)
	if body["count"] != 1.0 {
		t.Fatalf("after deleting a room %v", body)
	}
	body = must("delete all", "DELETE", "/room_keys/keys?version="+v1, nil)
	if body["count"] != 0.0 {
		t.Fatalf("after deleting all %v", body)
	}

	// Updating a version: same algorithm only, matching version.
	code, body = d("PUT", "/room_keys/version/"+v2, map[string]any{"algorithm": "other", "auth_data": map[string]any{}})
	wantStatus(t, "algorithm change", code, body, 400, "M_INVALID_PARAM")
	code, body = d("PUT", "/room_keys/version/"+v2, map[string]any{"algorithm": backupAlg, "auth_data": map[string]any{}, "version": v1})
	wantStatus(t, "version mismatch", code, body, 400, "M_INVALID_PARAM")
	code, body = d("PUT", "/room_keys/version/55", map[string]any{"algorithm": backupAlg, "auth_data": map[string]any{}})
	wantStatus(t, "update unknown", code, body, 404, "M_NOT_FOUND")
	must("update", "PUT", "/room_keys/version/"+v2, map[string]any{"algorithm": backupAlg, "auth_data": map[string]any{"public_key": "pk2b"}})
	if got := get(must("get v2", "GET", "/room_keys/version/"+v2, nil), "auth_data", "public_key"); got != "pk2b" {
		t.Fatalf("updated auth_data %v", got)
	}

	// Deleting the current version makes the previous one current again.
	must("delete v2", "DELETE", "/room_keys/version/"+v2, nil)
	code, body = d("DELETE", "/room_keys/version/"+v2, nil)
	wantStatus(t, "delete twice", code, body, 404, "M_NOT_FOUND")
	code, body = d("GET", "/room_keys/version/"+v2, nil)
	wantStatus(t, "deleted version", code, body, 404, "M_NOT_FOUND")
	if got := must("latest", "GET", "/room_keys/version", nil)["version"]; got != v1 {
		t.Fatalf("latest after delete %v, want %s", got, v1)
	}
	code, body = d("DELETE", "/room_keys/keys?version="+v2, nil)
	wantStatus(t, "keys of a deleted version", code, body, 404, "M_NOT_FOUND")
}
