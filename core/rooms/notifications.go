package rooms

import (
	"context"
	"errors"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/push"
	"github.com/tributary-hs/tributary/storage"
)

// PushQueuer is what a Pusher may also say: which users have push
// gateways to deliver to. Their notifications are queued with the event.
type PushQueuer interface {
	HasPushers(user id.UserID) bool
}

// PushEvents describes the events at the given stream positions for push
// gateways: the event (its content redacted if it was since), its sender's
// display name, the room's name and canonical alias as they are now.
// Positions without an event are left out.
func (s *Reader) PushEvents(ctx context.Context, positions []int64) (map[int64]*push.EventInfo, error) {
	evs, err := s.store.GetEventsByPos(ctx, positions)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]*push.EventInfo, len(evs))
	type roomFacts struct{ name, alias string }
	facts := map[id.RoomID]roomFacts{}
	for _, e := range evs {
		ce, err := s.clientEvent(ctx, e)
		if err != nil {
			return nil, err
		}
		f, ok := facts[e.RoomID]
		if !ok {
			name, err := s.currentStateContent(ctx, e.RoomID, "m.room.name", "")
			if err != nil {
				return nil, err
			}
			alias, err := s.currentStateContent(ctx, e.RoomID, "m.room.canonical_alias", "")
			if err != nil {
				return nil, err
			}
			f = roomFacts{name: gjson.GetBytes(name, "name").Str, alias: gjson.GetBytes(alias, "alias").Str}
			facts[e.RoomID] = f
		}
		member, err := s.currentStateContent(ctx, e.RoomID, "m.room.member", e.Sender.String())
		if err != nil {
			return nil, err
		}
		out[e.StreamPos] = &push.EventInfo{EventID: ce.EventID, RoomID: ce.RoomID, Type: ce.Type, Sender: ce.Sender,
			StateKey: ce.StateKey, Content: ce.Content,
			SenderDisplayName: gjson.GetBytes(member, "displayname").Str, RoomName: f.name, RoomAlias: f.alias}
	}
	return out, nil
}

// currentStateContent is the content of a current state event; nil if the
// room has none.
func (s *Reader) currentStateContent(ctx context.Context, roomID id.RoomID, evType, stateKey string) ([]byte, error) {
	eventID, err := s.store.CurrentStateEvent(ctx, roomID, evType, stateKey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	e, err := s.store.GetEvent(ctx, eventID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if e.RedactedBy != "" {
		return nil, nil // a redacted name or display name is no longer shown
	}
	return []byte(gjson.GetBytes(e.JSON, "content").Raw), nil
}

// NotifiedEvents formats the events at the given stream positions for the
// user (GET /notifications), leaving out those they may not see.
func (s *Reader) NotifiedEvents(ctx context.Context, user id.UserID, positions []int64) (map[int64]*ClientEvent, error) {
	evs, err := s.store.GetEventsByPos(ctx, positions)
	if err != nil {
		return nil, err
	}
	byRoom := map[id.RoomID][]*storage.Event{}
	for _, e := range evs {
		if !e.Rejected && !e.SoftFailed {
			byRoom[e.RoomID] = append(byRoom[e.RoomID], e)
		}
	}
	out := make(map[int64]*ClientEvent, len(evs))
	for roomID, roomEvs := range byRoom {
		rv, err := s.roomVersion(ctx, roomID)
		if err != nil {
			return nil, err
		}
		v, err := s.newViewer(ctx, roomID, user)
		if err != nil {
			return nil, err
		}
		var visible []*storage.Event
		for _, e := range roomEvs {
			ok, err := v.canSee(ctx, e)
			if err != nil {
				return nil, err
			}
			if ok {
				visible = append(visible, e)
			}
		}
		formatted, err := s.formatter(rv).forUser(user).format(ctx, visible)
		if err != nil {
			return nil, err
		}
		for _, ce := range formatted {
			out[ce.pos] = ce
		}
	}
	return out, nil
}
