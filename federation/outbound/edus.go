package outbound

// The EDUs of a destination's transactions, read from the ephemeral
// streams between its cursor and the present, so that nothing is lost
// while it is down: to-device messages and device-list changes wait in
// their tables (a to-device message is deleted once the destination has
// it), receipts and presence are read as they stand (a user's latest, so
// they coalesce), typing from the in-memory log (it may be gone by the
// time a destination comes back: it is not worth catching up on).
//
// Only this server's users' news goes out, and only to servers it
// concerns: typing and receipts to the servers in the room, presence and
// device lists to servers sharing a room with the user, to-device
// messages to their recipients' server.

import (
	"context"
	"encoding/json"
	"strconv"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/storage"
)

// Shares of a transaction's 100 EDUs; typing takes what is left.
const (
	maxToDeviceEDUs   = 50
	maxToDeviceRead   = 100
	maxDeviceListEDUs = 40
	maxDeviceListRead = 200
	maxReceiptEDUs    = 4
	maxReceiptsRead   = 500
	maxPresenceRead   = 500
	// maxLatestBacklog bounds how far back receipts and presence — streams
	// of each user's latest state — are read for a destination that was
	// away long: what is older was mostly replaced since, and catching up
	// on it would cost a read of everyone's changes.
	maxLatestBacklog = 10_000
)

// eduStreams are the streams a destination's cursor follows.
var eduStreams = []stream.Stream{stream.Receipts, stream.Typing, stream.ToDevice, stream.DeviceLists, stream.Presence}

type eduBatch struct {
	edus     []json.RawMessage
	toDevice []*storage.ToDeviceMessage
	// reached is how far along the streams the EDUs go (the cursor once
	// the destination acknowledges them).
	reached stream.Positions
}

func (b *eduBatch) add(typ string, content any) error {
	raw, err := json.Marshal(map[string]any{"edu_type": typ, "content": content})
	if err != nil {
		return err
	}
	b.edus = append(b.edus, raw)
	return nil
}

// more reports whether a stream was read only in part.
func (b *eduBatch) more(to stream.Positions) bool {
	for _, st := range eduStreams {
		if b.reached[st] < to[st] {
			return true
		}
	}
	return false
}

