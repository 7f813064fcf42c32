package rooms

import (
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"slices"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
)

// DeleteRequest is an admin's deletion of a room (Synapse's delete room
// admin API).
type DeleteRequest struct {
	RoomID id.RoomID
	Admin  id.UserID
	// NewRoomUserID, when set, creates a room (as that local user) that
	// the removed local members are moved into, with RoomName and Message.
	NewRoomUserID id.UserID
	RoomName      string
	Message       string
	// Block keeps this server's users out from now on.
	Block bool
	// Purge deletes every row of the room once its local members are out.
	Purge bool
}

// DeleteResult is what a deletion did.
type DeleteResult struct {
	KickedUsers       []id.UserID    `json:"kicked_users"`
	FailedToKickUsers []id.UserID    `json:"failed_to_kick_users"`
	LocalAliases      []id.RoomAlias `json:"local_aliases"`
	NewRoomID         *id.RoomID     `json:"new_room_id"`
}

// Default texts of the room the removed members are moved into (Synapse's).
const (
	DefaultDeleteRoomName = "Content Violation Notification"
	DefaultDeleteMessage  = "Sharing illegal content on this server is not permitted and rooms in violation will be blocked."
)

// DeleteRoom removes a room from this server: blocks it if asked, moves
// its local members out (each leaves; invites are refused) and into a new
// room if one is asked for, deletes its local aliases, and purges it if
// asked. A room this server does not know can still be blocked.
func (s *Service) DeleteRoom(ctx context.Context, req *DeleteRequest) (*DeleteResult, error) {
	res := &DeleteResult{KickedUsers: []id.UserID{}, FailedToKickUsers: []id.UserID{}, LocalAliases: []id.RoomAlias{}}
	if req.Block {
		if err := s.store.SetRoomBlocked(ctx, req.RoomID, true, req.Admin, s.nowMS()); err != nil {
			return nil, err
		}
	}
	if _, err := s.getRoom(ctx, req.RoomID); err != nil {
		if req.Block && isNotFound(err) {
			return res, nil
		}
		return nil, err
	}
	if req.NewRoomUserID != "" {
		name := req.RoomName
		if name == "" {
			name = DefaultDeleteRoomName
		}
		// Only its creator may speak in it.
		newRoom, err := s.CreateRoom(ctx, &CreateRequest{Creator: req.NewRoomUserID, Preset: "public_chat", Name: &name,
			PowerOverride: map[string]jsontext.Value{"events_default": jsontext.Value("100")}})
		if err != nil {
			return nil, err
		}
		msg := req.Message
		if msg == "" {
			msg = DefaultDeleteMessage
		}
		body, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": msg})
		if _, err := s.Send(ctx, &SendRequest{RoomID: newRoom, Sender: req.NewRoomUserID, Type: "m.room.message", Content: body}); err != nil {
			return nil, err
		}
		res.NewRoomID = &newRoom
	}
	members, err := s.store.RoomMembers(ctx, req.RoomID, []string{"join", "invite", "knock"})
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		if m.UserID.Homeserver() != s.opts.ServerName || m.UserID == req.NewRoomUserID {
			continue
		}
		if _, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: req.RoomID, Sender: m.UserID, Target: m.UserID,
			Membership: "leave"}); err != nil {
			s.log.WarnContext(ctx, "deleting a room: a member could not leave", "room", req.RoomID, "user", m.UserID, "err", err)
			res.FailedToKickUsers = append(res.FailedToKickUsers, m.UserID)
			continue
		}
		res.KickedUsers = append(res.KickedUsers, m.UserID)
		if res.NewRoomID != nil && m.Membership == "join" {
			if _, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: *res.NewRoomID, Sender: m.UserID, Target: m.UserID,
				Membership: "join"}); err != nil {
				s.log.WarnContext(ctx, "deleting a room: a member could not join the new room", "user", m.UserID, "err", err)
			}
		}
	}
	aliases, err := s.store.AliasesOfRoom(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	for _, a := range aliases {
		if err := s.deleteAlias(ctx, req.Admin, true, a); err != nil && !isNotFound(err) {
			return nil, err
		}
		res.LocalAliases = append(res.LocalAliases, a)
	}
	slices.Sort(res.KickedUsers)
	if req.Purge {
		if err := s.purge(ctx, req.RoomID); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// purge deletes the room's rows; its writer, if any, reloads (and finds
// no room) before anything else it is handed.
func (s *Service) purge(ctx context.Context, roomID id.RoomID) error {
	if err := s.store.PurgeRoom(ctx, roomID); err != nil {
		return err
	}
	s.mu.Lock()
	if w := s.writers[roomID]; w != nil {
		w.stale.Store(true)
	}
	s.mu.Unlock()
	s.versions.forget(roomID)
	return nil
}

func isNotFound(err error) bool {
	me, ok := types.AsError(err)
	return ok && me.Code == types.CodeNotFound
}
