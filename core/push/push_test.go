package push

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"github.com/tributary-hs/tributary/storage/sqlite"
)

func newService(t testing.TB) *Service {
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

// Users without rules of their own share the default rules that do not
// name them: each still gets exactly the spec's ruleset with their own ID,
// and one user's change never reaches the shared rules.
func TestSharedDefaults(t *testing.T) {
	for _, u := range []id.UserID{"@bob:example.org", `@"q\uote":example.org`} {
		rs, err := Defaults(u)
		if err != nil {
			t.Fatal(err)
		}
		quoted, _ := json.Marshal(string(u))
		var want Ruleset
		if err := json.Unmarshal(bytes.ReplaceAll(defaultRules, []byte(`"`+userPlaceholder+`"`), quoted), &want); err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(rs)
		exp, _ := json.Marshal(&want)
		if !bytes.Equal(got, exp) {
			t.Fatalf("defaults of %s:\n%s\nwant\n%s", u, got, exp)
		}
		if bytes.Contains(got, []byte(userPlaceholder)) {
			t.Fatalf("defaults of %s still name the placeholder", u)
		}
	}
	s := newService(t)
	ctx := context.Background()
	bob, carol, alice := id.UserID("@bob:example.org"), id.UserID("@carol:example.org"), id.UserID("@alice:example.org")
	if err := s.SetEnabled(ctx, bob, "override", ".m.rule.is_user_mention", false); err != nil {
		t.Fatal(err)
	}
	if err := s.SetActions(ctx, bob, "underride", ".m.rule.message", pushrules.PushActionArray{}); err != nil {
		t.Fatal(err)
	}
	mention := msg(alice, map[string]any{"msgtype": "m.text", "body": "hey",
		"m.mentions": map[string]any{"user_ids": []string{string(bob), string(carol)}}})
	out, err := s.Evaluate(ctx, &RoomContext{MemberCount: 5}, mention, []id.UserID{bob, carol})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].User != carol || !out[0].Highlight {
		t.Fatalf("outcome %+v, want carol highlighted and bob (who turned mentions and messages off) not notified", out)
	}
	fresh, _ := Defaults("@dave:example.org")
	if r, _ := find(&fresh.PushRuleset, pushrules.OverrideRule, ".m.rule.is_user_mention"); r == nil || !r.Enabled {
		t.Fatal("bob's change reached the shared default rules")
	}
}

