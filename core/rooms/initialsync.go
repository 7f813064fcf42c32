package rooms

import (
	"context"
	"slices"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// This file holds the reads of the sync-era endpoints (core/sync's
// legacy.go): a room snapshot for GET /rooms/{roomId}/initialSync and
// GET /initialSync, and a room's events in a stream range for GET /events.

// StreamPos is the event's position in the event stream.
func (e *ClientEvent) StreamPos() int64 { return e.pos }

// SnapshotRequest asks for one room as the initialSync endpoints show it.
type SnapshotRequest struct {
	RoomID id.RoomID
	User   id.UserID
	Device id.DeviceID
	// Upto is the events position the snapshot covers.
	Upto int64
	// Limit is the number of messages (0: none).
	Limit int
	// Departed: a user who left or was removed without ever having been
	// joined (a rejected invite) gets the room with only what they may see
	// of it instead of 403 (GET /initialSync?archived=true lists them).
	Departed bool
}

// Snapshot is a room's RoomInfo without the user's account data and presence.
type Snapshot struct {
	// Membership is the user's ("" for a peeker who never had one).
	Membership string
	Messages   SnapshotMessages
	State      []*ClientEvent
	// Visibility is the room's in the room directory: public or private.
	Visibility string
	// Current: the user sees the room as it is now (they are joined, or
	// anyone may read it); false when they see it as it was when they left.
	Current bool
}

// SnapshotMessages is the PaginationChunk of a snapshot: the latest events,
// oldest first. Start pages back with /messages (absent when nothing is
// before); End pages forward with /messages and streams with /events.
type SnapshotMessages struct {
	Chunk []*ClientEvent `json:"chunk"`
	Start string         `json:"start,omitempty"`
	End   string         `json:"end"`
}

// Snapshot returns a room's latest messages and state as the user may see
// them: the current ones for members and, in world_readable rooms, anyone;
// those up to their departure for a user who left or was removed; 403 for
// others (and for unknown rooms, which look the same).
func (s *Reader) Snapshot(ctx context.Context, req *SnapshotRequest) (*Snapshot, error) {
	if _, err := s.roomVersion(ctx, req.RoomID); err != nil {
		return nil, err
	}
	cur, memEvent, err := s.Membership(ctx, req.RoomID, req.User)
	if err != nil {
		return nil, err
	}
	group, ok, err := s.stateGroupFor(ctx, req.RoomID, req.User)
	if err != nil {
		return nil, err
	}
	departed := cur == "leave" || cur == "ban"
	if !ok && !(req.Departed && departed) {
		return nil, errNotMember(req.RoomID)
	}
	visibility, err := s.Visibility(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	snap := &Snapshot{Membership: cur, Visibility: visibility, Current: ok && group == 0}
	upto := req.Upto
	if !snap.Current && memEvent != "" {
		// The room as it was when they left: nothing after their departure.
		ev, err := s.store.GetEvent(ctx, memEvent)
		if err != nil {
			return nil, err
		}
		upto = min(upto, ev.StreamPos)
	}
	if !ok {
		// Never joined: only their own membership events, no state.
		if snap.Messages, err = s.visibleBefore(ctx, req, upto); err != nil {
			return nil, err
		}
		snap.State = []*ClientEvent{}
		return snap, nil
	}
	if snap.Messages, err = s.visibleBefore(ctx, req, upto); err != nil {
		return nil, err
	}
	var entries []storage.StateEntry
	if group == 0 {
		entries, err = s.store.CurrentState(ctx, req.RoomID)
	} else {
		entries, err = s.store.StateAt(ctx, group)
	}
	if err != nil {
		return nil, err
	}
	ids := make([]id.EventID, len(entries))
	for i, e := range entries {
		ids[i] = e.EventID
	}
	if snap.State, err = s.FormatStateEvents(ctx, req.RoomID, req.User, ids); err != nil {
		return nil, err
	}
	return snap, nil
}

// visibleBefore reads the latest Limit events at or before upto that the
// user may see, oldest first.
func (s *Reader) visibleBefore(ctx context.Context, req *SnapshotRequest, upto int64) (SnapshotMessages, error) {
	end := Token(upto + 1)
	out := SnapshotMessages{Chunk: []*ClientEvent{}, Start: end, End: end}
	if req.Limit <= 0 {
		return out, nil
	}
	rv, err := s.roomVersion(ctx, req.RoomID)
	if err != nil {
		return out, err
	}
	v, err := s.newViewer(ctx, req.RoomID, req.User)
	if err != nil {
		return out, err
	}
	limit := min(req.Limit, 1000)
	var picked []*storage.Event
	cursor := upto + 1
	exhausted := false
	for len(picked) < limit && !exhausted {
		batch, err := s.store.RoomEvents(ctx, req.RoomID, cursor, 0, true, limit)
		if err != nil {
			return out, err
		}
		exhausted = len(batch) < limit
		for _, e := range batch {
			cursor = e.StreamPos
			ok, err := v.canSee(ctx, e)
			if err != nil {
				return out, err
			}
			if ok {
				if picked = append(picked, e); len(picked) == limit {
					break
				}
			}
		}
	}
	if exhausted && len(picked) < limit {
		out.Start = "" // nothing earlier
	} else {
		out.Start = Token(cursor)
	}
	slices.Reverse(picked)
	if out.Chunk, err = s.formatter(rv).forUser(req.User).forDevice(req.Device).format(ctx, picked); err != nil {
		return out, err
	}
	return out, nil
}

// InviteEvent is a user's invite to a room as GET /initialSync shows it:
// the invite event with the room's stripped state in
// unsigned.invite_room_state.
func (s *Reader) InviteEvent(ctx context.Context, roomID id.RoomID, user id.UserID, inviteEvent id.EventID) (*ClientEvent, error) {
	evs, err := s.FormatStateEvents(ctx, roomID, user, []id.EventID{inviteEvent})
	if err != nil {
		return nil, err
	}
	if len(evs) != 1 {
		return nil, errNotMember(roomID)
	}
	stripped, err := s.StrippedState(ctx, roomID, inviteEvent)
	if err != nil {
		return nil, err
	}
	// The invite itself is the event shown; the stripped state is the rest.
	stripped = slices.DeleteFunc(stripped, func(m map[string]any) bool {
		return m["type"] == "m.room.member" && m["state_key"] == string(user)
	})
	evs[0].Unsigned["invite_room_state"] = stripped
	return evs[0], nil
}

// RequirePeekable answers 403 unless the user may follow the room's new
// events: a joined member, or anyone in a world_readable room.
func (s *Reader) RequirePeekable(ctx context.Context, roomID id.RoomID, user id.UserID) error {
	if _, err := s.roomVersion(ctx, roomID); err != nil {
		return err
	}
	cur, _, err := s.Membership(ctx, roomID, user)
	if err != nil || cur == "join" {
		return err
	}
	if ok, err := s.mayPeek(ctx, roomID); err != nil {
		return err
	} else if !ok {
		return errNotMember(roomID)
	}
	return nil
}

// StreamRangeRequest asks for a room's events in the stream range
// (After, Upto] that the user may see.
type StreamRangeRequest struct {
	RoomID id.RoomID
	User   id.UserID
	Device id.DeviceID
	// Known: Membership and MembershipEvent are the user's current ones
	// (the caller read them with the user's other rooms).
	Known           bool
	Membership      string
	MembershipEvent id.EventID
	After, Upto     int64
	// Limit bounds the events returned.
	Limit int
}

// StreamRange is a room's visible events in a range, oldest first.
type StreamRange struct {
	Events []*ClientEvent
	// Reached is the position up to which the range was read: Upto, or the
	// position of the last event when Limit stopped the read early.
	Reached int64
}

// StreamRange reads a room's events in (After, Upto], applying history
// visibility: what the user may see of them.
func (s *Reader) StreamRange(ctx context.Context, req *StreamRangeRequest) (*StreamRange, error) {
	rv, err := s.roomVersion(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	var v *viewer
	if req.Known {
		v, err = s.viewerWith(ctx, req.RoomID, req.User, req.Membership, req.MembershipEvent)
	} else {
		v, err = s.newViewer(ctx, req.RoomID, req.User)
	}
	if err != nil {
		return nil, err
	}
	limit := req.Limit
	if limit <= 0 {
		limit = 100
	}
	out := &StreamRange{Reached: req.Upto}
	picked, cursor, err := v.pick(ctx, req.After, limit, limit, func(cursor int64) ([]*storage.Event, error) {
		return s.store.RoomEvents(ctx, req.RoomID, cursor, req.Upto+1, false, limit)
	}, nil)
	if err != nil {
		return nil, err
	}
	if len(picked) == limit {
		out.Reached = cursor
	}
	if out.Events, err = s.formatter(rv).forUser(req.User).forDevice(req.Device).format(ctx, picked); err != nil {
		return nil, err
	}
	return out, nil
}
