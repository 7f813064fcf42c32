package rooms

// What other servers may ask of a room (server-server API): the join
// handshake (make_join, send_join) and reads of events, state, auth
// chains and history. Federation handlers call these; core never calls
// federation. Every read checks first that the asking server may see the
// room (ServerMayRead).

import (
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"net/http"
	"slices"
	"sort"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// CodeIncompatibleRoomVersion is make_join's refusal when the joining
// server supports none of the room's version.
const CodeIncompatibleRoomVersion = "M_INCOMPATIBLE_ROOM_VERSION"

// JoinedServers lists the servers with joined members in the room's
// current state (servers_in_room; where outbound sends the room's events).
func (s *Reader) JoinedServers(ctx context.Context, roomID id.RoomID) ([]string, error) {
	members, err := s.store.RoomMembers(ctx, roomID, []string{"join"})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, m := range members {
		if hs := m.UserID.Homeserver(); !seen[hs] {
			seen[hs] = true
			out = append(out, hs)
		}
	}
	sort.Strings(out)
	return out, nil
}

// RoomsWithRemoteMembers are those of rooms where a user of another server
// is joined, in one read for all of them.
func (s *Reader) RoomsWithRemoteMembers(ctx context.Context, rooms []id.RoomID) ([]id.RoomID, error) {
	return s.store.RemoteJoinedRooms(ctx, rooms, s.opts.ServerName)
}

// ForwardExtremities are the room's latest events (earliest_events of a
// get_missing_events request).
func (s *Reader) ForwardExtremities(ctx context.Context, roomID id.RoomID) ([]id.EventID, error) {
	return s.store.GetForwardExtremities(ctx, roomID)
}

// ServerMayRead decides whether server may read the room, at an event
// (at) or as a whole (at nil): 403 M_FORBIDDEN if not; 404 for an unknown
// room. As a whole: the server has a member joined now, or the room is
// world_readable now. At an event, the history visibility rules of the
// client-server API ("Server behaviour") applied to the server's members
// in the state at the event: world_readable allows; a member joined
// there allows; a member invited there allows under "invited"; under
// "shared" (the default) a member joined now allows.
func (s *Reader) ServerMayRead(ctx context.Context, server string, roomID id.RoomID, at *storage.Event) error {
	v, err := s.serverView(ctx, server, roomID)
	if err != nil {
		return err
	}
	ok, err := v.mayRead(ctx, at)
	if err != nil {
		return err
	}
	if !ok {
		return types.Forbidden("%s may not see %s", server, roomID)
	}
	return nil
}

// serverView answers ServerMayRead for one server and room, for many
// events: what it learns per state group is kept.
type serverView struct {
	s         *Reader
	server    string
	roomID    id.RoomID
	joinedNow bool
	groups    map[int64]bool
}

func (s *Reader) serverView(ctx context.Context, server string, roomID id.RoomID) (*serverView, error) {
	if _, err := s.getRoom(ctx, roomID); err != nil {
		return nil, err
	}
	joinedNow, err := s.serverJoinedNow(ctx, server, roomID)
	if err != nil {
		return nil, err
	}
	return &serverView{s: s, server: server, roomID: roomID, joinedNow: joinedNow, groups: map[int64]bool{}}, nil
}

func (v *serverView) mayRead(ctx context.Context, at *storage.Event) (bool, error) {
	if at != nil && at.Outlier && at.StateGroup == 0 {
		// An outlier (state and auth events this server was given when it
		// joined): the state at it is not known here, so it is as visible
		// as the room is now. Other servers need such events to check
		// what cites them.
		at = nil
	}
	if at == nil && v.joinedNow {
		return true, nil
	}
	if at != nil {
		if ok, seen := v.groups[at.StateGroup]; seen {
			return ok, nil
		}
	}
	var entries []storage.StateEntry
	var err error
	if at == nil {
		entries, err = v.s.store.CurrentState(ctx, v.roomID)
	} else if at.StateGroup != 0 {
		entries, err = v.s.store.StateAt(ctx, at.StateGroup)
	}
	if err != nil {
		return false, err
	}
	var ids []id.EventID
	for _, e := range entries {
		if (e.Type == "m.room.member" && id.UserID(e.StateKey).Homeserver() == v.server) ||
			(e.Type == "m.room.history_visibility" && e.StateKey == "") {
			ids = append(ids, e.EventID)
		}
	}
	evs, err := v.s.store.GetEvents(ctx, ids)
	if err != nil {
		return false, err
	}
	visibility := "shared"
	var joined, invited bool
	for _, e := range evs {
		switch {
		case e.Type == "m.room.history_visibility":
			switch hv := gjson.GetBytes(e.JSON, "content.history_visibility").Str; hv {
			case "world_readable", "shared", "invited", "joined":
				visibility = hv
			}
		case e.Membership == "join":
			joined = true
		case e.Membership == "invite":
			invited = true
		}
	}
	ok := visibility == "world_readable" || (at != nil && (joined ||
		(invited && visibility == "invited") || (v.joinedNow && visibility == "shared")))
	if at != nil {
		v.groups[at.StateGroup] = ok
	}
	return ok, nil
}

func (s *Reader) serverJoinedNow(ctx context.Context, server string, roomID id.RoomID) (bool, error) {
	servers, err := s.JoinedServers(ctx, roomID)
	if err != nil {
		return false, err
	}
	return slices.Contains(servers, server), nil
}

// FederationEvent is one event as wire JSON for server (GET /event/{eventId}).
func (s *Reader) FederationEvent(ctx context.Context, server string, eventID id.EventID) (jsontext.Value, error) {
	e, err := s.store.GetEvent(ctx, eventID)
	if storageNotFound(err) || (err == nil && (e.StreamPos < 0 || e.Rejected)) {
		// History inserted backward is never served to other servers, nor
		// is a rejected event (as Synapse: it is not relayed, and a server
		// building on it has its own copy; a soft-failed one is served).
		return nil, types.NotFound("Event %s not found", eventID)
	} else if err != nil {
		return nil, err
	}
	if err := s.ServerMayRead(ctx, server, e.RoomID, e); err != nil {
		return nil, err
	}
	return s.fedJSON(ctx, e)
}

// fedJSON is an event as served to other servers: redacted when a
// redaction applies to it (signatures and hashes kept, so that the
// receiver can check them).
func (s *Reader) fedJSON(ctx context.Context, e *storage.Event) (jsontext.Value, error) {
	if e.RedactedBy == "" {
		return e.JSON, nil
	}
	rv, err := s.roomVersion(ctx, e.RoomID)
	if err != nil {
		return nil, err
	}
	if rv.EventIDFormat() == id.EventIDFormatCustom {
		var v1 pdu.RoomV1PDU
		if err := json.Unmarshal(e.JSON, &v1); err != nil {
			return nil, err
		}
		return json.Marshal(v1.Redact(rv))
	}
	var p pdu.PDU
	if err := json.Unmarshal(e.JSON, &p); err != nil {
		return nil, err
	}
	return json.Marshal(p.Redact(rv))
}

// fedJSONs is fedJSON of each event.
func (s *Reader) fedJSONs(ctx context.Context, evs []*storage.Event) ([]jsontext.Value, error) {
	out := make([]jsontext.Value, 0, len(evs))
	for _, e := range evs {
		raw, err := s.fedJSON(ctx, e)
		if err != nil {
			return nil, err
		}
		out = append(out, raw)
	}
	return out, nil
}

// roomEvent loads an event of the room that server may read.
func (s *Reader) roomEvent(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) (*storage.Event, error) {
	e, err := s.store.GetEvent(ctx, eventID)
	if storageNotFound(err) || (err == nil && (e.RoomID != roomID || e.StreamPos < 0 || e.Rejected)) {
		if err := s.ServerMayRead(ctx, server, roomID, nil); err != nil {
			return nil, err
		}
		return nil, types.NotFound("Event %s not found in %s", eventID, roomID)
	} else if err != nil {
		return nil, err
	}
	if err := s.ServerMayRead(ctx, server, roomID, e); err != nil {
		return nil, err
	}
	return e, nil
}

// stateBeforeStored is the room's state before e: after its prev events,
// resolved when there are several.
func (s *Reader) stateBeforeStored(ctx context.Context, rv id.RoomVersion, e *storage.Event) (map[pdu.StateKey]id.EventID, error) {
	p, err := parsePDU(e)
	if err != nil {
		return nil, err
	}
	prevs, err := s.store.GetEvents(ctx, p.PrevEvents)
	if err != nil {
		return nil, err
	}
	switch len(prevs) {
	case 0:
		return map[pdu.StateKey]id.EventID{}, nil // the create event
	case 1:
		entries, err := s.store.StateAt(ctx, prevs[0].StateGroup)
		if err != nil {
			return nil, err
		}
		m := make(map[pdu.StateKey]id.EventID, len(entries))
		for _, en := range entries {
			m[pdu.StateKey{Type: en.Type, StateKey: en.StateKey}] = en.EventID
		}
		return m, nil
	}
	return s.resolveExtremities(ctx, rv, prevs)
}

// StateIDsAt is the state of the room before the event and its auth chain,
// as event IDs (GET /state_ids/{roomId}?event_id=…).
func (s *Reader) StateIDsAt(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) (stateIDs, authIDs []id.EventID, err error) {
	e, err := s.roomEvent(ctx, server, roomID, eventID)
	if err != nil {
		return nil, nil, err
	}
	rv, err := s.roomVersion(ctx, roomID)
	if err != nil {
		return nil, nil, err
	}
	st, err := s.stateBeforeStored(ctx, rv, e)
	if err != nil {
		return nil, nil, err
	}
	for _, eid := range st {
		stateIDs = append(stateIDs, eid)
	}
	chain, err := s.authChain(ctx, stateIDs)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range chain {
		authIDs = append(authIDs, c.EventID)
	}
	return stateIDs, authIDs, nil
}

// StateAtEvent is StateIDsAt with the events as wire JSON
// (GET /state/{roomId}?event_id=…).
func (s *Reader) StateAtEvent(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) (stateEvs, authChain []jsontext.Value, err error) {
	stateIDs, authIDs, err := s.StateIDsAt(ctx, server, roomID, eventID)
	if err != nil {
		return nil, nil, err
	}
	if stateEvs, err = s.wireEvents(ctx, stateIDs); err != nil {
		return nil, nil, err
	}
	if authChain, err = s.wireEvents(ctx, authIDs); err != nil {
		return nil, nil, err
	}
	return stateEvs, authChain, nil
}

// EventAuthChain is the auth chain of an event (GET /event_auth/{roomId}/{eventId}).
func (s *Reader) EventAuthChain(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) ([]jsontext.Value, error) {
	e, err := s.roomEvent(ctx, server, roomID, eventID)
	if err != nil {
		return nil, err
	}
	p, err := parsePDU(e)
	if err != nil {
		return nil, err
	}
	chain, err := s.authChain(ctx, p.AuthEvents)
	if err != nil {
		return nil, err
	}
	return s.fedJSONs(ctx, chain)
}

func (s *Reader) wireEvents(ctx context.Context, ids []id.EventID) ([]jsontext.Value, error) {
	evs, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	return s.fedJSONs(ctx, evs)
}

// authChain is the events that authorise the given ones, transitively
// (the given events included), oldest (lowest depth) first.
func (s *Reader) authChain(ctx context.Context, from []id.EventID) ([]*storage.Event, error) {
	seen := map[id.EventID]bool{}
	var out []*storage.Event
	frontier := slices.Clone(from)
	for len(frontier) > 0 {
		var next []id.EventID
		for _, eid := range frontier {
			seen[eid] = true
		}
		evs, err := s.store.GetEvents(ctx, frontier)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			out = append(out, e)
			p, err := parsePDU(e)
			if err != nil {
				return nil, err
			}
			for _, a := range p.AuthEvents {
				if !seen[a] {
					seen[a] = true
					next = append(next, a)
				}
			}
		}
		frontier = next
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Depth < out[j].Depth })
	return out, nil
}

