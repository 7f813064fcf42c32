package rooms

import (
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tidwall/gjson"

	"github.com/tributary-hs/tributary/storage"
)

// ClientEvent is an event as the client-server API shows it.
type ClientEvent struct {
	Content        jsontext.Value `json:"content"`
	EventID        id.EventID     `json:"event_id"`
	OriginServerTS int64          `json:"origin_server_ts"`
	RoomID         id.RoomID      `json:"room_id"`
	Sender         id.UserID      `json:"sender"`
	StateKey       *string        `json:"state_key,omitempty"`
	Type           string         `json:"type"`
	Redacts        id.EventID     `json:"redacts,omitempty"`
	Unsigned       map[string]any `json:"unsigned,omitempty"`

	// pos is the stream position (for tokens); not serialised.
	pos int64
}

// formatter turns stored events into client events for one request.
type formatter struct {
	s   *Reader
	rv  id.RoomVersion
	now int64
	// user is who asks, for current_user_participated in thread summaries.
	user id.UserID
	// device is the asking device: its own events carry their transaction ID.
	device id.DeviceID
	// membership: events carry unsigned.membership (see memberships).
	membership bool
	// contiguous: the events to format are every event of their stretch
	// of the room that the user may see (no filter left any out).
	contiguous bool
	// endMembership, when known, is the user's membership after the last
	// event to format (see endingAs).
	endMembership string
	// txns, when set, are the device's transaction IDs of the events to
	// format, read beforehand (see withTxnIDs).
	txns map[id.EventID]string
}

func (s *Reader) formatter(rv id.RoomVersion) *formatter {
	return &formatter{s: s, rv: rv, now: s.nowMS()}
}

func (f *formatter) forUser(u id.UserID) *formatter { f.user = u; return f }

// forDevice makes the events the device sent carry unsigned.transaction_id.
func (f *formatter) forDevice(d id.DeviceID) *formatter { f.device = d; return f }

// withMembership makes a list of timeline events (oldest first) carry the
// user's membership at each (unsigned.membership, MSC4115, spec v1.11).
// contiguous tells that no filter left events out of the list.
func (f *formatter) withMembership(contiguous bool) *formatter {
	f.membership, f.contiguous = true, contiguous
	return f
}

// endingAs tells the user's membership after the last event of the list
// (a /sync timeline ends at the position of the user's current
// membership or later): memberships then needs no query at all.
func (f *formatter) endingAs(membership string) *formatter {
	f.endMembership = membership
	return f
}

// withTxnIDs hands the formatter the device's transaction IDs of the
// events it will format, read by the caller with those of other lists
// (txnIDsOf), so that it does not read them itself.
func (f *formatter) withTxnIDs(txns map[id.EventID]string) *formatter {
	f.txns = txns
	return f
}

// txnIDsOf reads the transaction IDs the device gave the user's events
// among the lists (nil when no device asks).
func (s *Reader) txnIDsOf(ctx context.Context, user id.UserID, device id.DeviceID, lists ...[]*storage.Event) (map[id.EventID]string, error) {
	if device == "" {
		return nil, nil
	}
	var mine []*storage.Event
	for _, evs := range lists {
		for _, e := range evs {
			if e.Sender == user {
				mine = append(mine, e)
			}
		}
	}
	return s.cachedTxnIDs(ctx, user, device, mine)
}

// txnOf is the client transaction that made an event (zero: none).
type txnOf struct {
	user   id.UserID
	device id.DeviceID
	txn    string
}

