package e2e

import (
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
)

func TestRegister(t *testing.T) {
	srv := startOpen(t)

	t.Run("dummy flow", func(t *testing.T) {
		cli := srv.Client(t)
		req := &mautrix.ReqRegister[any]{Username: "alice", Password: defaultPassword, InitialDeviceDisplayName: "Alice's phone"}
		res, uia, err := cli.Register(t.Context(), req)
		if err != nil || res != nil || uia == nil {
			t.Fatalf("first step: res=%+v uia=%+v err=%v, want a UIA answer", res, uia, err)
		}
		if len(uia.Flows) != 1 || len(uia.Flows[0].Stages) != 1 || uia.Flows[0].Stages[0] != mautrix.AuthTypeDummy {
			t.Fatalf("flows %+v, want [[m.login.dummy]]", uia.Flows)
		}
		if uia.Session == "" || uia.ErrCode != "" {
			t.Fatalf("first step: session %q errcode %q", uia.Session, uia.ErrCode)
		}
		// The first step registered nobody.
		if _, err := cli.RegisterAvailable(t.Context(), "alice"); err != nil {
			t.Fatalf("alice taken after the first step only: %v", err)
		}

		req.Auth = mautrix.BaseAuthData{Type: mautrix.AuthTypeDummy, Session: uia.Session}
		res, _, err = cli.Register(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if res.UserID != userID("alice") || res.AccessToken == "" || res.DeviceID == "" {
			t.Fatalf("registration answer %+v", res)
		}
		who, err := clientFor(t, srv, res.UserID, res.DeviceID, res.AccessToken).Whoami(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if who.UserID != userID("alice") || who.DeviceID != res.DeviceID {
			t.Fatalf("whoami %+v, want alice on %s", who, res.DeviceID)
		}
		// The session ended with the registration.
		_, _, err = cli.Register(t.Context(), &mautrix.ReqRegister[any]{Username: "alice2", Password: defaultPassword,
			Auth: mautrix.BaseAuthData{Type: mautrix.AuthTypeDummy, Session: uia.Session}})
		wantErr(t, err, mUnknownBadRequest)
	})

	t.Run("user in use", func(t *testing.T) {
		register(t, srv, "bob", defaultPassword)
		for _, name := range []string{"bob", "Bob", "BOB", "@bob:localhost"} {
			_, err := srv.Client(t).RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Username: name, Password: defaultPassword})
			wantErr(t, err, mautrix.MUserInUse)
		}
	})

	t.Run("invalid username", func(t *testing.T) {
		for _, name := range []string{"bad name", "é", "semi;colon", "@carol:other.example", ":"} {
			_, err := srv.Client(t).RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Username: name, Password: defaultPassword})
			wantErr(t, err, mautrix.MInvalidUsername)
		}
	})

	t.Run("weak password", func(t *testing.T) {
		for _, pw := range []string{"abc", "1234567"} {
			_, err := srv.Client(t).RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Username: "weak", Password: pw})
			wantErr(t, err, mWeakPassword)
		}
		// Eight characters is the default minimum.
		register(t, srv, "weak", "12345678")
	})

	t.Run("missing password", func(t *testing.T) {
		cli := srv.Client(t)
		_, uia, err := cli.Register(t.Context(), &mautrix.ReqRegister[any]{Username: "nopass"})
		if err != nil || uia == nil {
			t.Fatalf("first step without password: uia=%v err=%v", uia, err)
		}
		_, _, err = cli.Register(t.Context(), &mautrix.ReqRegister[any]{Username: "nopass",
			Auth: mautrix.BaseAuthData{Type: mautrix.AuthTypeDummy, Session: uia.Session}})
		wantErr(t, err, mMissingParam)
		if _, err := cli.RegisterAvailable(t.Context(), "nopass"); err != nil {
			t.Fatalf("nopass was created without a password: %v", err)
		}
	})

	t.Run("guest", func(t *testing.T) {
		_, _, err := srv.Client(t).RegisterGuest(t.Context(), &mautrix.ReqRegister[any]{})
		wantErr(t, err, mGuestForbidden)
		st, body := srv.Do(t, "POST", "/_matrix/client/v3/register?kind=robot", "", map[string]any{})
		wantStatus(t, "kind=robot", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
	})

	t.Run("inhibit login", func(t *testing.T) {
		res, err := srv.Client(t).RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Username: "quiet",
			Password: defaultPassword, InhibitLogin: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.UserID != userID("quiet") || res.AccessToken != "" || res.DeviceID != "" {
			t.Fatalf("inhibit_login answer %+v, want user_id only", res)
		}
		cli := login(t, srv, passwordLogin("quiet", defaultPassword))
		devs, err := cli.GetDevicesInfo(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(devs.Devices) != 1 || devs.Devices[0].DeviceID != cli.DeviceID {
			t.Fatalf("devices %+v, want only the login's %s (registration made none)", devs.Devices, cli.DeviceID)
		}
	})

	t.Run("generated username", func(t *testing.T) {
		res, err := srv.Client(t).RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Password: defaultPassword})
		if err != nil {
			t.Fatal(err)
		}
		local, server, err := res.UserID.Parse()
		if err != nil || server != "localhost" || len(local) == 0 {
			t.Fatalf("generated user ID %q: %v", res.UserID, err)
		}
	})

	t.Run("available", func(t *testing.T) {
		cli := srv.Client(t)
		res, err := cli.RegisterAvailable(t.Context(), "nobody-yet")
		if err != nil || !res.Available {
			t.Fatalf("free name: %+v %v", res, err)
		}
		register(t, srv, "taken", defaultPassword)
		_, err = cli.RegisterAvailable(t.Context(), "taken")
		wantErr(t, err, mautrix.MUserInUse)
		_, err = cli.RegisterAvailable(t.Context(), "TAKEN")
		wantErr(t, err, mautrix.MUserInUse)
		_, err = cli.RegisterAvailable(t.Context(), "not valid")
		wantErr(t, err, mautrix.MInvalidUsername)
		st, body := srv.Do(t, "GET", "/_matrix/client/v3/register/available", "", nil)
		wantStatus(t, "no username", st, body, http.StatusBadRequest, "M_MISSING_PARAM")
	})

	t.Run("unknown session", func(t *testing.T) {
		_, _, err := srv.Client(t).Register(t.Context(), &mautrix.ReqRegister[any]{Username: "ghost", Password: defaultPassword,
			Auth: mautrix.BaseAuthData{Type: mautrix.AuthTypeDummy, Session: "no-such-session"}})
		wantErr(t, err, mUnknownBadRequest)
		if _, err := srv.Client(t).RegisterAvailable(t.Context(), "ghost"); err != nil {
			t.Fatalf("ghost registered with an unknown session: %v", err)
		}
	})

	t.Run("unknown stage", func(t *testing.T) {
		// A stage the flows do not offer is a failed stage: 401 with an
		// errcode and the flows again.
		st, body := srv.Do(t, "POST", "/_matrix/client/v3/register", "", map[string]any{"username": "stage",
			"password": defaultPassword, "auth": passwordAuth("stage", defaultPassword, "")})
		wantUIA(t, "m.login.password stage on register", st, body, "m.login.dummy", "M_UNRECOGNIZED")
		if _, err := srv.Client(t).RegisterAvailable(t.Context(), "stage"); err != nil {
			t.Fatalf("stage registered: %v", err)
		}
	})

	t.Run("session of another endpoint", func(t *testing.T) {
		// A /register session cannot authenticate a password change…
		_, uia, err := srv.Client(t).Register(t.Context(), &mautrix.ReqRegister[any]{Username: "thief", Password: defaultPassword})
		if err != nil || uia == nil {
			t.Fatalf("first step: %v", err)
		}
		victim := register(t, srv, "victim", defaultPassword)
		st, body := srv.Do(t, "POST", "/_matrix/client/v3/account/password", victim.AccessToken, map[string]any{
			"new_password": "a new password", "auth": passwordAuth("victim", defaultPassword, uia.Session)})
		wantStatus(t, "register session on account/password", st, body, http.StatusForbidden, "M_FORBIDDEN")
		login(t, srv, passwordLogin("victim", defaultPassword)) // password unchanged

		// …and a password-change session cannot complete a registration.
		st, body = srv.Do(t, "POST", "/_matrix/client/v3/account/password", victim.AccessToken,
			map[string]any{"new_password": "a new password"})
		sess := wantUIA(t, "password first step", st, body, "m.login.password", "")
		_, _, err = srv.Client(t).Register(t.Context(), &mautrix.ReqRegister[any]{Username: "thief", Password: defaultPassword,
			Auth: mautrix.BaseAuthData{Type: mautrix.AuthTypeDummy, Session: sess}})
		wantErr(t, err, mautrix.MForbidden)
		if _, err := srv.Client(t).RegisterAvailable(t.Context(), "thief"); err != nil {
			t.Fatalf("thief registered: %v", err)
		}
	})

	t.Run("refresh token at registration", func(t *testing.T) {
		res, err := srv.Client(t).RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Username: "fresh",
			Password: defaultPassword, RefreshToken: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.RefreshToken == "" || res.ExpiresInMS != 300000 {
			t.Fatalf("refresh_token %q expires_in_ms %d, want a token and 300000", res.RefreshToken, res.ExpiresInMS)
		}
	})
}

// TestRegistrationClosed: without --enable-registration nobody may register.
func TestRegistrationClosed(t *testing.T) {
	srv := startClosed(t)
	_, _, err := srv.Client(t).Register(t.Context(), &mautrix.ReqRegister[any]{Username: "alice", Password: defaultPassword})
	wantErr(t, err, mautrix.MForbidden)
	_, _, err = srv.Client(t).Register(t.Context(), &mautrix.ReqRegister[any]{Username: "alice", Password: defaultPassword,
		Auth: mautrix.BaseAuthData{Type: mautrix.AuthTypeDummy}})
	wantErr(t, err, mautrix.MForbidden)
	// Guests are refused as guests, whatever the registration setting.
	_, _, err = srv.Client(t).RegisterGuest(t.Context(), &mautrix.ReqRegister[any]{})
	wantErr(t, err, mGuestForbidden)
	st, body := srv.Do(t, "GET", "/_matrix/client/v1/register/m.login.registration_token/validity?token=abc", "", nil)
	wantStatus(t, "token validity with registration closed", st, body, http.StatusForbidden, "M_FORBIDDEN")
}
