package sdk

import (
	"context"
	"encoding/json"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/plugins/proto"
)

// Adopting imported rooms: `tributary import` makes a room per conversation
// of a network, recorded under the portal key the network's bridge gives
// that conversation. When bridgev2 is about to create a portal's room, the
// SDK asks the host for such a room first and hands bridgev2 that one, so
// the bridge continues in the imported rooms. bridgev2 names the portal in
// the create request only through its local room ID
// (GenerateDeterministicRoomID), so the SDK remembers which key each of
// those IDs was made for.

// rememberLocalRoom records the portal key a local room ID stands for.
func (m *Matrix) rememberLocalRoom(roomID id.RoomID, key networkid.PortalKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.localRooms) > 10_000 {
		clear(m.localRooms) // a bound; a key is asked for just before its room is made
	}
	m.localRooms[roomID] = key
}

// adoptPortal returns the imported room of the portal req creates, if the
// server has one: the bot is in it already; the bridge's info state is set
// in it and the users req invites are invited.
func (m *Matrix) adoptPortal(ctx context.Context, req *mautrix.ReqCreateRoom) (id.RoomID, bool, error) {
	if req.BeeperLocalRoomID == "" || m.br == nil {
		return "", false, nil
	}
	m.mu.Lock()
	key, ok := m.localRooms[req.BeeperLocalRoomID]
	m.mu.Unlock()
	if !ok {
		return "", false, nil
	}
	resp, err := m.host.FindPortal(ctx, &proto.FindPortalRequest{Network: m.br.Network.GetName().NetworkID,
		PortalId: string(key.ID), Receiver: string(key.Receiver)})
	if status.Code(err) == codes.NotFound || status.Code(err) == codes.Unimplemented {
		return "", false, nil
	} else if err != nil {
		return "", false, hostError("finding the portal's room", err)
	}
	roomID := id.RoomID(resp.RoomId)
	m.log.Info().Stringer("room_id", roomID).Str("portal_id", string(key.ID)).Msg("Continuing in the room an import made")
	for _, evt := range req.InitialState {
		if evt.Type != event.StateBridge && evt.Type != event.StateHalfShotBridge {
			continue
		}
		if _, err := m.bot.SendState(ctx, roomID, evt.Type, evt.GetStateKey(), &evt.Content, time.Time{}); err != nil {
			return "", false, err
		}
	}
	for _, u := range req.Invite {
		if err := m.ensureRegistered(ctx, u); err != nil {
			return "", false, err
		}
		ms, err := m.host.GetStateEvent(ctx, &proto.GetStateEventRequest{RoomId: string(roomID),
			UserId: string(m.env.BotUserID), Type: event.StateMember.Type, StateKey: string(u)})
		if err == nil && (containsMembership(ms.Content, "join") || containsMembership(ms.Content, "invite")) {
			continue
		}
		if err := m.membership(ctx, roomID, m.env.BotUserID, u, proto.Membership_MEMBERSHIP_INVITE, ""); err != nil {
			return "", false, err
		}
	}
	return roomID, true, nil
}

// containsMembership reports whether member event content has membership ms.
func containsMembership(content []byte, ms string) bool {
	var c struct {
		Membership string `json:"membership"`
	}
	return json.Unmarshal(content, &c) == nil && c.Membership == ms
}
