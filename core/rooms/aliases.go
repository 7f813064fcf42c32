package rooms

import (
	"bytes"
	"context"
	"encoding/json"

	"maunium.net/go/mautrix/id"
)

// Event ID aliases: mautrix bridges name the events they batch send
// themselves (a deterministic "$hash:server" per remote message) and keep
// using those names — in replies, reactions, edits and redactions they send
// later. Event IDs here are content hashes, so the names cannot be the real
// IDs; instead each is recorded as an alias of the real event, references
// an appservice makes through an alias are rewritten to the real event, and
// references in the events appservices are sent are rewritten back
// (appservice/pusher, with RefsToAliases).

// contentRefs lists the event IDs an event's content points at: its
// relation (m.relates_to.event_id), its reply (m.in_reply_to) and, for
// redactions of room versions 11+, content.redacts.
func contentRefs(content []byte) []id.EventID {
	if !bytes.Contains(content, []byte(`"m.relates_to"`)) && !bytes.Contains(content, []byte(`"redacts"`)) {
		return nil
	}
	var c refContent
	if json.Unmarshal(content, &c) != nil {
		return nil
	}
	var out []id.EventID
	for _, r := range []id.EventID{c.Redacts, c.RelatesTo.EventID, c.RelatesTo.InReplyTo.EventID} {
		if r != "" {
			out = append(out, r)
		}
	}
	return out
}

type refContent struct {
	Redacts   id.EventID `json:"redacts"`
	RelatesTo struct {
		EventID   id.EventID `json:"event_id"`
		InReplyTo struct {
			EventID id.EventID `json:"event_id"`
		} `json:"m.in_reply_to"`
	} `json:"m.relates_to"`
}

// rewriteRefs replaces the references of contentRefs found in m; it
// returns the content unchanged when there are none.
func rewriteRefs(content []byte, m map[id.EventID]id.EventID) []byte {
	if len(m) == 0 {
		return content
	}
	// Most often each reference is there as it is, in quotes, once: swap
	// the bytes (a batch of imported history has thousands of replies,
	// edits and reactions). Anything else — an ID written with escapes, or
	// the same text elsewhere in the content — takes the decoding way.
	if out, ok := swapRefs(content, m); ok {
		return out
	}
	var c map[string]any
	if json.Unmarshal(content, &c) != nil {
		return content
	}
	changed := false
	swap := func(obj map[string]any, key string) {
		if v, ok := obj[key].(string); ok {
			if to, ok := m[id.EventID(v)]; ok {
				obj[key] = to
				changed = true
			}
		}
	}
	swap(c, "redacts")
	if rel, ok := c["m.relates_to"].(map[string]any); ok {
		swap(rel, "event_id")
		if reply, ok := rel["m.in_reply_to"].(map[string]any); ok {
			swap(reply, "event_id")
		}
	}
	if !changed {
		return content
	}
	out, err := json.Marshal(c)
	if err != nil {
		return content
	}
	return out
}

// swapRefs replaces the references of contentRefs that m maps where they
// stand quoted in content; false when a reference is not there as many
// times as it is a reference (a thread's first reply names its root twice).
func swapRefs(content []byte, m map[id.EventID]id.EventID) ([]byte, bool) {
	times := map[id.EventID]int{}
	for _, r := range contentRefs(content) {
		times[r]++
	}
	out := content
	copied := false
	for r, n := range times {
		to, ok := m[r]
		if !ok {
			continue
		}
		quoted := []byte(`"` + string(r) + `"`)
		if bytes.Count(content, quoted) != n || !jsonSafe(r) || !jsonSafe(to) {
			return nil, false
		}
		if !copied {
			out, copied = bytes.Clone(out), true
		}
		out = bytes.ReplaceAll(out, quoted, []byte(`"`+string(to)+`"`))
	}
	return out, true
}

// jsonSafe reports whether an ID needs no escaping in JSON.
func jsonSafe(e id.EventID) bool {
	for i := 0; i < len(e); i++ {
		if c := e[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			return false
		}
	}
	return true
}

// resolveRefs rewrites references to aliases in content to the real events.
func (s *Reader) resolveRefs(ctx context.Context, content []byte) ([]byte, error) {
	refs := contentRefs(content)
	if len(refs) == 0 {
		return content, nil
	}
	m, err := s.store.ResolveEventAliases(ctx, refs)
	if err != nil {
		return nil, err
	}
	return rewriteRefs(content, m), nil
}

// ResolveEventID is the real event an alias stands for, or eventID itself.
func (s *Reader) ResolveEventID(ctx context.Context, eventID id.EventID) (id.EventID, error) {
	m, err := s.store.ResolveEventAliases(ctx, []id.EventID{eventID})
	if err != nil {
		return "", err
	}
	if real, ok := m[eventID]; ok {
		return real, nil
	}
	return eventID, nil
}

// RefsToAliases rewrites what events point at (relations, replies,
// redactions) to the aliases appservices know those events by.
func (s *Reader) RefsToAliases(ctx context.Context, evs []*ClientEvent) error {
	var refs []id.EventID
	for _, ev := range evs {
		refs = append(refs, contentRefs(ev.Content)...)
		if ev.Redacts != "" {
			refs = append(refs, ev.Redacts)
		}
	}
	if len(refs) == 0 {
		return nil
	}
	m, err := s.store.EventAliases(ctx, refs)
	if err != nil || len(m) == 0 {
		return err
	}
	for _, ev := range evs {
		ev.Content = rewriteRefs(ev.Content, m)
		if alias, ok := m[ev.Redacts]; ok {
			ev.Redacts = alias
		}
	}
	return nil
}
