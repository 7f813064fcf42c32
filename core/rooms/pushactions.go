package rooms

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/push"
	"github.com/tributary-hs/tributary/storage"
)

// Pusher evaluates push rules (core/push).
type Pusher interface {
	// AppendEvaluate runs the users' rules on ev and appends to out the
	// outcomes of those notified, in the order of users.
	AppendEvaluate(ctx context.Context, room *push.RoomContext, ev *event.Event, users []id.UserID, out []push.Outcome) ([]push.Outcome, error)
	// CopyRoomRules gives a user's push rules for one room to another (upgrades).
	CopyRoomRules(ctx context.Context, user id.UserID, from, to id.RoomID) error
}

// pushActions runs the push rules of the room's local members on a new
// event, in the writer, so that counts are ready when the event is: nothing
// is left queued when senders stop. When most members are notified plainly
// (the usual message), that is stored once as the event's default and only
// the members who differ get a row: those not notified (silent) and
// highlights — a message in a big room writes a few rows, not one per
// member. The sender needs none: storage keeps the sender with the
// default, which never counts for them. Notifications of users with
// pushers are queued for their push gateways in the same write
// (wr.PushQueue).
func (s *Service) pushActions(ctx context.Context, b *batchState, ev *pdu.PDU, se *storage.Event, wr *storage.EventWrite) (err error) {
	wr.PushDefault, wr.PushActions, err = s.pushOutcomes(ctx, b, ev, se, wr)
	return err
}

func (s *Service) pushOutcomes(ctx context.Context, b *batchState, ev *pdu.PDU, se *storage.Event, wr *storage.EventWrite) (*storage.PushAction, []storage.PushAction, error) {
	if s.opts.Pusher == nil || b.noPush {
		return nil, nil, nil
	}
	users := b.joinedUsers()
	joined := len(users)
	if ev.Type == "m.room.member" && ev.StateKey != nil && se.Membership == "invite" {
		// The invitee is not joined yet but is notified of the invite.
		if u := id.UserID(*ev.StateKey); u.Homeserver() == s.opts.ServerName {
			users = append(users, u)
		}
	}
	// Users who ignore the sender are not notified (nor counted unread), as
	// Synapse does; the spec hides the events from them.
	kept := b.base.kept[:0]
	var ignorers []id.UserID
	for _, u := range users {
		ign, err := s.IgnoredBy(ctx, u)
		if err != nil {
			return nil, nil, err
		}
		if ign[ev.Sender] {
			ignorers = append(ignorers, u)
		} else {
			kept = append(kept, u)
		}
	}
	users, b.base.kept = kept, kept[:0] // the writer's, for its next event
	if len(users) == 0 || (len(users) == 1 && users[0] == ev.Sender) {
		return nil, nil, nil
	}
	rv := b.base.version
	ce, err := ev.ToClientEvent(rv)
	if err != nil {
		return nil, nil, fmt.Errorf("push: client event: %w", err)
	}
	ce.RoomID = b.roomID // for v12 create events ToClientEvent derives it; others carry it
	pl, err := s.powerLevels(ctx, b)
	if err != nil {
		return nil, nil, err
	}
	rc := &push.RoomContext{MemberCount: joined, PowerLevels: pl}
	// The outcomes are read here only: the room's writer keeps their
	// slice for its next event.
	outcomes, err := s.opts.Pusher.AppendEvaluate(ctx, rc, ce, users, b.base.outcomes[:0])
	if err != nil {
		return nil, nil, err
	}
	b.base.outcomes = outcomes
	if q, ok := s.opts.Pusher.(PushQueuer); ok {
		for _, o := range outcomes {
			if q.HasPushers(o.User) {
				wr.PushQueue = append(wr.PushQueue, storage.PushQueued{UserID: o.User,
					Tweaks: push.Tweaks(o.Actions), QueuedAt: s.nowMS()})
			}
		}
	}
	thread := "main"
	if se.RelType == "m.thread" && se.RelatesTo != "" {
		thread = se.RelatesTo.String()
	}
	def, rows := pushRows(users, ignorers, outcomes, ev.Sender, thread)
	return def, rows, nil
}

// pushRows are the stored outcomes of an event whose sender is sender for
// the users its rules ran for (outcomes: those notified, in the order of
// users) and the ignorers, who ignore the sender: a default and the
// members who differ from it, or a row per notified member and no default
// when most are not notified.
func pushRows(users, ignorers []id.UserID, outcomes []push.Outcome, sender id.UserID, thread string) (*storage.PushAction, []storage.PushAction) {
	others := 0
	for _, u := range users {
		if u != sender {
			others++
		}
	}
	plain := 0
	for _, o := range outcomes {
		if !o.Highlight {
			plain++
		}
	}
	if plain*2 <= others {
		// Most are not notified (or highlighted): a row per notified user.
		out := make([]storage.PushAction, 0, len(outcomes))
		for _, o := range outcomes {
			out = append(out, storage.PushAction{UserID: o.User, ThreadID: thread, Highlight: o.Highlight})
		}
		return nil, out
	}
	// Outcomes come in the order of users (Pusher.AppendEvaluate): those
	// between two notified users were not notified.
	var out []storage.PushAction
	next := 0
	for _, u := range users {
		if next < len(outcomes) && outcomes[next].User == u {
			if outcomes[next].Highlight {
				out = append(out, storage.PushAction{UserID: u, ThreadID: thread, Highlight: true})
			}
			next++
		} else if u != sender {
			out = append(out, storage.PushAction{UserID: u, ThreadID: thread, Silent: true})
		}
	}
	for _, u := range ignorers {
		if u != sender {
			out = append(out, storage.PushAction{UserID: u, ThreadID: thread, Silent: true})
		}
	}
	return &storage.PushAction{ThreadID: thread}, out
}
