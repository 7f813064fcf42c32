package sync

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
)

// This file answers the sync-era endpoints that /sync replaced but the
// spec still describes: GET /initialSync, GET /rooms/{roomId}/initialSync
// (now the way to peek into a world_readable room) and GET /events (the old
// event stream; with room_id, following a room one peeks into).

// legacyEventsLimit bounds the events of one GET /events answer; the rest
// come with the next request, from its end token.
const legacyEventsLimit = 100

// RoomInfo is one room of the initialSync endpoints (the spec's RoomInfo).
type RoomInfo struct {
	RoomID     id.RoomID `json:"room_id"`
	Membership string    `json:"membership,omitempty"`
	// Invite is the invite event when the membership is invite.
	Invite      *rooms.ClientEvent      `json:"invite,omitempty"`
	Messages    *rooms.SnapshotMessages `json:"messages,omitempty"`
	State       []*rooms.ClientEvent    `json:"state,omitzero"`
	Visibility  string                  `json:"visibility,omitempty"`
	AccountData []any                   `json:"account_data,omitzero"`
	Presence    []any                   `json:"presence,omitzero"`
}

// InitialSyncRequest is a parsed GET /initialSync.
type InitialSyncRequest struct {
	User   id.UserID
	Device id.DeviceID
	// Limit is the number of messages per room.
	Limit int
	// Archived adds the rooms the user left or was removed from.
	Archived bool
}

// InitialSyncResponse is the GET /initialSync answer.
type InitialSyncResponse struct {
	End         string      `json:"end"`
	Rooms       []*RoomInfo `json:"rooms"`
	Presence    []any       `json:"presence"`
	AccountData []any       `json:"account_data"`
}

// InitialSync answers GET /initialSync: every room the user is joined or
// invited to (and, with Archived, left), their presence and account data,
// and a token to follow with GET /events.
func (s *Service) InitialSync(ctx context.Context, req *InitialSyncRequest) (*InitialSyncResponse, error) {
	upto := s.notifier.Current()
	memberships, err := s.userMemberships(ctx, req.User)
	if err != nil {
		return nil, err
	}
	roomData, global, err := s.initialAccountData(ctx, req.User, upto[stream.AccountData])
	if err != nil {
		return nil, err
	}
	resp := &InitialSyncResponse{End: FormatToken(upto), Rooms: []*RoomInfo{}, AccountData: nonNilAny(global)}
	joined := map[id.RoomID]bool{}
	for _, m := range memberships {
		if m.Pos > upto[stream.Events] {
			continue // came after the token: GET /events from End brings it
		}
		info := &RoomInfo{RoomID: m.RoomID, Membership: m.Membership}
		switch m.Membership {
		case "invite":
			if info.Invite, err = s.rooms.InviteEvent(ctx, m.RoomID, req.User, m.EventID); isMatrixError(err) {
				continue // nothing of the room to show: leave it out, as /sync does
			} else if err != nil {
				return nil, err
			}
			resp.Rooms = append(resp.Rooms, info)
			continue
		case "join":
			joined[m.RoomID] = true
		case "leave", "ban":
			if !req.Archived {
				continue
			}
			if forgotten, err := s.rooms.IsForgotten(ctx, req.User, m.RoomID); err != nil {
				return nil, err
			} else if forgotten {
				continue
			}
		default:
			continue // knocks are not part of this endpoint's memberships
		}
		snap, err := s.rooms.Snapshot(ctx, &rooms.SnapshotRequest{RoomID: m.RoomID, User: req.User, Device: req.Device,
			Upto: upto[stream.Events], Limit: req.Limit, Departed: true})
		if isMatrixError(err) && m.Membership != "join" {
			continue // the room is no longer readable to them, as /sync has it
		} else if err != nil {
			return nil, err
		}
		fillRoomInfo(info, snap, roomData[m.RoomID])
		resp.Rooms = append(resp.Rooms, info)
	}
	presence, err := s.eph.PresenceSince(ctx, req.User, 0, upto[stream.Presence], joined, s.sharesRoom(joined))
	if err != nil {
		return nil, err
	}
	resp.Presence = nonNilAny(toAny(presence))
	return resp, nil
}

// RoomInitialSyncRequest is a parsed GET /rooms/{roomId}/initialSync.
type RoomInitialSyncRequest struct {
	User   id.UserID
	Device id.DeviceID
	RoomID id.RoomID
	Limit  int
}

