package pusher

import (
	"context"
	"errors"
	"maps"
	"slices"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/appservice/registry"
	"github.com/tributary-hs/tributary/core/queue"
	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/storage"
)

// Ephemeral is where the ephemeral data of transactions comes from
// (core/ephemeral implements it).
type Ephemeral interface {
	TypingChanged(since, upto int64) map[id.RoomID][]id.UserID
	ReceiptsRange(ctx context.Context, since, upto int64, limit int, private func(user id.UserID) bool) (map[id.RoomID]map[string]any, int64, error)
	PresenceRange(ctx context.Context, since, upto int64, limit int, wanted func(user id.UserID) (bool, error)) ([]map[string]any, int64, error)
	ToDeviceRange(ctx context.Context, since, upto int64, limit int, wanted func(user id.UserID) bool) ([]*storage.ToDeviceMessage, int64, error)
}

// Keys gives the one-time key counts of MSC3202 (core/keys implements it).
type Keys interface {
	OneTimeKeyCounts(ctx context.Context, user id.UserID, device id.DeviceID) (map[string]int64, error)
	UnusedFallbackKeyTypes(ctx context.Context, user id.UserID, device id.DeviceID) ([]string, error)
}

// Store is what the pusher reads and writes.
type Store interface {
	storage.InterestQueues
	DeviceListChanges(ctx context.Context, since, upto int64) ([]id.UserID, error)
	RoomMembers(ctx context.Context, roomID id.RoomID, memberships []string) ([]storage.CurrentMember, error)
	RoomsOfUser(ctx context.Context, userID id.UserID, memberships []string) ([]storage.CurrentMember, error)
	ListDevices(ctx context.Context, userID id.UserID) ([]*storage.Device, error)
	AckToDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID, upto int64) error
	MemberEventsBetween(ctx context.Context, after, upto int64) ([]*storage.Event, error)
}

// Option adds to what the pusher delivers.
type Option func(*Pusher)

// WithEphemeral delivers typing, receipts, presence and to-device messages
// to appservices that ask for them (receive_ephemeral, MSC2409), and device
// list changes and key counts to those with MSC3202, woken by the notifier.
func WithEphemeral(eph Ephemeral, keys Keys) Option {
	return func(p *Pusher) { p.eph, p.keys = eph, keys }
}

// Feed gathers the ephemeral part of appservices' transactions from the
// streams, from a cursor per appservice that moves on when a transaction
// is acknowledged (the Extra of its queue.Plan). The HTTP pusher has one;
// the plugin host (bridges/manager) has its own for plugins, which are
// sent room EDUs only: typing and receipts.
type Feed struct {
	store    Store
	registry *registry.Registry
	notifier stream.Notifier
	eph      Ephemeral
	keys     Keys
	// roomEDUsOnly: typing and receipts, no presence, to-device messages
	// or MSC3202 data.
	roomEDUsOnly bool
}

// NewRoomEDUFeed is a Feed of typing notifications and receipts, for the
// appservices whose registration asks for ephemeral events.
func NewRoomEDUFeed(store Store, reg *registry.Registry, n stream.Notifier, eph Ephemeral) *Feed {
	return &Feed{store: store, registry: reg, notifier: n, eph: eph, roomEDUsOnly: true}
}

// Open plans the next transaction of an appservice: its queued events and
// the ephemeral data since its cursor. With nothing to send it moves the
// cursor on by itself (more: call again at once).
func (p *Feed) Open(ctx context.Context, as *registry.AppService, pending []int64) (*queue.Plan, bool, error) {
	if !p.wantsEphemeral(as) && !p.wantsMSC3202(as) {
		if len(pending) == 0 {
			return nil, false, nil
		}
		return &queue.Plan{}, false, nil
	}
	from, err := p.cursor(ctx, as)
	if err != nil {
		return nil, false, err
	}
	to := p.notifier.Current()
	eph, err := p.ephemeral(ctx, as, from, to)
	if err != nil {
		return nil, false, err
	}
	var ephPos []int64
	if eph.reached != from {
		ephPos = eph.reached[:]
	}
	if len(pending) == 0 && eph.empty() {
		// Nothing for this appservice: just move its cursor on.
		if ephPos != nil {
			err = p.store.SetQueueCursor(ctx, consumerOf(as), ephPos)
		}
		return nil, eph.reached != maxPositions(from, to), err
	}
	if len(pending) == 0 && ephPos == nil {
		return nil, false, nil
	}
	return &queue.Plan{Extra: ephPos, Data: eph}, false, nil
}

