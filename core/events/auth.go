package events

import (
	"fmt"

	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// Authorize checks an event against its own auth events with mautrix's
// eventauth. Since v0.33.0 eventauth follows the spec's membership rules
// (5.3.1 reads the creator from the create event, 5.2/5.3.5.2 read
// join_authorised_via_users_server, 5.5.2/5.6.1 require the sender to be
// joined), so the event is handed over as it is. What remains:
//
//   - A panic inside eventauth is a rejection, never a crash: v0.33.0 still
//     dereferences nil when m.room.power_levels removes a users entry equal
//     to the sender's level (allowPowerChangeMap), which rule 10.9 rejects.
func Authorize(rv id.RoomVersion, ev *pdu.PDU, getEvents eventauth.GetEventsFunc, getKey pdu.GetKeyFunc) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("eventauth panicked: %v", p)
		}
	}()
	return eventauth.Authorize(rv, ev, nil, getEvents, getKey)
}

// AuthorizeAgainst checks ev with the events authIDs (chosen from a room
// state by the auth events selection) in place of its own auth_events: the
// checks against the state before the event and against the current state
// on receipt of a PDU. The event itself is checked, not a clone carrying
// other auth_events, so that rule 5.2 verifies the signature its server
// made; eventauth skips the rules about the auth_events list (rule 3) for
// such precomputed auth events.
func AuthorizeAgainst(rv id.RoomVersion, ev *pdu.PDU, authIDs []id.EventID, getEvents eventauth.GetEventsFunc,
	getKey pdu.GetKeyFunc) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("eventauth panicked: %v", p)
		}
	}()
	authEvents := make([]*pdu.PDU, 0, len(authIDs))
	if len(authIDs) > 0 {
		loaded, err := getEvents(authIDs)
		if err != nil {
			return fmt.Errorf("%w: %w", eventauth.ErrFailedToGetAuthEvents, err)
		}
		for i, a := range loaded {
			if a == nil {
				return fmt.Errorf("%w (%s)", eventauth.ErrMissingAuthEvent, authIDs[i])
			}
			authEvents = append(authEvents, a)
		}
	}
	return eventauth.Authorize(rv, ev, authEvents, getEvents, getKey)
}