// Backfill walks the room's graph back from the given events (included)
// through prev events, up to limit events, newest first
// (GET /backfill/{roomId}?v=…&limit=…). Server must be able to read each.
func (s *Reader) Backfill(ctx context.Context, server string, roomID id.RoomID, from []id.EventID, limit int) ([]jsontext.Value, error) {
	v, err := s.readableRoom(ctx, server, roomID)
	if err != nil {
		return nil, err
	}
	return s.walkBack(ctx, v, from, nil, limit, 0)
}

// MissingEvents answers get_missing_events: events of the room reached
// from latest's prev events, not past earliest, no deeper than minDepth,
// up to limit, oldest first (POST /get_missing_events/{roomId}).
func (s *Reader) MissingEvents(ctx context.Context, server string, roomID id.RoomID, earliest, latest []id.EventID,
	limit int, minDepth int64) ([]jsontext.Value, error) {
	v, err := s.readableRoom(ctx, server, roomID)
	if err != nil {
		return nil, err
	}
	// The latest events are the asker's; the walk starts at what they cite.
	lat, err := s.store.GetEvents(ctx, latest)
	if err != nil {
		return nil, err
	}
	var start []id.EventID
	for _, e := range lat {
		if e.RoomID != roomID {
			continue
		}
		p, err := parsePDU(e)
		if err != nil {
			return nil, err
		}
		start = append(start, p.PrevEvents...)
	}
	stop := map[id.EventID]bool{}
	for _, eid := range earliest {
		stop[eid] = true
	}
	out, err := s.walkBack(ctx, v, start, stop, limit, minDepth)
	if err != nil {
		return nil, err
	}
	slices.Reverse(out)
	return out, nil
}

