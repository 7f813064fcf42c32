package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// wantTokenDead checks that token is refused as unknown, not as expired.
func wantTokenDead(t testing.TB, srv *testserver.Server, token string) {
	t.Helper()
	_, err := clientFor(t, srv, "", "", token).Whoami(t.Context())
	extra := wantErr(t, err, mautrix.MUnknownToken)
	if extra["soft_logout"] != false {
		t.Fatalf("soft_logout %v, want false", extra["soft_logout"])
	}
}

// wantTokenAlive checks that token authenticates as user.
func wantTokenAlive(t testing.TB, srv *testserver.Server, token string, user id.UserID) {
	t.Helper()
	who, err := clientFor(t, srv, "", "", token).Whoami(t.Context())
	if err != nil {
		t.Fatalf("token of %s refused: %v", user, err)
	}
	if who.UserID != user {
		t.Fatalf("token authenticates %s, want %s", who.UserID, user)
	}
}

func deviceIDs(t testing.TB, cli *mautrix.Client) []id.DeviceID {
	t.Helper()
	devs, err := cli.GetDevicesInfo(t.Context())
	if err != nil {
		t.Fatalf("list devices: %v", err)
	}
	var out []id.DeviceID
	for _, d := range devs.Devices {
		out = append(out, d.DeviceID)
	}
	slices.Sort(out)
	return out
}

