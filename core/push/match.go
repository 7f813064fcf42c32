package push

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"go.mau.fi/util/glob"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/pushrules"
)

// Rules are matched here with mautrix's semantics, condition by
// condition, except that patterns are compiled once: mautrix's
// PushCondition.Match compiles an event_match glob (a regexp
// simplification and often a regexp) and PushRule.Match a content rule's
// regexp on every call, which was a quarter of the CPU of a send into a
// room of 16 (each message is matched against every member's rules).
// Conditions without a pattern go to mautrix unchanged.
// TestMatchesAsMautrix holds the two to the same answers.

// patterns caches compiled patterns by kind and text. Users write their
// own rules, so it is bounded: past maxPatterns, patterns are compiled
// each time, as mautrix does.
var patterns = struct {
	sync.RWMutex
	globs   map[string]glob.Glob
	content map[string]*regexp.Regexp
}{globs: map[string]glob.Glob{}, content: map[string]*regexp.Regexp{}}

const maxPatterns = 4096

func cachedGlob(pattern string) glob.Glob {
	patterns.RLock()
	g, ok := patterns.globs[pattern]
	patterns.RUnlock()
	if ok {
		return g
	}
	g = glob.CompileWithImplicitContains(pattern)
	patterns.Lock()
	if len(patterns.globs) < maxPatterns {
		patterns.globs[pattern] = g
	}
	patterns.Unlock()
	return g
}

// contentRegexp is a content rule's pattern as mautrix matches it: case
// insensitive, whole words (nil when it does not compile).
func contentRegexp(pattern string) *regexp.Regexp {
	patterns.RLock()
	re, ok := patterns.content[pattern]
	patterns.RUnlock()
	if ok {
		return re
	}
	var buf strings.Builder
	buf.WriteString(`(?i)\b`)
	if err := glob.ToRegexPattern(pattern, &buf); err == nil {
		buf.WriteString(`\b`)
		re, _ = regexp.Compile(buf.String())
	}
	patterns.Lock()
	if len(patterns.content) < maxPatterns {
		patterns.content[pattern] = re
	}
	patterns.Unlock()
	return re
}

// conditionMatches is c.Match(room, ev) with event_match patterns compiled
// once.
func conditionMatches(c *pushrules.PushCondition, room pushrules.Room, ev *event.Event) bool {
	m := memoOf(room)
	if m != nil && (c.Kind == pushrules.KindEventPropertyIs || c.Kind == pushrules.KindEventPropertyContains) {
		// A property the event lacks matches nothing (is_user_mention names
		// each user, and most events have no m.mentions).
		has, ok := m.present[c.Key]
		if !ok {
			_, has = conditionValue(c.Key, ev)
			m.present[c.Key] = has
		}
		if !has {
			return false
		}
	}
	k, ok := condKey(c)
	if m == nil || !ok {
		return matchCondition(c, room, ev)
	}
	return remembered(m.conds, k, func() bool { return matchCondition(c, room, ev) })
}

// remembered is memo[k], found by match the first time it is asked for.
func remembered[K comparable](memo map[K]bool, k K, match func() bool) bool {
	if v, ok := memo[k]; ok {
		return v
	}
	v := match()
	memo[k] = v
	return v
}

// eventMemo keeps, for one event, the outcome of the conditions and
// content patterns that are the same for every user: the same conditions
// recur in each member's rules (the defaults), so a message into a room
// of n members is matched against each once instead of n times. Users on
// the default rules share the rules that do not name them (Defaults):
// rules holds those rules' outcomes, found by pointer, which spares each
// further user the walk through their conditions (a rule's outcome is
// kept by pointer whoever's it is, so a user's own rules are right too).
type eventMemo struct {
	rules   map[*pushrules.PushRule]bool
	conds   map[condMemoKey]bool
	content map[string]bool
	// present: whether the event has the property a key names.
	present map[string]bool
}

func newEventMemo() *eventMemo {
	return &eventMemo{rules: map[*pushrules.PushRule]bool{}, conds: map[condMemoKey]bool{}, content: map[string]bool{},
		present: map[string]bool{}}
}

// memos are memos of events evaluated before, emptied: their maps keep
// the room they grew to (a memo's four maps made anew and grown for each
// message were a quarter of the allocations of a send into a room of 16).
var memos = sync.Pool{New: func() any { return newEventMemo() }}

// release empties the memo and returns it to memos; a memo grown far past
// the usual (an event matched against thousands of users' own rules) is
// left to the collector instead.
func (m *eventMemo) release() {
	if len(m.rules)+len(m.conds)+len(m.content)+len(m.present) > maxPooledMemo {
		return
	}
	clear(m.rules)
	clear(m.conds)
	clear(m.content)
	clear(m.present)
	memos.Put(m)
}

const maxPooledMemo = 256

type condMemoKey struct {
	kind             pushrules.PushCondKind
	key, pattern, is string
	value            any
}

// memoOf is the event's memo when room carries one.
func memoOf(room pushrules.Room) *eventMemo {
	if r, ok := room.(*evalRoom); ok {
		return r.memo
	}
	return nil
}