// readableRoom is the server's view of a room it may read as a whole.
func (s *Reader) readableRoom(ctx context.Context, server string, roomID id.RoomID) (*serverView, error) {
	v, err := s.serverView(ctx, server, roomID)
	if err != nil {
		return nil, err
	}
	if ok, err := v.mayRead(ctx, nil); err != nil {
		return nil, err
	} else if !ok {
		return nil, types.Forbidden("%s may not see %s", server, roomID)
	}
	return v, nil
}

// walkBack is a breadth-first walk of prev events from the given events,
// newest first; events in stop are neither returned nor walked past.
// Events the server may not see are walked through but not returned.
func (s *Reader) walkBack(ctx context.Context, v *serverView, from []id.EventID, stop map[id.EventID]bool,
	limit int, minDepth int64) ([]jsontext.Value, error) {
	roomID := v.roomID
	if limit <= 0 {
		limit = 10
	}
	limit = min(limit, 100)
	seen := map[id.EventID]bool{}
	var out []*storage.Event
	frontier := from
	// The walk through events not returned (invisible to the server,
	// rejected) is bounded too.
	walked := 0
	for len(frontier) > 0 && len(out) < limit && walked < 10*limit {
		var todo []id.EventID
		for _, eid := range frontier {
			if !seen[eid] && !stop[eid] {
				seen[eid] = true
				todo = append(todo, eid)
			}
		}
		evs, err := s.store.GetEvents(ctx, todo)
		if err != nil {
			return nil, err
		}
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].Depth > evs[j].Depth })
		var next []id.EventID
		for _, e := range evs {
			if e.RoomID != roomID || e.StreamPos < 0 || e.Depth < minDepth {
				continue
			}
			walked++
			if ok, err := v.mayRead(ctx, e); err != nil {
				return nil, err
			} else if ok && !e.Rejected && len(out) < limit {
				out = append(out, e)
			}
			p, err := parsePDU(e)
			if err != nil {
				return nil, err
			}
			next = append(next, p.PrevEvents...)
		}
		frontier = next
	}
	return s.fedJSONs(ctx, out)
}

