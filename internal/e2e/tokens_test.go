package e2e

import (
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
)

// Stream tokens are read strictly: a position too large used to wrap
// (from=s9223372036854775807_… answered start "s-9223372036854775808") and
// anything after the digits was ignored.
func TestStrictStreamTokens(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{})
	if err != nil {
		t.Fatal(err)
	}
	messages := "/_matrix/client/v3/rooms/" + url.PathEscape(string(room.RoomID)) + "/messages?dir=b&from="
	for _, tok := range []string{"s9223372036854775807_0_0", "s9223372036854775807", "s9007199254740992", "s5garbage",
		"s5_garbage", "s5_1x", "s+5", "s05", "s-0", "s 5"} {
		st, body := srv.Do(t, "GET", messages+url.QueryEscape(tok), alice.AccessToken, nil)
		wantStatus(t, "/messages from "+tok, st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		st, body = srv.Do(t, "GET", "/_matrix/client/v3/sync?timeout=0&since="+url.QueryEscape(tok), alice.AccessToken, nil)
		wantStatus(t, "/sync since "+tok, st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		st, body = srv.Do(t, "GET", "/_matrix/client/v3/keys/changes?to=s1&from="+url.QueryEscape(tok), alice.AccessToken, nil)
		wantStatus(t, "/keys/changes from "+tok, st, body, http.StatusBadRequest, "M_INVALID_PARAM")
	}
	// Tokens the server hands out work.
	next := syncOnce(t, alice, "", 0).NextBatch
	st, body := srv.Do(t, "GET", messages+url.QueryEscape(next), alice.AccessToken, nil)
	wantStatus(t, "/messages from a sync token", st, body, http.StatusOK, "")
	start := str(t, body, "start")
	if start[1] == '-' {
		t.Fatalf("start %q", start)
	}
	if end, ok := body["end"].(string); ok {
		st, body = srv.Do(t, "GET", messages+url.QueryEscape(end), alice.AccessToken, nil)
		wantStatus(t, "/messages from its end", st, body, http.StatusOK, "")
	}
	syncOnce(t, alice, next, 0)
}
