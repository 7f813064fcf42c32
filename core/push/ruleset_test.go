package push

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"github.com/tributary-hs/tributary/storage"
	"github.com/tributary-hs/tributary/storage/sqlite"
)

func newServiceWith(t *testing.T, opts ...Option) (*Service, storage.Store) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "push.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	s, err := New(store, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s, store
}

func typed(sender id.UserID, evType string, content map[string]any) *event.Event {
	ev := msg(sender, content)
	ev.Type = event.Type{Type: evType, Class: event.MessageEventType}
	return ev
}

func ruleIDs[T any](rules []T, id func(T) string) []string {
	var out []string
	for _, r := range rules {
		out = append(out, id(r))
	}
	return out
}

func stdID(r *pushrules.PushRule) string { return r.RuleID }

// Poll rules (MSC3930) stand where Synapse puts them: poll responses are
// silent (last of the override rules), poll starts and ends notify like
// messages (last of the underride rules, one-to-one before the general).
func TestPollRules(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	bob, alice := id.UserID("@bob:example.org"), id.UserID("@alice:example.org")
	rs, err := s.Ruleset(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	if got := ruleIDs(rs.Override, stdID); got[len(got)-1] != ".org.matrix.msc3930.rule.poll_response" {
		t.Fatalf("override rules end with %v", got[len(got)-2:])
	}
	wantTail := []string{".org.matrix.msc3930.rule.poll_start_one_to_one", ".org.matrix.msc3930.rule.poll_start",
		".org.matrix.msc3930.rule.poll_end_one_to_one", ".org.matrix.msc3930.rule.poll_end"}
	if got := ruleIDs(rs.Underride, stdID); !slices.Equal(got[len(got)-4:], wantTail) {
		t.Fatalf("underride rules end with %v", got[len(got)-4:])
	}
	for _, tc := range []struct {
		name    string
		evType  string
		members int
		notify  bool
		sound   bool
	}{
		{"response", "org.matrix.msc3381.poll.response", 2, false, false},
		{"start one-to-one", "org.matrix.msc3381.poll.start", 2, true, true},
		{"start in a group", "org.matrix.msc3381.poll.start", 5, true, false},
		{"end one-to-one", "org.matrix.msc3381.poll.end", 2, true, true},
		{"end in a group", "org.matrix.msc3381.poll.end", 5, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := s.Evaluate(ctx, &RoomContext{MemberCount: tc.members}, typed(alice, tc.evType, map[string]any{}),
				[]id.UserID{bob})
			if err != nil {
				t.Fatal(err)
			}
			if (len(out) == 1) != tc.notify {
				t.Fatalf("outcome %+v, want notify %v", out, tc.notify)
			}
			if tc.notify && (out[0].Actions.Should().PlaySound != tc.sound) {
				t.Fatalf("actions %v, want sound %v", out[0].Actions, tc.sound)
			}
		})
	}
}

