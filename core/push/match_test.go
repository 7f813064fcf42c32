package push

import (
	"encoding/json"
	"fmt"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"
)

type matchRoom struct{ members int }

func (r matchRoom) GetOwnDisplayname() string { return "Bob Smith" }
func (r matchRoom) GetMemberCount() int       { return r.members }
func (r matchRoom) GetPowerLevels() *event.PowerLevelsEventContent {
	return &event.PowerLevelsEventContent{Users: map[id.UserID]int{"@alice:example.org": 100}}
}

// The matcher with compiled patterns answers as mautrix's for every rule
// of the defaults and of hand-made rules with globs, content patterns,
// escaped and dotted keys, on events of every shape; twice, so that the
// cached patterns are used too.
func TestMatchesAsMautrix(t *testing.T) {
	bob := id.UserID("@bob:example.org")
	rs, err := Defaults(bob)
	if err != nil {
		t.Fatal(err)
	}
	var extra pushrules.PushRuleset
	if err := json.Unmarshal([]byte(`{
		"override": [
			{"rule_id": "glob", "enabled": true, "actions": ["notify"], "conditions": [
				{"kind": "event_match", "key": "content.body", "pattern": "he?lo w*"}]},
			{"rule_id": "dotted", "enabled": true, "actions": ["notify"], "conditions": [
				{"kind": "event_match", "key": "content.m.relates_to.rel_type", "pattern": "m.thread"}]},
			{"rule_id": "escaped", "enabled": true, "actions": ["notify"], "conditions": [
				{"kind": "event_match", "key": "content.org\\.example\\.flag", "pattern": "y*s"}]},
			{"rule_id": "number", "enabled": true, "actions": ["notify"], "conditions": [
				{"kind": "event_match", "key": "content.count", "pattern": "4?"}]},
			{"rule_id": "bad-glob", "enabled": true, "actions": ["notify"], "conditions": [
				{"kind": "event_match", "key": "type", "pattern": "[m.room"}]},
			{"rule_id": ".m.rule.contains_display_name", "enabled": true, "actions": ["notify"], "conditions": [
				{"kind": "contains_display_name"}]},
			{"rule_id": ".m.rule.roomnotif", "enabled": true, "actions": ["notify"], "conditions": [
				{"kind": "event_match", "key": "content.body", "pattern": "@room"},
				{"kind": "sender_notification_permission", "key": "room"}]},
			{"rule_id": "sender", "enabled": true, "actions": ["notify"], "conditions": [
				{"kind": "event_match", "key": "sender", "pattern": "@alice:*"},
				{"kind": "event_match", "key": "room_id", "pattern": "!r:example.org"}]}
		],
		"content": [
			{"rule_id": "cake", "enabled": true, "actions": ["notify"], "pattern": "cake*"},
			{"rule_id": "weird", "enabled": true, "actions": ["notify"], "pattern": "a(b"},
			{"rule_id": "off", "enabled": false, "actions": ["notify"], "pattern": "hello"}
		]}`), &extra); err != nil {
		t.Fatal(err)
	}
	var rules []*pushrules.PushRule
	for _, arr := range []pushrules.PushRuleArray{rs.Override, rs.Content, rs.Underride, extra.Override, extra.Content} {
		rules = append(rules, arr...)
	}
	stateKey := ""
	mk := func(sender id.UserID, typ string, content string) *event.Event {
		ev := &event.Event{Type: event.Type{Type: typ}, Sender: sender, RoomID: "!r:example.org", ID: "$e"}
		if err := json.Unmarshal([]byte(content), &ev.Content); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	member := mk("@alice:example.org", "m.room.member", `{"membership":"invite"}`)
	sk := bob.String()
	member.StateKey = &sk
	tomb := mk("@alice:example.org", "m.room.tombstone", `{"body":"moved","replacement_room":"!n:example.org"}`)
	tomb.StateKey = &stateKey
	events := []*event.Event{
		mk("@alice:example.org", "m.room.message", `{"msgtype":"m.text","body":"hello world"}`),
		mk("@alice:example.org", "m.room.message", `{"msgtype":"m.text","body":"HeLlo Wonderful cakes, Bob Smith!"}`),
		mk("@carol:example.org", "m.room.message", `{"msgtype":"m.notice","body":"@room cake"}`),
		mk("@carol:example.org", "m.room.message", `{"msgtype":"m.text","body":"@room","m.mentions":{"room":true}}`),
		mk("@alice:example.org", "m.room.message", `{"msgtype":"m.text","body":"@room, Bob Smith"}`),
		mk("@alice:example.org", "m.room.message", `{"msgtype":"m.text","body":"@room, Bob Smith","m.mentions":{}}`),
		mk("@carol:example.org", "m.room.message", `{"msgtype":"m.text","body":"hi bob","m.mentions":{"user_ids":["@bob:example.org"]}}`),
		mk("@carol:example.org", "m.room.message", `{"msgtype":"m.text","body":"reply","m.relates_to":{"rel_type":"m.thread","event_id":"$p"}}`),
		mk("@carol:example.org", "m.room.message", `{"msgtype":"m.text","body":"edit","m.relates_to":{"rel_type":"m.replace","event_id":"$p"}}`),
		mk("@carol:example.org", "m.room.encrypted", `{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"x"}`),
		mk("@carol:example.org", "m.reaction", `{"m.relates_to":{"rel_type":"m.annotation","event_id":"$p","key":"👍"}}`),
		mk("@carol:example.org", "org.example.custom", `{"org.example.flag":"yes","count":42,"body":null}`),
		mk("@carol:example.org", "m.call.invite", `{"call_id":"c","version":1}`),
		mk("@carol:example.org", "org.matrix.msc3381.poll.start", `{"body":"poll?"}`),
		member, tomb,
	}
	matched := map[string]bool{}
	for round := range 2 {
		for members := 2; members <= 3; members++ {
			room := matchRoom{members: members}
			ctx := &RoomContext{MemberCount: members, DisplayNames: map[id.UserID]string{bob: "Bob Smith"},
				PowerLevels: room.GetPowerLevels()}
			for ei, ev := range events {
				// And with the memo Evaluate shares between the users of one
				// event (every rule of this user and the extra ones here).
				memoed := &evalRoom{ctx: ctx, user: bob, memo: newEventMemo()}
				for _, r := range rules {
					want, got := r.Match(room, ev), ruleMatches(r, room, ev)
					if want {
						matched[r.RuleID] = true
					}
					if want != got {
						t.Errorf("round %d, %d members, event %d, rule %s: mautrix %v, ours %v", round, members, ei, r.RuleID, want, got)
					}
					if got := ruleMatches(r, memoed, ev); want != got {
						t.Errorf("round %d, %d members, event %d, rule %s: mautrix %v, ours with a memo %v", round, members, ei, r.RuleID, want, got)
					}
					for ci, c := range r.Conditions {
						if want, got := c.Match(room, ev), conditionMatches(c, room, ev); want != got {
							t.Errorf("event %d, rule %s condition %d (%s): mautrix %v, ours %v", ei, r.RuleID, ci, fmt.Sprint(c.Kind, " ", c.Key), want, got)
						}
					}
				}
			}
		}
	}
	// The cases reach rules of every kind, with and without patterns.
	for _, r := range []string{".m.rule.invite_for_me", ".m.rule.suppress_notices", ".m.rule.is_user_mention",
		".m.rule.contains_display_name", ".m.rule.roomnotif", ".m.rule.message", ".m.rule.encrypted_room_one_to_one",
		".m.rule.call", ".m.rule.tombstone", "glob", "dotted", "escaped", "number", "sender", "cake"} {
		if !matched[r] {
			t.Errorf("no event matched %s", r)
		}
	}
}

// A rule's outcome is kept per event and shared by the users evaluated
// with it, except a rule with contains_display_name: one rule object
// (shared, as the defaults' are) answers for each user by their own name.
func TestRuleMemoKeepsDisplayNamesApart(t *testing.T) {
	erin, frank := id.UserID("@erin:example.org"), id.UserID("@frank:example.org")
	rc := &RoomContext{MemberCount: 3, DisplayNames: map[id.UserID]string{erin: "Erin", frank: "Frank"}}
	byName := &pushrules.PushRule{Type: pushrules.OverrideRule, RuleID: "name", Enabled: true,
		Conditions: []*pushrules.PushCondition{{Kind: pushrules.KindContainsDisplayName}}}
	byBody := &pushrules.PushRule{Type: pushrules.OverrideRule, RuleID: "body", Enabled: true,
		Conditions: []*pushrules.PushCondition{{Kind: pushrules.KindEventMatch, Key: "content.body", Pattern: "*Erin*"}}}
	ev := msg("@alice:example.org", map[string]any{"msgtype": "m.text", "body": "hi Erin"})
	memo := newEventMemo()
	for _, c := range []struct {
		user         id.UserID
		name, byBody bool
	}{{erin, true, true}, {frank, false, true}} {
		room := &evalRoom{ctx: rc, user: c.user, memo: memo}
		if got := ruleMatches(byName, room, ev); got != c.name {
			t.Errorf("display name rule for %s: %v, want %v", c.user, got, c.name)
		}
		if got := ruleMatches(byBody, room, ev); got != c.byBody {
			t.Errorf("body rule for %s: %v, want %v", c.user, got, c.byBody)
		}
	}
	if v, ok := memo.rules[byBody]; !ok || !v {
		t.Errorf("the body rule's outcome was not kept: %v %v", v, ok)
	}
	if _, ok := memo.rules[byName]; ok {
		t.Error("the display name rule's outcome was kept")
	}
}
