package rooms

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// What the admin API reads of rooms (core/admin): whatever the admin's own
// membership, which the client-server reads check.

// AdminRoom is a room as Synapse's room admin API describes it.
type AdminRoom struct {
	RoomID             id.RoomID     `json:"room_id"`
	Name               *string       `json:"name"`
	Topic              *string       `json:"topic"`
	Avatar             *string       `json:"avatar"`
	CanonicalAlias     *id.RoomAlias `json:"canonical_alias"`
	JoinedMembers      int           `json:"joined_members"`
	JoinedLocalMembers int           `json:"joined_local_members"`
	JoinedLocalDevices int           `json:"joined_local_devices"`
	Version            string        `json:"version"`
	Creator            id.UserID     `json:"creator"`
	Encryption         *string       `json:"encryption"`
	Federatable        bool          `json:"federatable"`
	Public             bool          `json:"public"`
	JoinRules          *string       `json:"join_rules"`
	GuestAccess        *string       `json:"guest_access"`
	HistoryVisibility  *string       `json:"history_visibility"`
	StateEvents        int           `json:"state_events"`
	RoomType           *string       `json:"room_type"`
	Forgotten          bool          `json:"forgotten"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// ListRoomIDs is every room this server holds.
func (s *Reader) ListRoomIDs(ctx context.Context) ([]id.RoomID, error) {
	return s.store.ListRoomIDs(ctx)
}

// AdminRoom describes a room from its current state.
func (s *Reader) AdminRoom(ctx context.Context, roomID id.RoomID) (*AdminRoom, error) {
	room, err := s.getRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	entries, err := s.store.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	out := &AdminRoom{RoomID: roomID, Version: room.RoomVersion, Creator: room.Creator, Public: room.Published,
		Federatable: true, StateEvents: len(entries)}
	var ids []id.EventID
	for _, e := range entries {
		if e.Type == "m.room.member" {
			continue
		}
		if e.StateKey == "" {
			ids = append(ids, e.EventID)
		}
	}
	members, err := s.store.RoomMembers(ctx, roomID, []string{"join"})
	if err != nil {
		return nil, err
	}
	for _, m := range members {
		out.JoinedMembers++
		if m.UserID.Homeserver() == s.opts.ServerName {
			out.JoinedLocalMembers++
		}
	}
	evs, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, e := range evs {
		c := gjson.GetBytes(e.JSON, "content")
		switch e.Type {
		case "m.room.name":
			out.Name = optional(c.Get("name").Str)
		case "m.room.topic":
			out.Topic = optional(c.Get("topic").Str)
		case "m.room.avatar":
			out.Avatar = optional(c.Get("url").Str)
		case "m.room.canonical_alias":
			if a := c.Get("alias").Str; a != "" {
				alias := id.RoomAlias(a)
				out.CanonicalAlias = &alias
			}
		case "m.room.encryption":
			out.Encryption = optional(c.Get("algorithm").Str)
		case "m.room.join_rules":
			out.JoinRules = optional(c.Get("join_rule").Str)
		case "m.room.guest_access":
			out.GuestAccess = optional(c.Get("guest_access").Str)
		case "m.room.history_visibility":
			out.HistoryVisibility = optional(c.Get("history_visibility").Str)
		case "m.room.create":
			out.RoomType = optional(c.Get("type").Str)
			if f := c.Get("m\\.federate"); f.Exists() && !f.Bool() {
				out.Federatable = false
			}
		}
	}
	return out, nil
}

// AdminMembers are the users joined to a room, sorted.
func (s *Reader) AdminMembers(ctx context.Context, roomID id.RoomID) ([]id.UserID, error) {
	if _, err := s.getRoom(ctx, roomID); err != nil {
		return nil, err
	}
	members, err := s.store.RoomMembers(ctx, roomID, []string{"join"})
	if err != nil {
		return nil, err
	}
	out := make([]id.UserID, 0, len(members))
	for _, m := range members {
		out = append(out, m.UserID)
	}
	slices.Sort(out)
	return out, nil
}

// AdminState is a room's current state.
func (s *Reader) AdminState(ctx context.Context, roomID id.RoomID) ([]*ClientEvent, error) {
	if _, err := s.getRoom(ctx, roomID); err != nil {
		return nil, err
	}
	entries, err := s.store.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	ids := make([]id.EventID, len(entries))
	for i, e := range entries {
		ids[i] = e.EventID
	}
	slices.Sort(ids)
	return s.eventsByID(ctx, roomID, ids)
}

// Report is a user's report to the server admins.
type Report = storage.Report

// EventReports are the reports of events for the admins (storage's
// EventReports).
func (s *Reader) EventReports(ctx context.Context, roomID id.RoomID, reporter id.UserID, oldestFirst bool, offset, limit int) ([]*Report, int, error) {
	return s.store.EventReports(ctx, roomID, reporter, oldestFirst, offset, limit)
}

// GetReport is one report (M_NOT_FOUND).
func (s *Reader) GetReport(ctx context.Context, reportID string) (*Report, error) {
	r, err := s.store.GetReport(ctx, reportID)
	if storageNotFound(err) {
		return nil, types.NotFound("Event report not found")
	}
	return r, err
}

// DeleteReport deletes one report (M_NOT_FOUND).
func (s *Reader) DeleteReport(ctx context.Context, reportID string) error {
	err := s.store.DeleteReport(ctx, reportID)
	if storageNotFound(err) {
		return types.NotFound("Event report not found")
	}
	return err
}

// AdminEvent is a stored event as it goes over federation, with its
// sender (nil when this server does not have it).
func (s *Reader) AdminEvent(ctx context.Context, eventID id.EventID) (json.RawMessage, id.UserID, error) {
	e, err := s.store.GetEvent(ctx, eventID)
	if storageNotFound(err) {
		return nil, "", nil
	} else if err != nil {
		return nil, "", err
	}
	return json.RawMessage(e.JSON), e.Sender, nil
}

// SetRoomBlocked blocks a room (this server's users may not join or knock)
// or unblocks it; the room need not be known here.
func (s *Reader) SetRoomBlocked(ctx context.Context, roomID id.RoomID, blocked bool, admin id.UserID) error {
	return s.store.SetRoomBlocked(ctx, roomID, blocked, admin, s.nowMS())
}

// RoomBlockedBy is the admin who blocked the room ("" when it is not).
func (s *Reader) RoomBlockedBy(ctx context.Context, roomID id.RoomID) (id.UserID, error) {
	return s.store.RoomBlockedBy(ctx, roomID)
}
