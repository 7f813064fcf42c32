package rooms

import (
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/tidwall/gjson"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/types"
)

// MembershipRequest is a change of someone's membership.
type MembershipRequest struct {
	RoomID id.RoomID
	Sender id.UserID
	// Target is the user whose membership changes (the sender for join,
	// leave and knock).
	Target     id.UserID
	Membership string // join, leave, invite, ban, knock
	// Unban marks a leave sent by POST /unban: the target must be banned. A
	// leave for someone else without it is a kick, which must not lift a ban.
	Unban    bool
	Reason   string
	IsDirect bool
	// Extra are the other keys of a join or knock body, carried into the
	// member event's content (as Synapse does); the keys the server sets
	// (membership, displayname, avatar_url, join_authorised_via_users_server)
	// are its own.
	Extra     map[string]jsontext.Value
	Timestamp int64
	// Servers are the servers to join or knock through when this server
	// is not in the room (the request's via and server_name, the alias's
	// answer); more are found from the room ID and the user's invite.
	Servers []string
}

// ResolveRoom turns a room ID or alias into a room ID: an alias of this
// server from its directory, another server's by asking that server.
func (s *Reader) ResolveRoom(ctx context.Context, roomIDOrAlias string) (id.RoomID, error) {
	roomID, _, err := s.ResolveRoomServers(ctx, roomIDOrAlias)
	return roomID, err
}

// ResolveRoomServers is ResolveRoom with the servers an alias's server
// says are in the room (none for a room ID or a local alias).
func (s *Reader) ResolveRoomServers(ctx context.Context, roomIDOrAlias string) (id.RoomID, []string, error) {
	switch {
	case strings.HasPrefix(roomIDOrAlias, "!"):
		return id.RoomID(roomIDOrAlias), nil, nil
	case strings.HasPrefix(roomIDOrAlias, "#"):
		alias := id.RoomAlias(roomIDOrAlias)
		if _, server, ok := strings.Cut(roomIDOrAlias, ":"); ok && server != s.opts.ServerName && s.opts.Remote != nil {
			return s.remoteAlias(ctx, alias)
		}
		a, err := s.lookupAlias(ctx, alias)
		if storageNotFound(err) {
			return "", nil, types.NotFound("Room alias %s not found", roomIDOrAlias)
		} else if err != nil {
			return "", nil, err
		}
		return a.RoomID, nil, nil
	default:
		return "", nil, types.InvalidParam("%q is neither a room ID nor an alias", roomIDOrAlias)
	}
}

// remoteAlias asks the alias's server (GET /query/directory): 404 when it
// has no such alias or cannot be reached.
func (s *Reader) remoteAlias(ctx context.Context, alias id.RoomAlias) (id.RoomID, []string, error) {
	roomID, servers, err := s.opts.Remote.QueryAlias(ctx, alias)
	if err != nil {
		var re *RemoteError
		if errors.As(err, &re) && re.Status != http.StatusNotFound {
			s.log.InfoContext(ctx, "remote alias lookup failed", "alias", alias, "err", err)
		}
		return "", nil, types.NotFound("Room alias %s not found", alias)
	}
	return roomID, servers, nil
}

