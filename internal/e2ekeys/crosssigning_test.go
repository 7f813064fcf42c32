package e2ekeys

import (
	"testing"

	"maunium.net/go/mautrix/id"
)

// crossKey is a cross-signing key object of usage, signed by signer (nil: unsigned).
func crossKey(t *testing.T, user id.UserID, usage string, key, signer *signer) map[string]any {
	obj := map[string]any{"user_id": string(user), "usage": []string{usage},
		"keys": map[string]any{"ed25519:" + key.pub: key.pub}}
	if signer != nil {
		obj = signer.sign(t, obj, user, "ed25519:"+signer.pub)
	}
	return obj
}

func TestCrossSigningErrors(t *testing.T) {
	srv := start(t)
	alice := newDevice(t, register(t, srv, "alice"))
	bob := newDevice(t, register(t, srv, "bob"))
	uploadKeys(t, srv, alice, nil, nil)
	uploadKeys(t, srv, bob, nil, nil)
	au, bu := alice.cli.UserID, bob.cli.UserID
	master, ssk, usk := newSigner(t), newSigner(t), newSigner(t)

	code, body := do(t, srv, alice.cli, "POST", "/keys/device_signing/upload", map[string]any{
		"self_signing_key": crossKey(t, au, "self_signing", ssk, master)})
	wantStatus(t, "self-signing key without a master key", code, body, 400, "M_MISSING_PARAM")
	code, body = do(t, srv, alice.cli, "POST", "/keys/device_signing/upload", map[string]any{
		"master_key": crossKey(t, au, "self_signing", master, nil)})
	wantStatus(t, "wrong usage", code, body, 400, "M_INVALID_PARAM")
	code, body = do(t, srv, alice.cli, "POST", "/keys/device_signing/upload", map[string]any{
		"master_key": crossKey(t, bu, "master", master, nil)})
	wantStatus(t, "another user's key", code, body, 400, "M_INVALID_PARAM")
	code, body = do(t, srv, alice.cli, "POST", "/keys/device_signing/upload", map[string]any{
		"master_key": crossKey(t, au, "master", master, nil), "self_signing_key": crossKey(t, au, "self_signing", ssk, newSigner(t))})
	wantStatus(t, "self-signing key not signed by the master key", code, body, 400, "M_INVALID_SIGNATURE")
	// Nothing of the failed request was stored.
	body = mustDo(t, "query", srv, alice.cli, "POST", "/keys/query", map[string]any{"device_keys": map[string]any{string(au): []string{}}})
	if get(body, "master_keys", string(au)) != nil {
		t.Fatalf("a failed upload stored the master key: %v", body)
	}

	// The first upload needs no UIA (there is no key to replace).
	keysBody := map[string]any{"master_key": crossKey(t, au, "master", master, nil),
		"self_signing_key": crossKey(t, au, "self_signing", ssk, master),
		"user_signing_key": crossKey(t, au, "user_signing", usk, master)}
	mustDo(t, "first upload", srv, alice.cli, "POST", "/keys/device_signing/upload", keysBody)
	// The same keys again: still none.
	mustDo(t, "same keys again", srv, alice.cli, "POST", "/keys/device_signing/upload", keysBody)
	// A new master key: UIA with the password.
	master2 := newSigner(t)
	replace := map[string]any{"master_key": crossKey(t, au, "master", master2, nil)}
	code, body = do(t, srv, alice.cli, "POST", "/keys/device_signing/upload", replace)
	wantStatus(t, "replacing without UIA", code, body, 401, "")
	session, _ := body["session"].(string)
	replace["auth"] = map[string]any{"type": "m.login.password", "session": session, "password": "wrong",
		"identifier": map[string]any{"type": "m.id.user", "user": "alice"}}
	code, body = do(t, srv, alice.cli, "POST", "/keys/device_signing/upload", replace)
	wantStatus(t, "wrong password", code, body, 401, "M_FORBIDDEN")
	// Put the first master key back (with UIA) for the signature tests.
	keysBody["auth"] = map[string]any{"type": "m.login.password", "session": session, "password": password,
		"identifier": map[string]any{"type": "m.id.user", "user": "alice"}}
	replaceBack := map[string]any{"master_key": crossKey(t, au, "master", master2, nil), "auth": keysBody["auth"]}
	mustDo(t, "replace with UIA", srv, alice.cli, "POST", "/keys/device_signing/upload", replaceBack)
	delete(keysBody, "auth")
	code, _ = do(t, srv, alice.cli, "POST", "/keys/device_signing/upload", keysBody)
	if code != 401 {
		t.Fatalf("restoring the first master key without UIA: HTTP %d", code)
	}
	session2 := ""
	{
		_, b := do(t, srv, alice.cli, "POST", "/keys/device_signing/upload", keysBody)
		session2, _ = b["session"].(string)
	}
	keysBody["auth"] = map[string]any{"type": "m.login.password", "session": session2, "password": password,
		"identifier": map[string]any{"type": "m.id.user", "user": "alice"}}
	mustDo(t, "restore with UIA", srv, alice.cli, "POST", "/keys/device_signing/upload", keysBody)

	// Bob can see alice's master and self-signing keys, not her user-signing key.
	body = mustDo(t, "bob queries", srv, bob.cli, "POST", "/keys/query", map[string]any{"device_keys": map[string]any{string(au): []string{}}})
	if get(body, "master_keys", string(au), "keys", "ed25519:"+master.pub) != master.pub ||
		get(body, "self_signing_keys", string(au)) == nil || get(body, "user_signing_keys", string(au)) != nil {
		t.Fatalf("bob's view of alice's keys: %v", body)
	}
	body = mustDo(t, "alice queries", srv, alice.cli, "POST", "/keys/query", map[string]any{"device_keys": map[string]any{string(au): []string{}}})
	if get(body, "user_signing_keys", string(au)) == nil {
		t.Fatalf("alice does not see her user-signing key: %v", body)
	}

	// Signatures: alice signs her device with her self-signing key.
	dev := string(alice.cli.DeviceID)
	signedDev := ssk.sign(t, alice.deviceKeys(t), au, "ed25519:"+ssk.pub)
	forgedDev := newSigner(t).sign(t, alice.deviceKeys(t), au, "ed25519:"+ssk.pub)
	tampered := ssk.sign(t, alice.deviceKeys(t), au, "ed25519:"+ssk.pub)
	tampered["algorithms"] = []string{"other"}
	body = mustDo(t, "signatures", srv, alice.cli, "POST", "/keys/signatures/upload", map[string]any{
		string(au): map[string]any{dev: signedDev, "NODEVICE": signedDev}})
	if get(body, "failures", string(au), "NODEVICE", "errcode") != "M_NOT_FOUND" || get(body, "failures", string(au), dev) != nil {
		t.Fatalf("failures %v", body)
	}
	body = mustDo(t, "forged signature", srv, alice.cli, "POST", "/keys/signatures/upload", map[string]any{
		string(au): map[string]any{dev: forgedDev}})
	if get(body, "failures", string(au), dev, "errcode") != "M_INVALID_SIGNATURE" {
		t.Fatalf("forged: %v", body)
	}
	body = mustDo(t, "tampered object", srv, alice.cli, "POST", "/keys/signatures/upload", map[string]any{
		string(au): map[string]any{dev: tampered}})
	if get(body, "failures", string(au), dev, "errcode") != "M_INVALID_PARAM" {
		t.Fatalf("tampered: %v", body)
	}
	// Bob sees alice's device signed by her self-signing key.
	body = mustDo(t, "bob queries", srv, bob.cli, "POST", "/keys/query", map[string]any{"device_keys": map[string]any{string(au): []string{}}})
	if get(body, "device_keys", string(au), dev, "signatures", string(au), "ed25519:"+ssk.pub) == nil {
		t.Fatalf("no cross-signing signature on alice's device: %v", body)
	}

	// Bob has no user-signing key: he cannot sign alice's master key.
	aliceMaster := crossKey(t, au, "master", master, nil)
	bobUSK := newSigner(t)
	body = mustDo(t, "bob signs without a user-signing key", srv, bob.cli, "POST", "/keys/signatures/upload", map[string]any{
		string(au): map[string]any{master.pub: bobUSK.sign(t, aliceMaster, bu, "ed25519:"+bobUSK.pub)}})
	if get(body, "failures", string(au), master.pub, "errcode") != "M_INVALID_PARAM" {
		t.Fatalf("bob without USK: %v", body)
	}
	// With one, it works, and only bob sees his signature.
	bobMaster := newSigner(t)
	mustDo(t, "bob's keys", srv, bob.cli, "POST", "/keys/device_signing/upload", map[string]any{
		"master_key":       crossKey(t, bu, "master", bobMaster, nil),
		"user_signing_key": crossKey(t, bu, "user_signing", bobUSK, bobMaster)})
	body = mustDo(t, "bob signs alice", srv, bob.cli, "POST", "/keys/signatures/upload", map[string]any{
		string(au): map[string]any{master.pub: bobUSK.sign(t, aliceMaster, bu, "ed25519:"+bobUSK.pub)}})
	if f, _ := body["failures"].(map[string]any); len(f) != 0 {
		t.Fatalf("bob signs alice: %v", body)
	}
	body = mustDo(t, "bob queries", srv, bob.cli, "POST", "/keys/query", map[string]any{"device_keys": map[string]any{string(au): []string{}}})
	if get(body, "master_keys", string(au), "signatures", string(bu), "ed25519:"+bobUSK.pub) == nil {
		t.Fatalf("bob does not see his signature: %v", body)
	}
	body = mustDo(t, "alice queries", srv, alice.cli, "POST", "/keys/query", map[string]any{"device_keys": map[string]any{string(au): []string{}}})
	if get(body, "master_keys", string(au), "signatures", string(bu)) != nil {
		t.Fatalf("alice sees bob's signature: %v", body)
	}
	// Bob cannot sign alice's devices.
	body = mustDo(t, "bob signs alice's device", srv, bob.cli, "POST", "/keys/signatures/upload", map[string]any{
		string(au): map[string]any{dev: bobUSK.sign(t, alice.deviceKeys(t), bu, "ed25519:"+bobUSK.pub)}})
	if get(body, "failures", string(au), dev, "errcode") != "M_FORBIDDEN" {
		t.Fatalf("bob signs alice's device: %v", body)
	}
	// A body that is not an object.
	code, body = do(t, srv, alice.cli, "POST", "/keys/signatures/upload", "[]")
	wantStatus(t, "signatures not an object", code, body, 400, "M_NOT_JSON")
}
