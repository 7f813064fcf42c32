package rooms

import (
	"context"
	"net/http"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// Forget hides a room the user has left from them (POST /rooms/{id}/forget).
func (s *Reader) Forget(ctx context.Context, roomID id.RoomID, user id.UserID) error {
	if _, err := s.roomVersion(ctx, roomID); err != nil {
		return err
	}
	cur, _, err := s.Membership(ctx, roomID, user)
	if err != nil {
		return err
	}
	switch cur {
	case "join", "invite", "knock":
		// The spec's example answer (and Synapse's) is M_UNKNOWN.
		return types.NewError(http.StatusBadRequest, types.CodeUnknown, "%s is in room %s: leave it before forgetting it",
			user, roomID)
	case "":
		return errNotMember(roomID)
	}
	return s.store.SetForgotten(ctx, user, roomID, true)
}

// TimestampToEvent finds the event closest to ts in the given direction
// that the user may see (GET /v1/rooms/{id}/timestamp_to_event).
func (s *Reader) TimestampToEvent(ctx context.Context, roomID id.RoomID, user id.UserID, ts int64, forwards bool) (*ClientEvent, error) {
	if _, err := s.roomVersion(ctx, roomID); err != nil {
		return nil, err
	}
	if _, ok, err := s.stateGroupFor(ctx, roomID, user); err != nil {
		return nil, err
	} else if !ok {
		return nil, errNotMember(roomID)
	}
	v, err := s.newViewer(ctx, roomID, user)
	if err != nil {
		return nil, err
	}
	// Step over events the user may not see, a bounded number of times.
	for range 100 {
		e, err := s.store.EventByTimestamp(ctx, roomID, ts, forwards)
		if storageNotFound(err) {
			break
		} else if err != nil {
			return nil, err
		}
		if ok, err := v.canSee(ctx, e); err != nil {
			return nil, err
		} else if ok {
			return &ClientEvent{EventID: e.EventID, OriginServerTS: e.OriginServerTS}, nil
		}
		if forwards {
			ts = e.OriginServerTS + 1
		} else {
			ts = e.OriginServerTS - 1
		}
	}
	return nil, types.NotFound("No event found")
}

// Report records a report of a room or of one of its events for the admins.
func (s *Reader) Report(ctx context.Context, roomID id.RoomID, user id.UserID, eventID id.EventID, reason string, score *int64) error {
	if eventID != "" {
		if _, err := s.Event(ctx, roomID, user, eventID); err != nil {
			return err
		}
	} else if _, err := s.getRoom(ctx, roomID); err != nil {
		return err
	}
	if len(reason) > 1000 {
		return types.InvalidParam("reason is longer than 1000 bytes")
	}
	if score != nil && (*score < -100 || *score > 0) {
		return types.InvalidParam("score must be between -100 and 0")
	}
	return s.store.CreateReport(ctx, &storage.Report{ReportID: randomLocal(24), RoomID: roomID,
		EventID: eventID, Reporter: user, Reason: reason, Score: score, CreatedAt: s.nowMS()})
}

// ReportUser records a report of a user for the admins (POST
// /users/{userId}/report). Reports of users this server does not know are
// accepted and dropped, so that reporting tells nobody who exists (the spec
// allows it).
func (s *Reader) ReportUser(ctx context.Context, reporter, user id.UserID, reason string, known bool) error {
	if _, _, err := user.Parse(); err != nil {
		return types.InvalidParam("Invalid user ID %q", user)
	}
	if len(reason) > 1000 {
		return types.InvalidParam("reason is longer than 1000 bytes")
	}
	if !known {
		return nil
	}
	return s.store.CreateReport(ctx, &storage.Report{ReportID: randomLocal(24), ReportedUser: user,
		Reporter: reporter, Reason: reason, CreatedAt: s.nowMS()})
}

// MutualRooms lists rooms both users are joined to (GET /v1/mutual_rooms).
func (s *Reader) MutualRooms(ctx context.Context, user, other id.UserID) ([]id.RoomID, error) {
	if _, _, err := other.Parse(); err != nil {
		return nil, types.InvalidParam("Invalid user ID %q", other)
	}
	if user == other {
		return nil, types.InvalidParam("user_id must not be your own")
	}
	mine, err := s.store.RoomsOfUser(ctx, user, []string{"join"})
	if err != nil {
		return nil, err
	}
	theirs, err := s.store.RoomsOfUser(ctx, other, []string{"join"})
	if err != nil {
		return nil, err
	}
	in := map[id.RoomID]bool{}
	for _, m := range theirs {
		in[m.RoomID] = true
	}
	out := []id.RoomID{}
	for _, m := range mine {
		if in[m.RoomID] {
			out = append(out, m.RoomID)
		}
	}
	return out, nil
}
