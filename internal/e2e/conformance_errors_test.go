package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// Every body that ends up in an event (the content of messages and state,
// createRoom's parts, membership reasons and extra keys, profile fields
// copied into member events, redaction reasons) is refused with 400
// M_NOT_JSON or M_BAD_JSON when it is not JSON in UTF-8, holds a lone
// surrogate escape or a duplicate key, or a number canonical JSON cannot
// hold; never a 500, and nothing is sent.
func TestEventBodiesRefused(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	sent, err := alice.SendText(t.Context(), room.RoomID, "target")
	if err != nil {
		t.Fatal(err)
	}
	roomPath := "/_matrix/client/v3/rooms/" + url.PathEscape(string(room.RoomID))
	aliceSince := syncOnce(t, alice, "", 0).NextBatch

	values := []struct {
		name, value, code string
		eventOnly         bool // refused only where it becomes event content
	}{
		{"invalid UTF-8", "\"a\xffb\"", "M_NOT_JSON", false},
		{"a lone surrogate escape", `"\ud800"`, "M_BAD_JSON", false},
		{"a duplicate key", `{"k":1,"k":2}`, "M_BAD_JSON", false},
		{"a number out of range", `1e999`, "M_BAD_JSON", false},
		{"a negative number out of range", `-1e999`, "M_BAD_JSON", false},
		{"an integer beyond 2^53-1", `9007199254740993`, "M_BAD_JSON", false},
		{"a fraction", `1.5`, "M_BAD_JSON", true},
	}
	type endpoint struct {
		method, path, token string
		body                func(v string) string
		notEvent            bool // the body is not event content
	}
	const event, notEvent = false, true
	n := 0
	next := func() string { n++; return "t" + string(rune('a'+n%26)) + string(rune('a'+n/26)) }
	endpoints := func() []endpoint {
		txn := next()
		return []endpoint{
			{"PUT", roomPath + "/send/m.room.message/" + txn, alice.AccessToken,
				func(v string) string { return `{"msgtype":"m.text","body":"x","v":` + v + `}` }, event},
			{"PUT", roomPath + "/state/com.example.state/" + txn, alice.AccessToken,
				func(v string) string { return `{"v":` + v + `}` }, event},
			{"POST", "/_matrix/client/v3/createRoom", alice.AccessToken,
				func(v string) string {
					return `{"initial_state":[{"type":"com.example","state_key":"","content":{"v":` + v + `}}]}`
				}, event},
			{"POST", "/_matrix/client/v3/createRoom", alice.AccessToken,
				func(v string) string { return `{"creation_content":{"v":` + v + `}}` }, event},
			{"POST", "/_matrix/client/v3/createRoom", alice.AccessToken,
				func(v string) string { return `{"name":"n","com.example.extra":` + v + `}` }, event},
			{"POST", "/_matrix/client/v3/join/" + url.PathEscape(string(room.RoomID)), bob.AccessToken,
				func(v string) string { return `{"com.example.note":` + v + `}` }, event},
			{"POST", roomPath + "/join", bob.AccessToken,
				func(v string) string { return `{"reason":"hi","com.example.note":{"w":` + v + `}}` }, event},
			{"POST", roomPath + "/invite", alice.AccessToken,
				func(v string) string { return `{"user_id":"@carol:localhost","reason":` + v + `}` }, event},
			{"POST", roomPath + "/ban", alice.AccessToken,
				func(v string) string { return `{"user_id":"@carol:localhost","reason":` + v + `}` }, event},
			{"PUT", roomPath + "/redact/" + url.PathEscape(string(sent.EventID)) + "/" + txn, alice.AccessToken,
				func(v string) string { return `{"reason":` + v + `}` }, event},
			{"PUT", "/_matrix/client/v3/profile/" + url.PathEscape(string(alice.UserID)) + "/displayname", alice.AccessToken,
				func(v string) string { return `{"displayname":` + v + `}` }, event},
			{"PUT", "/_matrix/client/v3/profile/" + url.PathEscape(string(alice.UserID)) + "/avatar_url", alice.AccessToken,
				func(v string) string { return `{"avatar_url":` + v + `}` }, event},
			{"POST", roomPath + "/upgrade", alice.AccessToken,
				func(v string) string { return `{"new_version":` + v + `}` }, event},
			// Bodies that are not event content but ignore unknown keys
			// still refuse what no JSON reader can hold.
			{"POST", roomPath + "/receipt/m.read/" + url.PathEscape(string(sent.EventID)), alice.AccessToken,
				func(v string) string { return `{"com.example":` + v + `}` }, notEvent},
			{"PUT", "/_matrix/client/v3/user/" + url.PathEscape(string(alice.UserID)) + "/account_data/com.example." + txn,
				alice.AccessToken, func(v string) string { return `{"v":` + v + `}` }, notEvent},
		}
	}
	for _, v := range values {
		for _, e := range endpoints() {
			if v.eventOnly && e.notEvent {
				continue
			}
			st, body := srv.Do(t, e.method, e.path, e.token, e.body(v.value))
			if st >= 500 {
				t.Errorf("%s %s with %s: %d %v", e.method, e.path, v.name, st, body)
				continue
			}
			if st != http.StatusBadRequest || body["errcode"] != v.code {
				t.Errorf("%s %s with %s: %d %v, want 400 %s", e.method, e.path, v.name, st, body, v.code)
			}
		}
	}

	// %FF (not UTF-8) in an event type or a state key of the path.
	for _, p := range []string{
		roomPath + "/send/m.room.%FF/" + next(),
		roomPath + "/state/com.example.%FF/x",
		roomPath + "/state/com.example.state/%FF",
		roomPath + "/state/com.example.state/a%FFb",
		roomPath + "/state/%FF",
	} {
		st, body := srv.Do(t, "PUT", p, alice.AccessToken, `{"v":1}`)
		if st != http.StatusBadRequest || body["errcode"] == nil {
			t.Errorf("PUT %s: %d %v, want 400", p, st, body)
		}
		if !strings.Contains(p, "/send/") {
			st, body = srv.Do(t, "GET", p, alice.AccessToken, nil)
			if st != http.StatusBadRequest || body["errcode"] == nil {
				t.Errorf("GET %s: %d %v, want 400", p, st, body)
			}
		}
	}

	// Nothing refused reached the room: alice's own timeline holds no new event.
	res := syncOnce(t, alice, aliceSince, 0)
	if jr, ok := res.Rooms.Join[room.RoomID]; ok && len(jr.Timeline.Events) > 0 {
		t.Fatalf("refused requests sent events: %v", bodies(jr.Timeline.Events))
	}
}