// MakeJoin builds the template of user's join for a server that supports
// versions (GET /make_join/{roomId}/{userId}?ver=…): prev events are the
// room's forward extremities, auth events those the rules pick from the
// current state. 403 when the room's join rules would not let the user in.
func (s *Service) MakeJoin(ctx context.Context, roomID id.RoomID, user id.UserID, versions []id.RoomVersion) (id.RoomVersion, jsontext.Value, error) {
	return s.makeMembership(ctx, roomID, user, "join", versions)
}

// MakeLeave builds the template of user's leave (GET /make_leave/{roomId}/{userId}):
// 403 when the user could not leave (not in the room, nor invited nor knocking).
func (s *Service) MakeLeave(ctx context.Context, roomID id.RoomID, user id.UserID) (id.RoomVersion, jsontext.Value, error) {
	return s.makeMembership(ctx, roomID, user, "leave", nil)
}

// MakeKnock builds the template of user's knock for a server that
// supports versions (GET /make_knock/{roomId}/{userId}?ver=…): 400
// M_INCOMPATIBLE_ROOM_VERSION when the room's version has no knocking or
// is not among them, 403 when the join rules do not allow knocking.
func (s *Service) MakeKnock(ctx context.Context, roomID id.RoomID, user id.UserID, versions []id.RoomVersion) (id.RoomVersion, jsontext.Value, error) {
	room, err := s.getRoom(ctx, roomID)
	if err != nil {
		return "", nil, err
	}
	if rv := id.RoomVersion(room.RoomVersion); !rv.Knocks() {
		return "", nil, types.NewError(http.StatusBadRequest, CodeIncompatibleRoomVersion,
			"Room %s has version %s, which has no knocking", roomID, room.RoomVersion).With("room_version", room.RoomVersion)
	}
	return s.makeMembership(ctx, roomID, user, "knock", versions)
}