// ForTxn is the ephemeral data of a transaction (nil: none): what Open
// gathered or, on a retry after a restart, the same stretch of the streams
// again.
func (p *Feed) ForTxn(ctx context.Context, as *registry.AppService, t *queue.Txn) (*EphemeralData, error) {
	eph, _ := t.Data.(*EphemeralData)
	if eph == nil && t.Extra != nil && (p.wantsEphemeral(as) || p.wantsMSC3202(as)) {
		from, err := p.cursor(ctx, as)
		if err != nil {
			return nil, err
		}
		var to stream.Positions
		copy(to[:], t.Extra)
		if eph, err = p.ephemeral(ctx, as, from, to); err != nil {
			return nil, err
		}
		t.Data = eph
	}
	return eph, nil
}

// Acked forgets what an acknowledged transaction delivered: to-device
// messages only the appservice could read.
func (p *Feed) Acked(ctx context.Context, as *registry.AppService, t *queue.Txn) error {
	eph, _ := t.Data.(*EphemeralData)
	if eph == nil {
		return nil
	}
	return p.forgetToDevice(ctx, as, eph)
}

// EDUs are the transaction's ephemeral events (m.typing, m.receipt,
// m.presence) in the client format with their room_id.
func (d *EphemeralData) EDUs() []map[string]any { return d.edus }

func maxPositions(a, b stream.Positions) stream.Positions {
	for i := range a {
		a[i] = max(a[i], b[i])
	}
	return a
}

// Limits on the ephemeral data of one transaction; the rest follows in the
// next.
const (
	maxReceipts = 500
	maxToDevice = 100
	maxPresence = 500
)

// ephemeralStreams are the streams whose changes wake an appservice that
// receives ephemeral data (DeviceLists only with MSC3202).
var ephemeralStreams = []stream.Stream{stream.Receipts, stream.Typing, stream.ToDevice, stream.Presence, stream.DeviceLists}

func (p *Feed) wantsEphemeral(as *registry.AppService) bool {
	return p.eph != nil && (as.Reg.EphemeralEvents || as.Reg.SoruEphemeralEvents)
}

func (p *Feed) wantsMSC3202(as *registry.AppService) bool {
	return p.eph != nil && as.Reg.MSC3202 && !p.roomEDUsOnly
}

// observe wakes the appservices concerned by an ephemeral change.
func (p *Pusher) observe(c stream.Change) { p.runner.Wake(p.Woken(c)...) }

// Woken are the appservices that a change of the streams may give
// something to receive: worth waking.
func (p *Feed) Woken(c stream.Change) []string {
	streams := ephemeralStreams
	if p.roomEDUsOnly {
		streams = []stream.Stream{stream.Receipts, stream.Typing}
	}
	if p.eph == nil || !slices.Contains(streams, c.Stream) {
		return nil
	}
	var ids []string
	for _, as := range p.registry.All() {
		if (c.Stream == stream.DeviceLists && p.wantsMSC3202(as)) ||
			(c.Stream != stream.DeviceLists && p.wantsEphemeral(as)) {
			ids = append(ids, as.Reg.ID)
		}
	}
	return ids
}

// cursor is how far the appservice has acknowledged the ephemeral streams;
// an appservice seen for the first time starts at the present (it is not
// sent what happened before it was registered).
func (p *Feed) cursor(ctx context.Context, as *registry.AppService) (stream.Positions, error) {
	cur := p.notifier.Current()
	stored, err := p.store.QueueCursor(ctx, consumerOf(as))
	if errors.Is(err, storage.ErrNotFound) {
		return cur, p.store.SetQueueCursor(ctx, consumerOf(as), cur[:])
	} else if err != nil {
		return cur, err
	}
	var out stream.Positions
	for i := range out {
		if i < len(stored) {
			out[i] = stored[i]
		} else {
			out[i] = cur[i] // a stream added since: start at the present
		}
	}
	return out, nil
}