func TestLogin(t *testing.T) {
	srv := startOpen(t)
	register(t, srv, "carol", defaultPassword)

	t.Run("flows", func(t *testing.T) {
		res, err := srv.Client(t).GetLoginFlows(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if res.FirstFlowOfType(mautrix.AuthTypePassword) == nil || res.FirstFlowOfType(mautrix.AuthTypeToken) == nil {
			t.Fatalf("flows %+v lack m.login.password or m.login.token", res.Flows)
		}
		// Bridges look for it before logging in their bot (mautrix exits without it).
		if !res.HasFlow(mautrix.AuthTypeAppservice) {
			t.Fatalf("flows %+v lack m.login.application_service", res.Flows)
		}
		st, body := srv.Do(t, "GET", "/_matrix/client/v3/login", "", nil)
		wantStatus(t, "GET /login", st, body, http.StatusOK, "")
		for _, f := range body["flows"].([]any) {
			if f := f.(map[string]any); f["type"] == "m.login.token" && f["get_login_token"] != true {
				t.Fatalf("m.login.token flow %v without get_login_token", f)
			}
		}
	})

	t.Run("password identifiers", func(t *testing.T) {
		for _, name := range []string{"carol", "@carol:localhost", "Carol"} {
			cli := login(t, srv, passwordLogin(name, defaultPassword))
			if cli.UserID != userID("carol") {
				t.Fatalf("login as %q gave %s", name, cli.UserID)
			}
			wantTokenAlive(t, srv, cli.AccessToken, userID("carol"))
		}
		// The legacy top-level "user" field.
		st, body := srv.Do(t, "POST", "/_matrix/client/v3/login", "", map[string]any{
			"type": "m.login.password", "user": "carol", "password": defaultPassword})
		wantStatus(t, "legacy user", st, body, http.StatusOK, "")
		if body["user_id"] != string(userID("carol")) {
			t.Fatalf("legacy login answer %v", body)
		}
		wantTokenAlive(t, srv, str(t, body, "access_token"), userID("carol"))
		wk, _ := body["well_known"].(map[string]any)
		if hs, _ := wk["m.homeserver"].(map[string]any); hs == nil || hs["base_url"] == "" {
			t.Fatalf("login answer without well_known: %v", body)
		}
	})

	t.Run("failures", func(t *testing.T) {
		cli := srv.Client(t)
		_, err := cli.Login(t.Context(), passwordLogin("carol", "wrong password"))
		wantErr(t, err, mautrix.MForbidden)
		_, err = cli.Login(t.Context(), passwordLogin("nobody", defaultPassword))
		wantErr(t, err, mautrix.MForbidden)
		_, err = cli.Login(t.Context(), passwordLogin("@carol:other.example", defaultPassword))
		wantErr(t, err, mautrix.MForbidden)
		_, err = cli.Login(t.Context(), &mautrix.ReqLogin{Type: "m.login.bogus",
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "carol"}})
		wantErr(t, err, mUnknownBadRequest)
		_, err = cli.Login(t.Context(), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Password: defaultPassword,
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeThirdParty, Medium: "email", Address: "c@example.org"}})
		wantErr(t, err, mautrix.MForbidden)
		for name, body := range map[string]map[string]any{
			"no type":              {"identifier": map[string]any{"type": "m.id.user", "user": "carol"}, "password": defaultPassword},
			"no identifier":        {"type": "m.login.password", "password": defaultPassword},
			"unknown identifier":   {"type": "m.login.password", "identifier": map[string]any{"type": "m.id.nope"}},
			"identifier sans user": {"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user"}},
			"token sans token":     {"type": "m.login.token"},
		} {
			st, resp := srv.Do(t, "POST", "/_matrix/client/v3/login", "", body)
			wantStatus(t, name, st, resp, http.StatusBadRequest, "M_BAD_JSON")
		}
		st, resp := srv.Do(t, "POST", "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.password",
			"identifier": map[string]any{"type": "m.id.user", "user": "carol"}, "password": defaultPassword,
			"device_id": "has space"})
		wantStatus(t, "device_id with a space", st, resp, http.StatusBadRequest, "M_INVALID_PARAM")
	})

	t.Run("explicit device id", func(t *testing.T) {
		req := passwordLogin("carol", defaultPassword)
		req.DeviceID, req.InitialDeviceDisplayName = "CAROLDEV", "first name"
		first := login(t, srv, req)
		if first.DeviceID != "CAROLDEV" {
			t.Fatalf("device %s, want CAROLDEV", first.DeviceID)
		}
		req.InitialDeviceDisplayName = "second name"
		second := login(t, srv, req)
		if second.DeviceID != "CAROLDEV" || second.AccessToken == first.AccessToken {
			t.Fatalf("second login: device %s, same token %v", second.DeviceID, second.AccessToken == first.AccessToken)
		}
		wantTokenDead(t, srv, first.AccessToken)
		who, err := second.Whoami(t.Context())
		if err != nil || who.DeviceID != "CAROLDEV" {
			t.Fatalf("whoami %+v %v", who, err)
		}
		n := 0
		for _, d := range deviceIDs(t, second) {
			if d == "CAROLDEV" {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("CAROLDEV listed %d times", n)
		}
		// The known device keeps its name (initial_device_display_name is for new devices).
		dev, err := second.GetDeviceInfo(t.Context(), "CAROLDEV")
		if err != nil || dev.DisplayName != "first name" {
			t.Fatalf("device %+v %v, want the first name kept", dev, err)
		}
	})

	t.Run("login token", func(t *testing.T) {
		cli := login(t, srv, passwordLogin("carol", defaultPassword))
		const path = "/_matrix/client/v1/login/get_token"
		st, body := srv.Do(t, "POST", path, "", map[string]any{})
		wantStatus(t, "get_token anonymous", st, body, http.StatusUnauthorized, "M_MISSING_TOKEN")
		st, body = srv.Do(t, "POST", path, cli.AccessToken, map[string]any{})
		sess := wantUIA(t, "get_token first step", st, body, "m.login.password", "")
		st, body = srv.Do(t, "POST", path, cli.AccessToken, map[string]any{"auth": passwordAuth("carol", "wrong password", sess)})
		wantUIA(t, "get_token wrong password", st, body, "m.login.password", "M_FORBIDDEN")
		st, body = srv.Do(t, "POST", path, cli.AccessToken, map[string]any{"auth": passwordAuth("carol", defaultPassword, sess)})
		wantStatus(t, "get_token", st, body, http.StatusOK, "")
		tok := str(t, body, "login_token")
		if body["expires_in_ms"] != float64(120000) {
			t.Fatalf("expires_in_ms %v, want 120000", body["expires_in_ms"])
		}

		res, err := srv.Client(t).Login(t.Context(), &mautrix.ReqLogin{Type: mautrix.AuthTypeToken, Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		if res.UserID != userID("carol") || res.DeviceID == cli.DeviceID {
			t.Fatalf("token login %+v, want carol on a new device", res)
		}
		wantTokenAlive(t, srv, res.AccessToken, userID("carol"))
		_, err = srv.Client(t).Login(t.Context(), &mautrix.ReqLogin{Type: mautrix.AuthTypeToken, Token: tok})
		wantErr(t, err, mautrix.MForbidden)
		_, err = srv.Client(t).Login(t.Context(), &mautrix.ReqLogin{Type: mautrix.AuthTypeToken, Token: "trl_made-up"})
		wantErr(t, err, mautrix.MForbidden)
		// Of several clients racing with one login token, exactly one wins.
		st, body = srv.Do(t, "POST", path, cli.AccessToken, map[string]any{"auth": passwordAuth("carol", defaultPassword, "")})
		wantStatus(t, "get_token", st, body, http.StatusOK, "")
		raced := str(t, body, "login_token")
		statuses := make(chan int, 8)
		var wg sync.WaitGroup
		for range cap(statuses) {
			wg.Go(func() {
				st, _ := srv.Do(t, "POST", "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.token", "token": raced})
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
			case http.StatusForbidden:
			default:
				t.Fatalf("racing token login: HTTP %d", st)
			}
		}
		if won != 1 {
			t.Fatalf("%d token logins succeeded, want 1", won)
		}
		// The UIA session ended with the token it gave.
		st, body = srv.Do(t, "POST", path, cli.AccessToken, map[string]any{"auth": map[string]any{"session": sess}})
		wantStatus(t, "get_token with a finished session", st, body, http.StatusBadRequest, "M_UNKNOWN")
	})
}

func TestTokens(t *testing.T) {
	srv := startOpen(t)
	dan := register(t, srv, "dan", defaultPassword)

	t.Run("whoami", func(t *testing.T) {
		st, body := srv.Do(t, "GET", "/_matrix/client/v3/account/whoami", dan.AccessToken, nil)
		wantStatus(t, "whoami", st, body, http.StatusOK, "")
		if body["user_id"] != string(dan.UserID) || body["device_id"] != string(dan.DeviceID) || body["is_guest"] != false {
			t.Fatalf("whoami %v", body)
		}
	})

	t.Run("missing and unknown", func(t *testing.T) {
		_, err := srv.Client(t).Whoami(t.Context())
		wantErr(t, err, mautrix.MMissingToken)
		wantTokenDead(t, srv, "tra_not-a-token")
		// A non-Bearer Authorization header carries no token.
		resp, raw := rawRequest(t, nil, "GET", srv.URL+"/_matrix/client/v3/account/whoami",
			http.Header{"Authorization": {"Basic " + dan.AccessToken}}, nil)
		wantStatus(t, "Basic auth", resp.StatusCode, decode(t, raw), http.StatusUnauthorized, "M_MISSING_TOKEN")
	})

	t.Run("query parameter", func(t *testing.T) {
		st, body := srv.Do(t, "GET", "/_matrix/client/v3/account/whoami?access_token="+dan.AccessToken, "", nil)
		wantStatus(t, "?access_token=", st, body, http.StatusOK, "")
		if body["user_id"] != string(dan.UserID) {
			t.Fatalf("whoami %v", body)
		}
		st, body = srv.Do(t, "GET", "/_matrix/client/v3/account/whoami?access_token=nope", "", nil)
		wantStatus(t, "?access_token=nope", st, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	})

	t.Run("logout", func(t *testing.T) {
		one := login(t, srv, passwordLogin("dan", defaultPassword))
		two := login(t, srv, passwordLogin("dan", defaultPassword))
		if _, err := one.Logout(t.Context()); err != nil {
			t.Fatal(err)
		}
		wantTokenDead(t, srv, one.AccessToken)
		wantTokenAlive(t, srv, two.AccessToken, "@dan:localhost")
		devs := deviceIDs(t, two)
		if slices.Contains(devs, one.DeviceID) || !slices.Contains(devs, two.DeviceID) {
			t.Fatalf("devices after logout %v: want %s gone and %s kept", devs, one.DeviceID, two.DeviceID)
		}
		_, err := one.Logout(t.Context())
		wantErr(t, err, mautrix.MUnknownToken)
	})

	t.Run("logout all", func(t *testing.T) {
		clients := []*mautrix.Client{login(t, srv, passwordLogin("dan", defaultPassword)),
			login(t, srv, passwordLogin("dan", defaultPassword)), dan}
		other := register(t, srv, "dans-neighbour", defaultPassword)
		if _, err := clients[0].LogoutAll(t.Context()); err != nil {
			t.Fatal(err)
		}
		for _, c := range clients {
			wantTokenDead(t, srv, c.AccessToken)
		}
		wantTokenAlive(t, srv, other.AccessToken, other.UserID)
		fresh := login(t, srv, passwordLogin("dan", defaultPassword))
		if devs := deviceIDs(t, fresh); !slices.Equal(devs, []id.DeviceID{fresh.DeviceID}) {
			t.Fatalf("devices after logout/all and a new login: %v", devs)
		}
	})

	// Request logs name routes, never raw URLs or bodies: neither the token
	// sent as ?access_token= nor passwords may appear. Stopping the server
	// first makes sure every log line has been read.
	srv.Stop()
	logs := srv.Logs()
	if !strings.Contains(logs, `"route":"/_matrix/client/v3/account/whoami"`) {
		t.Fatalf("request logs missing:\n%s", logs)
	}
	for _, secret := range []string{dan.AccessToken, defaultPassword} {
		if strings.Contains(logs, secret) {
			t.Fatalf("server logs contain a secret %q:\n%s", secret, logs)
		}
	}
}

func TestRefresh(t *testing.T) {
	srv := startOpen(t)
	register(t, srv, "erin", defaultPassword)
	refreshLogin := func(t *testing.T) *mautrix.RespLogin {
		t.Helper()
		req := passwordLogin("erin", defaultPassword)
		req.RefreshToken = true
		res, err := srv.Client(t).Login(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if res.RefreshToken == "" || res.ExpiresInMS != 300000 {
			t.Fatalf("login with refresh_token: refresh %q expires_in_ms %d, want a token and 300000",
				res.RefreshToken, res.ExpiresInMS)
		}
		return res
	}
	refresh := func(t *testing.T, token string) (int, map[string]any) {
		t.Helper()
		return srv.Do(t, "POST", "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": token})
	}
	refreshOK := func(t *testing.T, token string) (access, refreshTok string) {
		t.Helper()
		st, body := refresh(t, token)
		wantStatus(t, "refresh", st, body, http.StatusOK, "")
		if body["expires_in_ms"] != float64(300000) {
			t.Fatalf("refresh: expires_in_ms %v", body["expires_in_ms"])
		}
		return str(t, body, "access_token"), str(t, body, "refresh_token")
	}
	wantRefreshRefused := func(t *testing.T, token string) {
		t.Helper()
		st, body := refresh(t, token)
		wantStatus(t, "refresh with a dead refresh token", st, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	}

	t.Run("plain login has no refresh token", func(t *testing.T) {
		res, err := srv.Client(t).Login(t.Context(), passwordLogin("erin", defaultPassword))
		if err != nil {
			t.Fatal(err)
		}
		if res.RefreshToken != "" || res.ExpiresInMS != 0 {
			t.Fatalf("login without refresh_token got refresh %q expires %d", res.RefreshToken, res.ExpiresInMS)
		}
	})

	t.Run("rotation", func(t *testing.T) {
		res := refreshLogin(t)
		wantTokenAlive(t, srv, res.AccessToken, "@erin:localhost")
		a2, r2 := refreshOK(t, res.RefreshToken)
		if a2 == res.AccessToken || r2 == res.RefreshToken {
			t.Fatal("refresh returned the same tokens")
		}
		wantTokenDead(t, srv, res.AccessToken)

		// Until the new access token is used, the old refresh token still
		// works (the client may have lost the answer)…
		a3, _ := refreshOK(t, res.RefreshToken)
		// …and using the new access token retires it.
		who, err := clientFor(t, srv, "", "", a3).Whoami(t.Context())
		if err != nil || who.DeviceID != res.DeviceID {
			t.Fatalf("refreshed token: %+v %v, want device %s", who, err, res.DeviceID)
		}
		wantRefreshRefused(t, res.RefreshToken)
	})

	t.Run("using the new refresh token retires the old", func(t *testing.T) {
		res := refreshLogin(t)
		_, r2 := refreshOK(t, res.RefreshToken)
		a3, _ := refreshOK(t, r2)
		wantRefreshRefused(t, res.RefreshToken)
		wantTokenAlive(t, srv, a3, "@erin:localhost")
	})

	t.Run("logout kills the refresh token", func(t *testing.T) {
		res := refreshLogin(t)
		if _, err := clientFor(t, srv, res.UserID, res.DeviceID, res.AccessToken).Logout(t.Context()); err != nil {
			t.Fatal(err)
		}
		wantRefreshRefused(t, res.RefreshToken)
	})

	t.Run("errors", func(t *testing.T) {
		wantRefreshRefused(t, "trr_unknown")
		st, body := srv.Do(t, "POST", "/_matrix/client/v3/refresh", "", map[string]any{})
		wantStatus(t, "no refresh_token", st, body, http.StatusBadRequest, "M_MISSING_PARAM")
		st, body = srv.Do(t, "POST", "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": 7})
		wantStatus(t, "numeric refresh_token", st, body, http.StatusBadRequest, "M_BAD_JSON")
		st, body = srv.Do(t, "POST", "/_matrix/client/v3/refresh", "", "refresh please")
		wantStatus(t, "not JSON", st, body, http.StatusBadRequest, "M_NOT_JSON")
	})
	// Expiry itself (401 M_UNKNOWN_TOKEN with soft_logout true once
	// expires_in_ms has passed) is not tested here: the shortest lifetime the
	// configuration accepts is one minute, and these tests do not sleep.
}

// changePassword posts to /account/password with the given auth.
func changePassword(t testing.TB, srv *testserver.Server, token string, body map[string]any) (int, map[string]any) {
	t.Helper()
	return srv.Do(t, "POST", "/_matrix/client/v3/account/password", token, body)
}

func TestPasswordChange(t *testing.T) {
	srv := startOpen(t)

	t.Run("uia", func(t *testing.T) {
		frank := register(t, srv, "frank", defaultPassword)
		st, body := changePassword(t, srv, frank.AccessToken, map[string]any{"new_password": "frank's new password"})
		sess := wantUIA(t, "no auth", st, body, "m.login.password", "")
		if c, _ := body["completed"].([]any); len(c) != 0 {
			t.Fatalf("completed %v on a first step", body["completed"])
		}
		st, body = changePassword(t, srv, frank.AccessToken, map[string]any{"new_password": "frank's new password",
			"auth": passwordAuth("frank", "wrong password", sess)})
		if wantUIA(t, "wrong password", st, body, "m.login.password", "M_FORBIDDEN") != sess {
			t.Fatal("wrong password answer changed the session")
		}
		// Another user's correct password does not authenticate frank: a
		// refusal (403, as Synapse), not a stage to retry.
		register(t, srv, "grace", defaultPassword)
		st, body = changePassword(t, srv, frank.AccessToken, map[string]any{"new_password": "frank's new password",
			"auth": passwordAuth("grace", defaultPassword, sess)})
		wantStatus(t, "as another user", st, body, http.StatusForbidden, "M_FORBIDDEN")
		st, body = changePassword(t, srv, frank.AccessToken, map[string]any{"new_password": "frank's new password",
			"auth": passwordAuth("@grace:localhost", defaultPassword, "")})
		wantStatus(t, "as another user, new session", st, body, http.StatusForbidden, "M_FORBIDDEN")
		// Nor can grace finish a session frank opened, even with her own password.
		grace := login(t, srv, passwordLogin("grace", defaultPassword))
		st, body = changePassword(t, srv, grace.AccessToken, map[string]any{"new_password": "grace's new password",
			"auth": passwordAuth("grace", defaultPassword, sess)})
		wantStatus(t, "another user's session", st, body, http.StatusForbidden, "M_FORBIDDEN")
		login(t, srv, passwordLogin("frank", defaultPassword)) // unchanged
		login(t, srv, passwordLogin("grace", defaultPassword)) // unchanged

		// Missing or weak new passwords are refused after authentication.
		st, body = changePassword(t, srv, frank.AccessToken, map[string]any{"auth": passwordAuth("frank", defaultPassword, sess)})
		wantStatus(t, "no new_password", st, body, http.StatusBadRequest, "M_MISSING_PARAM")
		st, body = changePassword(t, srv, frank.AccessToken, map[string]any{"new_password": "short",
			"auth": passwordAuth("frank", defaultPassword, sess)})
		wantStatus(t, "weak new_password", st, body, http.StatusBadRequest, "M_WEAK_PASSWORD")
	})

	t.Run("logs out other devices by default", func(t *testing.T) {
		heidi := register(t, srv, "heidi", defaultPassword)
		other := login(t, srv, passwordLogin("heidi", defaultPassword))
		const newPW = "heidi's new password"
		st, body := changePassword(t, srv, heidi.AccessToken, map[string]any{"new_password": newPW,
			"auth": passwordAuth("heidi", defaultPassword, "")})
		wantStatus(t, "change", st, body, http.StatusOK, "")
		wantTokenAlive(t, srv, heidi.AccessToken, heidi.UserID)
		wantTokenDead(t, srv, other.AccessToken)
		if devs := deviceIDs(t, heidi); !slices.Equal(devs, []id.DeviceID{heidi.DeviceID}) {
			t.Fatalf("devices %v, want only the caller's %s", devs, heidi.DeviceID)
		}
		_, err := srv.Client(t).Login(t.Context(), passwordLogin("heidi", defaultPassword))
		wantErr(t, err, mautrix.MForbidden)
		login(t, srv, passwordLogin("heidi", newPW))
	})

	t.Run("logout_devices false", func(t *testing.T) {
		ivan := register(t, srv, "ivan", defaultPassword)
		other := login(t, srv, passwordLogin("ivan", defaultPassword))
		st, body := changePassword(t, srv, ivan.AccessToken, map[string]any{"new_password": "ivan's new password",
			"logout_devices": false, "auth": passwordAuth("ivan", defaultPassword, "")})
		wantStatus(t, "change", st, body, http.StatusOK, "")
		wantTokenAlive(t, srv, other.AccessToken, ivan.UserID)
		wantTokenAlive(t, srv, ivan.AccessToken, ivan.UserID)
		login(t, srv, passwordLogin("ivan", "ivan's new password"))
		_, err := srv.Client(t).Login(t.Context(), passwordLogin("ivan", defaultPassword))
		wantErr(t, err, mautrix.MForbidden)
	})

	t.Run("other devices' refresh tokens die too", func(t *testing.T) {
		judy := register(t, srv, "judy", defaultPassword)
		req := passwordLogin("judy", defaultPassword)
		req.RefreshToken = true
		other, err := srv.Client(t).Login(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		st, body := changePassword(t, srv, judy.AccessToken, map[string]any{"new_password": "judy's new password",
			"auth": passwordAuth("judy", defaultPassword, "")})
		wantStatus(t, "change", st, body, http.StatusOK, "")
		st, body = srv.Do(t, "POST", "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": other.RefreshToken})
		wantStatus(t, "refresh of a logged-out device", st, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	})
}

func TestDeactivate(t *testing.T) {
	srv := startOpen(t)
	const path = "/_matrix/client/v3/account/deactivate"
	mallory := register(t, srv, "mallory", defaultPassword)
	other := login(t, srv, passwordLogin("mallory", defaultPassword))
	// A login token taken before deactivation must not work after it.
	st, body := srv.Do(t, "POST", "/_matrix/client/v1/login/get_token", mallory.AccessToken,
		map[string]any{"auth": passwordAuth("mallory", defaultPassword, "")})
	wantStatus(t, "get_token", st, body, http.StatusOK, "")
	loginToken := str(t, body, "login_token")

	st, body = srv.Do(t, "POST", path, mallory.AccessToken, nil)
	sess := wantUIA(t, "deactivate without auth", st, body, "m.login.password", "")
	st, body = srv.Do(t, "POST", path, mallory.AccessToken, map[string]any{"auth": passwordAuth("mallory", "wrong password", sess)})
	wantUIA(t, "deactivate with a wrong password", st, body, "m.login.password", "M_FORBIDDEN")
	wantTokenAlive(t, srv, mallory.AccessToken, mallory.UserID)

	st, body = srv.Do(t, "POST", path, mallory.AccessToken, map[string]any{"auth": passwordAuth("mallory", defaultPassword, sess)})
	wantStatus(t, "deactivate", st, body, http.StatusOK, "")
	if body["id_server_unbind_result"] != "no-support" {
		t.Fatalf("deactivate answer %v", body)
	}

	_, err := srv.Client(t).Login(t.Context(), passwordLogin("mallory", defaultPassword))
	wantErr(t, err, mUserDeactivated)
	_, err = srv.Client(t).Login(t.Context(), &mautrix.ReqLogin{Type: mautrix.AuthTypeToken, Token: loginToken})
	wantErr(t, err, mUserDeactivated)
	wantTokenDead(t, srv, mallory.AccessToken)
	wantTokenDead(t, srv, other.AccessToken)
	_, err = srv.Client(t).RegisterAvailable(t.Context(), "mallory")
	wantErr(t, err, mautrix.MUserInUse)
	_, err = srv.Client(t).RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Username: "mallory", Password: defaultPassword})
	wantErr(t, err, mautrix.MUserInUse)

	t.Run("erase", func(t *testing.T) {
		oscar := register(t, srv, "oscar", defaultPassword)
		if err := oscar.SetDisplayName(t.Context(), "Oscar the Grouch"); err != nil {
			t.Fatal(err)
		}
		st, body := srv.Do(t, "POST", path, oscar.AccessToken, map[string]any{"erase": true,
			"auth": passwordAuth("oscar", defaultPassword, "")})
		wantStatus(t, "deactivate with erase", st, body, http.StatusOK, "")
		// mautrix v0.33's GetDisplayName hides a 404; ask for the field itself.
		err := srv.Client(t).GetProfileField(t.Context(), oscar.UserID, "displayname", &mautrix.RespUserDisplayName{})
		wantErr(t, err, mautrix.MNotFound)
	})
}

// TestLoginTokenExpiry uses a configuration where login tokens are born
// expired (a lifetime under a millisecond), to see expiry refused without
// waiting.
func TestLoginTokenExpiry(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tributary.yaml"), []byte("auth:\n  login_token_lifetime: 1ns\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{DataDir: dir, Args: openArgs})
	uma := register(t, srv, "uma", defaultPassword)
	st, body := srv.Do(t, "POST", "/_matrix/client/v1/login/get_token", uma.AccessToken,
		map[string]any{"auth": passwordAuth("uma", defaultPassword, "")})
	wantStatus(t, "get_token", st, body, http.StatusOK, "")
	_, err := srv.Client(t).Login(t.Context(), &mautrix.ReqLogin{Type: mautrix.AuthTypeToken, Token: str(t, body, "login_token")})
	wantErr(t, err, mautrix.MForbidden)
}