// ChangeMembership sends a membership event; eventauth decides whether the
// sender may (join rules, bans, power levels).
func (s *Service) ChangeMembership(ctx context.Context, req *MembershipRequest) (id.EventID, error) {
	if err := types.CheckUserID(req.Target, s.opts.ServerName); err != nil && req.Target != req.Sender {
		return "", err
	}
	// A suspended account may still leave (and refuse invites); nothing else.
	selfLeave := req.Membership == "leave" && req.Target == req.Sender
	if _, err := s.restricted(ctx, req.Sender, selfLeave); err != nil {
		return "", err
	}
	if req.Membership == "join" || req.Membership == "knock" {
		if by, err := s.store.RoomBlockedBy(ctx, req.RoomID); err != nil {
			return "", err
		} else if by != "" {
			return "", types.Forbidden("This room has been blocked on this server")
		}
	}
	room, err := s.store.GetRoom(ctx, req.RoomID)
	if err != nil && !storageNotFound(err) {
		return "", err
	}
	// Whether the change may have to be made through another server: a
	// user's own join, knock or leave in a room this server is not in.
	remote := req.Sender == req.Target && s.opts.Remote != nil &&
		(req.Membership == "join" || req.Membership == "knock" || req.Membership == "leave")
	if remote && (err == nil || req.Membership != "leave") {
		// A room this server holds no state of (unknown, or only an invite
		// or a knock kept): through a server in it.
		stateless := err != nil
		if !stateless {
			ext, xerr := s.store.GetForwardExtremities(ctx, req.RoomID)
			if xerr != nil {
				return "", xerr
			}
			stateless = len(ext) == 0
		}
		if stateless {
			if eid, done, err := s.tryRemote(ctx, req); done {
				return eid, err
			}
			if room, err = s.store.GetRoom(ctx, req.RoomID); err != nil && !storageNotFound(err) {
				return "", err
			}
		}
	}
	if storageNotFound(err) {
		if req.Membership == "join" || req.Membership == "knock" {
			return "", types.NotFound("No known servers for room %s", req.RoomID)
		}
		return "", types.Forbidden("You are not in room %s", req.RoomID)
	}
	if req.Membership == "invite" {
		if err := s.checkInvite(ctx, req.Sender, req.Target); err != nil {
			return "", err
		}
	}
	if req.Membership == "knock" && !id.RoomVersion(room.RoomVersion).Knocks() {
		return "", types.Forbidden("Room version %s does not allow knocking", room.RoomVersion)
	}
	content, err := s.memberContent(ctx, req.Target, req.Membership)
	if err != nil {
		return "", err
	}
	if req.Membership == "leave" || req.Membership == "ban" {
		delete(content, "displayname")
		delete(content, "avatar_url")
	}
	if req.Reason != "" {
		content["reason"] = req.Reason
	}
	if req.IsDirect && req.Membership == "invite" {
		content["is_direct"] = true
	}
	if req.Membership == "join" || req.Membership == "knock" {
		for k, v := range req.Extra {
			switch k {
			case "membership", "displayname", "avatar_url", "join_authorised_via_users_server", "reason":
			default:
				content[k] = v
			}
		}
	}
	if req.Membership == "join" {
		authoriser, err := s.joinAuthoriser(ctx, req.RoomID, req.Target)
		if err != nil {
			return "", err
		}
		if authoriser != "" {
			content["join_authorised_via_users_server"] = authoriser
		}
	}
	target := string(req.Target)
	if raw, err := json.Marshal(content); err == nil && req.Timestamp == 0 {
		if eid, ok, err := s.unchangedState(ctx, req.RoomID, "m.room.member", target, req.Sender, raw); err != nil || ok {
			return eid, err
		}
	}
	sr := &sendReq{
		proto: &events.Proto{Type: "m.room.member", StateKey: &target, Sender: req.Sender, Content: content,
			OriginServerTS: req.Timestamp},
		check: func(b *batchState) error {
			if remote {
				// A room whose state this server holds but which it
				// left (no local user joined, other servers' are).
				if err := s.checkParticipates(ctx, b); err != nil {
					return err
				}
			}
			return s.checkMembershipChange(ctx, b, req)
		},
	}
	var eid id.EventID
	if req.Membership == "invite" && req.Target.Homeserver() != s.opts.ServerName && s.opts.Remote != nil {
		// The invitee's server signs the invite before it is sent.
		eid, err = s.inviteRemote(ctx, req, sr)
	} else {
		eid, err = s.submit(ctx, req.RoomID, sr)
		if errors.Is(err, errNotParticipating) {
			if eid, done, rerr := s.tryRemote(ctx, req); done {
				return eid, rerr
			}
			remote = false // another local user joined meanwhile: the local way
			eid, err = s.submit(ctx, req.RoomID, sr)
		}
	}
	if err == nil && (req.Membership == "join" || req.Membership == "invite") {
		// Coming back to a forgotten room makes it visible again.
		err = s.store.SetForgotten(ctx, req.Target, req.RoomID, false)
	}
	return eid, err
}

