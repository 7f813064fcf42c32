package rooms

import (
	"cmp"
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"slices"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// What server admins do to rooms beyond deleting them (core/admin):
// purge history, redact a user's events, make a user room admin, read
// and trim forward extremities, list a room's media.

// PurgeHistoryRequest is an admin's purge of a room's history up to an
// event (EventID) or a time (TS, in ms, when EventID is empty).
type PurgeHistoryRequest struct {
	RoomID  id.RoomID
	EventID id.EventID
	TS      int64
	// DeleteLocalEvents deletes this server's users' events too; without
	// it they stay (they may be the only copies there are).
	DeleteLocalEvents bool
}

// PurgePoint checks a purge and finds its point: the stream position
// before which events go. The point is the event named, or the first event
// at or after TS; it never passes the room's oldest forward extremity, so
// the room's latest event always stays (as in Synapse).
func (s *Service) PurgePoint(ctx context.Context, req *PurgeHistoryRequest) (int64, error) {
	if _, err := s.getRoom(ctx, req.RoomID); err != nil {
		return 0, err
	}
	var point *storage.Event
	if req.EventID != "" {
		e, err := s.store.GetEvent(ctx, req.EventID)
		if storageNotFound(err) || (err == nil && (e.RoomID != req.RoomID || e.Outlier)) {
			return 0, types.NotFound("Event %s not found in room %s", req.EventID, req.RoomID)
		} else if err != nil {
			return 0, err
		}
		point = e
	} else {
		e, err := s.store.EventByTimestamp(ctx, req.RoomID, req.TS, true)
		if err != nil && !storageNotFound(err) {
			return 0, err
		}
		point = e
	}
	extremities, err := s.store.GetForwardExtremities(ctx, req.RoomID)
	if err != nil {
		return 0, err
	}
	evs, err := s.store.GetEvents(ctx, extremities)
	if err != nil {
		return 0, err
	}
	if len(evs) == 0 {
		return 0, types.InvalidParam("The room has no forward extremity to keep")
	}
	oldest := slices.MinFunc(evs, func(a, b *storage.Event) int { return cmp.Compare(a.StreamPos, b.StreamPos) })
	if point == nil || point.StreamPos > oldest.StreamPos {
		return oldest.StreamPos, nil
	}
	return point.StreamPos, nil
}

// PurgeHistory deletes the room's history before the point PurgePoint
// found (in one transaction) and returns how many events went. State
// stays, so the room goes on: members send and sync as before; clients
// paginating back stop at the point.
func (s *Service) PurgeHistory(ctx context.Context, req *PurgeHistoryRequest, before int64) (int, error) {
	p := &storage.HistoryPurge{RoomID: req.RoomID, Before: before}
	if !req.DeleteLocalEvents {
		p.KeepServer = s.opts.ServerName
	}
	n, err := s.store.PurgeHistory(ctx, p)
	if err != nil {
		return 0, err
	}
	s.reloadWriter(req.RoomID)
	return n, nil
}

// reloadWriter makes the room's writer, if any, read the room anew before
// it handles anything else.
func (s *Service) reloadWriter(roomID id.RoomID) {
	s.mu.Lock()
	if w := s.writers[roomID]; w != nil {
		w.stale.Store(true)
	}
	s.mu.Unlock()
}

// RedactUserRequest is an admin's redaction of a user's events.
type RedactUserRequest struct {
	User  id.UserID
	Admin id.UserID
	// Rooms to redact in; none: every room the user has been in.
	Rooms  []id.RoomID
	Reason string
	// Limit is the most events redacted per room (newest first).
	Limit int
	// UseAdmin sends the redactions as the admin; otherwise a local
	// user's are sent as that user, a remote user's as the admin.
	UseAdmin          bool
	AfterTS, BeforeTS int64
}

// RedactUserRooms are the rooms a redaction of the user's events covers.
func (s *Service) RedactUserRooms(ctx context.Context, req *RedactUserRequest) ([]id.RoomID, error) {
	if len(req.Rooms) > 0 {
		return req.Rooms, nil
	}
	ms, err := s.store.RoomsOfUser(ctx, req.User, []string{"join", "leave", "ban"})
	if err != nil {
		return nil, err
	}
	out := make([]id.RoomID, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.RoomID)
	}
	slices.Sort(out)
	return out, nil
}