// SendKnock takes origin's signed knock of one of its users
// (PUT /send_knock/{roomId}/{eventId}) through the intake and returns
// the room's state events that let the knocking user identify the room
// (knock_room_state: the create event, join rules, name, topic…, as PDUs).
func (s *Service) SendKnock(ctx context.Context, origin string, roomID id.RoomID, eventID id.EventID, raw []byte) ([]jsontext.Value, error) {
	if _, err := s.takeMembership(ctx, origin, roomID, eventID, raw, "knock"); err != nil {
		return nil, err
	}
	entries, err := s.store.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	keep := map[string]bool{"m.room.create": true, "m.room.join_rules": true, "m.room.name": true,
		"m.room.avatar": true, "m.room.canonical_alias": true, "m.room.encryption": true, "m.room.topic": true}
	var ids []id.EventID
	for _, e := range entries {
		if keep[e.Type] && e.StateKey == "" {
			ids = append(ids, e.EventID)
		}
	}
	evs, err := s.wireEvents(ctx, ids)
	if evs == nil && err == nil {
		evs = []jsontext.Value{}
	}
	return evs, err
}

// makeMembership builds the template of a membership event of user for
// make_join, make_leave and make_knock; versions nil accepts the room's.
func (s *Service) makeMembership(ctx context.Context, roomID id.RoomID, user id.UserID, membership string,
	versions []id.RoomVersion) (id.RoomVersion, jsontext.Value, error) {
	rs, err := s.loadRoomState(ctx, roomID)
	if err != nil {
		return "", nil, err
	}
	rv := rs.version
	if versions != nil && !slices.Contains(versions, rv) {
		return "", nil, types.NewError(http.StatusBadRequest, CodeIncompatibleRoomVersion,
			"Room %s has version %s, which the %s server does not support", roomID, rv, membership).With("room_version", rv)
	}
	sk := string(user)
	fields := map[string]string{"membership": membership}
	if membership == "join" {
		// A restricted room: a local member who may invite vouches for
		// the join (server-server API, "Restricted rooms"); 400
		// M_UNABLE_TO_GRANT_JOIN when none may.
		authoriser, err := s.joinAuthoriser(ctx, roomID, user)
		if err != nil {
			return "", nil, err
		}
		if authoriser != "" {
			fields["join_authorised_via_users_server"] = authoriser.String()
		}
	}
	content, err := json.Marshal(fields)
	if err != nil {
		return "", nil, err
	}
	probe := &pdu.PDU{Type: "m.room.member", StateKey: &sk, Sender: user, Content: jsontext.Value(content), RoomID: roomID,
		PrevEvents: rs.extremities, Depth: rs.depth + 1, OriginServerTS: s.nowMS()}
	probe.AuthEvents = []id.EventID{}
	for _, k := range probe.AuthEventSelection(rv) {
		if eid := rs.state[k]; eid != "" {
			probe.AuthEvents = append(probe.AuthEvents, eid)
		}
	}
	check := probe
	if _, ok := fields["join_authorised_via_users_server"]; ok {
		// The auth rules want this server's signature on a join it
		// authorises, which send_join adds: the check signs a copy.
		c := *probe
		check = &c
		if err := s.opts.Signer.Countersign(rv, check); err != nil {
			return "", nil, err
		}
	}
	if err := s.authorize(ctx, rv, check, nil); isAuthFailure(err) {
		return "", nil, types.Forbidden("%s may not %s %s: %v", user, membership, roomID, err)
	} else if err != nil {
		return "", nil, err
	}
	tmpl := map[string]any{"type": probe.Type, "room_id": roomID, "sender": user, "state_key": sk,
		"content": jsontext.Value(content), "depth": probe.Depth, "origin_server_ts": probe.OriginServerTS,
		"prev_events": probe.PrevEvents, "auth_events": probe.AuthEvents}
	if rv.EventIDFormat() == id.EventIDFormatCustom {
		b := newBatch(rs)
		if tmpl["prev_events"], err = s.references(ctx, b, probe.PrevEvents); err != nil {
			return "", nil, err
		}
		if tmpl["auth_events"], err = s.references(ctx, b, probe.AuthEvents); err != nil {
			return "", nil, err
		}
		tmpl["origin"] = user.Homeserver()
	}
	raw, err := json.Marshal(tmpl)
	if err != nil {
		return "", nil, err
	}
	return rv, raw, nil
}

