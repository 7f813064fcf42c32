package state

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

const (
	typeCreate      = "m.room.create"
	typeMember      = "m.room.member"
	typePowerLevels = "m.room.power_levels"
)

// iterativeAuthChecks applies the events of order, in order, to sv when they
// are allowed by the authorisation rules against it.
func (r *resolver) iterativeAuthChecks(g *graph, order []int32, sv *stateView) error {
	for n, e := range order {
		if n%64 == 0 {
			if err := r.ctx.Err(); err != nil {
				return err
			}
		}
		ev := g.evs[e]
		ok, err := r.authorize(ev, sv)
		if err != nil {
			return err
		}
		if ok {
			sv.set(Key{Type: ev.Type, StateKey: *ev.StateKey}, g.ids[e])
		}
	}
	return nil
}

// authorize reports whether ev is allowed by the authorisation rules against
// the state sv. For each key of ev's auth events selection it takes the entry
// of sv, or, when sv has none, ev's own auth event with that key unless that
// one is rejected; ev is then authorised by eventauth.Authorize against
// exactly those events (its precomputed auth events; see the package
// documentation for the corrections applied around it). A rejection is (false, nil); errors are
// only for events the Loader does not have.
func (r *resolver) authorize(ev *pdu.PDU, sv *stateView) (bool, error) {
	own := make(map[Key]id.EventID, len(ev.AuthEvents))
	for _, aid := range ev.AuthEvents {
		aev := r.events[aid]
		if aev == nil || aev.StateKey == nil || aev.InternalMeta.Rejected {
			continue
		}
		k := Key{Type: aev.Type, StateKey: *aev.StateKey}
		if _, dup := own[k]; !dup {
			own[k] = aid
		}
	}
	pick := func(k Key) (id.EventID, *pdu.PDU, error) {
		if sid, ok := sv.get(k); ok {
			if err := r.need(sid); err != nil {
				return "", nil, err
			}
			sev := r.events[sid]
			if sev.InternalMeta.Rejected {
				// It is the state being checked against, not a rejected auth event.
				sev = sev.Clone()
				sev.InternalMeta.Rejected = false
			}
			return sid, sev, nil
		}
		if aid, ok := own[k]; ok {
			return aid, r.events[aid], nil
		}
		return "", nil, nil
	}

	sel := ev.AuthEventSelection(r.rv)
	authEvents := make([]*pdu.PDU, 0, len(sel))
	chosen := make(map[Key]*pdu.PDU, len(sel))
	chosenID := make(map[Key]id.EventID, len(sel))
	seen := make(map[id.EventID]bool, len(sel))
	for _, k := range sel {
		aid, aev, err := pick(k)
		if err != nil {
			return false, err
		}
		if aev == nil || seen[aid] {
			continue
		}
		seen[aid] = true
		authEvents = append(authEvents, aev)
		chosen[k], chosenID[k] = aev, aid
	}

	// The event itself (not a clone with other auth_events) is checked, so
	// rule 5.2's signature check sees the signed event.
	err := r.callAuthorize(ev, authEvents)
	if err == nil {
		return true, nil
	}
	var afe eventauth.AuthFailError
	if ev.Type == typeMember && ev.StateKey != nil && membershipOf(ev) == "join" &&
		errors.As(err, &afe) && strings.HasPrefix(afe.Index, "5.3.") {
		// Rule 5.3.1: "If the only previous event is an m.room.create and the
		// state_key is the creator [v12: the sender of the m.room.create],
		// allow." eventauth also requires at most one auth event.
		if r.isCreatorsFirstJoin(ev, chosen, chosenID) {
			return true, nil
		}
	}
	return false, nil
}

// callAuthorize runs eventauth.Authorize against the given auth events
// (the state, in place of the event's own auth_events), turning a panic
// into a rejection: v0.33.0 still dereferences nil when
// m.room.power_levels removes a users entry equal to the sender's level,
// which rule 10.9 rejects anyway.
func (r *resolver) callAuthorize(evt *pdu.PDU, authEvents []*pdu.PDU) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("eventauth panicked: %v", p)
		}
	}()
	getEvents := func(ids []id.EventID) ([]*pdu.PDU, error) {
		// Only the create event of a v12 room (its ID is the room's) is
		// looked up this way; the auth events are given.
		out := make([]*pdu.PDU, 0, len(ids))
		for _, aid := range ids {
			if r.create != nil && aid == r.createID {
				out = append(out, r.create)
			}
		}
		return out, nil
	}
	return eventauth.Authorize(r.rv, evt, authEvents, getEvents, r.getKey)
}

// isCreatorsFirstJoin implements the condition of rule 5.3.1.
func (r *resolver) isCreatorsFirstJoin(ev *pdu.PDU, chosen map[Key]*pdu.PDU, chosenID map[Key]id.EventID) bool {
	create, createID := r.create, r.createID
	if create == nil {
		k := Key{Type: typeCreate, StateKey: ""}
		create, createID = chosen[k], chosenID[k]
	}
	if create == nil || len(ev.PrevEvents) != 1 || ev.PrevEvents[0] != createID {
		return false
	}
	creator := create.Sender
	if r.rv.CreatorInContent() {
		creator = id.UserID(gjson.GetBytes(create.Content, "creator").Str)
	}
	return creator != "" && *ev.StateKey == creator.String()
}

// levelOf is the power level of user according to the power levels event pl
// (nil if there is none) and the create event.
func (r *resolver) levelOf(user id.UserID, plID id.EventID, pl, create *pdu.PDU) int64 {
	if r.creators != nil {
		if _, ok := r.creators[user]; ok {
			return infinitePower
		}
	}
	if pl != nil {
		return r.parsePowerLevels(plID, pl).userLevel(user)
	}
	if create != nil && !r.rv.PrivilegedRoomCreators() && user == creatorOf(r.rv, create) {
		return 100
	}
	return 0
}

func membershipOf(ev *pdu.PDU) string {
	if ev == nil {
		return "leave"
	}
	m := gjson.GetBytes(ev.Content, "membership")
	if m.Type != gjson.String {
		return ""
	}
	return m.Str
}

// joinAuthorisedVia is content.join_authorised_via_users_server of a member
// event, or "".
func joinAuthorisedVia(ev *pdu.PDU) string {
	if ev.Type != typeMember {
		return ""
	}
	return gjson.GetBytes(ev.Content, "join_authorised_via_users_server").Str
}

var errNoGetKey = errors.New("state: no signing key fetcher")

func nilSafeGetKey(getKey pdu.GetKeyFunc) pdu.GetKeyFunc {
	if getKey != nil {
		return getKey
	}
	return func(string, id.KeyID, time.Time) (id.SigningKey, time.Time, error) {
		return "", time.Time{}, errNoGetKey
	}
}
