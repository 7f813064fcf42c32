package push

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"github.com/tributary-hs/tributary/storage/sqlite"
)

func newService(t *testing.T) *Service {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "push.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	s, err := New(store, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func msg(sender id.UserID, content map[string]any) *event.Event {
	raw, _ := json.Marshal(content)
	ev := &event.Event{Type: event.EventMessage, Sender: sender, RoomID: "!r:example.org", ID: "$e"}
	_ = json.Unmarshal(raw, &ev.Content)
	return ev
}

// The server-default rules from the spec, evaluated for the cases clients
// rely on.
func TestDefaultRules(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	bob := id.UserID("@bob:example.org")
	alice := id.UserID("@alice:example.org")
	pl := &event.PowerLevelsEventContent{Users: map[id.UserID]int{alice: 100}}
	for _, tc := range []struct {
		name              string
		members           int
		ev                *event.Event
		notify, highlight bool
	}{
		{"one-to-one message", 2, msg(alice, map[string]any{"msgtype": "m.text", "body": "hi"}), true, false},
		{"group message", 5, msg(alice, map[string]any{"msgtype": "m.text", "body": "hi"}), true, false},
		{"notice", 2, msg(alice, map[string]any{"msgtype": "m.notice", "body": "beep"}), false, false},
		{"user mention", 5, msg(alice, map[string]any{"msgtype": "m.text", "body": "bob!",
			"m.mentions": map[string]any{"user_ids": []string{string(bob)}}}), true, true},
		{"room mention by admin", 5, msg(alice, map[string]any{"msgtype": "m.text", "body": "all",
			"m.mentions": map[string]any{"room": true}}), true, true},
		{"edit", 2, msg(alice, map[string]any{"msgtype": "m.text", "body": "* fix",
			"m.relates_to": map[string]any{"rel_type": "m.replace", "event_id": "$orig"}}), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := s.Evaluate(ctx, &RoomContext{MemberCount: tc.members, PowerLevels: pl}, tc.ev, []id.UserID{bob, alice})
			if err != nil {
				t.Fatal(err)
			}
			if !tc.notify {
				if len(out) != 0 {
					t.Fatalf("notified: %+v", out)
				}
				return
			}
			if len(out) != 1 || out[0].User != bob || out[0].Highlight != tc.highlight {
				t.Fatalf("outcome %+v, want bob notified (highlight %v); the sender never is", out, tc.highlight)
			}
		})
	}
}

func TestRulesetChangesPersistAndOrder(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	bob := id.UserID("@bob:example.org")
	if err := s.PutRule(ctx, bob, "override", "a", "", "", &RuleBody{Actions: nil}); err == nil {
		t.Fatal("rule without actions accepted")
	}
	for _, r := range []struct{ id, before, after string }{{"a", "", ""}, {"b", "", "a"}, {"c", "a", ""}} {
		if err := s.PutRule(ctx, bob, "override", r.id, r.before, r.after, &RuleBody{Actions: pushrules.PushActionArray{}}); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := s.Ruleset(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rs.Override[:4] {
		ids = append(ids, r.RuleID)
	}
	if got := ids; got[0] != ".m.rule.master" || got[1] != "c" || got[2] != "a" || got[3] != "b" {
		t.Fatalf("override order %v", got)
	}
	// A fresh service (no cache) reads the stored ruleset.
	s2, _ := New(s.store, nil)
	rs2, err := s2.Ruleset(ctx, bob)
	if err != nil || len(rs2.Override) != len(rs.Override) {
		t.Fatalf("stored ruleset: %v, %d rules", err, len(rs2.Override))
	}
	if err := s.SetEnabled(ctx, bob, "override", "missing", true); err == nil {
		t.Fatal("enabling an unknown rule succeeded")
	}
}