// RoomInitialSync answers GET /rooms/{roomId}/initialSync: the room's
// latest messages and state for a member, a former member (as it was when
// they left) or, in a world_readable room, anyone.
func (s *Service) RoomInitialSync(ctx context.Context, req *RoomInitialSyncRequest) (*RoomInfo, error) {
	upto := s.notifier.Current()
	snap, err := s.rooms.Snapshot(ctx, &rooms.SnapshotRequest{RoomID: req.RoomID, User: req.User, Device: req.Device,
		Upto: upto[stream.Events], Limit: req.Limit})
	if err != nil {
		return nil, err
	}
	roomData, _, err := s.initialAccountData(ctx, req.User, upto[stream.AccountData])
	if err != nil {
		return nil, err
	}
	info := &RoomInfo{RoomID: req.RoomID, Membership: snap.Membership}
	fillRoomInfo(info, snap, roomData[req.RoomID])
	info.Presence = []any{}
	if snap.Current {
		// The presence of who is in the room now; one who left sees none.
		members, err := s.rooms.JoinedMembers(ctx, req.RoomID, req.User)
		if err != nil {
			return nil, err
		}
		users := make([]id.UserID, 0, len(members))
		for u := range members {
			users = append(users, u)
		}
		presence, err := s.eph.PresenceOf(ctx, users)
		if err != nil {
			return nil, err
		}
		info.Presence = nonNilAny(toAny(presence))
	}
	return info, nil
}

// isMatrixError: err is an answer for the client (such as 403), not a failure.
func isMatrixError(err error) bool {
	var me *types.Error
	return errors.As(err, &me)
}

func fillRoomInfo(info *RoomInfo, snap *rooms.Snapshot, accountData []any) {
	if snap.Membership != "" {
		info.Membership = snap.Membership // as read with the messages and state
	}
	info.Messages = &snap.Messages
	info.State = nonNil(snap.State)
	info.Visibility = snap.Visibility
	info.AccountData = nonNilAny(accountData)
}

// initialAccountData is all of a user's account data up to upto, global and
// per room, with the default push rules when the user never changed them
// (as an initial /sync gives them).
func (s *Service) initialAccountData(ctx context.Context, user id.UserID, upto int64) (map[id.RoomID][]any, []any, error) {
	perRoom, global, stored, err := s.accountData(ctx, user, 0, upto, nil)
	if err != nil {
		return nil, nil, err
	}
	if !stored {
		content, err := s.push.AccountDataContent(ctx, user)
		if err != nil {
			return nil, nil, err
		}
		global = append(global, map[string]any{"type": "m.push_rules", "content": content})
	}
	return perRoom, global, nil
}

// EventsRequest is a parsed GET /events.
type EventsRequest struct {
	User   id.UserID
	Device id.DeviceID
	// From is the token to stream from ("" for now).
	From    string
	Timeout time.Duration
	// RoomID, when set, streams only that room (peeking: the user need not
	// be a member of a world_readable room).
	RoomID id.RoomID
}

// EventsResponse is the GET /events answer.
type EventsResponse struct {
	Chunk []*rooms.ClientEvent `json:"chunk"`
	Start string               `json:"start"`
	End   string               `json:"end"`
}

// Events answers GET /events: the room events for the user after From,
// at once if there are any, else when some arrive or the timeout ends.
func (s *Service) Events(ctx context.Context, req *EventsRequest) (*EventsResponse, error) {
	var since stream.Positions
	if req.From == "" {
		since = s.notifier.Current()
	} else {
		var err error
		if since, err = parseEventsToken(req.From); err != nil {
			return nil, err
		}
	}
	if req.RoomID != "" {
		if err := s.rooms.RequirePeekable(ctx, req.RoomID, req.User); err != nil {
			return nil, err
		}
	}
	timeout := min(req.Timeout, s.maxTimeout)
	deadline := time.Now().Add(timeout)
	for {
		upto := s.notifier.Current()
		chunk, end, wake, err := s.streamEvents(ctx, req, since[stream.Events], upto[stream.Events])
		if err != nil {
			return nil, err
		}
		if len(chunk) > 0 || timeout <= 0 || !time.Now().Before(deadline) {
			next := upto
			for i := range next {
				next[i] = max(next[i], since[i])
			}
			next[stream.Events] = max(end, since[stream.Events])
			return &EventsResponse{Chunk: nonNil(chunk), Start: FormatToken(since), End: FormatToken(next)}, nil
		}
		waitCtx, cancel := context.WithDeadline(ctx, deadline)
		// Only events answer GET /events.
		s.notifier.Wait(waitCtx, stream.Interest{User: req.User, Rooms: wake,
			Ignore: stream.Streams(stream.AccountData, stream.Receipts, stream.Typing, stream.ToDevice, stream.DeviceLists,
				stream.Presence)}, upto)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// Woken or timed out: look again from the same token, so that
		// nothing between since and now is skipped.
	}
}

