package events

import (
	"encoding/json/jsontext"
	"encoding/json/v2"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// Authorize checks an event against its auth events with mautrix's
// eventauth, working around one divergence from the spec: for room versions
// whose create event names the creator in its content (v1–v10), eventauth
// reads "creator" from the join event's content instead of the create
// event's when applying rule 5.3.1 ("the only previous event is the
// m.room.create and the state_key is the creator"), so the creator's first
// join of every such room would be refused. The join is checked as a clone
// whose content carries the create event's creator; no other rule reads
// that key, and the event itself is not changed.
func Authorize(rv id.RoomVersion, ev *pdu.PDU, getEvents eventauth.GetEventsFunc, getKey pdu.GetKeyFunc) error {
	if !rv.CreatorInContent() || ev.Type != "m.room.member" || ev.StateKey == nil ||
		gjson.GetBytes(ev.Content, "membership").Str != "join" || len(ev.PrevEvents) != 1 {
		return eventauth.Authorize(rv, ev, getEvents, getKey)
	}
	prev, err := getEvents(ev.PrevEvents)
	if err != nil || len(prev) != 1 || prev[0] == nil || prev[0].Type != "m.room.create" {
		return eventauth.Authorize(rv, ev, getEvents, getKey)
	}
	var content map[string]jsontext.Value
	if err := json.Unmarshal(ev.Content, &content); err != nil {
		return eventauth.Authorize(rv, ev, getEvents, getKey)
	}
	creator := gjson.GetBytes(prev[0].Content, "creator")
	if creator.Type != gjson.String {
		return eventauth.Authorize(rv, ev, getEvents, getKey)
	}
	content["creator"] = jsontext.Value(creator.Raw)
	patched, err := json.Marshal(content)
	if err != nil {
		return eventauth.Authorize(rv, ev, getEvents, getKey)
	}
	clone := *ev
	clone.Content = patched
	return eventauth.Authorize(rv, &clone, getEvents, getKey)
}