// collectEDUs reads the EDUs for dest in (from, to] of each stream.
func (s *Sender) collectEDUs(ctx context.Context, dest string, from, to stream.Positions) (*eduBatch, error) {
	b := &eduBatch{reached: from}
	f := &destFilter{s: s, dest: dest, rooms: map[id.RoomID]bool{}, users: map[id.UserID]bool{}}
	for _, step := range []func(context.Context, *eduBatch, *destFilter, stream.Positions, stream.Positions) error{
		s.toDeviceEDUs, s.deviceListEDUs, s.receiptEDUs, s.presenceEDUs, s.typingEDUs,
	} {
		if err := step(ctx, b, f, from, to); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// destFilter answers whether dest shares a room, or a room with a user,
// once per transaction.
type destFilter struct {
	s     *Sender
	dest  string
	rooms map[id.RoomID]bool
	users map[id.UserID]bool
}

func (f *destFilter) room(ctx context.Context, room id.RoomID) (bool, error) {
	if ok, seen := f.rooms[room]; seen {
		return ok, nil
	}
	srvs, err := f.s.servers.get(ctx, room)
	if err != nil {
		return false, err
	}
	ok := false
	for _, srv := range srvs {
		ok = ok || srv == f.dest
	}
	f.rooms[room] = ok
	return ok, nil
}

// user: a local user sharing a room with dest.
func (f *destFilter) user(ctx context.Context, u id.UserID) (bool, error) {
	if !f.s.local(u) {
		return false, nil
	}
	if ok, seen := f.users[u]; seen {
		return ok, nil
	}
	rs, err := f.s.rooms.JoinedRooms(ctx, u)
	if err != nil {
		return false, err
	}
	ok := false
	for _, r := range rs {
		if ok, err = f.room(ctx, r); err != nil {
			return false, err
		} else if ok {
			break
		}
	}
	f.users[u] = ok
	return ok, nil
}

// reachedPos is how far a read of at most limit rows of (since, upto]
// got: upto, unless it came back full (then its last row's position).
func reachedPos(n, limit int, last, upto int64) int64 {
	if n == limit && limit > 0 {
		return last
	}
	return upto
}

// toDeviceEDUs: m.direct_to_device, one per run of messages of one sender
// and type; message_id is the run's first position, the same on a retry.
func (s *Sender) toDeviceEDUs(ctx context.Context, b *eduBatch, f *destFilter, from, to stream.Positions) error {
	if to[stream.ToDevice] <= from[stream.ToDevice] {
		return nil
	}
	msgs, err := s.store.ToDeviceForServer(ctx, f.dest, from[stream.ToDevice], to[stream.ToDevice], maxToDeviceRead)
	if err != nil {
		return err
	}
	var last int64
	if len(msgs) > 0 {
		last = msgs[len(msgs)-1].StreamPos
	}
	b.reached[stream.ToDevice] = reachedPos(len(msgs), maxToDeviceRead, last, to[stream.ToDevice])
	type edu struct {
		Sender    id.UserID                                     `json:"sender"`
		Type      string                                        `json:"type"`
		MessageID string                                        `json:"message_id"`
		Messages  map[id.UserID]map[id.DeviceID]json.RawMessage `json:"messages"`
	}
	var cur *edu
	n := 0
	flush := func() error {
		if cur == nil {
			return nil
		}
		n++
		err := b.add("m.direct_to_device", cur)
		cur = nil
		return err
	}
	for _, m := range msgs {
		if cur != nil && (cur.Sender != m.Sender || cur.Type != m.Type || cur.Messages[m.UserID][m.DeviceID] != nil) {
			if err := flush(); err != nil {
				return err
			}
		}
		if cur == nil {
			if n == maxToDeviceEDUs {
				// The rest waits for the next transaction.
				b.reached[stream.ToDevice] = m.StreamPos - 1
				break
			}
			cur = &edu{Sender: m.Sender, Type: m.Type, MessageID: "t" + strconv.FormatInt(m.StreamPos, 10),
				Messages: map[id.UserID]map[id.DeviceID]json.RawMessage{}}
		}
		if cur.Messages[m.UserID] == nil {
			cur.Messages[m.UserID] = map[id.DeviceID]json.RawMessage{}
		}
		cur.Messages[m.UserID][m.DeviceID] = m.Content
		b.toDevice = append(b.toDevice, m)
	}
	return flush()
}

// deviceListEDUs: m.device_list_update for each changed device of a local
// user sharing a room with dest (its keys, or deleted), with the user's
// previous device change as prev_id — a destination that missed it (it
// shared no room then) resyncs the list, as the spec says; and
// m.signing_key_update for a change of the user's cross-signing keys.
// Device names are not shared with other servers (as Synapse by default).
func (s *Sender) deviceListEDUs(ctx context.Context, b *eduBatch, f *destFilter, from, to stream.Positions) error {
	if to[stream.DeviceLists] <= from[stream.DeviceLists] {
		return nil
	}
	rows, err := s.store.DeviceListChangesRange(ctx, from[stream.DeviceLists], to[stream.DeviceLists], maxDeviceListRead)
	if err != nil {
		return err
	}
	var last int64
	if len(rows) > 0 {
		last = rows[len(rows)-1].StreamPos
	}
	b.reached[stream.DeviceLists] = reachedPos(len(rows), maxDeviceListRead, last, to[stream.DeviceLists])
	prev := map[id.UserID]int64{}
	userKeys := map[id.UserID]*userKeys{}
	n := 0
	for _, row := range rows {
		ok, err := f.user(ctx, row.UserID)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if n == maxDeviceListEDUs {
			b.reached[stream.DeviceLists] = row.StreamPos - 1
			break
		}
		uk := userKeys[row.UserID]
		if uk == nil {
			if uk, err = s.loadUserKeys(ctx, row.UserID); err != nil {
				return err
			}
			userKeys[row.UserID] = uk
		}
		if row.DeviceID == "" {
			content := map[string]any{"user_id": row.UserID}
			if uk.master != nil {
				content["master_key"] = uk.master
			}
			if uk.selfSigning != nil {
				content["self_signing_key"] = uk.selfSigning
			}
			if len(content) > 1 {
				if err := b.add("m.signing_key_update", content); err != nil {
					return err
				}
				n++
			}
			continue
		}
		p, seen := prev[row.UserID]
		if !seen {
			if p, err = s.store.PrevDeviceChange(ctx, row.UserID, row.StreamPos); err != nil {
				return err
			}
		}
		prev[row.UserID] = row.StreamPos
		if err := b.add("m.device_list_update", deviceUpdate(uk, row.UserID, row.DeviceID, row.StreamPos, p)); err != nil {
			return err
		}
		n++
	}
	return nil
}

// deviceUpdate is the content of the m.device_list_update of a change of
// the user's device at pos, following the change at prev (0: none).
func deviceUpdate(uk *userKeys, user id.UserID, device id.DeviceID, pos, prev int64) map[string]any {
	content := map[string]any{"user_id": user, "device_id": device, "stream_id": pos, "prev_id": []int64{}}
	if prev > 0 {
		content["prev_id"] = []int64{prev}
	}
	if k, ok := uk.devices[device]; ok {
		content["keys"] = k
	} else if !uk.exists[device] {
		content["deleted"] = true
	}
	return content
}

// userKeys are a local user's keys as other servers see them.
type userKeys struct {
	devices             map[id.DeviceID]json.RawMessage
	exists              map[id.DeviceID]bool
	master, selfSigning json.RawMessage
}

func (s *Sender) loadUserKeys(ctx context.Context, u id.UserID) (*userKeys, error) {
	resp, err := s.keys.Query(ctx, "", map[id.UserID][]id.DeviceID{u: nil})
	if err != nil {
		return nil, err
	}
	devs, err := s.store.ListDevices(ctx, u)
	if err != nil {
		return nil, err
	}
	uk := &userKeys{devices: resp.DeviceKeys[u], exists: map[id.DeviceID]bool{}, master: resp.MasterKeys[u],
		selfSigning: resp.SelfSigningKeys[u]}
	for _, d := range devs {
		uk.exists[d.DeviceID] = true
	}
	return uk, nil
}

// receiptEDUs: m.receipt with the public read receipts of local users in
// rooms dest is in (private receipts never leave the server).
func (s *Sender) receiptEDUs(ctx context.Context, b *eduBatch, f *destFilter, from, to stream.Positions) error {
	if to[stream.Receipts] <= from[stream.Receipts] {
		return nil
	}
	since := max(from[stream.Receipts], to[stream.Receipts]-maxLatestBacklog)
	rs, err := s.store.ReceiptsRange(ctx, since, to[stream.Receipts], maxReceiptsRead)
	if err != nil {
		return err
	}
	var last int64
	if len(rs) > 0 {
		last = rs[len(rs)-1].StreamPos
	}
	b.reached[stream.Receipts] = reachedPos(len(rs), maxReceiptsRead, last, to[stream.Receipts])
	type entry struct {
		EventIDs []id.EventID   `json:"event_ids"`
		Data     map[string]any `json:"data"`
	}
	// content is room → receipt type → user → entry; a user's second
	// receipt in a room (another thread) goes in the next EDU.
	var content map[id.RoomID]map[string]map[id.UserID]entry
	n := 0
	flush := func() error {
		if len(content) == 0 {
			return nil
		}
		n++
		err := b.add("m.receipt", content)
		content = nil
		return err
	}
	for _, r := range rs {
		if r.Type != "m.read" || !s.local(r.UserID) {
			continue
		}
		if ok, err := f.room(ctx, r.RoomID); err != nil {
			return err
		} else if !ok {
			continue
		}
		if _, dup := content[r.RoomID]["m.read"][r.UserID]; dup {
			if err := flush(); err != nil {
				return err
			}
		}
		if content == nil {
			if n == maxReceiptEDUs {
				b.reached[stream.Receipts] = r.StreamPos - 1
				break
			}
			content = map[id.RoomID]map[string]map[id.UserID]entry{}
		}
		if content[r.RoomID] == nil {
			content[r.RoomID] = map[string]map[id.UserID]entry{"m.read": {}}
		}
		data := map[string]any{"ts": r.TS}
		if r.ThreadID != "" {
			data["thread_id"] = r.ThreadID
		}
		content[r.RoomID]["m.read"][r.UserID] = entry{EventIDs: []id.EventID{r.EventID}, Data: data}
	}
	return flush()
}

// presenceEDUs: one m.presence with the latest presence of local users
// sharing a room with dest.
func (s *Sender) presenceEDUs(ctx context.Context, b *eduBatch, f *destFilter, from, to stream.Positions) error {
	if to[stream.Presence] <= from[stream.Presence] {
		return nil
	}
	since := max(from[stream.Presence], to[stream.Presence]-maxLatestBacklog)
	evs, reached, err := s.eph.PresenceRange(ctx, since, to[stream.Presence], maxPresenceRead,
		func(u id.UserID) (bool, error) { return f.user(ctx, u) })
	if err != nil {
		return err
	}
	b.reached[stream.Presence] = reached
	if len(evs) == 0 {
		return nil
	}
	push := make([]map[string]any, 0, len(evs))
	for _, ev := range evs {
		push = append(push, presencePush(ev))
	}
	return b.add("m.presence", map[string]any{"push": push})
}

// presencePush is an m.presence event as an entry of an m.presence EDU.
func presencePush(ev map[string]any) map[string]any {
	c, _ := ev["content"].(map[string]any)
	p := map[string]any{"user_id": ev["sender"]}
	for _, k := range []string{"presence", "status_msg", "last_active_ago", "currently_active"} {
		if v, ok := c[k]; ok {
			p[k] = v
		}
	}
	return p
}

// typingEDUs: m.typing for the latest typing change of each local user in
// each room dest is in, as many as the transaction has room for.
func (s *Sender) typingEDUs(ctx context.Context, b *eduBatch, f *destFilter, from, to stream.Positions) error {
	if to[stream.Typing] <= from[stream.Typing] {
		return nil
	}
	b.reached[stream.Typing] = to[stream.Typing]
	for _, u := range s.eph.TypingUpdates(from[stream.Typing], to[stream.Typing]) {
		if len(b.edus) >= maxEDUs {
			break // dropped: typing is worth sending only while fresh
		}
		if !s.local(u.UserID) {
			continue
		}
		if ok, err := f.room(ctx, u.RoomID); err != nil {
			return err
		} else if !ok {
			continue
		}
		if err := b.add("m.typing", map[string]any{"room_id": u.RoomID, "user_id": u.UserID, "typing": u.Typing}); err != nil {
			return err
		}
	}
	return nil
}
