package e2efed

// fakeHost makes the fake server C a resident server of rooms it creates:
// it answers make_join/send_join, make_leave/send_leave,
// make_knock/send_knock, invites, directory queries and the reads
// (event, state, state_ids, event_auth, backfill, get_missing_events)
// from what it holds. Its rooms are linear: each event follows the last.
// Requests are not authenticated (A's signatures are checked by the
// tests that need them), but must carry an X-Matrix header.

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// hostedRoom is a room C holds.
type hostedRoom struct {
	rv     id.RoomVersion
	roomID id.RoomID
	pdus   map[id.EventID]*pdu.PDU
	raw    map[id.EventID]json.RawMessage
	order  []id.EventID
	state  map[pdu.StateKey]id.EventID
	// before is the state before each event.
	before map[id.EventID]map[pdu.StateKey]id.EventID
	depth  int64
	// authoriser, when set, is the user named in
	// join_authorised_via_users_server of joins (a restricted room) and
	// signRestricted says whether C signs such joins in send_join.
	authoriser     id.UserID
	signRestricted bool
}

func (r *hostedRoom) last() id.EventID { return r.order[len(r.order)-1] }

// fakeHost is C's room service.
type fakeHost struct {
	t   *testing.T
	f   *fakeServer
	mu  sync.Mutex
	rms map[id.RoomID]*hostedRoom
	// aliases of C's rooms.
	aliases map[id.RoomAlias]id.RoomID
	// forge, when set, changes C's send_join answers (the state events as
	// JSON objects) instead of taking the join.
	forge func(state []map[string]any)
	// received are the membership events A sent (send_join, send_leave,
	// send_knock) and invites A asked C to sign, by kind.
	received map[string][]json.RawMessage
	// asked counts requests by path prefix ("backfill", "state_ids"…).
	asked map[string]int
	// refuseInvites and refuseKnocks make C answer 403 to invites it is
	// asked to sign and to make_knock.
	refuseInvites, refuseKnocks bool
	// v1Only: C has only the v1 send_join (v2 is 404 M_UNRECOGNIZED).
	v1Only bool
}

// host makes f a resident server.
func (f *fakeServer) host(t *testing.T) *fakeHost {
	h := &fakeHost{t: t, f: f, rms: map[id.RoomID]*hostedRoom{}, aliases: map[id.RoomAlias]id.RoomID{},
		received: map[string][]json.RawMessage{}, asked: map[string]int{}}
	f.hostPtr.Store(h)
	return h
}

// add appends an event of sender to the room, signed by C, and returns its ID.
func (h *fakeHost) add(r *hostedRoom, sender id.UserID, typ string, stateKey *string, content any) id.EventID {
	h.t.Helper()
	raw, err := json.Marshal(content)
	if err != nil {
		h.t.Fatal(err)
	}
	ev := &pdu.PDU{Type: typ, StateKey: stateKey, Sender: sender, RoomID: r.roomID, Content: raw,
		OriginServerTS: time.Now().UnixMilli(), Depth: r.depth + 1, PrevEvents: []id.EventID{}, AuthEvents: []id.EventID{}}
	if len(r.order) > 0 {
		ev.PrevEvents = []id.EventID{r.last()}
	}
	if typ == "m.room.create" && r.rv.RoomIDIsCreateEventID() {
		ev.RoomID = ""
	}
	for _, k := range ev.AuthEventSelection(r.rv) {
		if eid := r.state[k]; eid != "" {
			ev.AuthEvents = append(ev.AuthEvents, eid)
		}
	}
	eid, out := h.f.sign(h.t, r.rv, ev, h.f.key)
	h.put(r, eid, out)
	return eid
}

// put records an event of the room (made by C or sent by A).
func (h *fakeHost) put(r *hostedRoom, eid id.EventID, raw json.RawMessage) {
	h.t.Helper()
	var ev pdu.PDU
	if err := json.Unmarshal(raw, &ev); err != nil {
		h.t.Fatal(err)
	}
	if ev.Type == "m.room.create" && r.rv.RoomIDIsCreateEventID() {
		r.roomID = id.RoomID("!" + string(eid)[1:])
	}
	r.pdus[eid], r.raw[eid] = &ev, raw
	r.before[eid] = clone(r.state)
	r.order = append(r.order, eid)
	r.depth = max(r.depth, ev.Depth)
	if ev.StateKey != nil {
		r.state[pdu.StateKey{Type: ev.Type, StateKey: *ev.StateKey}] = eid
	}
}

