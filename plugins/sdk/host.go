package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/plugins/proto"
)

// Host is the plugin's client of the homeserver's MatrixHost service: it
// acts as the plugin's bot or one of its ghosts.
type Host struct {
	c proto.MatrixHostClient
}

// NewHost wraps a MatrixHost client (Serve builds one over the broker; a
// test may hand a fake).
func NewHost(c proto.MatrixHostClient) *Host { return &Host{c: c} }

// Client is the raw gRPC client, for calls Host has no helper for.
func (h *Host) Client() proto.MatrixHostClient { return h.c }

// EnsureRegistered creates the user (the bot or a ghost) if needed.
func (h *Host) EnsureRegistered(ctx context.Context, user id.UserID) error {
	_, err := h.c.EnsureRegistered(ctx, &proto.EnsureRegisteredRequest{UserId: string(user)})
	return err
}

// SendEvent sends a message event as user at ts (zero: now); txnID, when
// set, makes a retry idempotent.
func (h *Host) SendEvent(ctx context.Context, room id.RoomID, user id.UserID, evType event.Type, content any, ts time.Time, txnID string) (id.EventID, error) {
	raw, err := marshalContent(content)
	if err != nil {
		return "", err
	}
	resp, err := h.c.SendEvent(ctx, &proto.SendEventRequest{RoomId: string(room), UserId: string(user),
		Type: evType.Type, Content: raw, Timestamp: millis(ts), TxnId: txnID})
	if err != nil {
		return "", err
	}
	return id.EventID(resp.EventId), nil
}

// SendState sends a state event as user.
func (h *Host) SendState(ctx context.Context, room id.RoomID, user id.UserID, evType event.Type, stateKey string, content any, ts time.Time) (id.EventID, error) {
	raw, err := marshalContent(content)
	if err != nil {
		return "", err
	}
	resp, err := h.c.SendState(ctx, &proto.SendStateRequest{RoomId: string(room), UserId: string(user),
		Type: evType.Type, StateKey: stateKey, Content: raw, Timestamp: millis(ts)})
	if err != nil {
		return "", err
	}
	return id.EventID(resp.EventId), nil
}

// Join joins user to room.
func (h *Host) Join(ctx context.Context, room id.RoomID, user id.UserID) error {
	return h.membership(ctx, room, user, user, proto.Membership_MEMBERSHIP_JOIN, "")
}

// Leave makes user leave room.
func (h *Host) Leave(ctx context.Context, room id.RoomID, user id.UserID, reason string) error {
	return h.membership(ctx, room, user, user, proto.Membership_MEMBERSHIP_LEAVE, reason)
}

// Invite has user invite target to room.
func (h *Host) Invite(ctx context.Context, room id.RoomID, user, target id.UserID) error {
	return h.membership(ctx, room, user, target, proto.Membership_MEMBERSHIP_INVITE, "")
}

func (h *Host) membership(ctx context.Context, room id.RoomID, user, target id.UserID, m proto.Membership, reason string) error {
	_, err := h.c.SetMembership(ctx, &proto.SetMembershipRequest{RoomId: string(room), UserId: string(user),
		Target: string(target), Membership: m, Reason: reason})
	return err
}

// SetProfile sets user's display name and/or avatar (nil: unchanged).
func (h *Host) SetProfile(ctx context.Context, user id.UserID, displayname *string, avatar *id.ContentURIString) error {
	req := &proto.SetProfileRequest{UserId: string(user), Displayname: displayname}
	if avatar != nil {
		s := string(*avatar)
		req.AvatarUrl = &s
	}
	_, err := h.c.SetProfile(ctx, req)
	return err
}

func marshalContent(content any) ([]byte, error) {
	switch c := content.(type) {
	case json.RawMessage:
		return c, nil
	case []byte:
		return c, nil
	}
	raw, err := json.Marshal(content)
	if err != nil {
		return nil, fmt.Errorf("sdk: encoding content: %w", err)
	}
	return raw, nil
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// CreateRoom creates a room as user; req is the client API's createRoom
// body (mautrix.ReqCreateRoom, or anything encoding to it).
func (h *Host) CreateRoom(ctx context.Context, user id.UserID, req any, ts time.Time) (id.RoomID, error) {
	raw, err := marshalContent(req)
	if err != nil {
		return "", err
	}
	resp, err := h.c.CreateRoom(ctx, &proto.CreateRoomRequest{UserId: string(user), Request: raw, Timestamp: millis(ts)})
	if err != nil {
		return "", err
	}
	return id.RoomID(resp.RoomId), nil
}

// BatchEvent is one event of a BatchSend.
type BatchEvent struct {
	ID       id.EventID // optional: the bridge's own ID for it
	Sender   id.UserID
	Type     event.Type
	StateKey *string
	Content  any
	Time     time.Time
}

// BatchSend inserts events with their original senders and times, all or
// nothing: forward onto the timeline, or (forward false) before it as
// older history. It returns the events' IDs in order.
func (h *Host) BatchSend(ctx context.Context, room id.RoomID, forward bool, evs []BatchEvent) ([]id.EventID, error) {
	req := &proto.BatchSendRequest{RoomId: string(room), Forward: forward, Events: make([]*proto.BatchEvent, 0, len(evs))}
	for _, ev := range evs {
		raw, err := marshalContent(ev.Content)
		if err != nil {
			return nil, err
		}
		req.Events = append(req.Events, &proto.BatchEvent{EventId: string(ev.ID), Type: ev.Type.Type,
			StateKey: ev.StateKey, Sender: string(ev.Sender), Content: raw, OriginServerTs: millis(ev.Time)})
	}
	resp, err := h.c.BatchSend(ctx, req)
	if err != nil {
		return nil, err
	}
	out := make([]id.EventID, len(resp.EventIds))
	for i, e := range resp.EventIds {
		out[i] = id.EventID(e)
	}
	return out, nil
}