// EphemeralData is the ephemeral part of one transaction.
type EphemeralData struct {
	edus        []map[string]any
	toDevice    []*storage.ToDeviceMessage
	deviceLists []id.UserID
	// deviceListsLeft are users who no longer share a room with the
	// appservice's users.
	deviceListsLeft []id.UserID
	// reached is how far along the streams the data goes.
	reached stream.Positions
}

func (d *EphemeralData) empty() bool {
	return len(d.edus) == 0 && len(d.toDevice) == 0 && len(d.deviceLists) == 0 && len(d.deviceListsLeft) == 0
}

// interest answers, with caching for one transaction, whether an
// appservice is interested in a room: the room is in its namespace or one
// of its users is joined.
type interest struct {
	p     *Feed
	as    *registry.AppService
	rooms map[id.RoomID]bool
}

func (in *interest) room(ctx context.Context, roomID id.RoomID) (bool, error) {
	if v, ok := in.rooms[roomID]; ok {
		return v, nil
	}
	ok := slices.Contains(in.p.registry.RoomOwners(roomID), in.as.Reg.ID)
	if !ok {
		members, err := in.p.store.RoomMembers(ctx, roomID, []string{"join"})
		if err != nil {
			return false, err
		}
		ok = slices.ContainsFunc(members, func(m storage.CurrentMember) bool { return in.as.OwnsUser(m.UserID) })
	}
	in.rooms[roomID] = ok
	return ok, nil
}

