package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/tributary-hs/tributary/internal/testserver"
)

func TestEdge(t *testing.T) {
	srv := startOpen(t, "--metrics-listen", "127.0.0.1:0")
	pat := register(t, srv, "pat", defaultPassword)

	t.Run("unknown route and method", func(t *testing.T) {
		for _, path := range []string{"/_matrix/client/v3/nope", "/_matrix/client/v3/login/", "/nope", "/_matrix/client/v9/login"} {
			st, body := srv.Do(t, "GET", path, "", nil)
			wantStatus(t, "GET "+path, st, body, http.StatusNotFound, "M_UNRECOGNIZED")
		}
		for _, req := range []struct{ method, path string }{
			{"DELETE", "/_matrix/client/v3/login"}, {"PUT", "/_matrix/client/v3/account/whoami"},
			{"GET", "/_matrix/client/v3/refresh"}, {"POST", "/_matrix/client/versions"},
		} {
			st, body := srv.Do(t, req.method, req.path, "", nil)
			wantStatus(t, req.method+" "+req.path, st, body, http.StatusMethodNotAllowed, "M_UNRECOGNIZED")
		}
		_, err := srv.Client(t).MakeRequest(t.Context(), "PATCH", srv.URL+"/_matrix/client/v3/login", nil, nil)
		wantErr(t, err, mMethodNotAllowed)
	})

	t.Run("r0 prefix", func(t *testing.T) {
		st, body := srv.Do(t, "GET", "/_matrix/client/r0/account/whoami", pat.AccessToken, nil)
		wantStatus(t, "r0 whoami", st, body, http.StatusOK, "")
		if body["user_id"] != string(pat.UserID) {
			t.Fatalf("r0 whoami %v", body)
		}
	})

	t.Run("bad bodies", func(t *testing.T) {
		for name, raw := range map[string]string{"truncated": `{"type": "m.login.password"`, "not JSON": "hello",
			"array": `[{"type": "m.login.password"}]`, "empty": "", "two objects": "{} {}"} {
			st, body := srv.Do(t, "POST", "/_matrix/client/v3/login", "", raw)
			wantStatus(t, "login body "+name, st, body, http.StatusBadRequest, "M_NOT_JSON")
		}
		st, body := srv.Do(t, "POST", "/_matrix/client/v3/login", "", `{"type": 5}`)
		wantStatus(t, "numeric type", st, body, http.StatusBadRequest, "M_BAD_JSON")
		st, body = srv.Do(t, "POST", "/_matrix/client/v3/login", "", `{"type": "m.login.password", "identifier": "pat"}`)
		wantStatus(t, "string identifier", st, body, http.StatusBadRequest, "M_BAD_JSON")
		st, body = srv.Do(t, "POST", "/_matrix/client/v3/register", "", `{"username": ["pat"]}`)
		wantStatus(t, "list username", st, body, http.StatusBadRequest, "M_BAD_JSON")
		st, body = srv.Do(t, "POST", "/_matrix/client/v3/register", "", `{"username": "x", "auth": 3}`)
		wantStatus(t, "numeric auth", st, body, http.StatusBadRequest, "M_BAD_JSON")
	})

	t.Run("body too large", func(t *testing.T) {
		big := append(append([]byte(`{"type": "m.login.password", "password": "`), bytes.Repeat([]byte("a"), 1<<20)...), `"}`...)
		// With a Content-Length the answer comes before the body is read. The
		// client asks first (Expect: 100-continue): without it, the server's
		// close of a connection with unread bytes may reset it before the
		// client has read the 413.
		asking := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 30 * time.Second}}
		resp, raw := rawRequest(t, asking, "POST", srv.URL+"/_matrix/client/v3/login",
			http.Header{"Content-Type": {"application/json"}, "Expect": {"100-continue"}}, bytes.NewReader(big))
		wantStatus(t, "large body", resp.StatusCode, decode(t, raw), http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
		// …and chunked, where the limit is found while reading.
		resp, raw = rawRequest(t, nil, "POST", srv.URL+"/_matrix/client/v3/login", jsonHeader,
			io.MultiReader(bytes.NewReader(big)))
		wantStatus(t, "large chunked body", resp.StatusCode, decode(t, raw), http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
		resp, raw = rawRequest(t, nil, "PUT", srv.URL+"/_matrix/client/v3/user/"+string(pat.UserID)+"/account_data/com.example.big",
			http.Header{"Authorization": {"Bearer " + pat.AccessToken}}, io.MultiReader(bytes.NewReader(big)))
		wantStatus(t, "large chunked account data", resp.StatusCode, decode(t, raw), http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
		// Just under the limit is fine (and then a wrong password).
		small := append(append([]byte(`{"type": "m.login.password", "user": "pat", "password": "`),
			bytes.Repeat([]byte("a"), 1<<20-100)...), `"}`...)
		resp, raw = rawRequest(t, nil, "POST", srv.URL+"/_matrix/client/v3/login", jsonHeader, bytes.NewReader(small))
		wantStatus(t, "body under the limit", resp.StatusCode, decode(t, raw), http.StatusForbidden, "M_FORBIDDEN")
	})

	t.Run("CORS", func(t *testing.T) {
		resp, raw := rawRequest(t, nil, "OPTIONS", srv.URL+"/_matrix/client/v3/account/whoami", http.Header{
			"Origin": {"https://app.example.org"}, "Access-Control-Request-Method": {"GET"},
			"Access-Control-Request-Headers": {"authorization"}}, nil)
		if resp.StatusCode != http.StatusNoContent || len(raw) != 0 {
			t.Fatalf("preflight: HTTP %d %q, want 204 without body", resp.StatusCode, raw)
		}
		checkCORS(t, "preflight", resp.Header)
		// Preflight of a route that does not exist is answered too (before routing).
		resp, _ = rawRequest(t, nil, "OPTIONS", srv.URL+"/_matrix/client/v3/nope", nil, nil)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("preflight of an unknown route: HTTP %d", resp.StatusCode)
		}
		resp, _ = rawRequest(t, nil, "GET", srv.URL+"/_matrix/client/versions", nil, nil)
		checkCORS(t, "GET /versions", resp.Header)
		resp, _ = rawRequest(t, nil, "GET", srv.URL+"/_matrix/client/v3/account/whoami", nil, nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("whoami without token: HTTP %d", resp.StatusCode)
		}
		checkCORS(t, "401 answer", resp.Header)
		resp, _ = rawRequest(t, nil, "GET", srv.URL+"/nope", nil, nil)
		checkCORS(t, "404 answer", resp.Header)
	})

	t.Run("health and metrics", func(t *testing.T) {
		resp, raw := rawRequest(t, nil, "GET", srv.URL+"/health", nil, nil)
		if resp.StatusCode != http.StatusOK || string(raw) != "OK" {
			t.Fatalf("/health: HTTP %d %q", resp.StatusCode, raw)
		}
		// Not on the client port: request counts and process details are
		// for the operator's metrics listener only.
		resp, raw = rawRequest(t, nil, "GET", srv.URL+"/metrics", nil, nil)
		if resp.StatusCode != http.StatusNotFound || decode(t, raw)["errcode"] != "M_UNRECOGNIZED" {
			t.Fatalf("/metrics on the client port: HTTP %d %s", resp.StatusCode, raw)
		}
		if srv.MetricsURL() == "" {
			t.Fatal("serve --metrics-listen logged no metrics listener")
		}
		resp, raw = rawRequest(t, nil, "GET", srv.MetricsURL()+"/metrics", nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/metrics: HTTP %d", resp.StatusCode)
		}
		var found bool
		for _, l := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(l, "tributary_http_requests_total{") && strings.Contains(l, `route="/health"`) &&
				strings.Contains(l, `status="200"`) {
				found = true
			}
		}
		if !found {
			t.Fatalf("/metrics has no tributary_http_requests_total for /health:\n%s", raw)
		}
		// Unknown paths are counted under one label, not one per path.
		if strings.Contains(string(raw), "/_matrix/client/v3/nope") {
			t.Fatal("/metrics labels a raw unknown path")
		}
	})

	t.Run("versions", func(t *testing.T) {
		v, err := srv.Client(t).Versions(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if v.Versions == nil {
			t.Fatal("versions is null, want an array")
		}
		st, body := srv.Do(t, "GET", "/_matrix/client/versions", "", nil)
		wantStatus(t, "versions", st, body, http.StatusOK, "")
		if _, ok := body["versions"].([]any); !ok {
			t.Fatalf("versions answer %v has no versions array", body)
		}
		if _, ok := body["unstable_features"].(map[string]any); !ok {
			t.Fatalf("versions answer %v has no unstable_features object", body)
		}
	})

	t.Run("well-known client", func(t *testing.T) {
		st, body := srv.Do(t, "GET", "/.well-known/matrix/client", "", nil)
		wantStatus(t, "/.well-known/matrix/client", st, body, http.StatusOK, "")
		hs, _ := body["m.homeserver"].(map[string]any)
		if base, _ := hs["base_url"].(string); !strings.HasPrefix(base, "http://") || strings.HasSuffix(base, "/") {
			t.Fatalf("well-known client %v, want an http:// base_url without trailing slash", body)
		}
	})

	t.Run("well-known server not configured", func(t *testing.T) {
		st, body := srv.Do(t, "GET", "/.well-known/matrix/server", "", nil)
		wantStatus(t, "/.well-known/matrix/server", st, body, http.StatusNotFound, "M_NOT_FOUND")
	})

	t.Run("capabilities", func(t *testing.T) {
		_, err := srv.Client(t).Capabilities(t.Context())
		wantErr(t, err, mautrix.MMissingToken)
		caps, err := pat.Capabilities(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if caps.ChangePassword == nil || !caps.ChangePassword.Enabled {
			t.Fatalf("m.change_password %+v, want enabled", caps.ChangePassword)
		}
		if caps.ThreePIDChanges == nil || caps.ThreePIDChanges.Enabled {
			t.Fatalf("m.3pid_changes %+v, want disabled", caps.ThreePIDChanges)
		}
		if caps.GetLoginToken == nil || !caps.GetLoginToken.Enabled {
			t.Fatalf("m.get_login_token %+v, want enabled", caps.GetLoginToken)
		}
	})
}

func checkCORS(t *testing.T, what string, h http.Header) {
	t.Helper()
	if got := h.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Fatalf("%s: Access-Control-Allow-Origin %q, want *", what, got)
	}
	methods := strings.Split(strings.ReplaceAll(h.Get("Access-Control-Allow-Methods"), " ", ""), ",")
	for _, m := range []string{"GET", "POST", "PUT", "DELETE", "OPTIONS"} {
		if !slices.Contains(methods, m) {
			t.Fatalf("%s: Access-Control-Allow-Methods %v lacks %s", what, methods, m)
		}
	}
	allowed := strings.ToLower(h.Get("Access-Control-Allow-Headers"))
	for _, hd := range []string{"authorization", "content-type", "x-requested-with"} {
		if !strings.Contains(allowed, hd) {
			t.Fatalf("%s: Access-Control-Allow-Headers %q lacks %s", what, allowed, hd)
		}
	}
}

