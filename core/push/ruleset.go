package push

import (
	"encoding/json"
	"slices"
	"strings"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"
)

// PostContentRule is the rule kind MSC4306 adds between content and room
// rules; it holds only server-default rules (clients may not add any).
const PostContentRule pushrules.PushRuleType = "postcontent"

// KindThreadSubscription is MSC4306's condition: the event is in a thread
// the user is (subscribed true) or is not (false) subscribed to.
const KindThreadSubscription pushrules.PushCondKind = "io.element.msc4306.thread_subscription"

// Ruleset is a user's push rules: mautrix's five kinds and postcontent.
type Ruleset struct {
	pushrules.PushRuleset
	PostContent []*Rule
}

// Rule is a postcontent rule. It is not mautrix's PushRule because its
// conditions carry a field mautrix has no place for (subscribed).
type Rule struct {
	RuleID     string                    `json:"rule_id"`
	Default    bool                      `json:"default"`
	Enabled    bool                      `json:"enabled"`
	Conditions []*Condition              `json:"conditions"`
	Actions    pushrules.PushActionArray `json:"actions"`
}

// Condition is a push condition with MSC4306's subscribed.
type Condition struct {
	pushrules.PushCondition
	Subscribed *bool `json:"subscribed,omitempty"`
}

// MarshalJSON writes the six kinds.
func (rs *Ruleset) MarshalJSON() ([]byte, error) {
	raw, err := json.Marshal(&rs.PushRuleset)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	pc := rs.PostContent
	if pc == nil {
		pc = []*Rule{}
	}
	if m["postcontent"], err = json.Marshal(pc); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads the six kinds.
func (rs *Ruleset) UnmarshalJSON(raw []byte) error {
	if err := json.Unmarshal(raw, &rs.PushRuleset); err != nil {
		return err
	}
	var pc struct {
		PostContent []*Rule `json:"postcontent"`
	}
	if err := json.Unmarshal(raw, &pc); err != nil {
		return err
	}
	rs.PostContent = slices.DeleteFunc(pc.PostContent, func(r *Rule) bool { return r == nil })
	return nil
}

// withDefaults brings a stored ruleset up to the server's defaults: a
// default rule it lacks (added to the server since the ruleset was
// stored: poll rules, postcontent) is inserted where it stands among the
// defaults, and a default rule the server no longer has is dropped. The
// user's own rules and their changes to default rules stay.
func withDefaults(rs, defs *Ruleset) {
	rs.Override = mergeDefaults(rs.Override, defs.Override, ruleID)
	rs.Content = mergeDefaults(rs.Content, defs.Content, ruleID)
	rs.PostContent = mergeDefaults(rs.PostContent, defs.PostContent, func(r *Rule) (string, bool) {
		return r.RuleID, r.Default
	})
	rs.Underride = mergeDefaults(rs.Underride, defs.Underride, ruleID)
	if rs.Room.Map == nil {
		rs.Room = pushrules.PushRuleArray{}.SetTypeAndMap(pushrules.RoomRule)
	}
	if rs.Sender.Map == nil {
		rs.Sender = pushrules.PushRuleArray{}.SetTypeAndMap(pushrules.SenderRule)
	}
}

func ruleID(r *pushrules.PushRule) (string, bool) { return r.RuleID, r.Default }

func mergeDefaults[T any](have, defs []T, key func(T) (string, bool)) []T {
	want := map[string]bool{}
	for _, d := range defs {
		k, _ := key(d)
		want[k] = true
	}
	have = slices.DeleteFunc(slices.Clone(have), func(r T) bool {
		k, def := key(r)
		return def && strings.HasPrefix(k, ".") && !want[k]
	})
	at := func(k string) int {
		return slices.IndexFunc(have, func(r T) bool { id, _ := key(r); return id == k })
	}
	for i, d := range defs {
		k, _ := key(d)
		if at(k) >= 0 {
			continue
		}
		pos := len(have)
		for j := i - 1; j >= 0; j-- { // after the default before it…
			if p := at(first(key(defs[j]))); p >= 0 {
				pos = p + 1
				break
			}
		}
		if pos == len(have) {
			for _, next := range defs[i+1:] { // …or before the one after it
				if p := at(first(key(next))); p >= 0 {
					pos = p
					break
				}
			}
		}
		have = slices.Insert(have, pos, d)
	}
	return have
}

func first(s string, _ bool) string { return s }

// threadOf is the thread root of an event in a thread ("" if it is not).
func threadOf(ev *event.Event) id.EventID {
	rel, _ := ev.Content.Raw["m.relates_to"].(map[string]any)
	if rel == nil || rel["rel_type"] != "m.thread" {
		return ""
	}
	root, _ := rel["event_id"].(string)
	return id.EventID(root)
}

// threadState is what thread_subscription conditions ask of an event.
type threadState struct {
	inThread   bool
	subscribed bool
}

func (r *Rule) match(room pushrules.Room, ev *event.Event, ts threadState) bool {
	if r == nil || !r.Enabled {
		return false
	}
	for _, c := range r.Conditions {
		if c == nil {
			return false
		}
		if c.Kind == KindThreadSubscription {
			if !ts.inThread || c.Subscribed == nil || *c.Subscribed != ts.subscribed {
				return false
			}
			continue
		}
		if !conditionMatches(&c.PushCondition, room, ev) {
			return false
		}
	}
	return true
}

// actions runs the rules on an event in the spec's order, postcontent
// between content and room rules (MSC4306).
func (rs *Ruleset) actions(room pushrules.Room, ev *event.Event, ts threadState) pushrules.PushActionArray {
	for _, arr := range []pushrules.PushRuleArray{rs.Override, rs.Content} {
		if r := firstMatch(arr, room, ev); r != nil {
			return r.Actions
		}
	}
	for _, r := range rs.PostContent {
		if r.match(room, ev, ts) {
			return r.Actions
		}
	}
	for _, m := range []pushrules.PushRuleMap{rs.Room, rs.Sender} {
		if r := m.GetMatchingRule(room, ev); r != nil {
			return r.Actions
		}
	}
	if r := firstMatch(rs.Underride, room, ev); r != nil {
		return r.Actions
	}
	return pushrules.DefaultPushActions
}

// RuleRef is one rule of a ruleset, of any kind.
type RuleRef struct {
	std  *pushrules.PushRule
	post *Rule
}

// Enabled reports whether the rule is enabled.
func (r RuleRef) Enabled() bool {
	if r.post != nil {
		return r.post.Enabled
	}
	return r.std.Enabled
}

// Actions are the rule's actions.
func (r RuleRef) Actions() pushrules.PushActionArray {
	if r.post != nil {
		return r.post.Actions
	}
	return r.std.Actions
}

// Value is the rule to encode as JSON.
func (r RuleRef) Value() any {
	if r.post != nil {
		return r.post
	}
	return r.std
}

func (r RuleRef) setEnabled(on bool) {
	if r.post != nil {
		r.post.Enabled = on
	} else {
		r.std.Enabled = on
	}
}

func (r RuleRef) setActions(a pushrules.PushActionArray) {
	if r.post != nil {
		r.post.Actions = a
	} else {
		r.std.Actions = a
	}
}
