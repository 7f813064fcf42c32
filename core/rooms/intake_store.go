package rooms

// The stored form of a remote event: its row, the state group of the state
// after it, and one commit through the writer's persist (the same
// transaction, cache, notifier and counters as local events).

import (
	"context"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// storeRemote commits the event as the checks found it. Every stored
// event has the state after it as its group, so that events citing it
// (local ones after a fork, remote ones) start from there; only an
// accepted event moves the forward extremities and the current state, is
// queued for consumers and notifies.
func (w *roomWriter) storeRemote(ctx context.Context, rec *received, before *priorState, v *verdict) error {
	b := newBatch(w.rs)
	wr, err := w.layRemote(ctx, b, rec, before, v)
	if err != nil {
		return err
	}
	return w.persist(ctx, b, []*storage.EventWrite{wr}, []*pdu.PDU{rec.ev}, nil)
}

// layRemote builds the stored form of the event as the checks found it and
// lays it on the batch b: its state group and, when accepted, the room's
// extremities and state, push actions, consumers and redaction.
func (w *roomWriter) layRemote(ctx context.Context, b *batchState, rec *received, before *priorState, v *verdict) (*storage.EventWrite, error) {
	s, ev := w.svc, rec.ev
	eid := rec.eventID()
	raw, err := rec.wire()
	if err != nil {
		return nil, err
	}
	se := &storage.Event{EventID: eid, RoomID: rec.roomID, Type: ev.Type, StateKey: ev.StateKey,
		Sender: ev.Sender, OriginServerTS: ev.OriginServerTS, Depth: ev.Depth, JSON: raw,
		Rejected: v.status == IntakeRejected, SoftFailed: v.status == IntakeSoftFailed}
	if ev.Type == "m.room.member" {
		se.Membership = gjson.GetBytes(ev.Content, "membership").Str
	}
	se.RelType, se.RelatesTo = relationOf(ev.Content)
	wr := &storage.EventWrite{Event: se}
	// A rejected event leaves the state as it was before it (server-server
	// API, "Rejection").
	var entry *storage.StateEntry
	if ev.StateKey != nil && v.status != IntakeRejected {
		entry = &storage.StateEntry{Type: ev.Type, StateKey: *ev.StateKey, EventID: eid}
		se.ReplacesState = before.state[stateKeyOf(entry)]
	}
	chain, err := w.remoteGroup(ctx, rec, before, entry, se, wr)
	if err != nil {
		return nil, err
	}
	// The event is the batch's: what reads the new state before the commit
	// (push rules' power levels, the server ACL, a redaction's power
	// levels) finds it here, not in storage.
	b.pending[eid] = ev
	if v.status == IntakeAccepted {
		if err := w.advance(ctx, b, rec, before, entry, se.StateGroup, chain, wr); err != nil {
			return nil, err
		}
		if err := s.pushActions(ctx, b, ev, se, wr); err != nil {
			return nil, err
		}
		if wr.Queued, err = s.interestedIn(WithReceived(ctx), b, ev, rec.roomID); err != nil {
			return nil, err
		}
		if wr.Redacts, err = w.redactionTarget(ctx, b, rec); err != nil {
			return nil, err
		}
	}
	ev.InternalMeta.Rejected = v.status == IntakeRejected // as loadPDUs would mark it
	return wr, nil
}

// remoteGroup gives the event the state group of the state after it. An
// event that changes no state shares the group of the state before it;
// a state event adds a delta on that group, or a snapshot when there is
// none (the state before was resolved) or the delta chain is long enough.
// It returns the group's chain length (-1: not read).
func (w *roomWriter) remoteGroup(ctx context.Context, rec *received, before *priorState, entry *storage.StateEntry,
	se *storage.Event, wr *storage.EventWrite) (int64, error) {
	s := w.svc
	if entry == nil && before.group != 0 {
		se.StateGroup = before.group
		return before.chainLen, nil
	}
	chain, err := s.chainOf(ctx, before)
	if err != nil {
		return 0, err
	}
	gid, err := s.nextGroupID(ctx)
	if err != nil {
		return 0, err
	}
	g := &storage.StateGroup{GroupID: gid, RoomID: rec.roomID}
	if entry != nil && before.group != 0 && chain+1 < snapshotEvery {
		g.PrevGroup, g.ChainLen, g.Entries = before.group, chain+1, []storage.StateEntry{*entry}
	} else {
		full := withEntry(before.state, entry)
		g.Entries = make([]storage.StateEntry, 0, len(full))
		for k, v := range full {
			g.Entries = append(g.Entries, storage.StateEntry{Type: k.Type, StateKey: k.StateKey, EventID: v})
		}
	}
	wr.NewGroup = g
	se.StateGroup = gid
	return g.ChainLen, nil
}

// relationOf reads m.relates_to, for local and remote events alike: replies
// are not relations in the aggregation sense.
func relationOf(content []byte) (relType string, relatesTo id.EventID) {
	rel := gjson.GetBytes(content, `m\.relates_to`)
	if !rel.IsObject() {
		return "", ""
	}
	relType, relatesTo = rel.Get("rel_type").Str, id.EventID(rel.Get("event_id").Str)
	if relType == "" && rel.Get(`m\.in_reply_to`).Exists() {
		relatesTo = ""
	}
	if !types.ValidText(relType) || !types.ValidText(relatesTo) {
		// No event ID or relation type holds NUL: the content's
		// m.relates_to is no relation (and not a column PostgreSQL refuses).
		return "", ""
	}
	return relType, relatesTo
}

// redactionTarget is the event an accepted remote redaction applies to, ""
// for none. From room v3 the auth rules allow any redaction, and it
// applies only when its sender's server sent the target or its sender has
// the redact level (rooms v3, "Handling redactions"); in v1 and v2 the
// auth rules checked that. A redaction of an event unknown here applies
// to nothing: applying it when the target arrives is left to federation.
func (w *roomWriter) redactionTarget(ctx context.Context, b *batchState, rec *received) (id.EventID, error) {
	s, ev := w.svc, rec.ev
	if ev.Type != "m.room.redaction" {
		return "", nil
	}
	var target id.EventID
	if rec.rv.RedactsInContent() {
		target = id.EventID(gjson.GetBytes(ev.Content, "redacts").Str)
	} else if ev.Redacts != nil {
		target = *ev.Redacts
	}
	if target == "" {
		return "", nil
	}
	t, err := s.store.GetEvent(ctx, target)
	if storageNotFound(err) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	if t.RoomID != rec.roomID {
		return "", nil
	}
	if rec.legacy != nil || t.Sender.Homeserver() == ev.Sender.Homeserver() {
		return target, nil
	}
	pl, err := s.powerLevels(ctx, b)
	if err != nil {
		return "", err
	}
	if pl.GetUserLevel(ev.Sender) >= pl.Redact() {
		return target, nil
	}
	return "", nil
}
