package rooms

import (
	"slices"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/tidwall/gjson"

	"github.com/tributary-hs/tributary/storage"
)

// EventFilter is the RoomEventFilter of the client-server API (the parts
// that apply to timeline pages).
type EventFilter struct {
	Limit           int         `json:"limit,omitempty"`
	Types           []string    `json:"types,omitempty"`
	NotTypes        []string    `json:"not_types,omitempty"`
	Senders         []id.UserID `json:"senders,omitempty"`
	NotSenders      []id.UserID `json:"not_senders,omitempty"`
	ContainsURL     *bool       `json:"contains_url,omitempty"`
	LazyLoadMembers bool        `json:"lazy_load_members,omitempty"`
	// RelTypes and NotRelTypes filter by m.relates_to.rel_type (MSC3874,
	// unstable prefix, as Synapse and clients use it).
	RelTypes    []string `json:"org.matrix.msc3874.rel_types,omitempty"`
	NotRelTypes []string `json:"org.matrix.msc3874.not_rel_types,omitempty"`
}

// typeMatches implements the filter's type globs ("m.room.*").
func typeMatches(pattern, t string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(t, p)
	}
	return pattern == t
}

// letsAll reports whether the filter lets every event through (a limit
// or lazy loading aside).
func (f *EventFilter) letsAll() bool {
	return f == nil || (f.Types == nil && f.NotTypes == nil && f.Senders == nil && f.NotSenders == nil &&
		f.RelTypes == nil && f.NotRelTypes == nil && f.ContainsURL == nil)
}

// Allows reports whether the filter lets an event through.
func (f *EventFilter) Allows(e *storage.Event) bool {
	if f == nil {
		return true
	}
	if f.Types != nil && !slices.ContainsFunc(f.Types, func(p string) bool { return typeMatches(p, e.Type) }) {
		return false
	}
	if slices.ContainsFunc(f.NotTypes, func(p string) bool { return typeMatches(p, e.Type) }) {
		return false
	}
	if f.Senders != nil && !slices.Contains(f.Senders, e.Sender) {
		return false
	}
	if slices.Contains(f.NotSenders, e.Sender) {
		return false
	}
	if f.RelTypes != nil && !slices.Contains(f.RelTypes, e.RelType) {
		return false
	}
	if e.RelType != "" && slices.Contains(f.NotRelTypes, e.RelType) {
		return false
	}
	if f.ContainsURL != nil {
		has := gjson.GetBytes(e.JSON, "content.url").Type == gjson.String
		if has != *f.ContainsURL {
			return false
		}
	}
	return true
}
