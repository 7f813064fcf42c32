package e2e

import (
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
)

// TestPersistence: what a client did survives a crash (kill -9) and a
// normal restart of the server.
func TestPersistence(t *testing.T) {
	srv := startOpen(t)
	rita := register(t, srv, "rita", defaultPassword)
	if err := rita.SetAccountData(t.Context(), "com.example.kept", map[string]any{"kept": "yes"}); err != nil {
		t.Fatal(err)
	}
	if err := rita.SetDisplayName(t.Context(), "Rita R."); err != nil {
		t.Fatal(err)
	}
	req := passwordLogin("rita", defaultPassword)
	req.RefreshToken = true
	refreshed, err := srv.Client(t).Login(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}

	for _, kill := range []bool{true, false} {
		name := map[bool]string{true: "after kill -9", false: "after a clean restart"}[kill]
		t.Run(name, func(t *testing.T) {
			srv = srv.Restart(kill)
			// The old access token still works on the new process.
			cli := clientFor(t, srv, rita.UserID, rita.DeviceID, rita.AccessToken)
			who, err := cli.Whoami(t.Context())
			if err != nil || who.UserID != rita.UserID || who.DeviceID != rita.DeviceID {
				t.Fatalf("whoami with the old token: %+v %v", who, err)
			}
			var got map[string]any
			if err := cli.GetAccountData(t.Context(), "com.example.kept", &got); err != nil || got["kept"] != "yes" {
				t.Fatalf("account data: %v %v", got, err)
			}
			if name, err := cli.GetDisplayName(t.Context(), rita.UserID); err != nil || name.DisplayName != "Rita R." {
				t.Fatalf("display name: %+v %v", name, err)
			}
			login(t, srv, passwordLogin("rita", defaultPassword))
			_, err = srv.Client(t).Login(t.Context(), passwordLogin("rita", "wrong password"))
			wantErr(t, err, mautrix.MForbidden)
			// The refresh token survives too.
			st, body := srv.Do(t, "POST", "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": refreshed.RefreshToken})
			wantStatus(t, "refresh", st, body, http.StatusOK, "")
			refreshed.RefreshToken = str(t, body, "refresh_token")
		})
	}
}
