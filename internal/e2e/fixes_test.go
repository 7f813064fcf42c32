package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// Wrong passwords in UIA stages count against the account like failed
// logins: a stolen access token does not allow unlimited guessing.
func TestUIAPasswordGuessesAreLimited(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	if out, err := srv.Run(t, "", "user", "add", "guarded", "--password", defaultPassword); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	cli := login(t, srv, passwordLogin("guarded", defaultPassword))
	tok := cli.AccessToken
	for range 3 {
		code, body := srv.Do(t, "POST", "/_matrix/client/v3/account/password", tok, map[string]any{
			"new_password": "another-password", "auth": passwordAuth("guarded", "wrong-guess", "")})
		wantStatus(t, "wrong guess", code, body, http.StatusUnauthorized, "M_FORBIDDEN")
	}
	code, body := srv.Do(t, "POST", "/_matrix/client/v3/account/password", tok, map[string]any{
		"new_password": "another-password", "auth": passwordAuth("guarded", defaultPassword, "")})
	wantStatus(t, "4th attempt, right password", code, body, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
	if ms, _ := body["retry_after_ms"].(float64); ms <= 0 {
		t.Fatalf("retry_after_ms = %v", body["retry_after_ms"])
	}
}

// The config written on first start keeps the defaults: flags of that one
// run (open registration, no limits, a database password) do not persist.
func TestFirstConfigDoesNotPersistFlags(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Args: []string{"--enable-registration", "--disable-rate-limits"}})
	srv.Stop()
	raw, err := os.ReadFile(filepath.Join(srv.DataDir, "tributary.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	for _, want := range []string{"  enabled: false\n", "listen: \"127.0.0.1:8008\"", "server_name: \"localhost\""} {
		if !strings.Contains(cfg, want) {
			t.Errorf("first config lacks %q", want)
		}
	}
	if strings.Contains(cfg, "rate_limits:\n  # false (or --disable-rate-limits) turns every limit off, for load tests.\n  enabled: false") {
		t.Error("first config disabled rate limits")
	}
	// A plain restart on that directory has registration closed again.
	again := testserver.Start(t, testserver.Options{DataDir: srv.DataDir})
	code, body := again.Do(t, "POST", "/_matrix/client/v3/register", "", map[string]any{
		"username": "late", "password": defaultPassword, "auth": map[string]any{"type": "m.login.dummy"}})
	wantStatus(t, "register after restart", code, body, http.StatusForbidden, "M_FORBIDDEN")
}

// With --listen on port 0 the advertised base URL names the real port.
func TestWellKnownNamesRealPort(t *testing.T) {
	srv := startClosed(t)
	code, body := srv.Do(t, "GET", "/.well-known/matrix/client", "", nil)
	if code != http.StatusOK {
		t.Fatalf("well-known: %d", code)
	}
	hs, _ := body["m.homeserver"].(map[string]any)
	if got := hs["base_url"]; got != srv.URL {
		t.Fatalf("base_url = %v, want %s", got, srv.URL)
	}
}
