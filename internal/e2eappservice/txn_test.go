package e2eappservice

import (
	"fmt"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// TestAppServiceTransactionIDsPerPath: a bridge that derives transaction
// IDs from remote message IDs sends the same ID into several rooms, as
// several ghosts, with several event types; each is its own message.
// Retries of each are still recognised.
func TestAppServiceTransactionIDsPerPath(t *testing.T) {
	reg := writeFile(t, registration("bridge", asToken, hsToken, "@_bridge_.*:localhost"))
	srv := testserver.Start(t, testserver.Options{Args: []string{"--appservice", reg, "--disable-rate-limits"}})
	human := loginHuman(t, srv)
	var roomIDs []string
	for range 2 {
		room, err := human.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		roomIDs = append(roomIDs, string(room.RoomID))
	}
	const ghost = "@_bridge_alice:localhost"
	if code, body := do(t, srv, "POST", "/_matrix/client/v3/register", asToken, map[string]any{
		"type": "m.login.application_service", "username": "_bridge_alice", "inhibit_login": true}); code != 200 {
		t.Fatalf("ghost: %d %v", code, body)
	}
	q := "?user_id=" + url.QueryEscape(ghost)
	for _, r := range roomIDs {
		if code, body := do(t, srv, "POST", "/_matrix/client/v3/join/"+url.PathEscape(r)+q, asToken, map[string]any{}); code != 200 {
			t.Fatalf("join: %d %v", code, body)
		}
	}
	send := func(room, evType string) string {
		t.Helper()
		code, body := do(t, srv, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/%s/remote-msg-1%s",
			url.PathEscape(room), evType, q), asToken, map[string]any{"msgtype": "m.text", "body": room + " " + evType})
		if code != 200 {
			t.Fatalf("send: %d %v", code, body)
		}
		return body["event_id"].(string)
	}
	seen := map[string]string{}
	for _, room := range roomIDs {
		for _, evType := range []string{"m.room.message", "m.sticker"} {
			what := room + " " + evType
			eid := send(room, evType)
			if other, ok := seen[eid]; ok {
				t.Fatalf("%s returned the event of %s (%s)", what, other, eid)
			}
			seen[eid] = what
			if again := send(room, evType); again != eid {
				t.Fatalf("retry of %s: %s, was %s", what, again, eid)
			}
		}
	}
}
