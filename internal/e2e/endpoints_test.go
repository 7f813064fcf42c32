package e2e

import (
	"bufio"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// notServedOnPurpose are the spec's endpoints whose "404 M_UNRECOGNIZED"
// (or plain 404) answer is what the spec prescribes for a server without
// the feature.
var notServedOnPurpose = map[string]string{
	"GET /_matrix/client/v1/auth_metadata":  "404 M_UNRECOGNIZED means: no OAuth 2.0 API (spec)",
	"GET /.well-known/matrix/support":       "404 means: no support information (spec)",
	"GET /.well-known/matrix/policy_server": "served by policy servers, not necessarily homeservers (spec)",
}

// pathParams fill the spec's path templates with well-formed values.
var pathParams = strings.NewReplacer(
	"{appserviceId}", "bridge", "{deviceId}", "DEVICE", "{eventId}", "$event", "{eventType}", "m.room.message",
	"{fileName}", "f.txt", "{filterId}", "1", "{idpId}", "idp", "{keyName}", "displayname", "{kind}", "global",
	"{mediaId}", "abcdef", "{networkId}", "irc", "{protocol}", "irc", "{receiptType}", "m.read", "{relType}", "m.thread",
	"{roomAlias}", "%23alias:localhost", "{roomIdOrAlias}", "!room:localhost", "{roomId}", "!room:localhost",
	"{ruleId}", "rule", "{serverName}", "localhost", "{sessionId}", "session", "{stateKey}", "", "{tag}", "u.tag",
	"{txnId}", "txn1", "{type}", "m.type", "{userId}", "@someone:localhost", "{version}", "1",
)

// endsSession are the endpoints that invalidate the access token they are
// called with (or all of its user's); each is called as a new user.
var endsSession = map[string]bool{
	"POST /_matrix/client/v3/logout":     true,
	"POST /_matrix/client/v3/logout/all": true,
}

// forAppServices are the endpoints only an application service may call;
// they get the token of the appservice registered as "bridge".
var forAppServices = map[string]bool{
	"PUT /_matrix/client/v3/directory/list/appservice/{networkId}/{roomId}": true,
	"POST /_matrix/client/v1/appservice/{appserviceId}/ping":                true,
}

// longPolls wait for news unless told not to.
var longPolls = map[string]string{
	"GET /_matrix/client/v3/sync":   "?timeout=0",
	"GET /_matrix/client/v3/events": "?timeout=0",
}

const endpointsASToken = "as-token-for-the-endpoint-test"

// endpointsRegistration registers the appservice "bridge" ({appserviceId}).
const endpointsRegistration = `id: bridge
url: null
as_token: ` + endpointsASToken + `
hs_token: hs-token-for-the-endpoint-test
sender_localpart: bridgebot
namespaces:
  users:
    - regex: '@_bridge_.*:localhost'
      exclusive: true
  aliases: []
  rooms: []
`

// TestEveryClientServerEndpointIsServed: every Client-Server API endpoint
// of the spec (testdata/cs_endpoints.tsv, generated from the spec's
// OpenAPI files) has a handler — the server never answers one with the
// "unrecognised endpoint" error (404 or 405 M_UNRECOGNIZED), the basis of
// the versions /versions lists. Requests carry a valid access token, so the
// auth middleware lets them through to the handler (a route that exists only
// behind the middleware, and then answers "unrecognised", fails), and an
// empty body: the answers are the handlers' own (400, 403, 404 M_NOT_FOUND,
// 401 for user-interactive auth…), which is all this checks. Endpoints for
// appservices get an appservice's token, the ones ending sessions another
// user's.
func TestEveryClientServerEndpointIsServed(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "registration.yaml")
	if err := os.WriteFile(reg, []byte(endpointsRegistration), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startOpen(t, "--appservice", reg)
	const local = "endpoints"
	token := register(t, srv, local, defaultPassword).AccessToken
	f, err := os.Open("testdata/cs_endpoints.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, "\t")
		if len(fields) < 4 {
			t.Fatalf("bad line %q", line)
		}
		method, path := fields[1], fields[2]
		key := method + " " + path
		if _, skip := notServedOnPurpose[key]; skip {
			continue
		}
		n++
		var body any
		if method == http.MethodPut || method == http.MethodPost {
			body = map[string]any{}
		}
		tok := token
		switch {
		case endsSession[key]:
			tok = register(t, srv, "leaver"+strconv.Itoa(n), defaultPassword).AccessToken
		case forAppServices[key]:
			tok = endpointsASToken
		}
		code, resp := srv.Do(t, method, pathParams.Replace(path)+longPolls[key], tok, body)
		switch errcode := resp["errcode"]; {
		case (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) && errcode == "M_UNRECOGNIZED":
			t.Errorf("%s (spec %s, %s) is not served: %d %v", key, fields[0], fields[3], code, resp)
		case code == http.StatusUnauthorized && (errcode == "M_UNKNOWN_TOKEN" || errcode == "M_MISSING_TOKEN"):
			// The handler was never reached: nothing is known about it.
			t.Errorf("%s (spec %s, %s): the valid access token was refused: %d %v", key, fields[0], fields[3], code, resp)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 150 {
		t.Fatalf("only %d endpoints checked", n)
	}
	// No endpoint ended the session the others were sent with.
	if code, resp := srv.Do(t, http.MethodGet, "/_matrix/client/v3/account/whoami", token, nil); code != http.StatusOK {
		t.Fatalf("the access token no longer works after the endpoints: %d %v", code, resp)
	}
	t.Logf("%d endpoints served", n)
}