// TestConfiguredServer runs a server whose data directory already holds a
// configuration file: public_baseurl and the delegated server name come from it.
func TestConfiguredServer(t *testing.T) {
	dir := t.TempDir()
	cfg := "public_baseurl: https://matrix.example.org/\nwell_known:\n  server: fed.example.org:8448\n"
	if err := os.WriteFile(filepath.Join(dir, "tributary.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{DataDir: dir, Args: openArgs})

	st, body := srv.Do(t, "GET", "/.well-known/matrix/client", "", nil)
	wantStatus(t, "/.well-known/matrix/client", st, body, http.StatusOK, "")
	hs, _ := body["m.homeserver"].(map[string]any)
	if hs["base_url"] != "https://matrix.example.org" {
		t.Fatalf("well-known client %v, want base_url https://matrix.example.org", body)
	}
	st, body = srv.Do(t, "GET", "/.well-known/matrix/server", "", nil)
	wantStatus(t, "/.well-known/matrix/server", st, body, http.StatusOK, "")
	if body["m.server"] != "fed.example.org:8448" {
		t.Fatalf("well-known server %v", body)
	}
	register(t, srv, "quinn", defaultPassword)
	res, err := srv.Client(t).Login(t.Context(), passwordLogin("quinn", defaultPassword))
	if err != nil {
		t.Fatal(err)
	}
	if res.WellKnown == nil || res.WellKnown.Homeserver.BaseURL != "https://matrix.example.org" {
		t.Fatalf("login well_known %+v", res.WellKnown)
	}
	// The file was used as it is, not replaced by a generated one.
	raw, err := os.ReadFile(filepath.Join(dir, "tributary.yaml"))
	if err != nil || string(raw) != cfg {
		t.Fatalf("tributary.yaml changed: %q %v", raw, err)
	}
}
