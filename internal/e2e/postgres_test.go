package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// TestPostgres runs an account's life against PostgreSQL instead of SQLite.
// It skips when no PostgreSQL can be had, unless TRIBUTARY_REQUIRE_POSTGRES=1.
func TestPostgres(t *testing.T) {
	url := pgtest.URL(t)
	srv := testserver.Start(t, testserver.Options{Args: append([]string{"--database-url", url}, openArgs...)})
	if !strings.Contains(srv.Logs(), `"database":"postgres"`) {
		t.Fatalf("server does not report a PostgreSQL backend:\n%s", srv.Logs())
	}

	sam := register(t, srv, "sam", defaultPassword)
	_, err := srv.Client(t).RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Username: "SAM", Password: defaultPassword})
	wantErr(t, err, mautrix.MUserInUse)

	laptop := login(t, srv, passwordLogin("sam", defaultPassword))
	who, err := laptop.Whoami(t.Context())
	if err != nil || who.UserID != sam.UserID || who.DeviceID != laptop.DeviceID {
		t.Fatalf("whoami %+v %v", who, err)
	}
	if err := laptop.SetDeviceInfo(t.Context(), laptop.DeviceID, &mautrix.ReqDeviceInfo{DisplayName: "Laptop"}); err != nil {
		t.Fatal(err)
	}
	devs, err := sam.GetDevicesInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var ids []id.DeviceID
	for _, d := range devs.Devices {
		ids = append(ids, d.DeviceID)
		if d.DeviceID == laptop.DeviceID && d.DisplayName != "Laptop" {
			t.Fatalf("laptop %+v not renamed", d)
		}
	}
	if len(ids) != 2 || !slices.Contains(ids, sam.DeviceID) || !slices.Contains(ids, laptop.DeviceID) {
		t.Fatalf("devices %v", ids)
	}
	if err := sam.SetAccountData(t.Context(), "com.example.pg", map[string]any{"pg": true}); err != nil {
		t.Fatal(err)
	}

	// Password change logs the laptop out.
	st, body := srv.Do(t, "POST", "/_matrix/client/v3/account/password", sam.AccessToken,
		map[string]any{"new_password": "sam's new password"})
	sess := wantUIA(t, "password first step", st, body, "m.login.password", "")
	st, body = srv.Do(t, "POST", "/_matrix/client/v3/account/password", sam.AccessToken,
		map[string]any{"new_password": "sam's new password", "auth": passwordAuth("sam", defaultPassword, sess)})
	wantStatus(t, "password change", st, body, http.StatusOK, "")
	wantTokenDead(t, srv, laptop.AccessToken)
	wantTokenAlive(t, srv, sam.AccessToken, sam.UserID)
	_, err = srv.Client(t).Login(t.Context(), passwordLogin("sam", defaultPassword))
	wantErr(t, err, mautrix.MForbidden)

	// A restart keeps everything.
	srv = srv.Restart(true)
	sam = clientFor(t, srv, sam.UserID, sam.DeviceID, sam.AccessToken)
	var got map[string]any
	if err := sam.GetAccountData(t.Context(), "com.example.pg", &got); err != nil || got["pg"] != true {
		t.Fatalf("account data after restart: %v %v", got, err)
	}
	login(t, srv, passwordLogin("sam", "sam's new password"))

	st, body = srv.Do(t, "POST", "/_matrix/client/v3/account/deactivate", sam.AccessToken,
		map[string]any{"auth": passwordAuth("sam", "sam's new password", "")})
	wantStatus(t, "deactivate", st, body, http.StatusOK, "")
	_, err = srv.Client(t).Login(t.Context(), passwordLogin("sam", "sam's new password"))
	wantErr(t, err, mUserDeactivated)
	wantTokenDead(t, srv, sam.AccessToken)
	_, err = srv.Client(t).RegisterAvailable(t.Context(), "sam")
	wantErr(t, err, mautrix.MUserInUse)
}