func inThread(sender id.UserID, root id.EventID, extra map[string]any) *event.Event {
	content := map[string]any{"msgtype": "m.text", "body": "in the thread",
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": string(root)}}
	for k, v := range extra {
		content[k] = v
	}
	return msg(sender, content)
}

// MSC4306: with thread subscriptions on, a thread notifies its
// subscribers only — even in a room whose rules say nothing — and
// mentions still notify everyone.
func TestThreadSubscriptionRules(t *testing.T) {
	ctx := context.Background()
	bob, alice, carol := id.UserID("@bob:example.org"), id.UserID("@alice:example.org"), id.UserID("@carol:example.org")
	root := id.EventID("$root")

	off := newService(t)
	out, err := off.Evaluate(ctx, &RoomContext{MemberCount: 5}, inThread(alice, root, nil), []id.UserID{bob})
	if err != nil || len(out) != 1 {
		t.Fatalf("thread subscriptions off: a thread message notifies as any message: %+v %v", out, err)
	}
	rs, _ := off.Ruleset(ctx, bob)
	if len(rs.PostContent) != 0 {
		t.Fatalf("MSC4306 rules while off: %v", ruleIDs(rs.PostContent, func(r *Rule) string { return r.RuleID }))
	}

	s, store := newServiceWith(t, WithThreadSubscriptions())
	if err := store.PutThreadSubscription(ctx, &storage.ThreadSubscription{UserID: bob, RoomID: "!r:example.org",
		RootID: root, Subscribed: true}); err != nil {
		t.Fatal(err)
	}
	// Carol mutes the room: her room rule says nothing for it, yet the
	// subscription (postcontent, before room rules) would notify her.
	if err := s.PutRule(ctx, carol, "room", "!r:example.org", "", "", &RuleBody{Actions: pushrules.PushActionArray{}}); err != nil {
		t.Fatal(err)
	}
	notified := func(ev *event.Event, members int) map[id.UserID]bool {
		t.Helper()
		out, err := s.Evaluate(ctx, &RoomContext{MemberCount: members}, ev, []id.UserID{bob, carol})
		if err != nil {
			t.Fatal(err)
		}
		got := map[id.UserID]bool{}
		for _, o := range out {
			got[o.User] = true
		}
		return got
	}
	if got := notified(inThread(alice, root, nil), 5); !got[bob] || got[carol] {
		t.Fatalf("thread message notified %v, want bob (subscribed) only", got)
	}
	mention := map[string]any{"m.mentions": map[string]any{"user_ids": []string{string(carol)}}}
	if got := notified(inThread(alice, root, mention), 5); !got[carol] {
		t.Fatalf("a mention in an unsubscribed thread did not notify: %v", got)
	}
	if got := notified(msg(alice, map[string]any{"msgtype": "m.text", "body": "main"}), 5); !got[bob] || got[carol] {
		t.Fatalf("main timeline message notified %v, want bob (carol muted the room)", got)
	}
	if err := store.PutThreadSubscription(ctx, &storage.ThreadSubscription{UserID: carol, RoomID: "!r:example.org",
		RootID: root, Subscribed: true}); err != nil {
		t.Fatal(err)
	}
	if got := notified(inThread(alice, root, nil), 5); !got[carol] {
		t.Fatalf("a subscribed thread in a muted room did not notify carol: %v", got)
	}
	// The subscribed rule can be turned off like any default rule.
	if err := s.SetEnabled(ctx, bob, "postcontent", ".io.element.msc4306.rule.subscribed_thread", false); err != nil {
		t.Fatal(err)
	}
	r, err := s.GetRule(ctx, bob, "postcontent", ".io.element.msc4306.rule.subscribed_thread")
	if err != nil || r.Enabled() {
		t.Fatalf("rule after disabling: %+v %v", r.Value(), err)
	}
	raw, _ := json.Marshal(r.Value())
	if want := `"conditions":[{"kind":"io.element.msc4306.thread_subscription","subscribed":true}]`; !json.Valid(raw) ||
		!strings.Contains(string(raw), want) {
		t.Fatalf("rule JSON %s lacks %s", raw, want)
	}
	if err := s.PutRule(ctx, bob, "postcontent", "mine", "", "", &RuleBody{Actions: pushrules.PushActionArray{}}); err == nil {
		t.Fatal("a custom postcontent rule was accepted")
	}
}

// A ruleset stored before the server had some default rules gets them,
// in their place, and keeps the user's own rules and changes.
func TestStoredRulesetGetsNewDefaults(t *testing.T) {
	ctx := context.Background()
	s, store := newServiceWith(t, WithThreadSubscriptions())
	bob := id.UserID("@bob:example.org")
	old := `{"global":{"override":[
		{"rule_id":".m.rule.master","default":true,"enabled":false,"conditions":[],"actions":[]},
		{"rule_id":"mine","default":false,"enabled":true,"conditions":[],"actions":[]},
		{"rule_id":".m.rule.suppress_notices","default":true,"enabled":false,"conditions":[{"kind":"event_match","key":"content.msgtype","pattern":"m.notice"}],"actions":[]},
		{"rule_id":".m.rule.gone","default":true,"enabled":true,"conditions":[],"actions":["notify"]}],
		"content":[],"room":[],"sender":[],
		"underride":[{"rule_id":".m.rule.message","default":true,"enabled":true,"conditions":[{"kind":"event_match","key":"type","pattern":"m.room.message"}],"actions":["notify"]}]}}`
	if _, err := store.PutAccountData(ctx, bob, "", accountDataType, json.RawMessage(old)); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Ruleset(ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	defs, _ := s.defaults(bob)
	over := ruleIDs(rs.Override, stdID)
	if over[0] != ".m.rule.master" || over[1] != "mine" || over[2] != ".m.rule.suppress_notices" ||
		slices.Contains(over, ".m.rule.gone") || len(over) != len(defs.Override)+1 {
		t.Fatalf("override %v", over)
	}
	if rs.Override[2].Enabled {
		t.Fatal("the user's change to a default rule was lost")
	}
	under := ruleIDs(rs.Underride, stdID)
	if !slices.Equal(under, ruleIDs(defs.Underride, stdID)) {
		t.Fatalf("underride %v, want %v", under, ruleIDs(defs.Underride, stdID))
	}
	if len(rs.PostContent) != 2 {
		t.Fatalf("postcontent %d rules", len(rs.PostContent))
	}
}