// JoinedRoom is send_join's answer: the room's state before the join and
// the auth chain of that state and of the join.
type JoinedRoom struct {
	State     []jsontext.Value
	AuthChain []jsontext.Value
	// MembersOmitted: membership events were left out of State
	// (omit_members); ServersInRoom then says who is in the room.
	MembersOmitted bool
	ServersInRoom  []string
	// Event is the join with this server's signature added, for a join
	// a local user authorised (restricted rooms); nil otherwise.
	Event jsontext.Value
}

// countersignRestricted adds this server's signature to a join whose
// join_authorised_via_users_server is a local user: the auth rules require
// the authorising server's signature ("The resident homeserver then adds
// its signature to this event"). nil for any other join (taken as it
// came); the intake checks the sender's own signature and the rest.
func (s *Service) countersignRestricted(ctx context.Context, roomID id.RoomID, raw []byte) (jsontext.Value, error) {
	authoriser := id.UserID(gjson.GetBytes(raw, "content.join_authorised_via_users_server").Str)
	if authoriser == "" || authoriser.Homeserver() != s.opts.ServerName {
		return nil, nil
	}
	rv, err := s.roomVersion(ctx, roomID)
	if err != nil {
		return nil, err
	}
	if rv.EventIDFormat() == id.EventIDFormatCustom {
		return nil, nil // no restricted rooms before version 8
	}
	var ev pdu.PDU
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, types.BadJSON("the join: %v", err)
	}
	ev.Unsigned = nil
	if err := s.opts.Signer.Countersign(rv, &ev); err != nil {
		return nil, err
	}
	return json.Marshal(&ev)
}