// RedactUserEvents redacts the user's events in one room, newest first;
// it returns the events it could not redact, with why.
func (s *Service) RedactUserEvents(ctx context.Context, req *RedactUserRequest, roomID id.RoomID) (map[id.EventID]string, error) {
	evs, err := s.store.SenderEvents(ctx, roomID, req.User, req.AfterTS, req.BeforeTS, cmp.Or(req.Limit, 1000))
	if err != nil {
		return nil, err
	}
	sender := req.Admin
	if !req.UseAdmin && req.User.Homeserver() == s.opts.ServerName {
		sender = req.User
	}
	failed := map[id.EventID]string{}
	for _, e := range evs {
		if _, err := s.Redact(ctx, roomID, sender, "", e.EventID, req.Reason, ""); err != nil {
			failed[e.EventID] = err.Error()
		}
	}
	return failed, nil
}

// MakeRoomAdmin gives a local user the highest power a local member of
// the room holds, sent by that member; a user not in the room is joined
// first (invited by that member where the room is not public).
func (s *Service) MakeRoomAdmin(ctx context.Context, roomID id.RoomID, user id.UserID) error {
	room, err := s.getRoom(ctx, roomID)
	if err != nil {
		return err
	}
	if user.Homeserver() != s.opts.ServerName {
		return types.InvalidParam("%s is not a local user", user)
	}
	rv := id.RoomVersion(room.RoomVersion)
	pl, err := s.currentStateContent(ctx, roomID, "m.room.power_levels", "")
	if err != nil {
		return err
	}
	createContent, err := s.currentStateContent(ctx, roomID, "m.room.create", "")
	if err != nil {
		return err
	}
	creators := map[id.UserID]bool{}
	if rv.PrivilegedRoomCreators() {
		creators[room.Creator] = true
		for _, c := range gjson.GetBytes(createContent, "additional_creators").Array() {
			creators[id.UserID(c.Str)] = true
		}
	}
	level := func(u id.UserID) int64 {
		if creators[u] {
			return 1 << 53
		}
		if pl == nil {
			if u == room.Creator {
				return 100 // no power levels: the creator has 100
			}
			return 0
		}
		if l := gjson.GetBytes(pl, "users."+gjson.Escape(string(u))); l.Exists() {
			return l.Int()
		}
		return gjson.GetBytes(pl, "users_default").Int()
	}
	members, err := s.store.RoomMembers(ctx, roomID, []string{"join"})
	if err != nil {
		return err
	}
	var admin id.UserID
	for _, m := range members {
		if m.UserID.Homeserver() == s.opts.ServerName && (admin == "" || level(m.UserID) > level(admin)) {
			admin = m.UserID
		}
	}
	if admin == "" {
		return types.InvalidParam("No local admin user in room with power to update power levels.")
	}
	membership, _, err := s.Membership(ctx, roomID, user)
	if err != nil {
		return err
	}
	if membership != "join" {
		join := &MembershipRequest{RoomID: roomID, Sender: user, Target: user, Membership: "join"}
		if _, err := s.ChangeMembership(ctx, join); err != nil {
			if _, ierr := s.ChangeMembership(ctx, &MembershipRequest{RoomID: roomID, Sender: admin, Target: user,
				Membership: "invite"}); ierr != nil {
				return err
			}
			if _, err := s.ChangeMembership(ctx, join); err != nil {
				return err
			}
		}
	}
	if creators[user] {
		return nil // a creator of the room already has all power
	}
	top := level(admin)
	if creators[admin] {
		top = maxPowerLevel(pl)
	}
	content := map[string]jsontext.Value{}
	if pl != nil {
		if err := json.Unmarshal(pl, &content); err != nil {
			return err
		}
	}
	users := map[string]jsontext.Value{}
	if raw, ok := content["users"]; ok {
		if err := json.Unmarshal(raw, &users); err != nil {
			return err
		}
	}
	users[string(user)] = mustJSON(top)
	content["users"] = mustJSON(users)
	empty := ""
	_, err = s.Send(ctx, &SendRequest{RoomID: roomID, Sender: admin, Type: "m.room.power_levels", StateKey: &empty,
		Content: mustJSON(content)})
	return err
}