// Status codes and errcodes clients and test suites check (issue 13, item
// 18).
func TestErrorStatusCodes(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", "bob's own password")
	aliceLaptop := login(t, srv, passwordLogin("alice", defaultPassword))
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	roomPath := "/_matrix/client/v3/rooms/" + url.PathEscape(string(room.RoomID))

	t.Run("not JSON before UIA", func(t *testing.T) {
		for _, body := range []string{`{"username":`, "not json", `["x"]`, "{\"auth\":\"\xff\"}"} {
			for _, e := range []struct{ method, path, token string }{
				{"POST", "/_matrix/client/v3/register", ""},
				{"POST", "/_matrix/client/v3/account/password", alice.AccessToken},
				{"POST", "/_matrix/client/v3/account/deactivate", alice.AccessToken},
				{"POST", "/_matrix/client/v3/delete_devices", alice.AccessToken},
				{"DELETE", "/_matrix/client/v3/devices/" + string(aliceLaptop.DeviceID), alice.AccessToken},
				{"POST", "/_matrix/client/v3/keys/device_signing/upload", alice.AccessToken},
			} {
				st, res := srv.Do(t, e.method, e.path, e.token, body)
				wantStatus(t, e.method+" "+e.path+" with "+body, st, res, http.StatusBadRequest, "M_NOT_JSON")
			}
		}
		// Bad JSON is refused before UIA too.
		st, res := srv.Do(t, "POST", "/_matrix/client/v3/register", "", `{"username":"x","username":"y"}`)
		wantStatus(t, "register with duplicate keys", st, res, http.StatusBadRequest, "M_BAD_JSON")
	})

	t.Run("UIA as another user", func(t *testing.T) {
		// Alice's token, bob's (correct) password: 403, and the device stays.
		st, res := srv.Do(t, "DELETE", "/_matrix/client/v3/devices/"+string(aliceLaptop.DeviceID), alice.AccessToken,
			map[string]any{"auth": passwordAuth(string(bob.UserID), "bob's own password", "")})
		wantStatus(t, "delete with another user's password", st, res, http.StatusForbidden, "M_FORBIDDEN")
		st, res = srv.Do(t, "POST", "/_matrix/client/v3/delete_devices", alice.AccessToken,
			map[string]any{"devices": []string{string(aliceLaptop.DeviceID)},
				"auth": passwordAuth(string(bob.UserID), "bob's own password", "")})
		wantStatus(t, "delete_devices with another user's password", st, res, http.StatusForbidden, "M_FORBIDDEN")
		if _, err := aliceLaptop.Whoami(t.Context()); err != nil {
			t.Fatalf("laptop deleted: %v", err)
		}
		// A wrong password of one's own stays the 401 of UIA.
		st, res = srv.Do(t, "DELETE", "/_matrix/client/v3/devices/"+string(aliceLaptop.DeviceID), alice.AccessToken,
			map[string]any{"auth": passwordAuth(string(alice.UserID), "wrong", "")})
		if st != http.StatusUnauthorized || res["errcode"] != "M_FORBIDDEN" || res["flows"] == nil {
			t.Fatalf("wrong password: %d %v", st, res)
		}
		// With alice's own password it works.
		st, res = srv.Do(t, "DELETE", "/_matrix/client/v3/devices/"+string(aliceLaptop.DeviceID), alice.AccessToken,
			map[string]any{"auth": passwordAuth(string(alice.UserID), defaultPassword, "")})
		wantStatus(t, "delete with the right password", st, res, http.StatusOK, "")
	})

	t.Run("invalid numbers", func(t *testing.T) {
		for _, body := range []string{
			`{"search_term":"a","limit":1.5}`, `{"search_term":"a","limit":1e999}`,
			`{"search_term":"a","limit":99999999999999999999}`, `{"search_term":"a","limit":"5"}`,
		} {
			st, res := srv.Do(t, "POST", "/_matrix/client/v3/user_directory/search", alice.AccessToken, body)
			wantStatus(t, "user directory with "+body, st, res, http.StatusBadRequest, "M_BAD_JSON")
		}
		for _, body := range []string{`{"room":{"timeline":{"limit":1.5}}}`, `{"room":{"timeline":{"limit":1e999}}}`} {
			st, res := srv.Do(t, "POST", "/_matrix/client/v3/user/"+url.PathEscape(string(alice.UserID))+"/filter",
				alice.AccessToken, body)
			wantStatus(t, "filter with "+body, st, res, http.StatusBadRequest, "M_BAD_JSON")
		}
	})

	t.Run("invalid device keys", func(t *testing.T) {
		dev := string(alice.DeviceID)
		good := func() map[string]any {
			return map[string]any{"user_id": string(alice.UserID), "device_id": dev,
				"algorithms": []string{"m.olm.v1.curve25519-aes-sha2"},
				"keys":       map[string]any{"ed25519:" + dev: "ed", "curve25519:" + dev: "curve"}, "signatures": map[string]any{}}
		}
		for name, change := range map[string]func(m map[string]any){
			"not an object":          nil,
			"another user":           func(m map[string]any) { m["user_id"] = string(bob.UserID) },
			"another device":         func(m map[string]any) { m["device_id"] = "OTHER" },
			"user_id a number":       func(m map[string]any) { m["user_id"] = 5 },
			"no algorithms":          func(m map[string]any) { delete(m, "algorithms") },
			"algorithms not a list":  func(m map[string]any) { m["algorithms"] = "m.olm.v1.curve25519-aes-sha2" },
			"no ed25519 key":         func(m map[string]any) { delete(m["keys"].(map[string]any), "ed25519:"+dev) },
			"key not a string":       func(m map[string]any) { m["keys"].(map[string]any)["curve25519:"+dev] = 5 },
			"key of another device":  func(m map[string]any) { m["keys"].(map[string]any)["curve25519:OTHER"] = "x" },
			"signatures not objects": func(m map[string]any) { m["signatures"] = map[string]any{string(alice.UserID): "x"} },
		} {
			var dk any = "device keys"
			if change != nil {
				m := good()
				change(m)
				dk = m
			}
			st, res := srv.Do(t, "POST", "/_matrix/client/v3/keys/upload", alice.AccessToken, map[string]any{"device_keys": dk})
			wantStatus(t, "device keys: "+name, st, res, http.StatusBadRequest, "M_BAD_JSON")
		}
	})

	t.Run("forget a room one is in", func(t *testing.T) {
		st, res := srv.Do(t, "POST", roomPath+"/forget", alice.AccessToken, map[string]any{})
		wantStatus(t, "forget while joined", st, res, http.StatusBadRequest, "M_UNKNOWN")
	})

	t.Run("messages: membership before parameters", func(t *testing.T) {
		for _, q := range []string{"dir=x", "dir=b&limit=-1", "dir=b&limit=abc", "dir=b&filter=%7B", "", "dir=b&from=nonsense"} {
			st, res := srv.Do(t, "GET", roomPath+"/messages?"+q, bob.AccessToken, nil)
			wantStatus(t, "bob's /messages?"+q, st, res, http.StatusForbidden, "M_FORBIDDEN")
		}
		// Alice is a member: her mistakes are named.
		st, res := srv.Do(t, "GET", roomPath+"/messages?dir=x", alice.AccessToken, nil)
		wantStatus(t, "alice's /messages?dir=x", st, res, http.StatusBadRequest, "M_INVALID_PARAM")
	})

	t.Run("invalid filters", func(t *testing.T) {
		path := "/_matrix/client/v3/user/" + url.PathEscape(string(alice.UserID)) + "/filter"
		for _, f := range []string{
			`{"room":{"rooms":"!a:localhost"}}`,
			`{"room":{"rooms":["not a room"]}}`,
			`{"room":{"not_rooms":[5]}}`,
			`{"room":{"timeline":{"rooms":["nope"]}}}`,
			`{"room":{"timeline":{"senders":["not a user"]}}}`,
			`{"room":{"state":{"not_senders":["@"]}}}`,
			`{"room":{"ephemeral":{"not_rooms":["#alias:localhost"]}}}`,
			`{"presence":{"senders":["alice"]}}`,
			`{"account_data":{"not_senders":[""]}}`,
			`{"room":{"account_data":{"senders":"@alice:localhost"}}}`,
		} {
			st, res := srv.Do(t, "POST", path, alice.AccessToken, f)
			wantStatus(t, "filter "+f, st, res, http.StatusBadRequest, "M_BAD_JSON")
			st, res = srv.Do(t, "GET", "/_matrix/client/v3/sync?timeout=0&filter="+url.QueryEscape(f), alice.AccessToken, nil)
			wantStatus(t, "inline filter "+f, st, res, http.StatusBadRequest, "M_BAD_JSON")
		}
		// Nothing was stored: filter IDs count alice's filters, and the
		// first one stored gets "0".
		st, res := srv.Do(t, "POST", path, alice.AccessToken,
			`{"room":{"rooms":["`+string(room.RoomID)+`"],"timeline":{"senders":["@bob:remote.example"]}}}`)
		wantStatus(t, "good filter", st, res, http.StatusOK, "")
		if fid := str(t, res, "filter_id"); fid != "0" {
			t.Fatalf("filter ID %q: refused filters were stored", fid)
		}
	})

	t.Run("content type", func(t *testing.T) {
		for _, e := range []struct{ method, path, token string }{
			{"GET", "/_matrix/client/versions", ""},
			{"GET", "/_matrix/client/v3/account/whoami", alice.AccessToken},
			{"GET", "/_matrix/client/v3/account/whoami", ""},
			{"GET", "/_matrix/client/v3/nope", ""},
			{"GET", "/_matrix/client/v3/user/" + url.PathEscape(string(alice.UserID)) + "/account_data/m.nothing", alice.AccessToken},
		} {
			resp, _ := rawRequest(t, nil, e.method, srv.URL+e.path, http.Header{"Authorization": {"Bearer " + e.token}}, nil)
			if ct := resp.Header.Values("Content-Type"); len(ct) != 1 || ct[0] != "application/json" {
				t.Errorf("%s %s: HTTP %d Content-Type %q, want application/json", e.method, e.path, resp.StatusCode, ct)
			}
		}
	})
}