// SendJoin takes origin's signed join of one of its users
// (PUT /send_join/{roomId}/{eventId}) through the intake and returns the
// room as it was before it. The event must be a join of its sender, a
// user of origin, for this room and with this event ID.
func (s *Service) SendJoin(ctx context.Context, origin string, roomID id.RoomID, eventID id.EventID, raw []byte,
	omitMembers bool) (*JoinedRoom, error) {
	serversBefore, err := s.JoinedServers(ctx, roomID)
	if err != nil {
		return nil, err
	}
	signed, err := s.countersignRestricted(ctx, roomID, raw)
	if err != nil {
		return nil, err
	}
	if signed != nil {
		raw = signed
	}
	e, err := s.takeMembership(ctx, origin, roomID, eventID, raw, "join")
	if err != nil {
		return nil, err
	}
	rv, err := s.roomVersion(ctx, roomID)
	if err != nil {
		return nil, err
	}
	before, err := s.stateBeforeStored(ctx, rv, e)
	if err != nil {
		return nil, err
	}
	out := &JoinedRoom{Event: signed}
	var stateIDs, keep []id.EventID
	heroes := omitMembers && before[pdu.StateKey{Type: "m.room.name"}] == "" &&
		before[pdu.StateKey{Type: "m.room.canonical_alias"}] == ""
	for k, eid := range before {
		stateIDs = append(stateIDs, eid)
		if !omitMembers || k.Type != "m.room.member" {
			keep = append(keep, eid)
		}
	}
	chain, err := s.authChain(ctx, append(slices.Clone(stateIDs), eventID))
	if err != nil {
		return nil, err
	}
	stateEvs, err := s.store.GetEvents(ctx, keep)
	if err != nil {
		return nil, err
	}
	if omitMembers {
		out.MembersOmitted = true
		out.ServersInRoom = serversBefore
		if heroes {
			// A room without a name is named after its members: the
			// joining server needs a few of them (spec, omit_members).
			hs, err := s.heroEvents(ctx, before)
			if err != nil {
				return nil, err
			}
			stateEvs = append(stateEvs, hs...)
		}
	}
	inState := map[id.EventID]bool{}
	for _, se := range stateEvs {
		inState[se.EventID] = true
	}
	if out.State, err = s.fedJSONs(ctx, stateEvs); err != nil {
		return nil, err
	}
	var authEvs []*storage.Event
	for _, c := range chain {
		if c.EventID != eventID && !(omitMembers && inState[c.EventID]) {
			authEvs = append(authEvs, c)
		}
	}
	if out.AuthChain, err = s.fedJSONs(ctx, authEvs); err != nil {
		return nil, err
	}
	if out.State == nil {
		out.State = []jsontext.Value{}
	}
	if out.AuthChain == nil {
		out.AuthChain = []jsontext.Value{}
	}
	return out, nil
}

// SendLeave takes origin's signed leave of one of its users
// (PUT /send_leave/{roomId}/{eventId}) through the intake.
func (s *Service) SendLeave(ctx context.Context, origin string, roomID id.RoomID, eventID id.EventID, raw []byte) error {
	_, err := s.takeMembership(ctx, origin, roomID, eventID, raw, "leave")
	return err
}

