package rooms

// Invites of other servers' users (server-server API, "Inviting to a
// room"): the invite is built on the room's state as usual, but before it
// is stored or sent anywhere the invitee's server must sign it (PUT
// /_matrix/federation/v2/invite), and may refuse it. What comes back,
// signed by both, goes through the intake like any event of the room (it
// may have become a fork meanwhile), then to the other servers through
// the interest queue.

import (
	"bytes"
	"context"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"net/http"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
)

// processDraft builds and signs a request's event on the room's state
// without storing it.
func (w *roomWriter) processDraft(r *sendReq) {
	s := w.svc
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.loadState(ctx); err != nil {
		r.done <- sendResult{err: err}
		return
	}
	b := newBatch(w.rs) // never committed
	ev, wr, err := s.prepareChecked(ctx, b, r)
	if err != nil {
		r.done <- sendResult{err: err}
		return
	}
	r.done <- sendResult{eventID: ev.InternalMeta.EventID, raw: wr.Event.JSON}
}

// inviteRemote has the invitee's server sign the invite, then stores it.
func (s *Service) inviteRemote(ctx context.Context, req *MembershipRequest, sr *sendReq) (id.EventID, error) {
	sr.draft = true
	draft := s.queue(ctx, req.RoomID, sr)
	if draft.err != nil {
		return "", draft.err
	}
	rv, err := s.roomVersion(ctx, req.RoomID)
	if err != nil {
		return "", err
	}
	stripped, err := s.inviteRoomState(ctx, req.RoomID, req.Sender)
	if err != nil {
		return "", err
	}
	server := req.Target.Homeserver()
	signed, err := s.opts.Remote.Invite(ctx, server, req.RoomID, draft.eventID, rv, draft.raw, stripped)
	if err != nil {
		var re *RemoteError
		if errors.As(err, &re) && re.Status >= 400 && re.Status < 500 {
			code := re.Code
			if code == "" {
				code = types.CodeForbidden
			}
			return "", types.NewError(http.StatusForbidden, code, "%s refused the invite: %s", server, re.Message)
		}
		return "", types.NewError(http.StatusBadGateway, types.CodeUnknown, "The invitee's server could not be reached: %v", err)
	}
	compact := jsontext.Value(bytes.Clone(signed))
	if err := compact.Compact(); err != nil || compact.Kind() != '{' {
		return "", types.NewError(http.StatusBadGateway, types.CodeUnknown, "%s answered the invite with no event", server)
	}
	rec, err := parseReceived(s.opts.ServerName, rv, compact)
	if err == nil && rec.eventID() != draft.eventID {
		err = fmt.Errorf("it is %s, not %s", rec.eventID(), draft.eventID)
	}
	if err == nil {
		err = rec.verifyServer(server, s.keyFunc(ctx))
	}
	if err != nil {
		return "", types.NewError(http.StatusBadGateway, types.CodeUnknown, "%s signed another invite: %v", server, err)
	}
	res, err := s.Intake(WithRelay(ctx), s.opts.ServerName, compact) // our own event: sent on to the room's other servers
	if err != nil {
		return "", err
	}
	if res.Status != IntakeAccepted {
		return "", types.Forbidden("The invite was %s: %v", res.Status, res.Reason)
	}
	return res.EventID, nil
}

// inviteRoomState is what an invitee's server is told of the room
// (invite_room_state): the create event, join rules, name, avatar,
// canonical alias, encryption and topic, and the inviter's membership,
// as the events themselves (rooms v12 require the create event as one).
func (s *Service) inviteRoomState(ctx context.Context, roomID id.RoomID, inviter id.UserID) ([]jsontext.Value, error) {
	entries, err := s.store.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{"m.room.create": true, "m.room.join_rules": true, "m.room.name": true,
		"m.room.avatar": true, "m.room.canonical_alias": true, "m.room.encryption": true, "m.room.topic": true}
	var ids []id.EventID
	for _, e := range entries {
		if (keep[e.Type] && e.StateKey == "") || (e.Type == "m.room.member" && e.StateKey == string(inviter)) {
			ids = append(ids, e.EventID)
		}
	}
	return s.wireEvents(ctx, ids)
}
