package e2e

import (
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

func TestAccountData(t *testing.T) {
	srv := startOpen(t)
	nina := register(t, srv, "nina", defaultPassword)
	omar := register(t, srv, "omar", defaultPassword)
	const room = id.RoomID("!room:localhost")
	type content struct {
		Where string `json:"where"`
		N     int    `json:"n"`
	}

	t.Run("global and room kept apart", func(t *testing.T) {
		if err := nina.SetAccountData(t.Context(), "com.example.pref", content{"global", 1}); err != nil {
			t.Fatal(err)
		}
		if err := nina.SetRoomAccountData(t.Context(), room, "com.example.pref", content{"room", 2}); err != nil {
			t.Fatal(err)
		}
		var g, r content
		if err := nina.GetAccountData(t.Context(), "com.example.pref", &g); err != nil || g != (content{"global", 1}) {
			t.Fatalf("global: %+v %v", g, err)
		}
		if err := nina.GetRoomAccountData(t.Context(), room, "com.example.pref", &r); err != nil || r != (content{"room", 2}) {
			t.Fatalf("room: %+v %v", r, err)
		}
		// Another room has none, and neither has another user.
		err := nina.GetRoomAccountData(t.Context(), "!other:localhost", "com.example.pref", &r)
		wantErr(t, err, mautrix.MNotFound)
		err = omar.GetAccountData(t.Context(), "com.example.pref", &g)
		wantErr(t, err, mautrix.MNotFound)
		// Room-only data is not global.
		if err := nina.SetRoomAccountData(t.Context(), room, "com.example.roomonly", content{"room", 3}); err != nil {
			t.Fatal(err)
		}
		err = nina.GetAccountData(t.Context(), "com.example.roomonly", &g)
		wantErr(t, err, mautrix.MNotFound)
	})

	t.Run("overwrite", func(t *testing.T) {
		for i := range 3 {
			if err := nina.SetAccountData(t.Context(), "com.example.counter", content{"global", i}); err != nil {
				t.Fatal(err)
			}
		}
		var got map[string]any
		if err := nina.GetAccountData(t.Context(), "com.example.counter", &got); err != nil {
			t.Fatal(err)
		}
		if got["n"] != float64(2) || len(got) != 2 {
			t.Fatalf("after three writes: %v", got)
		}
		// A write replaces the whole object, it does not merge.
		if err := nina.SetAccountData(t.Context(), "com.example.counter", map[string]any{"other": true}); err != nil {
			t.Fatal(err)
		}
		got = nil
		if err := nina.GetAccountData(t.Context(), "com.example.counter", &got); err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got["other"] != true {
			t.Fatalf("after replacing: %v", got)
		}
	})

	t.Run("errors", func(t *testing.T) {
		var out map[string]any
		err := nina.GetAccountData(t.Context(), "com.example.never", &out)
		wantErr(t, err, mautrix.MNotFound)

		base := "/_matrix/client/v3/user/" + string(nina.UserID)
		st, body := srv.Do(t, "PUT", base+"/account_data/com.example.x", omar.AccessToken, map[string]any{"a": 1})
		wantStatus(t, "PUT for another user", st, body, http.StatusForbidden, "M_FORBIDDEN")
		st, body = srv.Do(t, "GET", base+"/account_data/com.example.pref", omar.AccessToken, nil)
		wantStatus(t, "GET of another user", st, body, http.StatusForbidden, "M_FORBIDDEN")
		st, body = srv.Do(t, "GET", base+"/rooms/"+string(room)+"/account_data/com.example.pref", omar.AccessToken, nil)
		wantStatus(t, "room GET of another user", st, body, http.StatusForbidden, "M_FORBIDDEN")
		st, body = srv.Do(t, "GET", base+"/account_data/com.example.pref", "", nil)
		wantStatus(t, "GET without a token", st, body, http.StatusUnauthorized, "M_MISSING_TOKEN")

		st, body = srv.Do(t, "PUT", base+"/rooms/"+string(room)+"/account_data/m.fully_read", nina.AccessToken,
			map[string]any{"event_id": "$x"})
		wantStatus(t, "m.fully_read", st, body, http.StatusMethodNotAllowed, "M_BAD_JSON")
		st, body = srv.Do(t, "PUT", base+"/account_data/m.push_rules", nina.AccessToken, map[string]any{})
		wantStatus(t, "m.push_rules", st, body, http.StatusMethodNotAllowed, "M_BAD_JSON")

		for name, raw := range map[string]string{"array": "[1]", "string": `"text"`, "number": "5", "garbage": "{oops"} {
			st, body = srv.Do(t, "PUT", base+"/account_data/com.example.bad", nina.AccessToken, raw)
			wantStatus(t, "content "+name, st, body, http.StatusBadRequest, "M_NOT_JSON")
		}
		err = nina.GetAccountData(t.Context(), "com.example.bad", &out)
		wantErr(t, err, mautrix.MNotFound)

		st, body = srv.Do(t, "PUT", base+"/rooms/not-a-room/account_data/com.example.x", nina.AccessToken, map[string]any{})
		wantStatus(t, "invalid room ID", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		st, body = srv.Do(t, "GET", base+"/rooms/not-a-room/account_data/com.example.x", nina.AccessToken, nil)
		wantStatus(t, "GET with an invalid room ID", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
	})

	t.Run("escaped type", func(t *testing.T) {
		// Types may contain characters that must be escaped in the path.
		st, body := srv.Do(t, "PUT", "/_matrix/client/v3/user/"+string(nina.UserID)+"/account_data/com.example%2Fslash",
			nina.AccessToken, map[string]any{"slash": true})
		wantStatus(t, "PUT escaped type", st, body, http.StatusOK, "")
		var got map[string]any
		if err := nina.GetAccountData(t.Context(), "com.example/slash", &got); err != nil || got["slash"] != true {
			t.Fatalf("escaped type: %v %v", got, err)
		}
	})
}
