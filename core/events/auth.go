package events

import (
	"encoding/json/jsontext"
	"encoding/json/v2"
	"fmt"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// Authorize checks an event against its auth events with mautrix's
// eventauth (v0.26.0), correcting where it departs from the spec:
//
//   - Rules 5.5.2 and 5.6.1 ("if the sender's current membership state is
//     not join, reject") test for leave instead, so joined moderators could
//     not kick or ban. The sender's membership is checked here, and
//     eventauth decides the rest of rules 5.5/5.6, which do not read it,
//     without the sender's member event.
//   - Rule 5.3.1 reads "creator" from the join event's content instead of
//     the create event's for v1–v10, refusing every creator's first join.
//     The join is checked as a clone carrying the create event's creator; no
//     other rule reads that key.
//   - A panic inside eventauth (seen on some power level changes) is a
//     rejection, never a crash.
func Authorize(rv id.RoomVersion, ev *pdu.PDU, getEvents eventauth.GetEventsFunc, getKey pdu.GetKeyFunc) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("eventauth panicked: %v", p)
		}
	}()
	if ev.Type != "m.room.member" || ev.StateKey == nil {
		return eventauth.Authorize(rv, ev, getEvents, getKey)
	}
	switch membership := gjson.GetBytes(ev.Content, "membership").Str; {
	case membership == "ban" || (membership == "leave" && ev.Sender.String() != *ev.StateKey):
		return authorizeKickOrBan(rv, ev, membership, getEvents, getKey)
	case membership == "join" && rv.CreatorInContent() && len(ev.PrevEvents) == 1:
		return authorizeFirstJoin(rv, ev, getEvents, getKey)
	}
	return eventauth.Authorize(rv, ev, getEvents, getKey)
}

func authorizeKickOrBan(rv id.RoomVersion, ev *pdu.PDU, membership string, getEvents eventauth.GetEventsFunc,
	getKey pdu.GetKeyFunc) error {
	auth, err := getEvents(ev.AuthEvents)
	if err != nil {
		return eventauth.Authorize(rv, ev, getEvents, getKey) // reports the failure in its own terms
	}
	senderEvent := id.EventID("")
	senderMembership := "leave"
	for i, a := range auth {
		if a != nil && a.Type == "m.room.member" && a.StateKey != nil && *a.StateKey == ev.Sender.String() {
			senderEvent = ev.AuthEvents[i]
			senderMembership = gjson.GetBytes(a.Content, "membership").Str
		}
	}
	if senderMembership != "join" {
		if membership == "ban" {
			return eventauth.ErrCantBanWithoutBeingInRoom
		}
		return eventauth.ErrCantKickWithoutBeingInRoom
	}
	clone := *ev
	clone.AuthEvents = make([]id.EventID, 0, len(ev.AuthEvents))
	for _, a := range ev.AuthEvents {
		if a != senderEvent {
			clone.AuthEvents = append(clone.AuthEvents, a)
		}
	}
	return eventauth.Authorize(rv, &clone, getEvents, getKey)
}

func authorizeFirstJoin(rv id.RoomVersion, ev *pdu.PDU, getEvents eventauth.GetEventsFunc, getKey pdu.GetKeyFunc) error {
	prev, err := getEvents(ev.PrevEvents)
	if err != nil || len(prev) != 1 || prev[0] == nil || prev[0].Type != "m.room.create" {
		return eventauth.Authorize(rv, ev, getEvents, getKey)
	}
	var content map[string]jsontext.Value
	creator := gjson.GetBytes(prev[0].Content, "creator")
	if creator.Type != gjson.String || json.Unmarshal(ev.Content, &content) != nil {
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
