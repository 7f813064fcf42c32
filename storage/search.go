package storage

import (
	"slices"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"
)

// EventSearch is a full-text query over the events of some rooms (POST
// /search, category room_events).
type EventSearch struct {
	// Terms are the words to find, already lower-cased: an event matches
	// when each term starts a word of its text.
	Terms []string
	// Rooms are the rooms searched; nothing matches without one.
	Rooms []SearchRoom
	// Types are the event types searched (of those SearchableText
	// indexes); nothing matches without one.
	Types []string
	// Senders, when not nil, are the only senders searched; NotSenders are
	// left out.
	Senders    []id.UserID
	NotSenders []id.UserID
	// ByRank orders the hits by rank (best first), else by stream position
	// (most recent first).
	ByRank bool
	// Until, when not 0, leaves out events after that stream position.
	Until int64
	// After, when not nil, resumes after that hit in the chosen order.
	After *SearchCursor
	// Limit bounds the hits returned (SearchEvents only).
	Limit int
}

// SearchRoom is a room to search, up to (not including) the stream
// position Before, or all of it when Before is 0.
type SearchRoom struct {
	RoomID id.RoomID
	Before int64
}

// SearchCursor is where a page of hits ended: after the event at
// StreamPos. By rank, the event's rank is the one the index gives it when
// the next page is read (ranks may move as events are indexed); Rank is its
// rank when the page was read, used when it is no longer in the index.
type SearchCursor struct {
	Rank      float64
	StreamPos int64
}

// SearchHit is a matching event and how well it matches: higher is better.
// Ranks compare only within one backend.
type SearchHit struct {
	Event *Event
	Rank  float64
}

// Cursor is the position of the hit in either order.
func (h SearchHit) Cursor() SearchCursor {
	return SearchCursor{Rank: h.Rank, StreamPos: h.Event.StreamPos}
}

// SearchCount is how many of a search's events one sender sent in a room
// with the room in one state group (CountSearchEvents).
type SearchCount struct {
	RoomID     id.RoomID
	Sender     id.UserID
	StateGroup int64
	Count      int64
}

// SearchableTypes are the event types SearchableText finds text in.
var SearchableTypes = []string{"m.room.message", "m.room.name", "m.room.topic"}

// SearchableText is the text of an event that the full-text index holds
// (the client-server API's search keys): content.body of m.room.message,
// content.name of m.room.name, and of m.room.topic content.topic and the
// text/plain bodies of content["m.topic"]. It is "" for other events.
func SearchableText(e *Event) string {
	if !slices.Contains(SearchableTypes, e.Type) {
		return ""
	}
	str := func(path string) string {
		if v := gjson.GetBytes(e.JSON, path); v.Type == gjson.String {
			return v.Str
		}
		return ""
	}
	isState := e.StateKey != nil
	switch {
	case e.Type == "m.room.message" && !isState:
		return str("content.body")
	case e.Type == "m.room.name" && isState && *e.StateKey == "":
		return str("content.name")
	case e.Type == "m.room.topic" && isState && *e.StateKey == "":
		parts := []string{}
		if t := str("content.topic"); t != "" {
			parts = append(parts, t)
		}
		for _, r := range gjson.GetBytes(e.JSON, `content.m\.topic.m\.text`).Array() {
			mime := r.Get("mimetype").Str
			if b := r.Get("body"); b.Type == gjson.String && (mime == "" || mime == "text/plain") && b.Str != "" &&
				!slices.Contains(parts, b.Str) {
				parts = append(parts, b.Str)
			}
		}
		return strings.Join(parts, "\n")
	}
	return ""
}