// cachedTxnIDs maps those of the events (the user's) that the device sent to
// their transaction IDs. An event's transaction, or that it has none, is
// stored with the event and never changes: it is cached by event, so that
// the timelines of every sync and long-poll that show an event look it up
// once.
func (s *Reader) cachedTxnIDs(ctx context.Context, user id.UserID, device id.DeviceID, evs []*storage.Event) (map[id.EventID]string, error) {
	out := map[id.EventID]string{}
	var missing []id.EventID
	var positions []int64
	for _, e := range evs {
		eid := e.EventID
		t, ok := s.txns.get(eid)
		switch {
		case !ok:
			missing = append(missing, eid)
			positions = append(positions, e.StreamPos)
		case t.txn != "" && t.user == user && t.device == device:
			out[eid] = t.txn
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	got, err := s.store.TxnsOf(ctx, positions)
	if err != nil {
		return nil, err
	}
	for _, eid := range missing {
		t, ok := got[eid]
		s.txns.put(eid, txnOf{user: t.UserID, device: t.DeviceID, txn: t.TxnID})
		if ok && t.UserID == user && t.DeviceID == device {
			out[eid] = t.TxnID
		}
	}
	return out, nil
}

// format renders events; redacted ones lose their content as the room
// version's redaction algorithm says and carry redacted_because.
func (f *formatter) format(ctx context.Context, evs []*storage.Event) ([]*ClientEvent, error) {
	out := make([]*ClientEvent, 0, len(evs))
	for _, e := range evs {
		ce, err := f.one(ctx, e, true)
		if err != nil {
			return nil, err
		}
		out = append(out, ce)
	}
	if err := f.aggregate(ctx, evs, out); err != nil {
		return nil, err
	}
	if err := f.transactionIDs(ctx, evs, out); err != nil {
		return nil, err
	}
	if f.membership && f.user != "" {
		if err := f.memberships(ctx, evs, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// memberships sets unsigned.membership: the user's membership in the state
// after each event ("leave" when they have none). It costs no query per
// event. The user's membership changes only with their own member events,
// which they may always see, so an unfiltered list holds every change:
// walking back from a known membership at the end (endingAs), each of
// their member events gives the membership before it (its prev_content,
// which format read anyway); else the membership at the first event is
// read from its state group (cached across requests, as history
// visibility reads it) and followed forward. Where a filter may have left
// events out, each change of state group is read the same cached way.
func (f *formatter) memberships(ctx context.Context, evs []*storage.Event, out []*ClientEvent) error {
	set := func(i int, m string) {
		if m == "" {
			m = "leave"
		}
		out[i].Unsigned["membership"] = m
	}
	own := func(e *storage.Event) bool {
		return e.Type == "m.room.member" && e.StateKey != nil && *e.StateKey == f.user.String()
	}
	if f.contiguous && f.endMembership != "" {
		cur := f.endMembership
		for i := len(evs) - 1; i >= 0; i-- {
			if own(evs[i]) {
				set(i, evs[i].Membership)
				prev, _ := out[i].Unsigned["prev_content"].(jsontext.Value)
				cur = gjson.GetBytes(prev, "membership").Str
				continue
			}
			set(i, cur)
		}
		return nil
	}
	cur, group := "", int64(-1)
	for i, e := range evs {
		switch {
		case own(e):
			cur = e.Membership
		case e.StateGroup == group || (group >= 0 && f.contiguous):
		default:
			m, err := f.s.membershipInGroup(ctx, e.StateGroup, f.user)
			if err != nil {
				return err
			}
			cur = m
		}
		group = e.StateGroup
		set(i, cur)
	}
	return nil
}

// transactionIDs sets unsigned.transaction_id on the asking device's own
// events, so that clients can match them with their local echoes.
func (f *formatter) transactionIDs(ctx context.Context, evs []*storage.Event, out []*ClientEvent) error {
	if f.device == "" {
		return nil
	}
	if f.txns != nil {
		for _, ce := range out {
			if txnID, ok := f.txns[ce.EventID]; ok {
				ce.Unsigned["transaction_id"] = txnID
			}
		}
		return nil
	}
	var mine []*storage.Event
	for _, e := range evs {
		if e.Sender == f.user {
			mine = append(mine, e)
		}
	}
	if len(mine) == 0 {
		return nil
	}
	txns, err := f.s.cachedTxnIDs(ctx, f.user, f.device, mine)
	if err != nil {
		return err
	}
	for _, ce := range out {
		if txnID, ok := txns[ce.EventID]; ok {
			ce.Unsigned["transaction_id"] = txnID
		}
	}
	return nil
}

// aggregate adds unsigned.m.relations: thread summaries (m.thread) and the
// latest edit by the original sender (m.replace), as the spec's
// "Server-side aggregation" describes.
func (f *formatter) aggregate(ctx context.Context, evs []*storage.Event, out []*ClientEvent) error {
	var parents []id.EventID
	byID := map[id.EventID]int{}
	maybe := false
	for i, e := range evs {
		if e.RedactedBy == "" {
			parents = append(parents, e.EventID)
			byID[e.EventID] = i
			if !maybe {
				m, err := f.s.mayHaveRelationsAfter(ctx, e.RoomID, e.StreamPos)
				if err != nil {
					return err
				}
				maybe = m
			}
		}
	}
	if !maybe {
		return nil // no relation was committed after any of them: none relates to them
	}
	aggs, err := f.s.store.RelationAggregates(ctx, parents)
	if err != nil || len(aggs) == 0 {
		return err
	}
	type thread struct {
		count        int64
		latest       int64
		participated bool
	}
	threads := map[id.EventID]*thread{}
	edits := map[id.EventID]int64{}
	var positions []int64
	for _, a := range aggs {
		parent := evs[byID[a.Parent]]
		switch a.RelType {
		case "m.thread":
			t := threads[a.Parent]
			if t == nil {
				t = &thread{participated: parent.Sender == f.user}
				threads[a.Parent] = t
			}
			t.count += a.Count
			t.latest = max(t.latest, a.LatestPos)
			t.participated = t.participated || a.Sender == f.user
		case "m.replace":
			if a.Sender == parent.Sender && a.LatestPos > edits[a.Parent] {
				edits[a.Parent] = a.LatestPos
			}
		}
	}
	for _, t := range threads {
		positions = append(positions, t.latest)
	}
	for _, p := range edits {
		positions = append(positions, p)
	}
	related, err := f.s.store.GetEventsByPos(ctx, positions)
	if err != nil {
		return err
	}
	// The latest reply or edit is shown only to a user who may see it (one
	// who left does not learn what came after); the aggregation is left out
	// otherwise.
	var v *viewer
	if f.user != "" && len(related) > 0 {
		if v, err = f.s.newViewer(ctx, evs[0].RoomID, f.user); err != nil {
			return err
		}
	}
	byPos := map[int64]*ClientEvent{}
	for _, e := range related {
		if v != nil {
			if ok, err := v.canSee(ctx, e); err != nil {
				return err
			} else if !ok {
				continue
			}
		}
		ce, err := f.one(ctx, e, true)
		if err != nil {
			return err
		}
		byPos[e.StreamPos] = ce
	}
	for parent, i := range byID {
		rel := map[string]any{}
		if t := threads[parent]; t != nil && byPos[t.latest] != nil {
			rel["m.thread"] = map[string]any{"latest_event": byPos[t.latest], "count": t.count,
				"current_user_participated": t.participated}
		}
		if p, ok := edits[parent]; ok && byPos[p] != nil {
			rel["m.replace"] = byPos[p]
		}
		if len(rel) > 0 {
			out[i].Unsigned["m.relations"] = rel
		}
	}
	return nil
}

func (f *formatter) one(ctx context.Context, e *storage.Event, withRedaction bool) (*ClientEvent, error) {
	p, err := f.s.cachedPDU(e)
	if err != nil {
		return nil, err
	}
	ce := &ClientEvent{EventID: e.EventID, OriginServerTS: p.OriginServerTS, RoomID: e.RoomID,
		Sender: p.Sender, StateKey: p.StateKey, Type: p.Type, Content: p.Content, pos: e.StreamPos,
		Unsigned: map[string]any{"age": max(0, f.now-p.OriginServerTS)}}
	if p.Type == "m.room.redaction" {
		if p.Redacts != nil {
			ce.Redacts = *p.Redacts
		} else {
			var c struct {
				Redacts id.EventID `json:"redacts"`
			}
			_ = json.Unmarshal(p.Content, &c)
			ce.Redacts = c.Redacts
		}
	}
	if e.ReplacesState != "" {
		if prev, err := f.s.store.GetEvent(ctx, e.ReplacesState); err == nil {
			if pp, err := f.s.cachedPDU(prev); err == nil {
				if prev.RedactedBy != "" {
					pp = pp.Clone().Redact(f.rv)
				}
				ce.Unsigned["prev_content"] = pp.Content
				ce.Unsigned["replaces_state"] = e.ReplacesState
			}
		}
	}
	if e.RedactedBy != "" && withRedaction {
		red := p.Clone().Redact(f.rv)
		ce.Content = red.Content
		if r, err := f.s.store.GetEvent(ctx, e.RedactedBy); err == nil {
			if rce, err := f.one(ctx, r, false); err == nil {
				ce.Unsigned["redacted_because"] = rce
			}
		}
	}
	return ce, nil
}

// pduOf is used by callers that need the raw PDU of a stored event.
func pduOf(e *storage.Event) (*pdu.PDU, error) { return parsePDU(e) }