// condKey is the memo key of a condition whose outcome does not depend on
// the user (not contains_display_name, whose name is each user's own), if
// it has one.
func condKey(c *pushrules.PushCondition) (condMemoKey, bool) {
	switch c.Kind {
	case pushrules.KindEventMatch, pushrules.KindRoomMemberCount, pushrules.KindEventPropertyIs,
		pushrules.KindEventPropertyContains, pushrules.KindSenderNotificationPermission:
	default:
		return condMemoKey{}, false
	}
	switch c.Value.(type) {
	case nil, string, bool, float64, int, int64, json.Number:
	default:
		return condMemoKey{}, false // not a comparable scalar
	}
	return condMemoKey{kind: c.Kind, key: c.Key, pattern: c.Pattern, is: c.MemberCountCondition, value: c.Value}, true
}

func matchCondition(c *pushrules.PushCondition, room pushrules.Room, ev *event.Event) bool {
	if c.Kind != pushrules.KindEventMatch {
		return c.Match(room, ev)
	}
	val, ok := conditionValue(c.Key, ev)
	if !ok {
		return false
	}
	g := cachedGlob(c.Pattern)
	if g == nil {
		return false
	}
	return g.Match(stringify(val))
}

// ruleMatches is r.Match(room, ev) with patterns compiled once, and once
// per event for a rule whose outcome is everyone's (see eventMemo.rules).
func ruleMatches(r *pushrules.PushRule, room pushrules.Room, ev *event.Event) bool {
	if r == nil || !r.Enabled {
		return false
	}
	m := memoOf(room)
	if m == nil || !sameForAll(r) {
		return matchRule(r, room, ev)
	}
	return remembered(m.rules, r, func() bool { return matchRule(r, room, ev) })
}

// sameForAll reports whether a rule matches an event alike for every
// user: all but contains_display_name, whose name is each user's own,
// depend on the rule and the event alone (a rule naming a user, as
// is_user_mention does, names them in its own conditions).
func sameForAll(r *pushrules.PushRule) bool {
	for _, c := range r.Conditions {
		if c.Kind == pushrules.KindContainsDisplayName {
			return false
		}
	}
	return true
}

func matchRule(r *pushrules.PushRule, room pushrules.Room, ev *event.Event) bool {
	switch r.RuleID {
	case ".m.rule.contains_display_name", ".m.rule.contains_user_name", ".m.rule.roomnotif":
		// The legacy mention rules stand down for events with m.mentions.
		if _, ok := ev.Content.Raw["m.mentions"]; ok {
			return false
		}
	}
	switch r.Type {
	case pushrules.OverrideRule, pushrules.UnderrideRule:
		for _, c := range r.Conditions {
			if !conditionMatches(c, room, ev) {
				return false
			}
		}
		return true
	case pushrules.ContentRule:
		body, ok := ev.Content.Raw["body"].(string)
		if !ok {
			return false
		}
		match := func() bool {
			re := contentRegexp(r.Pattern)
			return re != nil && re.MatchString(body)
		}
		if m := memoOf(room); m != nil {
			return remembered(m.content, r.Pattern, match)
		}
		return match()
	default:
		return r.Match(room, ev)
	}
}

// firstMatch is arr.GetMatchingRule(room, ev).
func firstMatch(arr pushrules.PushRuleArray, room pushrules.Room, ev *event.Event) *pushrules.PushRule {
	for _, r := range arr {
		if ruleMatches(r, room, ev) {
			return r
		}
	}
	return nil
}

// conditionValue is the value an event_match key names: a top-level
// field, or a dotted path into the content ('\' escapes a dot; where a
// part is missing, it is tried joined with the next, so that
// content.m.relates_to.rel_type finds "m.relates_to").
func conditionValue(key string, ev *event.Event) (any, bool) {
	top, sub, _ := strings.Cut(key, ".")
	switch top {
	case "type":
		return ev.Type.Type, true
	case "sender":
		return ev.Sender.String(), true
	case "room_id":
		return ev.RoomID.String(), true
	case "state_key":
		if ev.StateKey == nil {
			return nil, false
		}
		return *ev.StateKey, true
	case "content":
		return nestedValue(ev.Content.Raw, splitEscaped(sub))
	default:
		return nil, false
	}
}

func splitEscaped(s string) []string {
	var parts []string
	var cur []byte
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '.':
			parts = append(parts, string(cur))
			cur = cur[:0]
		case s[i] == '\\' && i+1 < len(s):
			i++
			cur = append(cur, s[i])
		default:
			cur = append(cur, s[i])
		}
	}
	return append(parts, string(cur))
}

func nestedValue(data map[string]any, path []string) (any, bool) {
	val, ok := data[path[0]]
	if len(path) == 1 {
		return val, ok
	}
	if ok {
		if inner, isMap := val.(map[string]any); isMap {
			if v, found := nestedValue(inner, path[1:]); found {
				return v, true
			}
		}
	}
	joined := append([]string{path[0] + "." + path[1]}, path[2:]...)
	return nestedValue(data, joined)
}

// stringify turns any JSON value into the text a glob is matched against
// (MSC3862).
func stringify(val any) string {
	switch v := val.(type) {
	case string:
		return v
	case nil:
		return "null"
	case float64:
		return strconv.FormatInt(int64(v), 10)
	default:
		return fmt.Sprint(val)
	}
}