// Extremity is a forward extremity as Synapse's admin API lists it.
type Extremity struct {
	EventID    id.EventID `json:"event_id"`
	StateGroup int64      `json:"state_group"`
	Depth      int64      `json:"depth"`
	ReceivedTS int64      `json:"received_ts"`
}

// AdminExtremities are the room's forward extremities, oldest first.
func (s *Reader) AdminExtremities(ctx context.Context, roomID id.RoomID) ([]Extremity, error) {
	evs, err := s.extremityEvents(ctx, roomID)
	if err != nil {
		return nil, err
	}
	out := make([]Extremity, 0, len(evs))
	for _, e := range evs {
		out = append(out, Extremity{EventID: e.EventID, StateGroup: e.StateGroup, Depth: e.Depth, ReceivedTS: e.OriginServerTS})
	}
	return out, nil
}

func (s *Reader) extremityEvents(ctx context.Context, roomID id.RoomID) ([]*storage.Event, error) {
	if _, err := s.getRoom(ctx, roomID); err != nil {
		return nil, err
	}
	ids, err := s.store.GetForwardExtremities(ctx, roomID)
	if err != nil {
		return nil, err
	}
	evs, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(evs, func(a, b *storage.Event) int { return cmp.Compare(a.StreamPos, b.StreamPos) })
	return evs, nil
}

// DeleteExtremities deletes the room's forward extremities but the newest
// (a room with many, after a netsplit, makes every new event costly); it
// returns how many went.
func (s *Service) DeleteExtremities(ctx context.Context, roomID id.RoomID) (int, error) {
	evs, err := s.extremityEvents(ctx, roomID)
	if err != nil {
		return 0, err
	}
	if len(evs) < 2 {
		return 0, nil
	}
	n, err := s.store.DeleteForwardExtremities(ctx, roomID, evs[len(evs)-1].EventID)
	if err != nil {
		return 0, err
	}
	s.reloadWriter(roomID)
	return n, nil
}

// RoomMedia are the mxc:// URIs the room's events hold, this server's
// and other servers', each sorted.
func (s *Reader) RoomMedia(ctx context.Context, roomID id.RoomID) (local, remote []string, err error) {
	if _, err := s.getRoom(ctx, roomID); err != nil {
		return nil, nil, err
	}
	evs, err := s.store.MediaEvents(ctx, roomID)
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	var walk func(v gjson.Result)
	walk = func(v gjson.Result) {
		switch {
		case v.IsObject() || v.IsArray():
			v.ForEach(func(_, x gjson.Result) bool { walk(x); return true })
		case v.Type == gjson.String && strings.HasPrefix(v.Str, "mxc://"):
			rest := strings.TrimPrefix(v.Str, "mxc://")
			if server, media, ok := strings.Cut(rest, "/"); ok && server != "" && media != "" && !strings.Contains(media, "/") {
				seen[v.Str] = true
			}
		}
	}
	for _, e := range evs {
		if e.RedactedBy != "" {
			continue
		}
		walk(gjson.GetBytes(e.JSON, "content"))
	}
	local, remote = []string{}, []string{}
	for uri := range seen {
		if strings.HasPrefix(uri, "mxc://"+s.opts.ServerName+"/") {
			local = append(local, uri)
		} else {
			remote = append(remote, uri)
		}
	}
	slices.Sort(local)
	slices.Sort(remote)
	return local, remote, nil
}

// AdminTimestampToEvent is the timeline event closest to ts in the given
// direction, whoever may see it.
func (s *Reader) AdminTimestampToEvent(ctx context.Context, roomID id.RoomID, ts int64, forwards bool) (*ClientEvent, error) {
	if _, err := s.getRoom(ctx, roomID); err != nil {
		return nil, err
	}
	e, err := s.store.EventByTimestamp(ctx, roomID, ts, forwards)
	if storageNotFound(err) {
		return nil, types.NotFound("Unable to find event from %d in direction %s", ts, map[bool]string{true: "f", false: "b"}[forwards])
	} else if err != nil {
		return nil, err
	}
	return &ClientEvent{EventID: e.EventID, OriginServerTS: e.OriginServerTS}, nil
}
