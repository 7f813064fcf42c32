// Package e2efed tests federation between real tributary processes on
// loopback: each has a federation listener with a self-signed certificate
// and the server name 127.0.0.1:PORT (testserver.Options.Federation).
package e2efed

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// insecure reaches the federation listeners, whose certificates are self-signed.
var insecure = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
	TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback test servers

func start(t *testing.T, args ...string) *testserver.Server {
	t.Helper()
	return testserver.Start(t, testserver.Options{Federation: true,
		Args: append([]string{"--enable-registration", "--disable-rate-limits"}, args...)})
}

// do sends a request to a server's federation listener and returns the
// status and body.
func do(t *testing.T, method, u string, header http.Header, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := insecure.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// serverKeys fetches a server's own key response over its federation
// listener and checks it: the server's name, valid for a while, and signed
// by every key it lists.
func serverKeys(t *testing.T, s *testserver.Server) *federation.ServerKeyResponse {
	t.Helper()
	status, body := do(t, http.MethodGet, "https://"+s.FederationAddr+"/_matrix/key/v2/server", nil, nil)
	if status != http.StatusOK {
		t.Fatalf("key/v2/server: %d %s", status, body)
	}
	var skr federation.ServerKeyResponse
	if err := json.Unmarshal(body, &skr); err != nil {
		t.Fatal(err)
	}
	if skr.ServerName != s.Opts.ServerName || len(skr.VerifyKeys) != 1 {
		t.Fatalf("key response of %s: %s", s.Opts.ServerName, body)
	}
	if until := skr.ValidUntilTS.Time; until.Before(time.Now().Add(time.Hour)) || until.After(time.Now().Add(8*24*time.Hour)) {
		t.Fatalf("valid_until_ts %v is not within an hour and seven days", until)
	}
	if err := skr.VerifySelfSignature(); err != nil {
		t.Fatalf("self-signature: %v\n%s", err, body)
	}
	return &skr
}

// checkNotarised checks that a notary answer holds origin's key response,
// signed by origin's key and by the notary's.
func checkNotarised(t *testing.T, what string, body []byte, origin, notary *federation.ServerKeyResponse) {
	t.Helper()
	var resp struct {
		ServerKeys []json.RawMessage `json:"server_keys"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || len(resp.ServerKeys) != 1 {
		t.Fatalf("%s: %s (%v)", what, body, err)
	}
	got := resp.ServerKeys[0]
	var skr federation.ServerKeyResponse
	if err := json.Unmarshal(got, &skr); err != nil || skr.ServerName != origin.ServerName {
		t.Fatalf("%s: keys of %q, want %q", what, skr.ServerName, origin.ServerName)
	}
	for keyID, k := range origin.VerifyKeys {
		if skr.VerifyKeys[keyID].Key != k.Key {
			t.Fatalf("%s: key %s is %q, want %q", what, keyID, skr.VerifyKeys[keyID].Key, k.Key)
		}
		if err := signutil.VerifyJSON(origin.ServerName, keyID, k.Key, got); err != nil {
			t.Fatalf("%s: origin's signature: %v", what, err)
		}
	}
	for keyID, k := range notary.VerifyKeys {
		if err := signutil.VerifyJSON(notary.ServerName, keyID, k.Key, got); err != nil {
			t.Fatalf("%s: notary's signature: %v", what, err)
		}
	}
}

// Server B, asked as a notary for A's keys, fetches them from A
// (/key/v2/server), verifies and caches them, and hands them on with A's
// signature and its own; after A is gone and B restarted, B still answers
// from its persisted cache.
func TestNotaryFetchesVerifiesAndCaches(t *testing.T) {
	a, b := start(t), start(t)
	aKeys, bKeys := serverKeys(t, a), serverKeys(t, b)
	var aKeyID id.KeyID
	for k := range aKeys.VerifyKeys {
		aKeyID = k
	}

	status, body := do(t, http.MethodGet, "https://"+b.FederationAddr+"/_matrix/key/v2/query/"+url.PathEscape(a.Opts.ServerName), nil, nil)
	if status != http.StatusOK {
		t.Fatalf("GET query: %d %s", status, body)
	}
	checkNotarised(t, "GET /key/v2/query", body, aKeys, bKeys)

	post, _ := json.Marshal(map[string]any{"server_keys": map[string]any{a.Opts.ServerName: map[string]any{
		string(aKeyID): map[string]any{"minimum_valid_until_ts": time.Now().UnixMilli()}}}})
	status, body = do(t, http.MethodPost, "https://"+b.FederationAddr+"/_matrix/key/v2/query", nil, post)
	if status != http.StatusOK {
		t.Fatalf("POST query: %d %s", status, body)
	}
	checkNotarised(t, "POST /key/v2/query", body, aKeys, bKeys)

	// The same through the plain listener (behind a reverse proxy).
	status, body = do(t, http.MethodGet, b.URL+"/_matrix/key/v2/query/"+url.PathEscape(a.Opts.ServerName), nil, nil)
	if status != http.StatusOK {
		t.Fatalf("GET query on the plain listener: %d %s", status, body)
	}
	checkNotarised(t, "GET /key/v2/query (plain listener)", body, aKeys, bKeys)

	a.Stop()
	b = b.Restart(false)
	bKeys = serverKeys(t, b)
	status, body = do(t, http.MethodGet, "https://"+b.FederationAddr+"/_matrix/key/v2/query/"+url.PathEscape(a.Opts.ServerName), nil, nil)
	if status != http.StatusOK {
		t.Fatalf("GET query with A down: %d %s", status, body)
	}
	checkNotarised(t, "GET /key/v2/query from the cache", body, aKeys, bKeys)

	// Bad input is a Matrix error, not a 500.
	status, body = do(t, http.MethodGet, "https://"+b.FederationAddr+"/_matrix/key/v2/query/not%20a%20server", nil, nil)
	wantError(t, "query for a bad server name", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
	status, body = do(t, http.MethodPost, "https://"+b.FederationAddr+"/_matrix/key/v2/query", nil, []byte(`{"server_keys":`))
	wantError(t, "query with broken JSON", status, body, http.StatusBadRequest, "M_NOT_JSON")
}

// A server C whose keys nobody can fetch is not notarised: an empty list.
func TestNotaryUnknownServer(t *testing.T) {
	b := start(t)
	status, body := do(t, http.MethodGet, "https://"+b.FederationAddr+"/_matrix/key/v2/query/127.0.0.1:1", nil, nil)
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"server_keys":[]`)) {
		t.Fatalf("query for an unreachable server: %d %s", status, body)
	}
}

func wantError(t *testing.T, what string, status int, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	var e mautrix.RespError
	if err := json.Unmarshal(body, &e); err != nil || status != wantStatus || e.ErrCode != wantCode {
		t.Fatalf("%s: %d %s; want %d %s", what, status, body, wantStatus, wantCode)
	}
}

// Outbound requests go through the SSRF guard: a server not told that
// loopback may be reached does not fetch A's keys from 127.0.0.1 (with
// --federation-allow-range, TestNotaryFetchesVerifiesAndCaches does).
func TestKeyFetchesGuarded(t *testing.T) {
	a := start(t)
	guarded := testserver.Start(t, testserver.Options{})
	status, body := do(t, http.MethodGet, guarded.URL+"/_matrix/key/v2/query/"+url.PathEscape(a.Opts.ServerName), nil, nil)
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"server_keys":[]`)) {
		t.Fatalf("query for a loopback server without the allow-list: %d %s", status, body)
	}
}
