package e2e

import (
	"net/http"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

func TestProfile(t *testing.T) {
	srv := startOpen(t)
	lena := register(t, srv, "lena", defaultPassword)
	mike := register(t, srv, "mike", defaultPassword)
	profilePath := "/_matrix/client/v3/profile/" + string(lena.UserID)

	t.Run("default display name", func(t *testing.T) {
		name, err := srv.Client(t).GetDisplayName(t.Context(), lena.UserID)
		if err != nil || name.DisplayName != "lena" {
			t.Fatalf("display name %+v %v, want the localpart", name, err)
		}
		prof, err := srv.Client(t).GetProfile(t.Context(), lena.UserID)
		if err != nil || prof.DisplayName != "lena" || !prof.AvatarURL.IsEmpty() {
			t.Fatalf("profile %+v %v", prof, err)
		}
		// No avatar yet.
		st, body := srv.Do(t, "GET", profilePath+"/avatar_url", "", nil)
		wantStatus(t, "unset avatar_url", st, body, http.StatusNotFound, "M_NOT_FOUND")
	})

	t.Run("set and read", func(t *testing.T) {
		if err := lena.SetDisplayName(t.Context(), "Lena L."); err != nil {
			t.Fatal(err)
		}
		avatar := id.ContentURI{Homeserver: "example.org", FileID: "abcdef"}
		if err := lena.SetAvatarURL(t.Context(), avatar); err != nil {
			t.Fatal(err)
		}
		prof, err := mike.GetProfile(t.Context(), lena.UserID)
		if err != nil || prof.DisplayName != "Lena L." || prof.AvatarURL != avatar {
			t.Fatalf("profile %+v %v", prof, err)
		}
		st, body := srv.Do(t, "GET", profilePath+"/displayname", "", nil)
		wantStatus(t, "GET displayname", st, body, http.StatusOK, "")
		if len(body) != 1 || body["displayname"] != "Lena L." {
			t.Fatalf("displayname answer %v", body)
		}
		got, err := srv.Client(t).GetAvatarURL(t.Context(), lena.UserID)
		if err != nil || got != avatar {
			t.Fatalf("avatar %v %v", got, err)
		}
		// mike's profile is untouched.
		if name, err := mike.GetDisplayName(t.Context(), mike.UserID); err != nil || name.DisplayName != "mike" {
			t.Fatalf("mike's name %+v %v", name, err)
		}
	})

	t.Run("refused changes", func(t *testing.T) {
		st, body := srv.Do(t, "PUT", profilePath+"/displayname", mike.AccessToken, map[string]any{"displayname": "pwned"})
		wantStatus(t, "set another user's name", st, body, http.StatusForbidden, "M_FORBIDDEN")
		st, body = srv.Do(t, "DELETE", profilePath+"/displayname", mike.AccessToken, nil)
		wantStatus(t, "delete another user's name", st, body, http.StatusForbidden, "M_FORBIDDEN")
		st, body = srv.Do(t, "PUT", profilePath+"/displayname", "", map[string]any{"displayname": "anon"})
		wantStatus(t, "set without a token", st, body, http.StatusUnauthorized, "M_MISSING_TOKEN")
		st, body = srv.Do(t, "PUT", profilePath+"/avatar_url", lena.AccessToken, map[string]any{"avatar_url": strings.Repeat("x", 1001)})
		wantStatus(t, "1001-byte avatar", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		st, body = srv.Do(t, "PUT", profilePath+"/displayname", lena.AccessToken, map[string]any{"displayname": 42})
		wantStatus(t, "numeric displayname", st, body, http.StatusBadRequest, "M_BAD_JSON")
		st, body = srv.Do(t, "PUT", profilePath+"/avatar_url", lena.AccessToken, map[string]any{"avatar_url": []string{"mxc://a/b"}})
		wantStatus(t, "list avatar_url", st, body, http.StatusBadRequest, "M_BAD_JSON")
		st, body = srv.Do(t, "PUT", profilePath+"/displayname", lena.AccessToken, map[string]any{"name": "wrong key"})
		wantStatus(t, "body without the key", st, body, http.StatusBadRequest, "M_MISSING_PARAM")
		st, body = srv.Do(t, "PUT", profilePath+"/displayname", lena.AccessToken,
			map[string]any{"displayname": strings.Repeat("x", 257)})
		wantStatus(t, "257-byte displayname", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		prof, err := srv.Client(t).GetProfile(t.Context(), lena.UserID)
		if err != nil || prof.DisplayName != "Lena L." || prof.AvatarURL.FileID != "abcdef" {
			t.Fatalf("profile changed by refused requests: %+v %v", prof, err)
		}
	})

	t.Run("unknown user", func(t *testing.T) {
		_, err := srv.Client(t).GetProfile(t.Context(), "@nobody:localhost")
		wantErr(t, err, mautrix.MNotFound)
		// mautrix v0.33's GetDisplayName hides a 404; ask for the field itself.
		err = srv.Client(t).GetProfileField(t.Context(), "@nobody:localhost", "displayname", &mautrix.RespUserDisplayName{})
		wantErr(t, err, mautrix.MNotFound)
		_, err = srv.Client(t).GetProfile(t.Context(), "@lena:other.example")
		wantErr(t, err, mautrix.MNotFound)
	})

	t.Run("custom field", func(t *testing.T) {
		field := profilePath + "/com.example.field"
		value := map[string]any{"colour": "teal", "n": float64(3)}
		st, body := srv.Do(t, "PUT", field, lena.AccessToken, map[string]any{"com.example.field": value})
		wantStatus(t, "PUT field", st, body, http.StatusOK, "")
		st, body = srv.Do(t, "GET", field, "", nil)
		wantStatus(t, "GET field", st, body, http.StatusOK, "")
		got, _ := body["com.example.field"].(map[string]any)
		if len(body) != 1 || got["colour"] != "teal" || got["n"] != float64(3) {
			t.Fatalf("field answer %v, want %v", body, value)
		}
		prof, err := srv.Client(t).GetProfile(t.Context(), lena.UserID)
		if err != nil || prof.Extra["com.example.field"] == nil {
			t.Fatalf("profile %+v %v lacks the field", prof, err)
		}
		st, body = srv.Do(t, "DELETE", field, lena.AccessToken, nil)
		wantStatus(t, "DELETE field", st, body, http.StatusOK, "")
		st, body = srv.Do(t, "GET", field, "", nil)
		wantStatus(t, "GET deleted field", st, body, http.StatusNotFound, "M_NOT_FOUND")
		if name, err := srv.Client(t).GetDisplayName(t.Context(), lena.UserID); err != nil || name.DisplayName != "Lena L." {
			t.Fatalf("deleting a field touched the display name: %+v %v", name, err)
		}
	})

	t.Run("profile size limit", func(t *testing.T) {
		st, body := srv.Do(t, "PUT", profilePath+"/com.example.big", lena.AccessToken,
			map[string]any{"com.example.big": strings.Repeat("y", 70000)})
		wantStatus(t, "70 kB field", st, body, http.StatusBadRequest, "M_PROFILE_TOO_LARGE")
	})

	t.Run("user ID with a slash", func(t *testing.T) {
		// Localparts may contain '/', which clients escape in paths.
		odd := register(t, srv, "odd/one", defaultPassword)
		if err := odd.SetDisplayName(t.Context(), "Odd"); err != nil {
			t.Fatal(err)
		}
		prof, err := srv.Client(t).GetProfile(t.Context(), odd.UserID)
		if err != nil || prof.DisplayName != "Odd" {
			t.Fatalf("profile of %s: %+v %v", odd.UserID, prof, err)
		}
		st, body := srv.Do(t, "GET", "/_matrix/client/v3/profile/%40odd%2Fone%3Alocalhost/displayname", "", nil)
		wantStatus(t, "fully escaped user ID", st, body, http.StatusOK, "")
		if body["displayname"] != "Odd" {
			t.Fatalf("displayname answer %v", body)
		}
		if err := odd.SetAccountData(t.Context(), "com.example.odd", map[string]any{"odd": true}); err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := odd.GetAccountData(t.Context(), "com.example.odd", &got); err != nil || got["odd"] != true {
			t.Fatalf("account data of %s: %v %v", odd.UserID, got, err)
		}
	})
}
