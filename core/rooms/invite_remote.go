package rooms

// Invites of this server's users to rooms on other servers
// (PUT /_matrix/federation/v2/invite/{roomId}/{eventId}). This server is
// usually not in such a room: it keeps the invite as an "outlier", the
// one event it holds of the room, with the stripped state the inviting
// server sent in its unsigned.invite_room_state, so that /sync can show
// the invite. The room gets a record (its version) and the invitee a
// current membership; it has no state, no forward extremities and no
// timeline anyone may read, so everything else treats it as a room this
// server is not in (loadRoomState answers 404).

import (
	"bytes"
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// ReceiveInvite (rv "" for the v1 API) checks origin's invite of a local user, applies the
// invitee's invite settings, countersigns it and, unless this server is
// in the room (then the event arrives in a transaction like any other),
// stores it with the stripped state. It returns the event with this
// server's signature added.
func (s *Service) ReceiveInvite(ctx context.Context, origin string, roomID id.RoomID, eventID id.EventID,
	rv id.RoomVersion, raw []byte, stripped []jsontext.Value) (jsontext.Value, error) {
	if rv == "" {
		// The v1 API: room version 1 or 2 (the room's, if known here).
		known, err := s.knownRoomVersion(ctx, roomID)
		if err != nil {
			return nil, err
		}
		if rv = known; rv != id.RoomV2 {
			rv = id.RoomV1
		}
	}
	if !events.IsSupported(rv) {
		return nil, types.NewError(http.StatusBadRequest, CodeIncompatibleRoomVersion,
			"Room version %q is not supported by this server", rv).With("room_version", rv)
	}
	compact := jsontext.Value(bytes.Clone(raw))
	if err := compact.Compact(); err != nil || compact.Kind() != '{' {
		return nil, types.BadJSON("event is not a JSON object")
	}
	if len(compact) > events.MaxPDUBytes {
		return nil, types.BadJSON("event is larger than %d bytes", events.MaxPDUBytes)
	}
	if gjson.GetBytes(compact, "room_id").Str != string(roomID) {
		return nil, types.BadJSON("the event is not for room %s", roomID)
	}
	rec, err := parseReceived(origin, rv, compact)
	if err != nil {
		return nil, types.BadJSON("%v", err)
	}
	ev := rec.ev
	if rec.eventID() != eventID {
		return nil, types.BadJSON("the event's ID is %s, not %s", rec.eventID(), eventID)
	}
	if ev.Type != "m.room.member" || ev.StateKey == nil || gjson.GetBytes(ev.Content, "membership").Str != "invite" {
		return nil, types.InvalidParam("invite takes an m.room.member event with membership invite")
	}
	invitee := id.UserID(*ev.StateKey)
	if _, hs, err := invitee.Parse(); err != nil || hs != s.opts.ServerName {
		return nil, types.InvalidParam("%s is not a user of this server", invitee)
	}
	if ev.Sender.Homeserver() != origin {
		return nil, types.InvalidParam("%s may not send an invite from %s", origin, ev.Sender)
	}
	if err := s.checkSignatures(ctx, rec); err != nil {
		return nil, types.InvalidParam("the invite's signature: %v", err)
	}
	if err := rec.checkHash(); err != nil || rec.redacted {
		return nil, types.InvalidParam("the invite's content hash does not match")
	}
	if s.opts.AccountData != nil {
		p, err := LoadInvitePolicy(ctx, s.opts.AccountData, invitee)
		if err != nil {
			return nil, err
		}
		switch p.Judge(ev.Sender) {
		case InviteBlocked:
			return nil, p.blockedError(invitee)
		case InviteIgnored:
			// The spec lets servers refuse invites from ignored users.
			return nil, types.Forbidden("%s does not accept invites from %s", invitee, ev.Sender)
		}
	}
	// This server's signature.
	var signed jsontext.Value
	if rec.legacy != nil {
		rec.legacy.Unsigned = nil
		if err := s.opts.Signer.CountersignV1(rv, rec.legacy); err != nil {
			return nil, err
		}
		signed, err = json.Marshal(rec.legacy)
	} else {
		ev.Unsigned = nil
		if err := s.opts.Signer.Countersign(rv, ev); err != nil {
			return nil, err
		}
		signed, err = json.Marshal(ev)
	}
	if err != nil {
		return nil, err
	}
	if rv == id.RoomV12 && !slices.ContainsFunc(stripped, func(st jsontext.Value) bool {
		return gjson.GetBytes(st, "type").Str == "m.room.create"
	}) {
		return nil, types.InvalidParam("invite_room_state has no m.room.create event")
	}
	if servers, err := s.JoinedServers(ctx, roomID); err != nil {
		return nil, err
	} else if slices.Contains(servers, s.opts.ServerName) {
		return signed, nil
	}
	// Stored with the stripped state, which no signature covers (the
	// signatures of its events, which room v12 requires, are not checked yet).
	state := make([]jsontext.Value, 0, len(stripped))
	for _, st := range stripped {
		if gjson.GetBytes(st, "type").Type == gjson.String && gjson.GetBytes(st, "state_key").Type == gjson.String &&
			gjson.GetBytes(st, "content").IsObject() {
			state = append(state, st)
		}
	}
	stored, err := withUnsigned(signed, map[string]any{"invite_room_state": state})
	if err != nil {
		return nil, err
	}
	sk := *ev.StateKey
	e := &storage.Event{EventID: eventID, RoomID: roomID, Type: ev.Type, StateKey: &sk, Sender: ev.Sender,
		OriginServerTS: ev.OriginServerTS, Depth: ev.Depth, JSON: stored, Membership: "invite"}
	wr := &storage.EventWrite{Event: e,
		CurrentState: []storage.StateEntry{{Type: ev.Type, StateKey: sk, EventID: eventID}}}
	if res := s.queue(ctx, roomID, &sendReq{outlier: wr, version: rv}); res.err != nil {
		return nil, res.err
	}
	return signed, nil
}

// withUnsigned sets the unsigned section of an event's JSON.
func withUnsigned(raw jsontext.Value, unsigned map[string]any) (jsontext.Value, error) {
	var m map[string]jsontext.Value
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	u, err := json.Marshal(unsigned)
	if err != nil {
		return nil, err
	}
	m["unsigned"] = u
	return json.Marshal(m, json.Deterministic(true))
}

// processOutlier stores an invite to a room this server is not in, with
// the room's record if it has none.
func (w *roomWriter) processOutlier(r *sendReq) {
	s := w.svc
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wr := r.outlier
	fail := func(err error) { r.done <- sendResult{err: err} }
	if _, err := s.store.GetEvent(ctx, wr.Event.EventID); err == nil {
		r.done <- sendResult{eventID: wr.Event.EventID} // a retry
		return
	} else if !storageNotFound(err) {
		fail(err)
		return
	}
	if _, err := s.store.GetRoom(ctx, w.roomID); storageNotFound(err) {
		if err := s.store.CreateRoomRecord(ctx, &storage.Room{RoomID: w.roomID, RoomVersion: string(r.version),
			CreatedAt: s.nowMS()}); err != nil {
			fail(fmt.Errorf("record room %s: %w", w.roomID, err))
			return
		}
	} else if err != nil {
		fail(err)
		return
	}
	s.memberWrites.Add(1)
	defer s.memberWrites.Add(-1)
	if err := s.store.PersistEvents(ctx, []*storage.EventWrite{wr}); err != nil {
		fail(fmt.Errorf("persist invite: %w", err))
		return
	}
	w.rs = nil // the current state changed under what the writer holds
	s.persisted(w.roomID, []*storage.EventWrite{wr})
	r.done <- sendResult{eventID: wr.Event.EventID}
}

// outlierStrippedState is the stripped state an invite stored by
// ReceiveInvite (or a knock made over federation) carries, with the
// membership event itself first; ok false for any other event.
func outlierStrippedState(e *storage.Event) (out []map[string]any, ok bool, err error) {
	st := gjson.GetBytes(e.JSON, "unsigned.invite_room_state")
	if !st.IsArray() {
		st = gjson.GetBytes(e.JSON, "unsigned.knock_room_state")
	}
	if !st.IsArray() {
		return nil, false, nil
	}
	p, err := parsePDU(e)
	if err != nil {
		return nil, false, err
	}
	out = append(out, map[string]any{"type": p.Type, "state_key": *p.StateKey, "content": p.Content, "sender": p.Sender})
	for _, item := range st.Array() {
		if item.Get("type").Str == p.Type && item.Get("state_key").Str == *p.StateKey {
			continue
		}
		out = append(out, map[string]any{"type": item.Get("type").Str, "state_key": item.Get("state_key").Str,
			"content": jsontext.Value(item.Get("content").Raw), "sender": id.UserID(item.Get("sender").Str)})
	}
	return out, true, nil
}
