package e2efed

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// A destination unreachable for longer than federation.catch_up_after
// does not get the whole backlog when it is back: A's queue for it keeps
// the latest event of each room (the receiver fetches the rest itself,
// get_missing_events), so a dead server's queue stays bounded. The
// transaction already in flight when it went down is still delivered.
func TestOutboundCatchUpKeepsLatestPerRoom(t *testing.T) {
	a := startWithConfig(t, "federation:\n  retry_backoff: 100ms\n  max_retry_backoff: 400ms\n  catch_up_after: 1ms\n",
		"--metrics-listen", "127.0.0.1:0")
	ctx := t.Context()
	alice, c, r, carol := setupRoom(t, a)
	other, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Other"})
	if err != nil {
		t.Fatal(err)
	}
	r2 := c.join(t, a, other.RoomID, carol)
	waitForEvent(t, alice, other.RoomID, r2.last)

	c.inbox.setFail(-1)
	_, before, _ := c.inbox.snapshot()
	first, err := alice.SendText(ctx, r.roomID, "before the outage")
	if err != nil {
		t.Fatal(err)
	}
	// The transaction in flight holds the first message.
	c.inbox.waitFor(t, "the first failed attempt", func(_ []receivedTxn, att []string) bool { return len(att) > len(before) })
	var last1, last2 id.EventID
	for i := range 30 {
		resp, err := alice.SendText(ctx, r.roomID, fmt.Sprintf("during the outage %d", i))
		if err != nil {
			t.Fatal(err)
		}
		last1 = resp.EventID
		if i%6 == 0 {
			resp, err := alice.SendText(ctx, other.RoomID, fmt.Sprintf("other room %d", i))
			if err != nil {
				t.Fatal(err)
			}
			last2 = resp.EventID
		}
	}
	// Two more attempts: the first fails after everything was queued (and
	// the queue is shortened), the second comes after that.
	_, queued, _ := c.inbox.snapshot()
	c.inbox.waitFor(t, "two more failed attempts", func(_ []receivedTxn, att []string) bool { return len(att) >= len(queued)+2 })
	c.inbox.setFail(0)
	c.inbox.waitFor(t, "the latest message of each room", func(acc []receivedTxn, _ []string) bool {
		ids := eventIDs(t, r.rv, pdus(acc))
		return slices.Contains(ids, last1) && slices.Contains(ids, last2)
	})
	acc, _, _ := c.inbox.snapshot()
	var got []id.EventID
	for _, p := range pdus(acc) {
		if gjson.GetBytes(p, "type").Str == "m.room.message" {
			got = append(got, eventIDs(t, r.rv, []json.RawMessage{p})...)
		}
	}
	if want := []id.EventID{first.EventID, last2, last1}; !slices.Equal(slices.Sorted(slices.Values(got)),
		slices.Sorted(slices.Values(want))) {
		t.Fatalf("C got %d messages after its outage: %v, want the one in flight and the latest of each room %v\n%s",
			len(got), got, want, describeTxns(acc))
	}
	// Afterwards the room is sent as usual.
	next, err := alice.SendText(ctx, r.roomID, "after the outage")
	if err != nil {
		t.Fatal(err)
	}
	c.inbox.waitFor(t, "the next message", func(acc []receivedTxn, _ []string) bool {
		return slices.Contains(eventIDs(t, r.rv, pdus(acc)), next.EventID)
	})
	// Every message but the latest of each room was taken off the queue
	// (the one in flight too: it went from memory).
	resp, err := http.Get(a.MetricsURL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(metrics), "\ntributary_federation_pdus_skipped_total 34\n") {
		t.Fatalf("skipped PDUs in /metrics: %s", grepLines(string(metrics), "skipped"))
	}
}