func clone(m map[pdu.StateKey]id.EventID) map[pdu.StateKey]id.EventID {
	out := make(map[pdu.StateKey]id.EventID, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// createRoom makes a room of version rv on C: creator's create and join,
// power levels, the join rule (public unless given) and the history
// visibility (shared unless given); extra state after.
func (h *fakeHost) createRoom(rv id.RoomVersion, creator id.UserID, joinRule, visibility string, extra ...func(r *hostedRoom)) *hostedRoom {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	r := &hostedRoom{rv: rv, pdus: map[id.EventID]*pdu.PDU{}, raw: map[id.EventID]json.RawMessage{},
		state: map[pdu.StateKey]id.EventID{}, before: map[id.EventID]map[pdu.StateKey]id.EventID{}}
	if !rv.RoomIDIsCreateEventID() {
		r.roomID = id.RoomID("!" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":" + h.f.name)
	}
	empty := ""
	csk := creator.String()
	createContent := map[string]any{"room_version": rv}
	if rv.CreatorInContent() {
		createContent["creator"] = creator
	}
	h.add(r, creator, "m.room.create", &empty, createContent)
	h.add(r, creator, "m.room.member", &csk, map[string]any{"membership": "join"})
	pl := map[string]any{"users": map[string]any{}, "invite": 0}
	if !rv.PrivilegedRoomCreators() {
		pl["users"] = map[string]any{creator.String(): 100}
	}
	h.add(r, creator, "m.room.power_levels", &empty, pl)
	if joinRule == "" {
		joinRule = "public"
	}
	h.add(r, creator, "m.room.join_rules", &empty, map[string]any{"join_rule": joinRule})
	if visibility == "" {
		visibility = "shared"
	}
	h.add(r, creator, "m.room.history_visibility", &empty, map[string]any{"history_visibility": visibility})
	for _, fn := range extra {
		fn(r)
	}
	h.rms[r.roomID] = r
	return r
}

// send adds an event to a room under the host's lock.
func (h *fakeHost) send(r *hostedRoom, sender id.UserID, typ string, stateKey *string, content any) id.EventID {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.add(r, sender, typ, stateKey, content)
}

// wire is an event's JSON as C holds it.
func (h *fakeHost) wire(r *hostedRoom, eid id.EventID) json.RawMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return r.raw[eid]
}

// authChain is the auth chain of the events (not the events themselves,
// unless cited).
func (r *hostedRoom) authChain(from []id.EventID) []json.RawMessage {
	seen := map[id.EventID]bool{}
	var out []json.RawMessage
	todo := slices.Clone(from)
	for len(todo) > 0 {
		eid := todo[0]
		todo = todo[1:]
		ev := r.pdus[eid]
		if ev == nil {
			continue
		}
		for _, a := range ev.AuthEvents {
			if !seen[a] {
				seen[a] = true
				out = append(out, r.raw[a])
				todo = append(todo, a)
			}
		}
	}
	return out
}

func (r *hostedRoom) stateEvents(st map[pdu.StateKey]id.EventID) ([]json.RawMessage, []id.EventID) {
	var out []json.RawMessage
	var ids []id.EventID
	for _, eid := range st {
		out = append(out, r.raw[eid])
		ids = append(ids, eid)
	}
	return out, ids
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func matrixError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"errcode": code, "error": msg})
}