// streamEvents reads the events of (after, upto] for the request: the
// events, the position they reach (upto unless the limit cut them short)
// and the rooms whose news should wake the long-poll.
func (s *Service) streamEvents(ctx context.Context, req *EventsRequest, after, upto int64) ([]*rooms.ClientEvent, int64, map[id.RoomID]bool, error) {
	if req.RoomID != "" {
		wake := map[id.RoomID]bool{req.RoomID: true}
		if upto <= after {
			return nil, upto, wake, nil
		}
		r, err := s.rooms.StreamRange(ctx, &rooms.StreamRangeRequest{RoomID: req.RoomID, User: req.User, Device: req.Device,
			After: after, Upto: upto, Limit: legacyEventsLimit})
		if err != nil {
			return nil, 0, nil, err
		}
		return r.Events, r.Reached, wake, nil
	}
	memberships, err := s.userMemberships(ctx, req.User)
	if err != nil {
		return nil, 0, nil, err
	}
	wake := map[id.RoomID]bool{}
	for _, m := range memberships {
		if m.Membership == "join" {
			wake[m.RoomID] = true
		}
	}
	if upto <= after {
		return nil, upto, wake, nil
	}
	ids, err := s.changedRooms(ctx, after, upto)
	if err != nil {
		return nil, 0, nil, err
	}
	changed := make(map[id.RoomID]bool, len(ids))
	for _, r := range ids {
		changed[r] = true
	}
	var pages []streamPage[*rooms.ClientEvent]
	for _, m := range memberships {
		if !changed[m.RoomID] {
			continue
		}
		// A joined room streams everything the user may see; a room they
		// were invited to, left or were removed from in the range streams
		// up to that change (their invite, the last messages before they
		// left, their leave).
		last := upto
		if m.Membership != "join" {
			if m.Pos <= after {
				continue
			}
			last = min(upto, m.Pos)
		}
		r, err := s.rooms.StreamRange(ctx, &rooms.StreamRangeRequest{RoomID: m.RoomID, User: req.User, Device: req.Device,
			Known: true, Membership: m.Membership, MembershipEvent: m.EventID, After: after, Upto: last, Limit: legacyEventsLimit})
		if err != nil {
			return nil, 0, nil, err
		}
		reached := r.Reached
		if reached == last {
			reached = upto // nothing more of this room belongs to the range
		}
		pages = append(pages, streamPage[*rooms.ClientEvent]{events: r.Events, reached: reached})
	}
	chunk, end := mergeByPos(pages, upto, legacyEventsLimit, (*rooms.ClientEvent).StreamPos)
	return chunk, end, wake, nil
}

// streamPage is one room's events of a range, oldest first, read up to
// the position reached.
type streamPage[T any] struct {
	events  []T
	reached int64
}

// mergeByPos merges rooms' pages into one stream: the events up to the
// lowest position every page reached (past it a page may lack events),
// at most limit of them, in stream order, and the position the merged
// stream reaches — the next request starts after it, so nothing comes
// twice and nothing is skipped.
func mergeByPos[T any](pages []streamPage[T], upto int64, limit int, pos func(T) int64) ([]T, int64) {
	end := upto
	for _, p := range pages {
		end = min(end, p.reached)
	}
	var out []T
	for _, p := range pages {
		for _, e := range p.events {
			if pos(e) <= end {
				out = append(out, e)
			}
		}
	}
	slices.SortFunc(out, func(a, b T) int { return cmp.Compare(pos(a), pos(b)) })
	if len(out) > limit {
		out = out[:limit]
		end = pos(out[limit-1])
	}
	return out, end
}

// parseEventsToken reads a GET /events from token: a sync token (from
// /initialSync, /events or /sync: after the events position), or a
// pagination token "s<P>" (a room's messages.end from initialSync: before
// position P, so after P-1).
func parseEventsToken(tok string) (stream.Positions, error) {
	p, err := ParseToken(tok)
	if err != nil {
		return p, err
	}
	if !strings.Contains(tok, "_") {
		p[stream.Events] = max(0, p[stream.Events]-1)
	}
	return p, nil
}
