package rooms

// Knocking on and leaving rooms this server is not in (server-server API,
// "Knocking upon a room", "Leaving Rooms (Rejecting Invites)"): the
// resident server makes the template, this server signs it and hands it
// back. Like a remote invite, the event is kept as the one event this
// server holds of the room (processOutlier), with the stripped state a
// knock's answer gives, so that /sync shows the knock or the left room.

import (
	"context"
	"encoding/json/jsontext"
	"fmt"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// knockVersions are the supported room versions that allow knocking.
func knockVersions() []id.RoomVersion {
	var out []id.RoomVersion
	for _, v := range events.SupportedRoomVersions {
		if v.Knocks() {
			out = append(out, v)
		}
	}
	return out
}

// knockRemote knocks through the first candidate server that accepts it.
func (s *Service) knockRemote(ctx context.Context, req *MembershipRequest) (id.EventID, error) {
	return s.throughFirstServer(ctx, req, "knock", "knock on", s.knockVia)
}

func (s *Service) knockVia(ctx context.Context, server string, req *MembershipRequest) (id.EventID, error) {
	ctx, cancel := context.WithTimeout(ctx, remoteJoinTimeout)
	defer cancel()
	rv, tmplRaw, err := s.opts.Remote.MakeKnock(ctx, server, req.RoomID, req.Target, knockVersions())
	if err != nil {
		return "", err
	}
	if !events.IsSupported(rv) || !rv.Knocks() {
		return "", fmt.Errorf("%w: %s offers room version %q for a knock", errBadAnswer, server, rv)
	}
	tmpl, err := checkTemplate(server, req.RoomID, req.Target, "knock", tmplRaw)
	if err != nil {
		return "", err
	}
	content, err := s.membershipContent(ctx, req, tmpl)
	if err != nil {
		return "", err
	}
	ev, raw, err := s.opts.Signer.FromTemplate(rv, tmplRaw, content, s.nowMS())
	if err != nil {
		return "", fmt.Errorf("%w: %s's template: %w", errBadAnswer, server, err)
	}
	stripped, err := s.opts.Remote.SendKnock(ctx, server, req.RoomID, ev.InternalMeta.EventID, raw)
	if err != nil {
		return "", err
	}
	stored, err := withUnsigned(raw, map[string]any{"knock_room_state": strippedOnly(stripped)})
	if err != nil {
		return "", err
	}
	return s.storeMembershipOutlier(ctx, req.RoomID, rv, ev, stored, "knock")
}

// strippedOnly keeps the entries of a stripped state that have what a
// client needs of one (type, state key, content).
func strippedOnly(stripped []jsontext.Value) []jsontext.Value {
	out := make([]jsontext.Value, 0, len(stripped))
	for _, st := range stripped {
		if gjson.GetBytes(st, "type").Type == gjson.String && gjson.GetBytes(st, "state_key").Type == gjson.String &&
			gjson.GetBytes(st, "content").IsObject() {
			out = append(out, st)
		}
	}
	return out
}

// storeMembershipOutlier keeps a local user's membership event of a room
// this server is not in, as their current membership.
func (s *Service) storeMembershipOutlier(ctx context.Context, roomID id.RoomID, rv id.RoomVersion, ev *pdu.PDU,
	raw jsontext.Value, membership string) (id.EventID, error) {
	eid := ev.InternalMeta.EventID
	sk := *ev.StateKey
	_, prev, err := s.Membership(ctx, roomID, id.UserID(sk))
	if err != nil {
		return "", err
	}
	e := &storage.Event{EventID: eid, RoomID: roomID, Type: ev.Type, StateKey: &sk, Sender: ev.Sender,
		OriginServerTS: ev.OriginServerTS, Depth: ev.Depth, JSON: raw, Membership: membership, ReplacesState: prev}
	wr := &storage.EventWrite{Event: e, CurrentState: []storage.StateEntry{{Type: ev.Type, StateKey: sk, EventID: eid}}}
	res := s.queue(ctx, roomID, &sendReq{outlier: wr, version: rv})
	return eid, res.err
}

// leaveRemote refuses an invite or withdraws a knock: through the server
// that invited or one in the room (make_leave, send_leave). When none can
// be reached, the invite is refused here alone, with a leave that cites
// the invite and goes nowhere (as other servers do, so that an invite
// from a server that is gone does not stay forever).
func (s *Service) leaveRemote(ctx context.Context, req *MembershipRequest) (id.EventID, error) {
	cur, curID, err := s.Membership(ctx, req.RoomID, req.Target)
	if err != nil {
		return "", err
	}
	if cur != "invite" && cur != "knock" {
		return "", types.Forbidden("You are not in room %s", req.RoomID)
	}
	servers, err := s.candidateServers(ctx, req.RoomID, req.Target, req.Servers)
	if err != nil {
		return "", err
	}
	var errs []error
	for _, server := range servers {
		eid, err := s.leaveVia(ctx, server, req)
		if err == nil {
			return eid, nil
		}
		s.log.InfoContext(ctx, "remote leave failed", "room", req.RoomID, "server", server, "err", err)
		errs = append(errs, err)
		if ctx.Err() != nil {
			return "", remoteFailure("leave", req.RoomID, errs)
		}
	}
	return s.leaveLocally(ctx, req, curID)
}

func (s *Service) leaveVia(ctx context.Context, server string, req *MembershipRequest) (id.EventID, error) {
	ctx, cancel := context.WithTimeout(ctx, remoteJoinTimeout)
	defer cancel()
	rv, tmplRaw, err := s.opts.Remote.MakeLeave(ctx, server, req.RoomID, req.Target)
	if err != nil {
		return "", err
	}
	if !events.IsSupported(rv) {
		return "", fmt.Errorf("%w: %s offers room version %q", errBadAnswer, server, rv)
	}
	if known, err := s.knownRoomVersion(ctx, req.RoomID); err != nil {
		return "", err
	} else if known != "" && known != rv {
		return "", fmt.Errorf("%w: %s says the room's version is %s, not %s", errBadAnswer, server, rv, known)
	}
	tmpl, err := checkTemplate(server, req.RoomID, req.Target, "leave", tmplRaw)
	if err != nil {
		return "", err
	}
	content, err := s.membershipContent(ctx, req, tmpl)
	if err != nil {
		return "", err
	}
	ev, raw, err := s.opts.Signer.FromTemplate(rv, tmplRaw, content, s.nowMS())
	if err != nil {
		return "", fmt.Errorf("%w: %s's template: %w", errBadAnswer, server, err)
	}
	if err := s.opts.Remote.SendLeave(ctx, server, req.RoomID, ev.InternalMeta.EventID, raw); err != nil {
		return "", err
	}
	return s.storeMembershipOutlier(ctx, req.RoomID, rv, ev, raw, "leave")
}

// leaveLocally refuses an invite (or withdraws a knock) without another
// server: a leave after the membership event, kept here.
func (s *Service) leaveLocally(ctx context.Context, req *MembershipRequest, curID id.EventID) (id.EventID, error) {
	rv, err := s.knownRoomVersion(ctx, req.RoomID)
	if err != nil {
		return "", err
	}
	cur, err := s.store.GetEvent(ctx, curID)
	if err != nil {
		return "", err
	}
	content, err := s.membershipContent(ctx, req, gjson.Result{})
	if err != nil {
		return "", err
	}
	target := string(req.Target)
	refs := func(ids []id.EventID) ([]pdu.V1EventReference, error) {
		out := make([]pdu.V1EventReference, 0, len(ids))
		for _, eid := range ids {
			e, err := s.store.GetEvent(ctx, eid)
			if err != nil {
				return nil, err
			}
			ref, err := events.ReferenceOf(rv, e.JSON)
			if err != nil {
				return nil, err
			}
			out = append(out, ref)
		}
		return out, nil
	}
	ev, raw, err := s.opts.Signer.Build(rv, req.RoomID, &events.Proto{Type: "m.room.member", StateKey: &target,
		Sender: req.Target, Content: content, OriginServerTS: s.nowMS()},
		[]id.EventID{curID}, []id.EventID{curID}, cur.Depth+1, refs)
	if err != nil {
		return "", err
	}
	return s.storeMembershipOutlier(ctx, req.RoomID, rv, ev, raw, "leave")
}