// Evaluating an event for many users at once (which shares the outcome of
// the conditions that are the same for everyone) answers for each user as
// evaluating it for them alone: the conditions that name the user (their
// display name, their ID in m.mentions, their localpart in the body) are
// each user's own.
func TestEvaluateManyAsEachAlone(t *testing.T) {
	s := newService(t)
	ctx := context.Background()
	alice, bob, carol, dave := id.UserID("@alice:example.org"), id.UserID("@bob:example.org"),
		id.UserID("@carol:example.org"), id.UserID("@dave:example.org")
	if err := s.PutRule(ctx, dave, "override", "quiet-notices", "", "", &RuleBody{Actions: pushrules.PushActionArray{},
		Conditions: []*pushrules.PushCondition{{Kind: pushrules.KindEventMatch, Key: "content.body", Pattern: "*carol*"}}}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []id.UserID{bob, carol} {
		if err := s.PutRule(ctx, u, "override", "my-name", "", "", &RuleBody{
			Actions:    pushrules.PushActionArray{{Action: pushrules.ActionNotify}, {Action: pushrules.ActionSetTweak, Tweak: pushrules.TweakHighlight}},
			Conditions: []*pushrules.PushCondition{{Kind: pushrules.KindContainsDisplayName}}}); err != nil {
			t.Fatal(err)
		}
	}
	// erin and frank keep the default rules, which they share but for
	// those naming them: the default display-name rule is shared, and
	// must not answer for one as for the other.
	erin, frank := id.UserID("@erin:example.org"), id.UserID("@frank:example.org")
	room := &RoomContext{MemberCount: 7, DisplayNames: map[id.UserID]string{bob: "Bobby", carol: "Caz", erin: "Erin", frank: "Frank"},
		PowerLevels: &event.PowerLevelsEventContent{Users: map[id.UserID]int{alice: 100}}}
	users := []id.UserID{bob, carol, dave, erin, frank, alice}
	for _, ev := range []*event.Event{
		msg(alice, map[string]any{"msgtype": "m.text", "body": "hi Erin"}),
		msg(alice, map[string]any{"msgtype": "m.text", "body": "hi Frank"}),
		msg(alice, map[string]any{"msgtype": "m.text", "body": "hi Bobby"}),
		msg(alice, map[string]any{"msgtype": "m.text", "body": "hi Caz and carol"}),
		msg(alice, map[string]any{"msgtype": "m.text", "body": "dave?"}),
		msg(alice, map[string]any{"msgtype": "m.text", "body": "you",
			"m.mentions": map[string]any{"user_ids": []string{string(carol)}}}),
		msg(alice, map[string]any{"msgtype": "m.notice", "body": "beep bob"}),
	} {
		all, err := s.Evaluate(ctx, room, ev, users)
		if err != nil {
			t.Fatal(err)
		}
		got := map[id.UserID]Outcome{}
		for _, o := range all {
			got[o.User] = o
		}
		for _, u := range users {
			alone, err := s.Evaluate(ctx, room, ev, []id.UserID{u})
			if err != nil {
				t.Fatal(err)
			}
			o, ok := got[u]
			if ok != (len(alone) == 1) || ok && (o.Notify != alone[0].Notify || o.Highlight != alone[0].Highlight) {
				t.Errorf("%q for %s: with the others %+v, alone %+v", ev.Content.Raw["body"], u, o, alone)
			}
		}
	}
}

// A first sync's m.push_rules for a user without rules of their own is
// the default ruleset's encoding with their ID, encoded from one template:
// it neither keeps an encoding per user nor loads (and caches) their
// ruleset, which only users who get notifications need.
func TestAccountDataContentFromTemplate(t *testing.T) {
	ctx := context.Background()
	for _, threads := range []bool{false, true} {
		var opts []Option
		if threads {
			opts = append(opts, WithThreadSubscriptions())
		}
		s, _ := newServiceWith(t, opts...)
		for _, u := range []id.UserID{"@bob:example.org", `@"q\uote":example.org`, "@a<b>&'c:example.org"} {
			got, err := s.AccountDataContent(ctx, u)
			if err != nil {
				t.Fatal(err)
			}
			rs, err := s.defaults(u)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Marshal(stored{Global: rs})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("threads %v, %s:\n%s\nwant\n%s", threads, u, got, want)
			}
		}
		if n := s.cache.Len(); n != 0 {
			t.Fatalf("threads %v: %d rulesets cached by first syncs", threads, n)
		}
	}
}

// BenchmarkEvaluate is one message evaluated for 100 members on the
// default rules (a room's every message pays it).
func BenchmarkEvaluate(b *testing.B) {
	s := newService(b)
	ctx := context.Background()
	users := make([]id.UserID, 100)
	names := map[id.UserID]string{}
	for i := range users {
		users[i] = id.UserID(fmt.Sprintf("@user%d:example.org", i))
		names[users[i]] = fmt.Sprintf("User %d", i)
	}
	room := &RoomContext{MemberCount: len(users), DisplayNames: names,
		PowerLevels: &event.PowerLevelsEventContent{Users: map[id.UserID]int{users[0]: 100}}}
	ev := msg(users[0], map[string]any{"msgtype": "m.text", "body": "hello everyone"})
	if _, err := s.Evaluate(ctx, room, ev, users); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := s.Evaluate(ctx, room, ev, users); err != nil {
			b.Fatal(err)
		}
	}
}