// serve answers a federation request for C's rooms; false when the path
// is not one it serves.
func (h *fakeHost) serve(w http.ResponseWriter, r *http.Request) bool {
	const prefix = "/_matrix/federation/"
	if !strings.HasPrefix(r.URL.Path, prefix) {
		return false
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "X-Matrix ") {
		matrixError(w, http.StatusUnauthorized, "M_UNAUTHORIZED", "no X-Matrix header")
		return true
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), prefix), "/")
	for i, p := range parts {
		if u, err := url.PathUnescape(p); err == nil {
			parts[i] = u
		}
	}
	if len(parts) < 2 {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.asked[parts[1]]++
	room := func(i int) *hostedRoom {
		if len(parts) <= i {
			return nil
		}
		return h.rms[id.RoomID(parts[i])]
	}
	body := func() json.RawMessage {
		var raw json.RawMessage
		_ = json.NewDecoder(r.Body).Decode(&raw)
		return raw
	}
	switch {
	case parts[1] == "query" && len(parts) > 2 && parts[2] == "directory":
		roomID, ok := h.aliases[id.RoomAlias(r.URL.Query().Get("room_alias"))]
		if !ok {
			matrixError(w, http.StatusNotFound, "M_NOT_FOUND", "no such alias")
			return true
		}
		writeJSON(w, http.StatusOK, map[string]any{"room_id": roomID, "servers": []string{h.f.name}})
	case parts[1] == "make_join" || parts[1] == "make_leave" || parts[1] == "make_knock":
		rm := room(2)
		if rm == nil || len(parts) < 4 {
			matrixError(w, http.StatusNotFound, "M_NOT_FOUND", "unknown room")
			return true
		}
		membership := strings.TrimPrefix(parts[1], "make_")
		if membership == "knock" && h.refuseKnocks {
			matrixError(w, http.StatusForbidden, "M_FORBIDDEN", "no knocking here")
			return true
		}
		if membership != "leave" {
			if vers := r.URL.Query()["ver"]; !slices.Contains(vers, string(rm.rv)) {
				matrixError(w, http.StatusBadRequest, "M_INCOMPATIBLE_ROOM_VERSION", "version")
				return true
			}
		}
		user := id.UserID(parts[3])
		content := map[string]any{"membership": membership}
		if membership == "join" && rm.authoriser != "" {
			content["join_authorised_via_users_server"] = rm.authoriser
		}
		sk := user.String()
		cj, _ := json.Marshal(content)
		probe := &pdu.PDU{Type: "m.room.member", StateKey: &sk, Sender: user, Content: cj}
		auth := []id.EventID{}
		for _, k := range probe.AuthEventSelection(rm.rv) {
			if eid := rm.state[k]; eid != "" {
				auth = append(auth, eid)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"room_version": rm.rv, "event": map[string]any{
			"type": "m.room.member", "room_id": rm.roomID, "sender": user, "state_key": sk, "content": content,
			"depth": rm.depth + 1, "prev_events": []id.EventID{rm.last()}, "auth_events": auth,
			"origin_server_ts": time.Now().UnixMilli()}})
	case parts[1] == "send_join" && parts[0] == "v2" && h.v1Only:
		matrixError(w, http.StatusNotFound, "M_UNRECOGNIZED", "no v2 here")
	case parts[1] == "send_join" || parts[1] == "send_leave" || parts[1] == "send_knock":
		rm := room(2)
		if rm == nil || len(parts) < 4 {
			matrixError(w, http.StatusNotFound, "M_NOT_FOUND", "unknown room")
			return true
		}
		raw := body()
		h.received[parts[1]] = append(h.received[parts[1]], raw)
		eid := id.EventID(parts[3])
		switch parts[1] {
		case "send_join":
			st, _ := rm.stateEvents(rm.state)
			if h.forge != nil {
				var objs []map[string]any
				for _, s := range st {
					var m map[string]any
					_ = json.Unmarshal(s, &m)
					objs = append(objs, m)
				}
				h.forge(objs)
				forged := make([]json.RawMessage, len(objs))
				for i, o := range objs {
					forged[i], _ = json.Marshal(o)
				}
				writeJSON(w, http.StatusOK, map[string]any{"origin": h.f.name, "state": forged,
					"auth_chain": rm.authChain(stateIDs(rm.state))})
				return true
			}
			chain := rm.authChain(stateIDs(rm.state))
			out := map[string]any{"origin": h.f.name, "state": st, "auth_chain": chain}
			if rm.authoriser != "" && rm.signRestricted {
				var ev pdu.PDU
				_ = json.Unmarshal(raw, &ev)
				if err := ev.Sign(rm.rv, h.f.name, h.f.key.ID, h.f.key.Priv); err != nil {
					h.t.Error(err)
				}
				raw, _ = json.Marshal(&ev)
				out["event"] = raw
			}
			h.put(rm, eid, raw)
			if parts[0] == "v1" {
				writeJSON(w, http.StatusOK, []any{200, out})
				return true
			}
			writeJSON(w, http.StatusOK, out)
		case "send_leave":
			h.put(rm, eid, raw)
			writeJSON(w, http.StatusOK, map[string]any{})
		case "send_knock":
			h.put(rm, eid, raw)
			var stripped []map[string]any
			for _, k := range []string{"m.room.create", "m.room.join_rules", "m.room.name"} {
				if e := rm.pdus[rm.state[pdu.StateKey{Type: k}]]; e != nil {
					stripped = append(stripped, map[string]any{"type": e.Type, "state_key": "", "sender": e.Sender,
						"content": e.Content})
				}
			}
			writeJSON(w, http.StatusOK, map[string]any{"knock_room_state": stripped})
		}
	case parts[1] == "invite":
		var req struct {
			Event       json.RawMessage `json:"event"`
			RoomVersion id.RoomVersion  `json:"room_version"`
		}
		_ = json.Unmarshal(body(), &req)
		if h.refuseInvites {
			matrixError(w, http.StatusForbidden, "M_FORBIDDEN", "not accepting invites")
			return true
		}
		h.received["invite"] = append(h.received["invite"], req.Event)
		var ev pdu.PDU
		if err := json.Unmarshal(req.Event, &ev); err != nil {
			matrixError(w, http.StatusBadRequest, "M_BAD_JSON", err.Error())
			return true
		}
		if err := ev.Sign(req.RoomVersion, h.f.name, h.f.key.ID, h.f.key.Priv); err != nil {
			matrixError(w, http.StatusBadRequest, "M_BAD_JSON", err.Error())
			return true
		}
		writeJSON(w, http.StatusOK, map[string]any{"event": &ev})
	case parts[1] == "event" && len(parts) > 2:
		for _, rm := range h.rms {
			if raw, ok := rm.raw[id.EventID(parts[2])]; ok {
				writeJSON(w, http.StatusOK, map[string]any{"origin": h.f.name, "origin_server_ts": time.Now().UnixMilli(),
					"pdus": []json.RawMessage{raw}})
				return true
			}
		}
		matrixError(w, http.StatusNotFound, "M_NOT_FOUND", "no such event")
	case parts[1] == "state" || parts[1] == "state_ids":
		rm := room(2)
		eid := id.EventID(r.URL.Query().Get("event_id"))
		if rm == nil || rm.before[eid] == nil {
			matrixError(w, http.StatusNotFound, "M_NOT_FOUND", "unknown event")
			return true
		}
		st := rm.before[eid]
		evs, ids := rm.stateEvents(st)
		chain := rm.authChain(ids)
		if parts[1] == "state" {
			writeJSON(w, http.StatusOK, map[string]any{"pdus": evs, "auth_chain": chain})
			return true
		}
		var chainIDs []id.EventID
		for _, c := range chain {
			var p pdu.PDU
			_ = json.Unmarshal(c, &p)
			cid, _ := p.GetEventID(rm.rv)
			chainIDs = append(chainIDs, cid)
		}
		writeJSON(w, http.StatusOK, map[string]any{"pdu_ids": ids, "auth_chain_ids": chainIDs})
	case parts[1] == "event_auth" && len(parts) > 3:
		rm := room(2)
		if rm == nil {
			matrixError(w, http.StatusNotFound, "M_NOT_FOUND", "unknown room")
			return true
		}
		writeJSON(w, http.StatusOK, map[string]any{"auth_chain": rm.authChain([]id.EventID{id.EventID(parts[3])})})
	case parts[1] == "backfill":
		rm := room(2)
		if rm == nil {
			matrixError(w, http.StatusNotFound, "M_NOT_FOUND", "unknown room")
			return true
		}
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		var from int
		for _, v := range r.URL.Query()["v"] {
			if i := slices.Index(rm.order, id.EventID(v)); i+1 > from {
				from = i + 1
			}
		}
		var out []json.RawMessage
		for i := from - 1; i >= 0 && len(out) < limit; i-- {
			out = append(out, rm.raw[rm.order[i]])
		}
		writeJSON(w, http.StatusOK, map[string]any{"origin": h.f.name, "origin_server_ts": time.Now().UnixMilli(), "pdus": out})
	default:
		return false
	}
	return true
}

func stateIDs(st map[pdu.StateKey]id.EventID) []id.EventID {
	out := make([]id.EventID, 0, len(st))
	for _, eid := range st {
		out = append(out, eid)
	}
	return out
}
