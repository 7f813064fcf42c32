package e2e

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

const tokensPath = "/_synapse/admin/v1/registration_tokens"

// tokenRegister sends one registration request whose auth is the
// m.login.registration_token stage with token.
func tokenRegister(t testing.TB, srv *testserver.Server, username, token, session string) (int, map[string]any) {
	t.Helper()
	auth := map[string]any{"type": "m.login.registration_token", "token": token}
	if session != "" {
		auth["session"] = session
	}
	return srv.Do(t, "POST", "/_matrix/client/v3/register", "", map[string]any{
		"username": username, "password": defaultPassword, "auth": auth})
}

func tokenValid(t testing.TB, srv *testserver.Server, token string) bool {
	t.Helper()
	st, body := srv.Do(t, "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token="+token, "", nil)
	wantStatus(t, "validity of "+token, st, body, http.StatusOK, "")
	v, ok := body["valid"].(bool)
	if !ok {
		t.Fatalf("validity answer %v has no boolean valid", body)
	}
	return v
}

func TestRegistrationTokens(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Args: openArgs,
		Env: []string{"TRIBUTARY_REGISTRATION_REQUIRES_TOKEN=true"}})
	if out, err := srv.Run(t, "", "user", "add", "admin", "--password", "admin password", "--admin"); err != nil {
		t.Fatalf("user add admin: %v\n%s", err, out)
	}
	admin := login(t, srv, passwordLogin("admin", "admin password")).AccessToken

	// A token for one registration.
	st, body := srv.Do(t, "POST", tokensPath+"/new", admin, map[string]any{"uses_allowed": 1})
	wantStatus(t, "new token", st, body, http.StatusOK, "")
	token := str(t, body, "token")
	if len(token) != 16 || body["uses_allowed"] != float64(1) || body["pending"] != float64(0) ||
		body["completed"] != float64(0) || body["expiry_time"] != nil {
		t.Fatalf("new token %v, want 16 characters, uses_allowed 1, pending/completed 0, no expiry", body)
	}

	t.Run("flows", func(t *testing.T) {
		_, uia, err := srv.Client(t).Register(t.Context(), &mautrix.ReqRegister[any]{Username: "flows", Password: defaultPassword})
		if err != nil || uia == nil {
			t.Fatalf("first step: %v", err)
		}
		if !uia.HasSingleStageFlow("m.login.registration_token") || len(uia.Flows) != 1 {
			t.Fatalf("flows %+v, want [[m.login.registration_token]]", uia.Flows)
		}
		// m.login.dummy is not enough any more.
		_, _, err = srv.Client(t).Register(t.Context(), &mautrix.ReqRegister[any]{Username: "flows", Password: defaultPassword,
			Auth: mautrix.BaseAuthData{Type: mautrix.AuthTypeDummy, Session: uia.Session}})
		wantErr(t, err, mautrix.RespError{ErrCode: "M_UNRECOGNIZED", StatusCode: http.StatusUnauthorized})
	})

	t.Run("wrong token", func(t *testing.T) {
		for _, wrong := range []string{"not-the-token", "bad token!", token + "x"} {
			st, body := tokenRegister(t, srv, "wrongtok", wrong, "")
			wantUIA(t, "wrong token "+wrong, st, body, "m.login.registration_token", "M_UNAUTHORIZED")
		}
		st, body := srv.Do(t, "POST", "/_matrix/client/v3/register", "", map[string]any{"username": "wrongtok",
			"password": defaultPassword, "auth": map[string]any{"type": "m.login.registration_token"}})
		wantUIA(t, "token stage without token", st, body, "m.login.registration_token", "M_MISSING_PARAM")
		if _, err := srv.Client(t).RegisterAvailable(t.Context(), "wrongtok"); err != nil {
			t.Fatalf("wrongtok registered: %v", err)
		}
	})

	t.Run("validity and use", func(t *testing.T) {
		if !tokenValid(t, srv, token) {
			t.Fatal("fresh token is not valid")
		}
		if tokenValid(t, srv, "unknown-token") || tokenValid(t, srv, "bad%20token") {
			t.Fatal("unknown or malformed token reported valid")
		}
		st, body := srv.Do(t, "GET", "/_matrix/client/v1/register/m.login.registration_token/validity", "", nil)
		wantStatus(t, "validity without token", st, body, http.StatusBadRequest, "M_MISSING_PARAM")

		st, body = tokenRegister(t, srv, "tokenuser", token, "")
		wantStatus(t, "register with the token", st, body, http.StatusOK, "")
		if body["user_id"] != string(userID("tokenuser")) || body["access_token"] == nil {
			t.Fatalf("registration answer %v", body)
		}
		if tokenValid(t, srv, token) {
			t.Fatal("token still valid after its only use")
		}
		st, body = srv.Do(t, "GET", tokensPath+"/"+token, admin, nil)
		wantStatus(t, "get used token", st, body, http.StatusOK, "")
		if body["completed"] != float64(1) || body["pending"] != float64(0) {
			t.Fatalf("used token %v, want completed 1", body)
		}
		st, body = tokenRegister(t, srv, "second", token, "")
		wantUIA(t, "exhausted token", st, body, "m.login.registration_token", "M_UNAUTHORIZED")

		// Allowing a second use makes it valid again.
		st, body = srv.Do(t, "PUT", tokensPath+"/"+token, admin, map[string]any{"uses_allowed": 2})
		wantStatus(t, "raise uses_allowed", st, body, http.StatusOK, "")
		if body["uses_allowed"] != float64(2) || body["completed"] != float64(1) {
			t.Fatalf("updated token %v", body)
		}
		if !tokenValid(t, srv, token) {
			t.Fatal("token with a use left is not valid")
		}
		st, body = tokenRegister(t, srv, "second", token, "")
		wantStatus(t, "second use", st, body, http.StatusOK, "")
		if tokenValid(t, srv, token) {
			t.Fatal("token valid after its second and last use")
		}
	})

	t.Run("token exhausted between stage and registration", func(t *testing.T) {
		st, body := srv.Do(t, "POST", tokensPath+"/new", admin, map[string]any{"uses_allowed": 1})
		wantStatus(t, "new token", st, body, http.StatusOK, "")
		tok := str(t, body, "token")
		// The first client opens a session and passes the token stage, but
		// has not sent its password yet.
		st, body = srv.Do(t, "POST", "/_matrix/client/v3/register", "", map[string]any{"username": "slow"})
		sess := wantUIA(t, "slow first step", st, body, "m.login.registration_token", "")
		st, body = srv.Do(t, "POST", "/_matrix/client/v3/register", "", map[string]any{"username": "slow",
			"auth": map[string]any{"type": "m.login.registration_token", "token": tok, "session": sess}})
		wantStatus(t, "stage without password", st, body, http.StatusBadRequest, "M_MISSING_PARAM")
		// Meanwhile another client uses the token up.
		st, body = tokenRegister(t, srv, "quick", tok, "")
		wantStatus(t, "quick", st, body, http.StatusOK, "")
		// The first session cannot spend it a second time.
		st, body = srv.Do(t, "POST", "/_matrix/client/v3/register", "", map[string]any{"username": "slow",
			"password": defaultPassword, "auth": map[string]any{"session": sess}})
		wantStatus(t, "finish with a used-up token", st, body, http.StatusUnauthorized, "M_UNAUTHORIZED")
		if _, err := srv.Client(t).RegisterAvailable(t.Context(), "slow"); err != nil {
			t.Fatalf("slow registered with a used-up token: %v", err)
		}
		st, body = srv.Do(t, "GET", tokensPath+"/"+tok, admin, nil)
		wantStatus(t, "get token", st, body, http.StatusOK, "")
		if body["completed"] != float64(1) {
			t.Fatalf("token %v, want completed 1", body)
		}
	})

	t.Run("racing registrations", func(t *testing.T) {
		st, body := srv.Do(t, "POST", tokensPath+"/new", admin, map[string]any{"uses_allowed": 2})
		wantStatus(t, "new token", st, body, http.StatusOK, "")
		tok := str(t, body, "token")
		const n = 8
		statuses := make(chan int, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				st, _ := tokenRegister(t, srv, "racer"+strconv.Itoa(i), tok, "")
				statuses <- st
			})
		}
		wg.Wait()
		close(statuses)
		won := 0
		for st := range statuses {
			switch st {
			case http.StatusOK:
				won++
			case http.StatusUnauthorized:
			default:
				t.Fatalf("racing registration: HTTP %d", st)
			}
		}
		if won != 2 {
			t.Fatalf("%d registrations with a two-use token succeeded", won)
		}
		st, body = srv.Do(t, "GET", tokensPath+"/"+tok, admin, nil)
		wantStatus(t, "get token", st, body, http.StatusOK, "")
		if body["completed"] != float64(2) {
			t.Fatalf("token %v, want completed 2", body)
		}
	})

	t.Run("admin API needs an admin", func(t *testing.T) {
		st, body := srv.Do(t, "POST", tokensPath+"/new", admin, map[string]any{})
		wantStatus(t, "new token", st, body, http.StatusOK, "")
		st, body = tokenRegister(t, srv, "plain", str(t, body, "token"), "")
		wantStatus(t, "register plain", st, body, http.StatusOK, "")
		plain := str(t, body, "access_token")
		for _, req := range []struct{ method, path string }{
			{"GET", tokensPath}, {"POST", tokensPath + "/new"}, {"GET", tokensPath + "/" + token},
			{"PUT", tokensPath + "/" + token}, {"DELETE", tokensPath + "/" + token},
		} {
			st, body := srv.Do(t, req.method, req.path, plain, map[string]any{})
			wantStatus(t, "non-admin "+req.method+" "+req.path, st, body, http.StatusForbidden, "M_FORBIDDEN")
			st, body = srv.Do(t, req.method, req.path, "", map[string]any{})
			wantStatus(t, "anonymous "+req.method+" "+req.path, st, body, http.StatusUnauthorized, "M_MISSING_TOKEN")
		}
		// The refused DELETE did not delete.
		st, body = srv.Do(t, "GET", tokensPath+"/"+token, admin, nil)
		wantStatus(t, "token after refused delete", st, body, http.StatusOK, "")
	})

	t.Run("create", func(t *testing.T) {
		st, body := srv.Do(t, "POST", tokensPath+"/new", admin, map[string]any{"token": "abc-DEF_1.~"})
		wantStatus(t, "named token", st, body, http.StatusOK, "")
		if body["token"] != "abc-DEF_1.~" || body["uses_allowed"] != nil {
			t.Fatalf("named token %v, want abc-DEF_1.~ with unlimited uses", body)
		}
		if !tokenValid(t, srv, "abc-DEF_1.~") {
			t.Fatal("named token not valid")
		}
		st, body = srv.Do(t, "POST", tokensPath+"/new", admin, map[string]any{"length": 5})
		wantStatus(t, "short token", st, body, http.StatusOK, "")
		if len(str(t, body, "token")) != 5 {
			t.Fatalf("token %v, want 5 characters", body["token"])
		}
		expiry := time.Now().Add(time.Hour).UnixMilli()
		st, body = srv.Do(t, "POST", tokensPath+"/new", admin, map[string]any{"expiry_time": expiry})
		wantStatus(t, "token with expiry", st, body, http.StatusOK, "")
		if body["expiry_time"] != float64(expiry) {
			t.Fatalf("expiry_time %v, want %d", body["expiry_time"], expiry)
		}
		for name, req := range map[string]map[string]any{
			"duplicate":          {"token": "abc-DEF_1.~"},
			"invalid chars":      {"token": "bad token!"},
			"slash":              {"token": "a/b"},
			"too long":           {"token": strings.Repeat("a", 65)},
			"negative length":    {"length": -1},
			"length 65":          {"length": 65},
			"negative uses":      {"uses_allowed": -1},
			"expiry in the past": {"expiry_time": time.Now().Add(-time.Hour).UnixMilli()},
		} {
			st, body := srv.Do(t, "POST", tokensPath+"/new", admin, req)
			wantStatus(t, "new token: "+name, st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		}
		st, body = srv.Do(t, "POST", tokensPath+"/new", admin, map[string]any{"uses_allowed": "one"})
		wantStatus(t, "uses_allowed of the wrong type", st, body, http.StatusBadRequest, "M_BAD_JSON")
	})

	t.Run("list", func(t *testing.T) {
		st, body := srv.Do(t, "POST", tokensPath+"/new", admin, map[string]any{"token": "list-used", "uses_allowed": 0})
		wantStatus(t, "token with no uses", st, body, http.StatusOK, "")
		st, body = srv.Do(t, "POST", tokensPath+"/new", admin, map[string]any{"token": "list-free"})
		wantStatus(t, "unlimited token", st, body, http.StatusOK, "")
		names := func(query string) []string {
			st, body := srv.Do(t, "GET", tokensPath+query, admin, nil)
			wantStatus(t, "list"+query, st, body, http.StatusOK, "")
			list, ok := body["registration_tokens"].([]any)
			if !ok {
				t.Fatalf("list%s: %v", query, body)
			}
			var out []string
			for _, e := range list {
				out = append(out, e.(map[string]any)["token"].(string))
			}
			return out
		}
		all, valid, invalid := names(""), names("?valid=true"), names("?valid=false")
		for _, want := range []string{"list-used", "list-free", token} {
			if !slices.Contains(all, want) {
				t.Fatalf("list %v lacks %s", all, want)
			}
		}
		if !slices.Contains(valid, "list-free") || slices.Contains(valid, "list-used") || slices.Contains(valid, token) {
			t.Fatalf("valid=true lists %v", valid)
		}
		if slices.Contains(invalid, "list-free") || !slices.Contains(invalid, "list-used") || !slices.Contains(invalid, token) {
			t.Fatalf("valid=false lists %v", invalid)
		}
		if len(valid)+len(invalid) != len(all) {
			t.Fatalf("valid %d + invalid %d != all %d", len(valid), len(invalid), len(all))
		}
		st, body = srv.Do(t, "GET", tokensPath+"?valid=maybe", admin, nil)
		wantStatus(t, "valid=maybe", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
	})

	t.Run("get update delete", func(t *testing.T) {
		st, body := srv.Do(t, "POST", tokensPath+"/new", admin, map[string]any{"token": "managed", "uses_allowed": 3})
		wantStatus(t, "new", st, body, http.StatusOK, "")

		st, body = srv.Do(t, "GET", tokensPath+"/managed", admin, nil)
		wantStatus(t, "get", st, body, http.StatusOK, "")
		if body["token"] != "managed" || body["uses_allowed"] != float64(3) {
			t.Fatalf("get: %v", body)
		}
		st, body = srv.Do(t, "GET", tokensPath+"/no-such-token", admin, nil)
		wantStatus(t, "get unknown", st, body, http.StatusNotFound, "M_NOT_FOUND")

		expiry := time.Now().Add(24 * time.Hour).UnixMilli()
		st, body = srv.Do(t, "PUT", tokensPath+"/managed", admin, map[string]any{"expiry_time": expiry})
		wantStatus(t, "set expiry", st, body, http.StatusOK, "")
		if body["expiry_time"] != float64(expiry) || body["uses_allowed"] != float64(3) {
			t.Fatalf("after setting expiry: %v (uses_allowed must be kept)", body)
		}
		st, body = srv.Do(t, "PUT", tokensPath+"/managed", admin, map[string]any{"uses_allowed": nil})
		wantStatus(t, "unlimited uses", st, body, http.StatusOK, "")
		if body["uses_allowed"] != nil || body["expiry_time"] != float64(expiry) {
			t.Fatalf("after uses_allowed null: %v (expiry must be kept)", body)
		}
		st, body = srv.Do(t, "GET", tokensPath+"/managed", admin, nil)
		wantStatus(t, "get after update", st, body, http.StatusOK, "")
		if body["uses_allowed"] != nil || body["expiry_time"] != float64(expiry) {
			t.Fatalf("update not stored: %v", body)
		}
		for name, req := range map[string]map[string]any{
			"uses_allowed string": {"uses_allowed": "x"},
			"negative uses":       {"uses_allowed": -2},
			"expiry in the past":  {"expiry_time": 1},
		} {
			st, body := srv.Do(t, "PUT", tokensPath+"/managed", admin, req)
			wantStatus(t, "update: "+name, st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		}
		st, body = srv.Do(t, "PUT", tokensPath+"/no-such-token", admin, map[string]any{"uses_allowed": 1})
		wantStatus(t, "update unknown", st, body, http.StatusNotFound, "M_NOT_FOUND")

		st, body = srv.Do(t, "DELETE", tokensPath+"/managed", admin, nil)
		wantStatus(t, "delete", st, body, http.StatusOK, "")
		st, body = srv.Do(t, "GET", tokensPath+"/managed", admin, nil)
		wantStatus(t, "get deleted", st, body, http.StatusNotFound, "M_NOT_FOUND")
		if tokenValid(t, srv, "managed") {
			t.Fatal("deleted token still valid")
		}
		st, body = tokenRegister(t, srv, "managed", "managed", "")
		wantUIA(t, "register with a deleted token", st, body, "m.login.registration_token", "M_UNAUTHORIZED")
		st, body = srv.Do(t, "DELETE", tokensPath+"/managed", admin, nil)
		wantStatus(t, "delete again", st, body, http.StatusNotFound, "M_NOT_FOUND")
		st, body = srv.Do(t, "DELETE", tokensPath+"/no-such-token", admin, nil)
		wantStatus(t, "delete unknown", st, body, http.StatusNotFound, "M_NOT_FOUND")
	})
}

// sharedSecretMAC is Synapse's registration MAC.
func sharedSecretMAC(secret, nonce, user, password string, admin bool) string {
	m := hmac.New(sha1.New, []byte(secret))
	kind := "notadmin"
	if admin {
		kind = "admin"
	}
	fmt.Fprintf(m, "%s\x00%s\x00%s\x00%s", nonce, user, password, kind)
	return hex.EncodeToString(m.Sum(nil))
}

func TestSharedSecretRegistration(t *testing.T) {
	const secret = "s3cret-for-tests"
	srv := startClosed(t, "--registration-shared-secret", secret)
	const ssPath = "/_synapse/admin/v1/register"
	nonce := func(t *testing.T) string {
		t.Helper()
		st, body := srv.Do(t, "GET", ssPath, "", nil)
		wantStatus(t, "nonce", st, body, http.StatusOK, "")
		n := str(t, body, "nonce")
		if len(n) < 16 {
			t.Fatalf("nonce %q is short", n)
		}
		return n
	}
	req := func(nonce, user, password string, admin bool, mac string) map[string]any {
		return map[string]any{"nonce": nonce, "username": user, "password": password, "admin": admin, "mac": mac}
	}

	t.Run("admin", func(t *testing.T) {
		n := nonce(t)
		st, body := srv.Do(t, "POST", ssPath, "", req(n, "boss", defaultPassword, true,
			sharedSecretMAC(secret, n, "boss", defaultPassword, true)))
		wantStatus(t, "register boss", st, body, http.StatusOK, "")
		if body["user_id"] != string(userID("boss")) || body["device_id"] == nil {
			t.Fatalf("answer %v", body)
		}
		tok := str(t, body, "access_token")
		who, err := clientFor(t, srv, "", "", tok).Whoami(t.Context())
		if err != nil || who.UserID != userID("boss") {
			t.Fatalf("whoami with the new token: %+v %v", who, err)
		}
		st, body = srv.Do(t, "POST", tokensPath+"/new", tok, map[string]any{})
		wantStatus(t, "admin API as boss", st, body, http.StatusOK, "")
		login(t, srv, passwordLogin("boss", defaultPassword))

		// The nonce was used up.
		st, body = srv.Do(t, "POST", ssPath, "", req(n, "boss2", defaultPassword, true,
			sharedSecretMAC(secret, n, "boss2", defaultPassword, true)))
		wantStatus(t, "reused nonce", st, body, http.StatusBadRequest, "M_BAD_JSON")
	})

	t.Run("not admin", func(t *testing.T) {
		n := nonce(t)
		body := req(n, "worker", defaultPassword, false, sharedSecretMAC(secret, n, "worker", defaultPassword, false))
		body["displayname"] = "A Worker"
		st, resp := srv.Do(t, "POST", ssPath, "", body)
		wantStatus(t, "register worker", st, resp, http.StatusOK, "")
		st, resp = srv.Do(t, "GET", tokensPath, str(t, resp, "access_token"), nil)
		wantStatus(t, "admin API as worker", st, resp, http.StatusForbidden, "M_FORBIDDEN")
		name, err := srv.Client(t).GetDisplayName(t.Context(), userID("worker"))
		if err != nil || name.DisplayName != "A Worker" {
			t.Fatalf("display name %+v %v, want A Worker", name, err)
		}
	})

	t.Run("wrong mac", func(t *testing.T) {
		for name, mac := range map[string]func(n string) string{
			"wrong secret": func(n string) string { return sharedSecretMAC("guess", n, "mallory", defaultPassword, false) },
			// A MAC for a normal user does not make an admin.
			"admin flipped": func(n string) string { return sharedSecretMAC(secret, n, "mallory", defaultPassword, false) },
			"other user":    func(n string) string { return sharedSecretMAC(secret, n, "someone", defaultPassword, true) },
			"not hex":       func(string) string { return "zz" },
			"empty":         func(string) string { return "" },
		} {
			n := nonce(t)
			st, body := srv.Do(t, "POST", ssPath, "", req(n, "mallory", defaultPassword, true, mac(n)))
			wantStatus(t, name, st, body, http.StatusForbidden, "M_FORBIDDEN")
			// A failed attempt uses the nonce up too.
			st, body = srv.Do(t, "POST", ssPath, "", req(n, "mallory", defaultPassword, true,
				sharedSecretMAC(secret, n, "mallory", defaultPassword, true)))
			wantStatus(t, name+": nonce reused after failure", st, body, http.StatusBadRequest, "M_BAD_JSON")
		}
		st, body := srv.Do(t, "GET", "/_matrix/client/v3/profile/"+string(userID("mallory")), "", nil)
		wantStatus(t, "mallory's profile", st, body, http.StatusNotFound, "M_NOT_FOUND")
	})

	t.Run("unknown nonce", func(t *testing.T) {
		st, body := srv.Do(t, "POST", ssPath, "", req("0123456789abcdef", "eve", defaultPassword, false,
			sharedSecretMAC(secret, "0123456789abcdef", "eve", defaultPassword, false)))
		wantStatus(t, "unknown nonce", st, body, http.StatusBadRequest, "M_BAD_JSON")
	})

	t.Run("bad user", func(t *testing.T) {
		n := nonce(t)
		st, body := srv.Do(t, "POST", ssPath, "", req(n, "boss", defaultPassword, false,
			sharedSecretMAC(secret, n, "boss", defaultPassword, false)))
		wantStatus(t, "taken name", st, body, http.StatusBadRequest, "M_USER_IN_USE")
		n = nonce(t)
		st, body = srv.Do(t, "POST", ssPath, "", req(n, "Not Valid", defaultPassword, false,
			sharedSecretMAC(secret, n, "Not Valid", defaultPassword, false)))
		wantStatus(t, "invalid name", st, body, http.StatusBadRequest, "M_INVALID_USERNAME")
		n = nonce(t)
		st, body = srv.Do(t, "POST", ssPath, "", req(n, "shorty", "short", false,
			sharedSecretMAC(secret, n, "shorty", "short", false)))
		wantStatus(t, "weak password", st, body, http.StatusBadRequest, "M_WEAK_PASSWORD")
	})

	t.Run("not configured", func(t *testing.T) {
		plain := startClosed(t)
		st, body := plain.Do(t, "GET", ssPath, "", nil)
		wantStatus(t, "nonce without a secret", st, body, http.StatusBadRequest, "M_UNKNOWN")
		st, body = plain.Do(t, "POST", ssPath, "", req("abc", "eve", defaultPassword, false,
			sharedSecretMAC("", "abc", "eve", defaultPassword, false)))
		wantStatus(t, "register without a secret", st, body, http.StatusBadRequest, "M_UNKNOWN")
		st, body = plain.Do(t, "GET", "/_matrix/client/v3/profile/"+string(userID("eve")), "", nil)
		wantStatus(t, "eve's profile", st, body, http.StatusNotFound, "M_NOT_FOUND")
	})
}

// Server notices (POST /_synapse/admin/v1/send_server_notice): the first
// notice makes a notices room from the system user, with the user invited
// and the room tagged m.server_notice; later ones go to the same room;
// only admins may send, only to local users who exist; a PUT with a
// transaction ID is idempotent.
func TestServerNotices(t *testing.T) {
	srv := startOpen(t)
	if out, err := srv.Run(t, "", "user", "add", "admin", "--password", "admin password", "--admin"); err != nil {
		t.Fatalf("user add admin: %v\n%s", err, out)
	}
	admin := login(t, srv, passwordLogin("admin", "admin password")).AccessToken
	bob := register(t, srv, "bob", defaultPassword)
	notice := func(token, path string, body map[string]any) (int, map[string]any) {
		return srv.Do(t, map[bool]string{true: "PUT", false: "POST"}[path != ""],
			"/_synapse/admin/v1/send_server_notice"+path, token, body)
	}
	body := map[string]any{"user_id": bob.UserID, "content": map[string]any{"msgtype": "m.text", "body": "Maintenance at noon"}}
	code, res := notice(bob.AccessToken, "", body)
	wantStatus(t, "a non-admin's notice", code, res, http.StatusForbidden, "M_FORBIDDEN")
	code, res = notice(admin, "", body)
	wantStatus(t, "first notice", code, res, http.StatusOK, "")
	first := str(t, res, "event_id")

	sync, err := bob.SyncRequest(t.Context(), 0, "", "", false, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(sync.Rooms.Invite) != 1 {
		t.Fatalf("bob has %d invites, want the notices room", len(sync.Rooms.Invite))
	}
	var room id.RoomID
	for r, inv := range sync.Rooms.Invite {
		room = r
		for _, ev := range inv.State.Events {
			if ev.Type == event.StateMember && ev.GetStateKey() == bob.UserID.String() && ev.Sender != "@notices:localhost" {
				t.Fatalf("invited by %s", ev.Sender)
			}
		}
	}
	if _, err := bob.JoinRoomByID(t.Context(), room); err != nil {
		t.Fatal(err)
	}
	var tags event.TagEventContent
	if err := bob.GetTagsWithCustomData(t.Context(), room, &tags); err != nil {
		t.Fatal(err)
	}
	if _, ok := tags.Tags["m.server_notice"]; !ok {
		t.Fatalf("tags of the notices room: %v %v", tags.Tags, err)
	}
	code, res = notice(admin, "/txn1", map[string]any{"user_id": bob.UserID, "content": map[string]any{"msgtype": "m.text", "body": "Done"}})
	wantStatus(t, "second notice", code, res, http.StatusOK, "")
	second := str(t, res, "event_id")
	code, res = notice(admin, "/txn1", map[string]any{"user_id": bob.UserID, "content": map[string]any{"msgtype": "m.text", "body": "Done"}})
	if code != 200 || res["event_id"] != second {
		t.Fatalf("retried notice: %d %v, want %s", code, res, second)
	}
	msgs, err := bob.Messages(t.Context(), room, "", "", mautrix.DirectionBackward, nil, 50)
	if err != nil {
		t.Fatal(err)
	}
	var got []id.EventID
	for _, ev := range msgs.Chunk {
		if ev.Type == event.EventMessage {
			got = append(got, ev.ID)
		}
	}
	if len(got) != 2 || got[0] != id.EventID(second) || got[1] != id.EventID(first) {
		t.Fatalf("notices in the room %v, want %s then %s", got, first, second)
	}
	// Bob may read but not write there.
	if _, err := bob.SendText(t.Context(), room, "hello?"); err == nil {
		t.Fatal("bob could write in his notices room")
	}
	code, res = notice(admin, "", map[string]any{"user_id": "@nobody:localhost", "content": map[string]any{"body": "x"}})
	wantStatus(t, "notice to a user who does not exist", code, res, http.StatusNotFound, "M_NOT_FOUND")
	code, res = notice(admin, "", map[string]any{"user_id": "@bob:example.org", "content": map[string]any{"body": "x"}})
	wantStatus(t, "notice to a remote user", code, res, http.StatusBadRequest, "M_INVALID_PARAM")
}
