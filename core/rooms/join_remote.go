package rooms

// Joining a room this server is not in, through a server that is
// (server-server API, "Joining Rooms"): make_join gives the template of the
// join, signed here and handed back with send_join, whose answer is the
// room's state before the join and its auth chain. Those are checked
// together (fetched.go) and stored as outliers in one commit with the
// join, which becomes the room's one forward extremity: from there the
// room goes on like any other, events arriving through the intake.
//
// A server whose answer fails a check is not trusted with the join: the
// next candidate is asked.

import (
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/state"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// maxJoinCandidates bounds the servers asked for one membership change.
const maxJoinCandidates = 8

// remoteJoinTimeout bounds the whole handshake with one server (a room of
// many thousand members is a large answer).
const remoteJoinTimeout = 2 * time.Minute

// participates reports whether this server takes part in the room and so
// changes memberships in it by itself: it holds the room's state (a
// forward extremity) and a local user is joined, or no server is (a room
// of this server's that everyone left).
func (s *Service) participates(ctx context.Context, roomID id.RoomID) (bool, error) {
	ext, err := s.store.GetForwardExtremities(ctx, roomID)
	if err != nil || len(ext) == 0 {
		return false, err
	}
	servers, err := s.JoinedServers(ctx, roomID)
	if err != nil {
		return false, err
	}
	return len(servers) == 0 || slices.Contains(servers, s.opts.ServerName), nil
}

// errNotParticipating: the writer found no local user joined to the room
// and other servers' users joined: the change goes through them.
var errNotParticipating = errors.New("rooms: this server is not in the room")

// checkParticipates is participates from a room writer's batch: a local
// user joined answers it at once (the common case, read from memory);
// only a room none is joined to asks storage which servers are.
func (s *Service) checkParticipates(ctx context.Context, b *batchState) error {
	if b.anyLocalJoined() {
		return nil
	}
	servers, err := s.JoinedServers(ctx, b.roomID)
	if err != nil {
		return err
	}
	if len(servers) == 0 || slices.Contains(servers, s.opts.ServerName) {
		return nil
	}
	return errNotParticipating
}

// tryRemote makes the change through another server; done false when the
// room turned out to be one this server takes part in.
func (s *Service) tryRemote(ctx context.Context, req *MembershipRequest) (id.EventID, bool, error) {
	eid, remote, err := s.remoteMembership(ctx, req)
	if !remote || errors.Is(err, errParticipates) {
		return "", false, nil
	}
	return eid, true, err
}

// remoteMembership changes a local user's own membership in a room this
// server is not in: join and knock through a resident server, leave (an
// invite refused, a knock withdrawn) through the server that invited or
// a resident one. ok false: the room turned out to be one this server
// takes part in (another local user joined meanwhile), and the local path
// applies.
func (s *Service) remoteMembership(ctx context.Context, req *MembershipRequest) (eid id.EventID, ok bool, err error) {
	// One remote change per room at a time: two local users joining the
	// same room do not both fetch its state; the second joins locally.
	unlock := s.lockRemote(req.RoomID)
	defer unlock()
	if in, err := s.participates(ctx, req.RoomID); err != nil || in {
		return "", false, err
	}
	switch req.Membership {
	case "join":
		eid, err = s.joinRemote(ctx, req)
	case "knock":
		eid, err = s.knockRemote(ctx, req)
	case "leave":
		eid, err = s.leaveRemote(ctx, req)
	default:
		err = types.Forbidden("This server is not in room %s", req.RoomID)
	}
	return eid, true, err
}

// lockRemote serialises remote membership changes of one room.
func (s *Service) lockRemote(roomID id.RoomID) func() {
	v, _ := s.remoteLocks.LoadOrStore(roomID, &sync.Mutex{})
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// candidateServers are the servers to ask about a room, in order: those
// the client named (via, server_name, the alias's answer), the server
// that sent the user's invite, the room ID's server, and the servers
// whose users were joined when this server last knew the room. Never
// this server, each once, at most maxJoinCandidates.
func (s *Service) candidateServers(ctx context.Context, roomID id.RoomID, user id.UserID, named []string) ([]string, error) {
	var out []string
	add := func(server string) {
		if server != "" && server != s.opts.ServerName && !slices.Contains(out, server) && len(out) < maxJoinCandidates {
			out = append(out, server)
		}
	}
	for _, n := range named {
		add(n)
	}
	if cur, eid, err := s.Membership(ctx, roomID, user); err != nil {
		return nil, err
	} else if cur == "invite" || cur == "knock" {
		if e, err := s.store.GetEvent(ctx, eid); err == nil && cur == "invite" {
			add(e.Sender.Homeserver())
		}
	}
	if _, server, ok := strings.Cut(string(roomID), ":"); ok {
		add(server)
	}
	servers, err := s.JoinedServers(ctx, roomID)
	if err != nil {
		return nil, err
	}
	for _, sv := range servers {
		add(sv)
	}
	return out, nil
}

// membershipContent is the content of a local user's membership event
// made over federation: the template's (a restricted join's authorising
// user among it), the user's profile, reason and extra keys.
func (s *Service) membershipContent(ctx context.Context, req *MembershipRequest, tmpl gjson.Result) (jsontext.Value, error) {
	content := map[string]any{}
	tmpl.Get("content").ForEach(func(k, v gjson.Result) bool {
		content[k.Str] = jsontext.Value(v.Raw)
		return true
	})
	own, err := s.memberContent(ctx, req.Target, req.Membership)
	if err != nil {
		return nil, err
	}
	if req.Membership == "leave" {
		delete(own, "displayname")
		delete(own, "avatar_url")
	}
	maps.Copy(content, own)
	if req.Reason != "" {
		content["reason"] = req.Reason
	}
	for k, v := range req.Extra {
		switch k {
		case "membership", "displayname", "avatar_url", "join_authorised_via_users_server", "reason":
		default:
			content[k] = v
		}
	}
	raw, err := json.Marshal(content, json.Deterministic(true))
	if err != nil {
		return nil, err
	}
	return raw, nil
}

// checkTemplate checks that a resident server's template is the
// membership asked for: of the user, in the room.
func checkTemplate(server string, roomID id.RoomID, user id.UserID, membership string, tmpl jsontext.Value) (gjson.Result, error) {
	t := gjson.ParseBytes(tmpl)
	if !t.IsObject() || t.Get("type").Str != "m.room.member" || t.Get("state_key").Str != string(user) ||
		t.Get("sender").Str != string(user) || t.Get("room_id").Str != string(roomID) ||
		t.Get("content.membership").Str != membership {
		return t, fmt.Errorf("%w: %s's make_%s template is not the %s of %s in %s", errBadAnswer, server, membership,
			membership, user, roomID)
	}
	return t, nil
}

// joinRemote joins the user through the first candidate server that
// lets them in with a sound answer.
func (s *Service) joinRemote(ctx context.Context, req *MembershipRequest) (id.EventID, error) {
	return s.throughFirstServer(ctx, req, "join", "join", s.joinVia)
}

// throughFirstServer tries a remote membership change (via) with each
// candidate server in turn until one makes it; what names the change in
// the log and failWhat in the client's error.
func (s *Service) throughFirstServer(ctx context.Context, req *MembershipRequest, what, failWhat string,
	via func(ctx context.Context, server string, req *MembershipRequest) (id.EventID, error)) (id.EventID, error) {
	servers, err := s.candidateServers(ctx, req.RoomID, req.Target, req.Servers)
	if err != nil {
		return "", err
	}
	if len(servers) == 0 {
		return "", types.NotFound("No known servers for room %s", req.RoomID)
	}
	var errs []error
	for _, server := range servers {
		eid, err := via(ctx, server, req)
		if err == nil {
			return eid, nil
		}
		s.log.InfoContext(ctx, "remote "+what+" failed", "room", req.RoomID, "server", server, "err", err)
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return "", remoteFailure(failWhat, req.RoomID, errs)
}

// remoteFailure is the error a client gets when no server let the change
// happen: the refusal of the first server that refused it (403 M_FORBIDDEN,
// 400 M_INCOMPATIBLE_ROOM_VERSION…), else 404 when none knew the room,
// else 502 (unreachable or unsound servers).
func remoteFailure(what string, roomID id.RoomID, errs []error) error {
	notFound := false
	for _, err := range errs {
		var re *RemoteError
		if errors.As(err, &re) && re.Status >= 400 && re.Status < 500 {
			if re.Status == http.StatusNotFound {
				notFound = true
				continue
			}
			code := re.Code
			if code == "" {
				code = types.CodeUnknown
			}
			return types.NewError(re.Status, code, "%s", re.Message)
		}
		var me *types.Error
		if errors.As(err, &me) {
			return me
		}
	}
	if notFound {
		return types.NotFound("No server could %s room %s", what, roomID)
	}
	msg := "no server was reachable"
	if len(errs) > 0 {
		msg = errs[len(errs)-1].Error()
	}
	return types.NewError(http.StatusBadGateway, types.CodeUnknown, "Failed to %s room %s over federation: %s", what, roomID, msg)
}

// joinedRemote is a send_join answer that passed the checks, ready to store.
type joinedRemote struct {
	rv   id.RoomVersion
	join *received
	// set holds the state before the join and its auth chain; state is
	// that state as event IDs.
	set   *fetchedSet
	state state.Map
}

// joinVia is the join handshake with one server.
func (s *Service) joinVia(ctx context.Context, server string, req *MembershipRequest) (id.EventID, error) {
	ctx, cancel := context.WithTimeout(ctx, remoteJoinTimeout)
	defer cancel()
	rv, tmplRaw, err := s.opts.Remote.MakeJoin(ctx, server, req.RoomID, req.Target, events.SupportedRoomVersions)
	if err != nil {
		return "", err
	}
	if !events.IsSupported(rv) {
		return "", fmt.Errorf("%w: %s offers room version %q", errBadAnswer, server, rv)
	}
	tmpl, err := checkTemplate(server, req.RoomID, req.Target, "join", tmplRaw)
	if err != nil {
		return "", err
	}
	content, err := s.membershipContent(ctx, req, tmpl)
	if err != nil {
		return "", err
	}
	ev, raw, err := s.opts.Signer.FromTemplate(rv, tmplRaw, content, s.nowMS())
	if err != nil {
		return "", fmt.Errorf("%w: %s's template: %w", errBadAnswer, server, err)
	}
	ans, err := s.opts.Remote.SendJoin(ctx, server, req.RoomID, ev.InternalMeta.EventID, raw)
	if err != nil {
		return "", err
	}
	j, err := s.checkJoinAnswer(ctx, server, rv, req.RoomID, ev.InternalMeta.EventID, raw, ans)
	if err != nil {
		return "", err
	}
	res := s.queue(ctx, req.RoomID, &sendReq{join: j})
	if errors.Is(res.err, errParticipates) {
		// Another local user's join got there first: the server takes
		// part in the room now, and the join goes the local way.
		return "", res.err
	}
	return res.eventID, res.err
}

// errParticipates: the room became one this server takes part in while a
// remote join was on its way.
var errParticipates = errors.New("rooms: this server is in the room now")

// checkJoinAnswer checks a send_join answer: the join (as the resident
// server countersigned it, for a restricted join) is the one sent, the
// state and auth chain pass the checks on receipt and are the state of
// this room and version, and the join is allowed by it.
func (s *Service) checkJoinAnswer(ctx context.Context, server string, rv id.RoomVersion, roomID id.RoomID,
	eventID id.EventID, sent jsontext.Value, ans *RemoteJoin) (*joinedRemote, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s's send_join answer: %s", errBadAnswer, server, fmt.Sprintf(format, args...))
	}
	joinRaw := sent
	if len(ans.Event) > 0 && ans.Event.Kind() == '{' {
		joinRaw = ans.Event
	}
	join, err := parseFetched(s.opts.ServerName, rv, roomID, joinRaw)
	if err != nil {
		return nil, err
	}
	if join.eventID() != eventID {
		return nil, bad("the join returned is %s, not %s", join.eventID(), eventID)
	}
	if err := s.checkSignaturesWith(join, s.keyFunc(ctx)); err != nil {
		return nil, bad("the join's signature: %v", err)
	}
	if err := join.checkHash(); err != nil || join.redacted {
		return nil, bad("the join returned is not the one sent")
	}
	raws := make([]jsontext.Value, 0, len(ans.State)+len(ans.AuthChain))
	raws = append(raws, ans.State...)
	raws = append(raws, ans.AuthChain...)
	set, ids, err := s.checkFetched(ctx, server, rv, roomID, raws)
	if err != nil {
		return nil, err
	}
	st := make(state.Map, len(ans.State))
	for _, eid := range ids[:len(ans.State)] {
		ev := set.get(eid).ev
		if ev.StateKey == nil {
			return nil, bad("%s in the state is not a state event", eid)
		}
		k := pdu.StateKey{Type: ev.Type, StateKey: *ev.StateKey}
		if other, dup := st[k]; dup && other != eid {
			return nil, bad("two events for (%s, %q) in the state", k.Type, k.StateKey)
		}
		st[k] = eid
	}
	create := set.get(st[pdu.StateKey{Type: "m.room.create"}])
	if create == nil {
		return nil, bad("no create event in the state")
	}
	if v := gjson.GetBytes(create.ev.Content, "room_version"); id.RoomVersion(v.Str) != rv && !(!v.Exists() && rv == id.RoomV1) {
		return nil, bad("the room's version is %q, not %s", v.Str, rv)
	}
	if _, ok := st[pdu.StateKey{Type: "m.room.member", StateKey: string(join.ev.Sender)}]; ok {
		if m := set.get(st[pdu.StateKey{Type: "m.room.member", StateKey: string(join.ev.Sender)}]); m != nil &&
			m.eventID() == eventID {
			return nil, bad("the state is the state after the join")
		}
	}
	// The join itself: allowed by its auth events and by the state.
	get := func(ids []id.EventID) ([]*pdu.PDU, error) {
		out := make([]*pdu.PDU, len(ids))
		for i, eid := range ids {
			if r := set.get(eid); r != nil {
				out[i] = r.ev
			}
		}
		missing := []id.EventID{}
		for i, p := range out {
			if p == nil {
				missing = append(missing, ids[i])
			}
		}
		if len(missing) == 0 {
			return out, nil
		}
		stored, err := s.loadPDUs(ctx, missing)
		if err != nil {
			return nil, err
		}
		j := 0
		for i := range out {
			if out[i] == nil {
				out[i] = stored[j]
				j++
			}
		}
		return out, nil
	}
	if err := events.Authorize(rv, join.ev, get, s.getKey); err != nil {
		return nil, bad("the join is not allowed by its auth events: %v", err)
	}
	authIDs := []id.EventID{}
	for _, k := range join.ev.AuthEventSelection(rv) {
		if eid := st[k]; eid != "" {
			authIDs = append(authIDs, eid)
		}
	}
	if err := events.AuthorizeAgainst(rv, join.ev, authIDs, get, s.getKey); err != nil {
		return nil, bad("the join is not allowed by the state: %v", err)
	}
	return &joinedRemote{rv: rv, join: join, set: set, state: st}, nil
}

// processJoin stores a checked remote join in the room's writer: the
// room's record, the state and auth chain as outliers, the state before
// and after the join as state groups, the join as the room's timeline's
// first event and only forward extremity, and the current state.
func (w *roomWriter) processJoin(r *sendReq) {
	ctx, cancel := context.WithTimeout(context.Background(), remoteJoinTimeout)
	defer cancel()
	eid, err := w.storeJoin(ctx, r.join)
	r.done <- sendResult{eventID: eid, err: err}
}

func (w *roomWriter) storeJoin(ctx context.Context, j *joinedRemote) (id.EventID, error) {
	s := w.svc
	joinID := j.join.eventID()
	if _, err := s.store.GetEvent(ctx, joinID); err == nil {
		return joinID, nil // a retry
	} else if !storageNotFound(err) {
		return "", err
	}
	if in, err := s.participates(ctx, w.roomID); err != nil {
		return "", err
	} else if in {
		return "", errParticipates
	}
	if _, err := s.store.GetRoom(ctx, w.roomID); storageNotFound(err) {
		create := j.set.get(j.state[pdu.StateKey{Type: "m.room.create"}])
		if err := s.store.CreateRoomRecord(ctx, &storage.Room{RoomID: w.roomID, RoomVersion: string(j.rv),
			Creator: create.ev.Sender, CreatedAt: s.nowMS()}); err != nil {
			return "", fmt.Errorf("record room %s: %w", w.roomID, err)
		}
	} else if err != nil {
		return "", err
	}
	known, err := s.storedAmong(ctx, j.set.order)
	if err != nil {
		return "", err
	}
	memberKey := pdu.StateKey{Type: "m.room.member", StateKey: string(j.join.ev.Sender)}
	after := maps.Clone(j.state)
	after[memberKey] = joinID

	var writes []*storage.EventWrite
	var beforeGroup int64
	singlePrev := ""
	if len(j.join.ev.PrevEvents) == 1 {
		singlePrev = string(j.join.ev.PrevEvents[0])
	}
	for _, eid := range j.set.order {
		if known[eid] || eid == joinID {
			continue
		}
		wr, err := outlierWrite(j.set.get(eid))
		if err != nil {
			return "", err
		}
		if string(eid) == singlePrev {
			// The state after the join's only prev event is the state
			// before the join: events citing it (sent while this server
			// joined) are checked against it without asking anyone.
			gid, err := s.nextGroupID(ctx)
			if err != nil {
				return "", err
			}
			wr.NewGroup = &storage.StateGroup{GroupID: gid, RoomID: w.roomID, Entries: stateEntries(j.state)}
			wr.Event.StateGroup, beforeGroup = gid, gid
		}
		writes = append(writes, wr)
	}
	afterGroup, err := s.nextGroupID(ctx)
	if err != nil {
		return "", err
	}
	g := &storage.StateGroup{GroupID: afterGroup, RoomID: w.roomID, Entries: stateEntries(after)}
	if beforeGroup != 0 {
		g.PrevGroup, g.ChainLen = beforeGroup, 1
		g.Entries = []storage.StateEntry{{Type: memberKey.Type, StateKey: memberKey.StateKey, EventID: joinID}}
	}
	raw, err := j.join.wire()
	if err != nil {
		return "", err
	}
	ev := j.join.ev
	sk := *ev.StateKey
	se := &storage.Event{EventID: joinID, RoomID: w.roomID, Type: ev.Type, StateKey: &sk, Sender: ev.Sender,
		OriginServerTS: ev.OriginServerTS, Depth: ev.Depth, JSON: raw, StateGroup: afterGroup, Membership: "join",
		ReplacesState: j.state[memberKey]}
	jw := &storage.EventWrite{Event: se, NewGroup: g, CurrentState: stateEntries(after),
		Extremities: []id.EventID{joinID}, OutlierStateless: true}
	rs := &roomState{roomID: w.roomID, version: j.rv, state: after, extremities: []id.EventID{joinID},
		depth: ev.Depth, group: afterGroup, chainLen: g.ChainLen}
	if rs.joined, err = s.localJoined(ctx, j.set, after, ev.Sender); err != nil {
		return "", err
	}
	b := newBatch(rs)
	if jw.Queued, err = s.interestedIn(ctx, b, ev, w.roomID); err != nil {
		return "", err
	}
	writes = append(writes, jw)
	s.memberWrites.Add(1)
	defer s.memberWrites.Add(-1)
	if err := s.store.PersistEvents(ctx, writes); err != nil {
		w.rs = nil
		return "", fmt.Errorf("persist the join of %s: %w", w.roomID, err)
	}
	// The writer reads the room again before its next batch (its members,
	// local and remote, as loadRoomState counts them) rather than trusting
	// what was built here for the join's own commit.
	w.rs = nil
	s.versions.put(w.roomID, j.rv)
	s.cache.put(joinID, ev)
	s.persisted(w.roomID, []*storage.EventWrite{jw})
	return joinID, nil
}

// storedAmong says which of the events are stored here already.
func (s *Service) storedAmong(ctx context.Context, ids []id.EventID) (map[id.EventID]bool, error) {
	out := map[id.EventID]bool{}
	for chunk := range slices.Chunk(ids, 500) {
		evs, err := s.store.GetEvents(ctx, chunk)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			out[e.EventID] = true
		}
	}
	return out, nil
}

// outlierWrite is the stored form of a checked event kept as an outlier.
func outlierWrite(rec *received) (*storage.EventWrite, error) {
	raw, err := rec.wire()
	if err != nil {
		return nil, err
	}
	ev := rec.ev
	se := &storage.Event{EventID: rec.eventID(), RoomID: rec.roomID, Type: ev.Type, StateKey: ev.StateKey,
		Sender: ev.Sender, OriginServerTS: ev.OriginServerTS, Depth: ev.Depth, JSON: raw, Outlier: true}
	if ev.Type == "m.room.member" {
		se.Membership = gjson.GetBytes(ev.Content, "membership").Str
	}
	se.RelType, se.RelatesTo = relationOf(ev.Content)
	return &storage.EventWrite{Event: se}, nil
}

// stateEntries is a state map as entries.
func stateEntries(m state.Map) []storage.StateEntry {
	out := make([]storage.StateEntry, 0, len(m))
	for k, v := range m {
		out = append(out, storage.StateEntry{Type: k.Type, StateKey: k.StateKey, EventID: v})
	}
	return out
}

// localJoined are the local users joined in a state whose events are in
// the set or stored.
func (s *Service) localJoined(ctx context.Context, set *fetchedSet, st state.Map, joiner id.UserID) (map[id.UserID]bool, error) {
	out := map[id.UserID]bool{joiner: true}
	var look []id.EventID
	for k, eid := range st {
		if k.Type != "m.room.member" || id.UserID(k.StateKey).Homeserver() != s.opts.ServerName || k.StateKey == string(joiner) {
			continue
		}
		if r := set.get(eid); r != nil {
			if gjson.GetBytes(r.ev.Content, "membership").Str == "join" {
				out[id.UserID(k.StateKey)] = true
			}
			continue
		}
		look = append(look, eid)
	}
	ps, err := s.loadPDUs(ctx, look)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if p != nil && p.StateKey != nil && gjson.GetBytes(p.Content, "membership").Str == "join" {
			out[id.UserID(*p.StateKey)] = true
		}
	}
	return out, nil
}
