package e2efed

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/canonicaljson"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// signedKeys signs obj (without signatures) with priv as user's key keyID.
func signedKeys(t *testing.T, priv ed25519.PrivateKey, user id.UserID, keyID string, obj map[string]any) map[string]any {
	t.Helper()
	raw, err := canonicaljson.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for k, v := range obj {
		out[k] = v
	}
	out["signatures"] = map[string]any{user.String(): map[string]any{keyID: base64.RawStdEncoding.EncodeToString(ed25519.Sign(priv, raw))}}
	return out
}

// uploadDevice uploads bob's device keys and one one-time key.
func uploadDevice(t *testing.T, s *testserver.Server, cli *mautrix.Client) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dev := string(cli.DeviceID)
	dk := signedKeys(t, priv, cli.UserID, "ed25519:"+dev, map[string]any{"user_id": cli.UserID, "device_id": dev,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]any{"ed25519:" + dev: base64.RawStdEncoding.EncodeToString(pub), "curve25519:" + dev: "curve" + dev}})
	otk := signedKeys(t, priv, cli.UserID, "ed25519:"+dev, map[string]any{"key": "otk-of-" + dev})
	code, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", cli.AccessToken, map[string]any{
		"device_keys": dk, "one_time_keys": map[string]any{"signed_curve25519:AAAAAQ": otk}})
	if code != http.StatusOK {
		t.Fatalf("upload: %d %v", code, body)
	}
}

// alice of A asks for the keys of bob of B: A queries B's
// /user/keys/query and claims with /user/keys/claim; B answers from its
// users' keys. B's /user/devices lists bob's device.
func TestRemoteKeysQueryClaim(t *testing.T) {
	a, b := start(t), start(t)
	alice := register(t, a, "alice")
	bob := register(t, b, "bob")
	uploadDevice(t, b, bob)
	code, raw := a.DoRaw(t, http.MethodPost, "/_matrix/client/v3/keys/query", alice.AccessToken, map[string]any{
		"device_keys": map[string]any{bob.UserID.String(): []string{}}})
	dk := gjson.GetBytes(raw, "device_keys."+gjson.Escape(bob.UserID.String())+"."+gjson.Escape(string(bob.DeviceID)))
	if code != http.StatusOK || dk.Get("user_id").Str != bob.UserID.String() || dk.Get("keys").Get(gjson.Escape("curve25519:"+string(bob.DeviceID))).Str == "" {
		t.Fatalf("alice's query of bob's keys: %d %s", code, raw)
	}
	if len(gjson.GetBytes(raw, "failures").Map()) != 0 {
		t.Fatalf("failures: %s", raw)
	}
	code, raw = a.DoRaw(t, http.MethodPost, "/_matrix/client/v3/keys/claim", alice.AccessToken, map[string]any{
		"one_time_keys": map[string]any{bob.UserID.String(): map[string]any{string(bob.DeviceID): "signed_curve25519"}}})
	otks := gjson.GetBytes(raw, "one_time_keys."+gjson.Escape(bob.UserID.String())+"."+gjson.Escape(string(bob.DeviceID)))
	if code != http.StatusOK || otks.Get(gjson.Escape("signed_curve25519:AAAAAQ")+".key").Str != "otk-of-"+string(bob.DeviceID) {
		t.Fatalf("alice's claim of bob's key: %d %s", code, raw)
	}
	// A server that is not there: a failure, not an error.
	code, raw = a.DoRaw(t, http.MethodPost, "/_matrix/client/v3/keys/query", alice.AccessToken, map[string]any{
		"device_keys": map[string]any{"@zed:127.0.0.1:1": []string{}}})
	if code != http.StatusOK || !gjson.GetBytes(raw, "failures."+gjson.Escape("127.0.0.1:1")).Exists() {
		t.Fatalf("query of an unreachable server: %d %s", code, raw)
	}

	// B's device list of bob, as A would ask for it.
	c := newFakeServer(t)
	uri := "/_matrix/federation/v1/user/devices/" + url.PathEscape(bob.UserID.String())
	status, resp := do(t, http.MethodGet, "https://"+b.FederationAddr+uri, c.authHeader(t, c.key, http.MethodGet, uri, b.Opts.ServerName), nil)
	if status != http.StatusOK || gjson.GetBytes(resp, "devices.0.device_id").Str != string(bob.DeviceID) ||
		!gjson.GetBytes(resp, "devices.0.keys.keys").Exists() {
		t.Fatalf("user/devices: %d %s", status, resp)
	}
}