// takeMembership checks that raw is a membership event (join, leave,
// knock) of its sender, a user of origin, for this room and with this
// event ID, and takes it through the intake; anything but acceptance is
// an error.
func (s *Service) takeMembership(ctx context.Context, origin string, roomID id.RoomID, eventID id.EventID, raw []byte,
	membership string) (*storage.Event, error) {
	if typ := gjson.GetBytes(raw, "type").Str; typ != "m.room.member" {
		return nil, types.BadJSON("send_%s takes an m.room.member event, not %q", membership, typ)
	}
	sender := gjson.GetBytes(raw, "sender").Str
	if gjson.GetBytes(raw, "state_key").Str != sender || gjson.GetBytes(raw, "content.membership").Str != membership {
		return nil, types.BadJSON("send_%s takes the %s of the event's sender", membership, membership)
	}
	if id.UserID(sender).Homeserver() != origin {
		return nil, types.Forbidden("%s may not send the %s of %s", origin, membership, sender)
	}
	if gjson.GetBytes(raw, "room_id").Str != string(roomID) {
		return nil, types.BadJSON("the event is not for room %s", roomID)
	}
	if _, err := s.getRoom(ctx, roomID); err != nil {
		return nil, err
	}
	// The resident server passes the event on to the room's other servers.
	res, err := s.Intake(WithRelay(ctx), origin, raw)
	var dropped *DroppedError
	var missing *MissingEventsError
	switch {
	case errors.As(err, &dropped):
		return nil, types.BadJSON("%v", dropped)
	case errors.As(err, &missing):
		return nil, types.BadJSON("%v", missing)
	case err != nil:
		return nil, err
	}
	if res.EventID != eventID {
		return nil, types.BadJSON("the event's ID is %s, not %s", res.EventID, eventID)
	}
	if res.Status != IntakeAccepted {
		return nil, types.Forbidden("the %s was %s: %v", membership, res.Status, res.Reason)
	}
	return s.store.GetEvent(ctx, eventID)
}

// heroEvents are the membership events of up to five joined or invited
// members, by user ID.
func (s *Reader) heroEvents(ctx context.Context, st map[pdu.StateKey]id.EventID) ([]*storage.Event, error) {
	var users []string
	for k := range st {
		if k.Type == "m.room.member" {
			users = append(users, k.StateKey)
		}
	}
	sort.Strings(users)
	var ids []id.EventID
	for _, u := range users {
		ids = append(ids, st[pdu.StateKey{Type: "m.room.member", StateKey: u}])
	}
	evs, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	var out []*storage.Event
	for _, e := range evs {
		if (e.Membership == "join" || e.Membership == "invite") && len(out) < 5 {
			out = append(out, e)
		}
	}
	return out, nil
}

// PDUEventID is the ID of an event in wire JSON for a room this server
// knows (its reference hash, or its event_id in rooms v1 and v2), to name
// in a transaction's answer an event that was not taken in.
func (s *Reader) PDUEventID(ctx context.Context, raw []byte) (id.EventID, error) {
	rv, err := s.roomVersion(ctx, id.RoomID(gjson.GetBytes(raw, "room_id").Str))
	if err != nil {
		return "", err
	}
	if rv.EventIDFormat() == id.EventIDFormatCustom {
		return id.EventID(gjson.GetBytes(raw, "event_id").Str), nil
	}
	var p pdu.PDU
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", err
	}
	return p.GetEventID(rv)
}

// ServerTimestampToEvent is the event of the room closest to ts in the
// given direction that server may see, with its timestamp
// (GET /timestamp_to_event/{roomId}): 403 unless the server may read the
// room (as for backfill), 404 when there is none. History inserted
// backward and rejected events are never answered.
func (s *Reader) ServerTimestampToEvent(ctx context.Context, server string, roomID id.RoomID, ts int64,
	forwards bool) (id.EventID, int64, error) {
	v, err := s.readableRoom(ctx, server, roomID)
	if err != nil {
		return "", 0, err
	}
	// Step over events the server may not see, a bounded number of times.
	for range 100 {
		e, err := s.store.EventByTimestamp(ctx, roomID, ts, forwards)
		if storageNotFound(err) {
			break
		} else if err != nil {
			return "", 0, err
		}
		if e.StreamPos >= 0 && !e.Rejected {
			if ok, err := v.mayRead(ctx, e); err != nil {
				return "", 0, err
			} else if ok {
				return e.EventID, e.OriginServerTS, nil
			}
		}
		if forwards {
			ts = e.OriginServerTS + 1
		} else {
			ts = e.OriginServerTS - 1
		}
	}
	return "", 0, types.NotFound("No event found")
}
