package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// NUL and bytes that are not UTF-8 in fields that become text columns get
// the same 400 on both databases: PostgreSQL used to answer 500 where
// SQLite stored them.
func TestTextFields(t *testing.T) { textFields(t, startOpen(t)) }

func TestTextFieldsPostgres(t *testing.T) {
	textFields(t, testserver.Start(t, testserver.Options{Args: append([]string{"--database-url", pgtest.URL(t)}, openArgs...)}))
}

func textFields(t *testing.T, srv *testserver.Server) {
	ctx := t.Context()
	alice := register(t, srv, "alice", defaultPassword)
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
	if err != nil {
		t.Fatal(err)
	}
	rp := "/_matrix/client/v3/rooms/" + url.PathEscape(string(room.RoomID))
	me := url.PathEscape(string(alice.UserID))
	msg, err := alice.SendText(ctx, room.RoomID, "hello")
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 3000)
	rand.Read(random)
	// Incompressible: an index row too big for PostgreSQL.
	longThread := "$" + base64.RawURLEncoding.EncodeToString(random)
	login := func(extra string) string {
		return `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"` +
			defaultPassword + `"` + extra + `}`
	}
	for _, tc := range []struct {
		name, method, path, token, body, code string
	}{
		{"unauthenticated login with a NUL device name", "POST", "/_matrix/client/v3/login", "",
			login(`,"initial_device_display_name":"a\u0000b"`), "M_INVALID_PARAM"},
		{"unauthenticated login with an 0xFF device name", "POST", "/_matrix/client/v3/login", "",
			login(",\"initial_device_display_name\":\"a\xffb\""), "M_NOT_JSON"},
		{"device rename with NUL", "PUT", "/_matrix/client/v3/devices/" + url.PathEscape(string(alice.DeviceID)),
			alice.AccessToken, `{"display_name":"a\u0000b"}`, "M_INVALID_PARAM"},
		{"event type with NUL", "PUT", rp + "/send/a%00b/t1", alice.AccessToken, `{"body":"x"}`, "M_INVALID_PARAM"},
		{"event type with 0xFF", "PUT", rp + "/send/a%FFb/t2", alice.AccessToken, `{"body":"x"}`, "M_INVALID_PARAM"},
		{"transaction ID with NUL", "PUT", rp + "/send/m.room.message/t%003", alice.AccessToken, `{"body":"x"}`, "M_INVALID_PARAM"},
		{"state key with NUL", "PUT", rp + "/state/com.example/a%00b", alice.AccessToken, `{}`, "M_INVALID_PARAM"},
		{"initial state type with NUL", "POST", "/_matrix/client/v3/createRoom", alice.AccessToken,
			`{"initial_state":[{"type":"a\u0000","state_key":"","content":{}}]}`, "M_INVALID_PARAM"},
		{"account data type with NUL", "PUT", "/_matrix/client/v3/user/" + me + "/account_data/a%00b", alice.AccessToken,
			`{}`, "M_INVALID_PARAM"},
		{"to-device type with NUL", "PUT", "/_matrix/client/v3/sendToDevice/a%00b/t4", alice.AccessToken,
			`{"messages":{}}`, "M_INVALID_PARAM"},
		{"receipt for an event ID with NUL", "POST", rp + "/receipt/m.read/$a%00b", alice.AccessToken, `{}`, "M_INVALID_PARAM"},
		{"receipt thread_id of 4 KB", "POST", rp + "/receipt/m.read/" + url.PathEscape(string(msg.EventID)),
			alice.AccessToken, `{"thread_id":"` + longThread + `"}`, "M_INVALID_PARAM"},
		{"receipt thread_id with NUL", "POST", rp + "/receipt/m.read/" + url.PathEscape(string(msg.EventID)),
			alice.AccessToken, `{"thread_id":"$a\u0000"}`, "M_INVALID_PARAM"},
		{"empty receipt thread_id", "POST", rp + "/receipt/m.read/" + url.PathEscape(string(msg.EventID)),
			alice.AccessToken, `{"thread_id":""}`, "M_INVALID_PARAM"},
		{"transaction ID of 4 KB", "PUT", rp + "/send/m.room.message/" + longThread[1:], alice.AccessToken, `{"body":"x"}`,
			"M_INVALID_PARAM"},
		{"redaction transaction ID of 4 KB", "PUT", rp + "/redact/" + url.PathEscape(string(msg.EventID)) + "/" + longThread[1:],
			alice.AccessToken, `{}`, "M_INVALID_PARAM"},
		{"to-device transaction ID of 4 KB", "PUT", "/_matrix/client/v3/sendToDevice/com.example/" + longThread[1:],
			alice.AccessToken, `{"messages":{}}`, "M_INVALID_PARAM"},
		{"sync filter with NUL", "GET", "/_matrix/client/v3/sync?timeout=0&filter=%00", alice.AccessToken, "", "M_INVALID_PARAM"},
		{"alias with NUL", "PUT", "/_matrix/client/v3/directory/room/%23a%00b:localhost", alice.AccessToken,
			`{"room_id":"` + string(room.RoomID) + `"}`, "M_INVALID_PARAM"},
		{"pusher key with NUL", "POST", "/_matrix/client/v3/pushers/set", alice.AccessToken,
			`{"pushkey":"a\u0000","kind":"email","app_id":"m.email","app_display_name":"a","device_display_name":"d","lang":"en","data":{}}`,
			"M_INVALID_PARAM"},
		{"report reason with NUL", "POST", rp + "/report", alice.AccessToken, `{"reason":"a\u0000"}`, "M_INVALID_PARAM"},
		{"upload file name with NUL", "POST", "/_matrix/media/v3/upload?filename=a%00b", alice.AccessToken, "xx", "M_INVALID_PARAM"},
		{"upload file name with 0xFF", "POST", "/_matrix/media/v3/upload?filename=a%FFb", alice.AccessToken, "xx", "M_INVALID_PARAM"},
		{"access token with 0xFF", "GET", "/_matrix/client/v3/account/whoami?access_token=a%FFb", "", "", "M_INVALID_PARAM"},
	} {
		var body any
		if tc.body != "" {
			body = tc.body
		}
		st, res := srv.Do(t, tc.method, tc.path, tc.token, body)
		wantStatus(t, tc.name, st, res, http.StatusBadRequest, tc.code)
	}

	// Threads are "main" or an event ID.
	for _, thread := range []string{"main", string(msg.EventID)} {
		st, res := srv.Do(t, "POST", rp+"/receipt/m.read/"+url.PathEscape(string(msg.EventID)), alice.AccessToken,
			map[string]any{"thread_id": thread})
		wantStatus(t, "receipt in thread "+thread, st, res, http.StatusOK, "")
	}
	// JSON kept as JSON holds NUL (as "\u0000") on both: event content,
	// including a relation whose type holds one (it is no relation).
	for name, content := range map[string]string{
		"body":     `{"msgtype":"m.text","body":"a\u0000b"}`,
		"relation": `{"msgtype":"m.text","body":"r","m.relates_to":{"rel_type":"a\u0000","event_id":"` + string(msg.EventID) + `"}}`,
	} {
		st, res := srv.Do(t, "PUT", rp+"/send/m.room.message/nul-"+name, alice.AccessToken, content)
		wantStatus(t, "message with NUL in its "+name, st, res, http.StatusOK, "")
	}
	st, res := srv.Do(t, "PUT", "/_matrix/client/v3/user/"+me+"/account_data/com.example.nul", alice.AccessToken, `{"a":"\u0000"}`)
	wantStatus(t, "account data holding NUL", st, res, http.StatusOK, "")
	page, err := alice.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range page.Chunk {
		if ev.Type == event.EventMessage && ev.Content.Raw["body"] == "a\x00b" {
			found = true
		}
	}
	if !found {
		t.Fatal("the message holding NUL is not in the room")
	}
	// The server is fine for everyone.
	if _, err := alice.SendText(ctx, room.RoomID, "still here"); err != nil {
		t.Fatal(err)
	}
}
