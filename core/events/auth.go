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
//   - Rules 5.2 and 5.3.5.2 (restricted joins) read the authorising user
//     from content.authorised_via_users_server, not the spec's
//     join_authorised_via_users_server, so every restricted join failed.
//     The join is checked as a clone carrying both keys; redaction keeps
//     only the spec's, so the clone's signatures are the event's.
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
	case membership == "join" && gjson.GetBytes(ev.Content, "join_authorised_via_users_server").Exists():
		return authorizeRestrictedJoin(rv, ev, getEvents, getKey)
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

// authorizeRestrictedJoin checks a restricted join as a clone whose content
// also names the authorising user under the key eventauth v0.26 reads (see
// Authorize). (State resolution, core/state, has its own way round the same
// bug, checking rules 5.2 and 5.3.5.2 itself.)
func authorizeRestrictedJoin(rv id.RoomVersion, ev *pdu.PDU, getEvents eventauth.GetEventsFunc, getKey pdu.GetKeyFunc) error {
	via := gjson.GetBytes(ev.Content, "join_authorised_via_users_server")
	return eventauth.Authorize(rv, withContentKey(ev, "authorised_via_users_server", jsontext.Value(via.Raw)), getEvents, getKey)
}

func authorizeFirstJoin(rv id.RoomVersion, ev *pdu.PDU, getEvents eventauth.GetEventsFunc, getKey pdu.GetKeyFunc) error {
	prev, err := getEvents(ev.PrevEvents)
	if err != nil || len(prev) != 1 || prev[0] == nil || prev[0].Type != "m.room.create" {
		return eventauth.Authorize(rv, ev, getEvents, getKey)
	}
	creator := gjson.GetBytes(prev[0].Content, "creator")
	if creator.Type != gjson.String {
		return eventauth.Authorize(rv, ev, getEvents, getKey)
	}
	return eventauth.Authorize(rv, withContentKey(ev, "creator", jsontext.Value(creator.Raw)), getEvents, getKey)
}

// withContentKey is a clone of ev whose content also has key set to value,
// for eventauth to read; ev itself when its content is not an object.
func withContentKey(ev *pdu.PDU, key string, value jsontext.Value) *pdu.PDU {
	var content map[string]jsontext.Value
	if json.Unmarshal(ev.Content, &content) != nil || content == nil {
		return ev
	}
	content[key] = value
	patched, err := json.Marshal(content)
	if err != nil {
		return ev
	}
	clone := *ev
	clone.Content = patched
	return &clone
}

// AuthSelection is the state an event's auth_events are chosen from (the
// spec's "Auth events selection"): pdu.AuthEventSelection, plus the
// authorising user's member event of a restricted join, which mautrix
// v0.26 looks for under content.authorised_via_users_server instead of
// join_authorised_via_users_server.
func AuthSelection(ev *pdu.PDU, rv id.RoomVersion) pdu.AuthEventSelection {
	keys := ev.AuthEventSelection(rv)
	if ev.Type == "m.room.member" && ev.StateKey != nil && rv.RestrictedJoins() &&
		gjson.GetBytes(ev.Content, "membership").Str == "join" {
		if via := gjson.GetBytes(ev.Content, "join_authorised_via_users_server").Str; via != "" {
			keys.Add("m.room.member", via)
		}
	}
	return keys
}
