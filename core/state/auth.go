package state

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
	"maunium.net/go/mautrix/federation/eventauth"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
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
// one is rejected; a shallow clone of ev with exactly those auth_events is then
// authorised by eventauth.Authorize (see the package documentation for the
// corrections applied around it). A rejection is (false, nil); errors are
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

	clone := ev.Clone()
	sel := ev.AuthEventSelection(r.rv)
	clone.AuthEvents = make([]id.EventID, 0, len(sel))
	chosen := make(map[Key]*pdu.PDU, len(sel))
	chosenID := make(map[Key]id.EventID, len(sel))
	avail := make(map[id.EventID]*pdu.PDU, len(sel)+1)
	for _, k := range sel {
		aid, aev, err := pick(k)
		if err != nil {
			return false, err
		}
		if aev == nil {
			continue
		}
		if _, dup := avail[aid]; dup {
			continue
		}
		clone.AuthEvents = append(clone.AuthEvents, aid)
		chosen[k], chosenID[k] = aev, aid
		avail[aid] = aev
	}
	if r.create != nil {
		avail[r.createID] = r.create
	}

	isMember := ev.Type == typeMember && ev.StateKey != nil
	membership := membershipOf(ev)
	if isMember && gjson.GetBytes(ev.Content, "authorised_via_users_server").Exists() {
		// eventauth reads this key (not in the spec) where rules 5.2 and
		// 5.3.5.2 name join_authorised_via_users_server; hide it so eventauth
		// follows the spec, which ignores it.
		if content, err := sjson.DeleteBytes(ev.Content, "authorised_via_users_server"); err == nil {
			clone.Content = content
		}
	}
	via := gjson.GetBytes(ev.Content, "join_authorised_via_users_server")
	if isMember && via.Exists() {
		// Rule 5.2: "If content has a join_authorised_via_users_server key: If
		// the event is not validly signed by the homeserver of the user ID
		// denoted by the key, reject." Checked on the original event: the
		// clone's signature no longer matches its auth_events.
		_, server, err := id.UserID(via.Str).Parse()
		if via.Type != gjson.String || err != nil || server == "" {
			return false, nil
		}
		if events.VerifySignature(r.rv, ev, server, r.getKey) != nil {
			return false, nil
		}
	}

	kickOrBan := isMember && (membership == "ban" || (membership == "leave" && ev.Sender.String() != *ev.StateKey))
	if kickOrBan {
		// Rules 5.5.2 and 5.6.1: "If the sender's current membership state
		// is not join, reject." eventauth v0.26.0 tests for leave instead.
		if membershipOf(chosen[Key{Type: typeMember, StateKey: ev.Sender.String()}]) != "join" {
			return false, nil
		}
	}

	err := r.callAuthorize(clone, avail)
	if kickOrBan && (errors.Is(err, eventauth.ErrCantKickWithoutBeingInRoom) || errors.Is(err, eventauth.ErrCantBanWithoutBeingInRoom)) {
		// The sender is joined (checked above); the rest of rules 5.5 and 5.6
		// does not read the sender's membership, so let eventauth decide
		// without it.
		senderKey := Key{Type: typeMember, StateKey: ev.Sender.String()}
		without := chosenID[senderKey]
		retry := ev.Clone()
		retry.Content = clone.Content
		retry.AuthEvents = make([]id.EventID, 0, len(clone.AuthEvents))
		for _, aid := range clone.AuthEvents {
			if aid != without {
				retry.AuthEvents = append(retry.AuthEvents, aid)
			}
		}
		err = r.callAuthorize(retry, avail)
	}
	if err == nil {
		return true, nil
	}

	var afe eventauth.AuthFailError
	if isMember && membership == "join" && errors.As(err, &afe) && strings.HasPrefix(afe.Index, "5.3.") {
		// Rule 5.3.1: "If the only previous event is an m.room.create and the
		// state_key is the creator [v12: the sender of the m.room.create],
		// allow." eventauth reads the creator from the join's own content and
		// also requires at most one auth event.
		if r.isCreatorsFirstJoin(ev, chosen, chosenID) {
			return true, nil
		}
	}
	if isMember && membership == "join" && (errors.Is(err, eventauth.ErrAuthoriserCantInvite) || errors.Is(err, eventauth.ErrAuthoriserNotInRoom)) {
		// Rule 5.3.5.2: "If the join_authorised_via_users_server key in
		// content is not a user with sufficient permission to invite other
		// users or is not a joined member of the room, reject." (eventauth
		// reads another key). Rules up to 5.3.5.1 have passed.
		return r.authoriserMayInvite(ev, via, chosen, chosenID, pick)
	}
	return false, nil
}

// callAuthorize runs eventauth.Authorize, turning a panic into a rejection.
// v0.26.0 dereferences nil when m.room.power_levels removes a users entry
// equal to the sender's level, which rule 10.9 rejects anyway.
func (r *resolver) callAuthorize(evt *pdu.PDU, avail map[id.EventID]*pdu.PDU) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("eventauth panicked: %v", p)
		}
	}()
	getEvents := func(ids []id.EventID) ([]*pdu.PDU, error) {
		out := make([]*pdu.PDU, 0, len(ids))
		for _, aid := range ids {
			if aev := avail[aid]; aev != nil {
				out = append(out, aev)
			}
		}
		return out, nil
	}
	return eventauth.Authorize(r.rv, evt, getEvents, r.getKey)
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

// authoriserMayInvite implements rule 5.3.5.2.
func (r *resolver) authoriserMayInvite(ev *pdu.PDU, via gjson.Result, chosen map[Key]*pdu.PDU, chosenID map[Key]id.EventID,
	pick func(Key) (id.EventID, *pdu.PDU, error)) (bool, error) {
	if via.Type != gjson.String || via.Str == "" {
		return false, nil
	}
	authoriser := id.UserID(via.Str)
	_, member, err := pick(Key{Type: typeMember, StateKey: via.Str})
	if err != nil || membershipOf(member) != "join" {
		return false, err
	}
	plKey := Key{Type: typePowerLevels, StateKey: ""}
	var invite int64
	if pl := chosen[plKey]; pl != nil {
		invite = r.parsePowerLevels(chosenID[plKey], pl).invite
	}
	create := r.create
	if create == nil {
		create = chosen[Key{Type: typeCreate, StateKey: ""}]
	}
	return r.levelOf(authoriser, chosenID[plKey], chosen[plKey], create) >= invite, nil
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
