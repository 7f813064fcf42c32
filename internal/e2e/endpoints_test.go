package e2e

import (
	"bufio"
	"net/http"
	"os"
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

// TestEveryClientServerEndpointIsServed: every Client-Server API endpoint
// of the spec (testdata/cs_endpoints.tsv, generated from the spec's
// OpenAPI files) has a handler — the server never answers one with the
// "unrecognised endpoint" error, the basis of the versions /versions
// lists. Requests carry no token and an empty body: the answers are the
// handlers' own (401, 400, 404 M_NOT_FOUND…), which is all this checks.
func TestEveryClientServerEndpointIsServed(t *testing.T) {
	srv := startOpen(t)
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
		if len(fields) < 3 {
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
		code, resp := srv.Do(t, method, pathParams.Replace(path), "", body)
		if (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) && resp["errcode"] == "M_UNRECOGNIZED" {
			t.Errorf("%s (spec %s, %s) is not served: %d %v", key, fields[0], fields[3], code, resp)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 150 {
		t.Fatalf("only %d endpoints checked", n)
	}
	t.Logf("%d endpoints served", n)
}