// user: the user is in the namespace or shares a room the appservice is
// interested in.
func (in *interest) user(ctx context.Context, user id.UserID) (bool, error) {
	if in.as.OwnsUser(user) {
		return true, nil
	}
	rooms, err := in.p.store.RoomsOfUser(ctx, user, []string{"join"})
	if err != nil {
		return false, err
	}
	for _, r := range rooms {
		if ok, err := in.room(ctx, r.RoomID); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

// ephemeral gathers what the appservice should get of the ephemeral streams
// in (from, to].
func (p *Feed) ephemeral(ctx context.Context, as *registry.AppService, from, to stream.Positions) (*EphemeralData, error) {
	d := &EphemeralData{reached: to}
	for i := range to {
		d.reached[i] = max(from[i], to[i]) // positions never go back (typing restarts from the clock)
	}
	in := &interest{p: p, as: as, rooms: map[id.RoomID]bool{}}
	if p.wantsEphemeral(as) {
		typing := p.eph.TypingChanged(from[stream.Typing], d.reached[stream.Typing])
		for _, roomID := range sortedKeys(typing) {
			if ok, err := in.room(ctx, roomID); err != nil {
				return nil, err
			} else if ok {
				users := typing[roomID]
				if users == nil {
					users = []id.UserID{}
				}
				d.edus = append(d.edus, map[string]any{"type": "m.typing", "room_id": roomID,
					"content": map[string]any{"user_ids": users}})
			}
		}
		// Private receipts only of the appservice's own users (spec).
		receipts, reached, err := p.eph.ReceiptsRange(ctx, from[stream.Receipts], d.reached[stream.Receipts], maxReceipts,
			as.OwnsUser)
		if err != nil {
			return nil, err
		}
		d.reached[stream.Receipts] = reached
		for _, roomID := range sortedKeys(receipts) {
			if ok, err := in.room(ctx, roomID); err != nil {
				return nil, err
			} else if ok {
				d.edus = append(d.edus, map[string]any{"type": "m.receipt", "room_id": roomID, "content": receipts[roomID]})
			}
		}
		if p.roomEDUsOnly {
			return d, nil
		}
		presence, reached, err := p.eph.PresenceRange(ctx, from[stream.Presence], d.reached[stream.Presence], maxPresence,
			func(user id.UserID) (bool, error) { return in.user(ctx, user) })
		if err != nil {
			return nil, err
		}
		d.reached[stream.Presence] = reached
		d.edus = append(d.edus, presence...)
		d.toDevice, reached, err = p.eph.ToDeviceRange(ctx, from[stream.ToDevice], d.reached[stream.ToDevice], maxToDevice,
			as.OwnsUser)
		if err != nil {
			return nil, err
		}
		d.reached[stream.ToDevice] = reached
	}
	if p.wantsMSC3202(as) {
		if err := p.deviceLists(ctx, in, from, d); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// toDeviceEvents formats to-device messages as transactions carry them,
// naming their recipients.
func (d *EphemeralData) toDeviceEvents() []map[string]any {
	out := make([]map[string]any, len(d.toDevice))
	for i, m := range d.toDevice {
		out[i] = map[string]any{"sender": m.Sender, "type": m.Type, "content": m.Content,
			"to_user_id": m.UserID, "to_device_id": m.DeviceID}
	}
	return out
}

// forgetToDevice deletes the delivered to-device messages of the users the
// appservice owns exclusively: no one else can read them.
func (p *Feed) forgetToDevice(ctx context.Context, as *registry.AppService, d *EphemeralData) error {
	type device struct {
		user id.UserID
		id   id.DeviceID
	}
	last := map[device]int64{}
	for _, m := range d.toDevice {
		if p.registry.ExclusiveUser(m.UserID) == as {
			last[device{m.UserID, m.DeviceID}] = m.StreamPos
		}
	}
	for dev, pos := range last {
		if err := p.store.AckToDevice(ctx, dev.user, dev.id, pos); err != nil {
			return err
		}
	}
	return nil
}

// deviceLists fills MSC3202's device list changes: users sharing a room
// with the appservice's users whose devices changed or who newly share one
// (changed), and those who no longer share any (left).
func (p *Feed) deviceLists(ctx context.Context, in *interest, from stream.Positions, d *EphemeralData) error {
	changed, left := map[id.UserID]bool{}, map[id.UserID]bool{}
	if d.reached[stream.DeviceLists] > from[stream.DeviceLists] {
		users, err := p.store.DeviceListChanges(ctx, from[stream.DeviceLists], d.reached[stream.DeviceLists])
		if err != nil {
			return err
		}
		for _, u := range users {
			changed[u] = true
		}
	}
	if d.reached[stream.Events] > from[stream.Events] {
		members, err := p.store.MemberEventsBetween(ctx, from[stream.Events], d.reached[stream.Events])
		if err != nil {
			return err
		}
		for _, ev := range members {
			target := id.UserID(*ev.StateKey)
			if in.as.OwnsUser(target) {
				continue
			}
			if ok, err := in.room(ctx, ev.RoomID); err != nil {
				return err
			} else if !ok {
				continue
			}
			switch ev.Membership {
			case "join":
				changed[target] = true
			case "leave", "ban":
				left[target] = true
			}
		}
	}
	for _, u := range slices.Sorted(maps.Keys(changed)) {
		if ok, err := in.user(ctx, u); err != nil {
			return err
		} else if ok {
			d.deviceLists = append(d.deviceLists, u)
			delete(left, u)
		}
	}
	for _, u := range slices.Sorted(maps.Keys(left)) {
		if ok, err := in.user(ctx, u); err != nil {
			return err
		} else if !ok {
			d.deviceListsLeft = append(d.deviceListsLeft, u)
		}
	}
	return nil
}

// keyCounts are MSC3202's one-time key counts and unused fallback key types
// of every device of the given users of the appservice.
func (p *Feed) keyCounts(ctx context.Context, as *registry.AppService, users []id.UserID) (map[id.UserID]map[id.DeviceID]map[string]int64, map[id.UserID]map[id.DeviceID][]string, error) {
	counts := map[id.UserID]map[id.DeviceID]map[string]int64{}
	fallback := map[id.UserID]map[id.DeviceID][]string{}
	slices.Sort(users)
	for _, user := range slices.Compact(users) {
		if !as.OwnsUser(user) && user != as.Sender {
			continue
		}
		devices, err := p.store.ListDevices(ctx, user)
		if err != nil {
			return nil, nil, err
		}
		for _, dev := range devices {
			c, err := p.keys.OneTimeKeyCounts(ctx, user, dev.DeviceID)
			if err != nil {
				return nil, nil, err
			}
			f, err := p.keys.UnusedFallbackKeyTypes(ctx, user, dev.DeviceID)
			if err != nil {
				return nil, nil, err
			}
			if counts[user] == nil {
				counts[user], fallback[user] = map[id.DeviceID]map[string]int64{}, map[id.DeviceID][]string{}
			}
			if f == nil {
				f = []string{}
			}
			counts[user][dev.DeviceID], fallback[user][dev.DeviceID] = c, f
		}
	}
	return counts, fallback, nil
}

func sortedKeys[V any](m map[id.RoomID]V) []id.RoomID {
	keys := make([]id.RoomID, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
