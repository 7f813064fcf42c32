package bridging

import (
	"context"
	"encoding/json/jsontext"
	"net/http"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// BatchRequest is one batch of com.beeper.batch_sending (the JSON body of
// its endpoint, which mautrix bridges send; the plugin host and importers
// fill it in Go).
type BatchRequest struct {
	// Forward appends the events to the room's timeline; otherwise they go
	// before it, as older history.
	Forward bool `json:"forward"`
	// ForwardIfNoMessages sends a backward batch forward when the room has
	// no messages yet (a bridge's first backfill of a new room).
	ForwardIfNoMessages bool `json:"forward_if_no_messages"`
	// SendNotification computes push notifications (forward batches only).
	SendNotification bool `json:"send_notification"`
	// MarkReadBy gets a read receipt on the batch's last event: the real
	// user whose chat it is, joined or invited.
	MarkReadBy id.UserID     `json:"mark_read_by"`
	Events     []*BatchEvent `json:"events"`
	// Puppets are local users outside the appservice's namespace that it
	// may send as too: those a bridge plugin double-puppets, whom the
	// plugin host vouched for (never set from a request body).
	Puppets map[id.UserID]bool `json:"-"`
}

// BatchEvent is one event of a batch, with its original sender and time.
type BatchEvent struct {
	// EventID is the ID the appservice chose (mautrix bridges do); it
	// becomes an alias of the real event.
	EventID        id.EventID     `json:"event_id,omitempty"`
	Type           string         `json:"type"`
	StateKey       *string        `json:"state_key,omitempty"`
	Sender         id.UserID      `json:"sender"`
	Content        jsontext.Value `json:"content"`
	OriginServerTS int64          `json:"origin_server_ts"`
	// Message, for an import's event with an EventID, is the network
	// message it is (a part of, or a reaction to), recorded with the alias
	// (rooms.BatchOptions.Messages); never read from a request body.
	Message *storage.BridgeMessage `json:"-"`
}

// BatchSend persists a batch for the appservice asID ("" for a caller that
// is none: refused), all or nothing, and returns the real event IDs in the
// batch's order. The rules: every sender is in the appservice's namespace
// and neither suspended nor locked; a backward batch goes before the
// timeline unless forward_if_no_messages finds the room without messages;
// mark_read_by must name a joined or invited user, whose receipt is set
// after the commit (a receipt that fails is logged, not returned: the events
// are in, and an error would make the bridge send them again).
func (s *Service) BatchSend(ctx context.Context, asID string, roomID id.RoomID, req *BatchRequest) ([]id.EventID, error) {
	if asID == "" {
		return nil, types.Forbidden("Only application services may batch send")
	}
	history := !req.Forward
	if history && req.ForwardIfNoMessages {
		has, err := s.rooms.HasMessages(ctx, roomID)
		if err != nil {
			return nil, err
		}
		history = has
	}
	if req.MarkReadBy != "" {
		// Bridges mark backfilled history read for the real user whose chat
		// it is (not one of their own users), often still only invited.
		if ok, err := s.receipts.CanBeMarkedRead(ctx, roomID, req.MarkReadBy); err != nil {
			return nil, err
		} else if !ok {
			return nil, types.Forbidden("mark_read_by: %s is not in the room", req.MarkReadBy)
		}
	}
	protos, aliases, err := s.batchProtos(ctx, asID, req.Events, req.Puppets, false)
	if err != nil {
		return nil, err
	}
	ids, err := s.rooms.BatchSend(ctx, roomID, protos, rooms.BatchOptions{Notify: req.SendNotification,
		History: history, Aliases: aliases})
	if err != nil {
		return nil, err
	}
	if req.MarkReadBy != "" && len(ids) > 0 {
		if err := s.receipts.MarkReadBy(ctx, roomID, req.MarkReadBy, ids[len(ids)-1]); err != nil {
			s.log.WarnContext(ctx, "batch send: read receipt failed", "room_id", roomID, "error", err)
		}
	}
	return ids, nil
}

// Import appends a batch of `tributary import` to a room's timeline for
// the appservice asID the import acts as: a forward batch without
// notifications, by BatchSend's rules but one — a sender may also be a local
// account outside the namespace that is not deactivated: a person whom the
// import maps to their existing account. Only the server's operator
// reaches it (the CLI on the server's data, or through its control
// socket), never a request over HTTP.
func (s *Service) Import(ctx context.Context, asID string, roomID id.RoomID, evs []*BatchEvent) ([]id.EventID, error) {
	if asID == "" {
		return nil, types.Forbidden("An import acts as an application service")
	}
	protos, aliases, err := s.batchProtos(ctx, asID, evs, nil, true)
	if err != nil {
		return nil, err
	}
	var msgs []*storage.BridgeMessage
	for i, ev := range evs {
		if ev.Message != nil && ev.EventID != "" {
			if msgs == nil {
				msgs = make([]*storage.BridgeMessage, len(evs))
			}
			msgs[i] = ev.Message
		}
	}
	return s.rooms.BatchSend(ctx, roomID, protos, rooms.BatchOptions{Aliases: aliases, Messages: msgs})
}

// batchProtos checks each event of a batch and turns it into a proto event
// and its alias ("" for none). puppets are local users a plugin may send
// as (double puppeting); locals admits any active local account outside
// the namespace (Import).
func (s *Service) batchProtos(ctx context.Context, asID string, evs []*BatchEvent, puppets map[id.UserID]bool, locals bool) ([]*events.Proto, []id.EventID, error) {
	protos := make([]*events.Proto, len(evs))
	aliases := make([]id.EventID, len(evs))
	free := map[id.UserID]bool{} // senders known to be neither suspended nor locked
	for i, ev := range evs {
		if ev == nil || ev.Type == "" || ev.Sender == "" {
			return nil, nil, types.BadJSON("Event %d needs a type and a sender", i)
		}
		if !free[ev.Sender] && !s.ns.OwnsUser(asID, ev.Sender) && !puppets[ev.Sender] {
			if !locals {
				return nil, nil, types.Forbidden("Event %d: %s is not in the application service's namespace", i, ev.Sender)
			}
			acc, err := s.accounts.GetAccount(ctx, ev.Sender)
			if notFound(err) || err == nil && acc.Deactivated {
				return nil, nil, types.Forbidden("Event %d: %s is neither in the application service's namespace nor an active local account",
					i, ev.Sender)
			} else if err != nil {
				return nil, nil, err
			}
		}
		if !free[ev.Sender] {
			suspended, locked, err := s.accounts.Restrictions(ctx, ev.Sender)
			if err != nil {
				return nil, nil, err
			}
			// 403 with the restriction's code: the appservice's own session
			// is fine, so not M_USER_LOCKED's 401 with soft_logout.
			switch {
			case locked:
				return nil, nil, types.NewError(http.StatusForbidden, types.CodeUserLocked, "Event %d: %s is locked", i, ev.Sender)
			case suspended:
				return nil, nil, types.NewError(http.StatusForbidden, types.CodeUserSuspended, "Event %d: %s is suspended", i, ev.Sender)
			}
			free[ev.Sender] = true
		}
		if len(ev.Content) == 0 || ev.Content.Kind() != '{' {
			return nil, nil, types.BadJSON("Event %d needs an object as content", i)
		}
		if ev.OriginServerTS < 0 {
			return nil, nil, types.InvalidParam("Event %d: origin_server_ts must not be negative", i)
		}
		protos[i] = &events.Proto{Type: ev.Type, StateKey: ev.StateKey, Sender: ev.Sender, Content: ev.Content,
			OriginServerTS: ev.OriginServerTS}
		aliases[i] = ev.EventID
	}
	return protos, aliases, nil
}
