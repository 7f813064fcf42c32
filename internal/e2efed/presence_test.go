package e2efed

import (
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

// carol of C is shown online on A until C has said nothing of her for
// presence.remote_offline_after (Synapse's FEDERATION_TIMEOUT: a server
// gone quiet leaves nobody online forever); then alice's sync shows her
// offline, with her status message kept (also GET /presence).
func TestRemotePresenceTimesOut(t *testing.T) {
	a := startWithConfig(t, "presence:\n  remote_offline_after: 1s\n")
	alice, c, _, carol := setupRoom(t, a)
	since := syncToken(t, alice)
	c.sendEDUs(t, a, map[string]any{"edu_type": "m.presence", "content": map[string]any{"push": []any{
		map[string]any{"user_id": carol, "presence": "online", "status_msg": "here", "last_active_ago": 0,
			"currently_active": true}}}})
	carolIs := func(what string, since, want string) string {
		t.Helper()
		var next string
		waitForSyncFrom(t, alice, since, what, func(resp *mautrix.RespSync) bool {
			next = resp.NextBatch
			for _, ev := range resp.Presence.Events {
				c := gjson.ParseBytes(ev.Content.VeryRaw)
				if ev.Sender == carol && c.Get("presence").Str == want && c.Get("status_msg").Str == "here" {
					return true
				}
			}
			return false
		})
		return next
	}
	since = carolIs("carol online", since, "online")
	carolIs("carol offline once C went quiet", since, "offline")
	code, body := a.Do(t, "GET", "/_matrix/client/v3/presence/"+string(carol)+"/status", alice.AccessToken, nil)
	if code != 200 || body["presence"] != "offline" || body["status_msg"] != "here" || body["currently_active"] != false {
		t.Fatalf("carol's presence: %d %v", code, body)
	}
}

// A sends the presence of alice, online without a change, again every
// presence.federation_ping_interval to the servers sharing a room with
// her, so that she does not time out there.
func TestPresencePingedToOtherServers(t *testing.T) {
	a := startWithConfig(t, "presence:\n  federation_ping_interval: 200ms\n")
	alice, c, _, _ := setupRoom(t, a)
	if err := alice.SetPresence(t.Context(), mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "pinging"}); err != nil {
		t.Fatal(err)
	}
	c.inbox.waitFor(t, "alice's presence three times", func(acc []receivedTxn, _ []string) bool {
		n := 0
		for _, e := range edus(acc, "m.presence") {
			for _, p := range gjson.GetBytes(e, "push").Array() {
				if p.Get("user_id").Str == string(alice.UserID) && p.Get("presence").Str == "online" &&
					p.Get("status_msg").Str == "pinging" {
					n++
				}
			}
		}
		return n >= 3
	})
}
