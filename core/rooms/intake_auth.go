package rooms

// Check 4 on receipt of a PDU: the event is allowed by its own auth events
// (else rejected), and the helpers checks 5 and 6 share.

import (
	"context"
	"errors"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
)

// checkAuthEvents is check 4: the auth rules of the room version, with the
// event's auth events as the state. They are all stored (prevEvents made
// sure of it); a rejected one rejects the event (rule 3.3).
func (s *Service) checkAuthEvents(ctx context.Context, rec *received) error {
	return s.authorize(ctx, rec.rv, rec.ev, nil)
}

// authorizeAgainst checks ev with a room state in place of its own auth
// events: those the auth events selection picks from the state (checks 5
// and 6).
func (s *Service) authorizeAgainst(ctx context.Context, rv id.RoomVersion, ev *pdu.PDU,
	get func(pdu.StateKey) id.EventID) error {
	authIDs := []id.EventID{} // not nil: nil means the event's own
	for _, k := range ev.AuthEventSelection(rv) {
		if eid := get(k); eid != "" {
			authIDs = append(authIDs, eid)
		}
	}
	return s.authorize(ctx, rv, ev, authIDs)
}

// authorize runs the auth rules: a failure is an *events.AuthError; a
// storage failure while loading events is returned as itself, not taken
// for the event's fault. With authIDs nil the event's own auth events are
// used, else those (see events.AuthorizeAgainst).
func (s *Service) authorize(ctx context.Context, rv id.RoomVersion, ev *pdu.PDU, authIDs []id.EventID) error {
	var loadErr error
	get := func(ids []id.EventID) ([]*pdu.PDU, error) {
		ps, err := s.loadPDUs(ctx, ids)
		if err != nil {
			loadErr = err
		}
		return ps, err
	}
	var err error
	if authIDs == nil {
		err = events.Authorize(rv, ev, get, s.getKey)
	} else {
		err = events.AuthorizeAgainst(rv, ev, authIDs, get, s.getKey)
	}
	if loadErr != nil {
		return loadErr
	}
	if err != nil {
		return &events.AuthError{Err: err}
	}
	return nil
}

// isAuthFailure tells an event's failure of the auth rules from the
// server's own trouble.
func isAuthFailure(err error) bool {
	var ae *events.AuthError
	return errors.As(err, &ae)
}