// At debug level, each 4xx answer is logged with the path the client sent
// (no query string, secret path parameters masked) and the errcode, and no
// token reaches the log (issue 13, item 20).
func TestRefusedRequestsLogged(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Args: openArgs, Env: []string{"TRIBUTARY_LOG_LEVEL=debug"}})
	alice := register(t, srv, "alice", defaultPassword)
	const regToken = "SeCrEtReGtOkEn"
	st, body := srv.Do(t, "GET", "/_matrix/client/v3/rooms/%21nope:localhost/messages?dir=b&access_token="+alice.AccessToken, "", nil)
	wantStatus(t, "messages of an unknown room", st, body, http.StatusForbidden, "M_FORBIDDEN")
	st, body = srv.Do(t, "PUT", "/_matrix/client/v3/rooms/%21nope:localhost/send/m.room.message/t1", alice.AccessToken, "{")
	wantStatus(t, "send with a bad body", st, body, http.StatusBadRequest, "M_NOT_JSON")
	st, body = srv.Do(t, "GET", "/_synapse/admin/v1/registration_tokens/"+regToken, alice.AccessToken, nil)
	wantStatus(t, "admin API as non-admin", st, body, http.StatusForbidden, "M_FORBIDDEN")
	st, body = srv.Do(t, "GET", "/_matrix/client/v3/no/such/endpoint?access_token=x"+alice.AccessToken, "", nil)
	wantStatus(t, "unknown endpoint", st, body, http.StatusNotFound, "M_UNRECOGNIZED")
	srv.Stop() // the log is complete once the server has exited

	logs := srv.Logs()
	for _, secret := range []string{alice.AccessToken, regToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log holds the secret %q:\n%s", secret, logs)
		}
	}
	type line struct {
		Level, Msg, Method, Route, Path, Errcode string
		Status                                   int
	}
	var refused []line
	for _, l := range lines(logs) {
		var rec line
		// (mautrix's RegisterDummy starts with a UIA step, a 401.)
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "request refused" && rec.Route != "/_matrix/client/v3/register" {
			refused = append(refused, rec)
		}
	}
	want := []line{
		{"DEBUG", "request refused", "GET", "/_matrix/client/v3/rooms/:roomId/messages",
			"/_matrix/client/v3/rooms/%21nope:localhost/messages", "M_FORBIDDEN", 403},
		{"DEBUG", "request refused", "PUT", "/_matrix/client/v3/rooms/:roomId/send/:eventType/:txnId",
			"/_matrix/client/v3/rooms/%21nope:localhost/send/m.room.message/t1", "M_NOT_JSON", 400},
		{"DEBUG", "request refused", "GET", "/_synapse/admin/v1/registration_tokens/:token",
			"/_synapse/admin/v1/registration_tokens/<redacted>", "M_FORBIDDEN", 403},
		{"DEBUG", "request refused", "GET", "unmatched", "/_matrix/client/v3/no/such/endpoint", "M_UNRECOGNIZED", 404},
	}
	if !slices.Equal(refused, want) {
		t.Fatalf("refused requests logged as\n%+v\nwant\n%+v", refused, want)
	}

	// At the default level (info) there are no such lines.
	quiet := startOpen(t)
	st, body = quiet.Do(t, "GET", "/_matrix/client/v3/no/such/endpoint", "", nil)
	wantStatus(t, "unknown endpoint", st, body, http.StatusNotFound, "M_UNRECOGNIZED")
	quiet.Stop()
	if strings.Contains(quiet.Logs(), "request refused") {
		t.Fatalf("info-level log has debug lines:\n%s", quiet.Logs())
	}
}