// joinAuthoriser is the local user who authorises a join to a restricted
// room (join rule restricted or knock_restricted, rooms v8+): a member with
// the power to invite, named in join_authorised_via_users_server as the
// auth rules require. "" when the join needs none (another join rule, or
// the user is joined or invited already) or the user is in none of the
// allowed rooms (the auth rules then refuse it).
func (s *Service) joinAuthoriser(ctx context.Context, roomID id.RoomID, user id.UserID) (id.UserID, error) {
	rules, err := s.currentStateContent(ctx, roomID, "m.room.join_rules", "")
	if err != nil || rules == nil {
		return "", err
	}
	c := gjson.ParseBytes(rules)
	if rule := c.Get("join_rule").Str; rule != "restricted" && rule != "knock_restricted" {
		return "", nil
	}
	if cur, _, err := s.Membership(ctx, roomID, user); err != nil || cur == "join" || cur == "invite" {
		return "", err
	}
	if allowed, err := s.inAllowedRoom(ctx, allowedRooms(c), user); err != nil || !allowed {
		return "", err
	}
	rs, err := s.loadRoomState(ctx, roomID)
	if err != nil {
		return "", err
	}
	pl, err := s.powerLevels(ctx, newBatch(rs))
	if err != nil {
		return "", err
	}
	var best id.UserID
	for _, u := range slices.Sorted(maps.Keys(rs.joined)) {
		if pl.GetUserLevel(u) >= pl.Invite() && (best == "" || pl.GetUserLevel(u) > pl.GetUserLevel(best)) {
			best = u
		}
	}
	if best == "" {
		return "", types.NewError(http.StatusBadRequest, "M_UNABLE_TO_GRANT_JOIN",
			"No user of this server may invite to the room, so the join cannot be authorised")
	}
	return best, nil
}

// checkMembershipChange gives the errors clients expect where the auth rules
// would give a less helpful one, or would allow a no-op.
func (s *Service) checkMembershipChange(ctx context.Context, b *batchState, req *MembershipRequest) error {
	cur, err := s.membershipIn(ctx, b, req.Target)
	if err != nil {
		return err
	}
	switch req.Membership {
	case "invite":
		switch cur {
		case "join":
			return types.Forbidden("%s is already in the room", req.Target)
		case "ban":
			return types.Forbidden("%s is banned from the room", req.Target)
		}
	case "leave":
		switch {
		case req.Unban:
			if cur != "ban" {
				return types.Forbidden("%s is not banned", req.Target)
			}
		case req.Sender != req.Target && cur == "ban":
			return types.Forbidden("%s is banned: unban them instead", req.Target)
		case req.Sender != req.Target && cur != "join" && cur != "invite" && cur != "knock":
			return types.Forbidden("%s is not in the room", req.Target)
		}
	case "join":
		if cur == "ban" {
			return types.Forbidden("You are banned from this room")
		}
	}
	return nil
}

// membershipIn returns a user's membership in the batch's state ("" for none).
func (s *Reader) membershipIn(ctx context.Context, b *batchState, user id.UserID) (string, error) {
	ev, err := s.stateEvent(ctx, b, "m.room.member", string(user))
	if err != nil || ev == nil {
		return "", err
	}
	var c struct {
		Membership string `json:"membership"`
	}
	if err := jsonUnmarshal(ev.Content, &c); err != nil {
		return "", err
	}
	return c.Membership, nil
}

// Membership returns a user's current membership in a room ("" for none).
func (s *Reader) Membership(ctx context.Context, roomID id.RoomID, user id.UserID) (string, id.EventID, error) {
	eid, err := s.store.CurrentStateEvent(ctx, roomID, "m.room.member", string(user))
	if storageNotFound(err) {
		return "", "", nil
	} else if err != nil {
		return "", "", err
	}
	ev, err := s.store.GetEvent(ctx, eid)
	if err != nil {
		return "", "", err
	}
	return ev.Membership, eid, nil
}

// errNotMember is the answer for reads by users outside a room.
func errNotMember(roomID id.RoomID) error {
	return types.NewError(http.StatusForbidden, types.CodeForbidden, "You are not allowed to view room %s", roomID)
}

// ProfileChanged sends a fresh join event with the user's new display name
// and avatar to every room they are joined to, as Synapse does, so that room
// members see the change. Failures in one room do not stop the others.
func (s *Service) ProfileChanged(ctx context.Context, user id.UserID) error {
	rooms, err := s.JoinedRooms(ctx, user)
	if err != nil {
		return err
	}
	var firstErr error
	for _, roomID := range rooms {
		if _, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: roomID, Sender: user, Target: user,
			Membership: "join"}); err != nil {
			s.log.Warn("updating membership after a profile change", "room", roomID, "err", err)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

// LeaveAll makes a (deactivated) user leave, or decline, every room they
// are joined to, invited to or knocking on.
func (s *Service) LeaveAll(ctx context.Context, user id.UserID) error {
	ms, err := s.store.RoomsOfUser(ctx, user, []string{"join", "invite", "knock"})
	if err != nil {
		return err
	}
	var firstErr error
	for _, m := range ms {
		if _, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: m.RoomID, Sender: user,
			Target: user, Membership: "leave"}); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}
