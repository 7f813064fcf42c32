// Package ephemeral owns the streams beside the room timeline: typing
// notifications (in memory), read receipts, to-device messages and presence
// (persisted). Each change advances its stream and is published to
// core/stream's notifier. It imports core/rooms (membership checks),
// core/stream, core/types and the storage interfaces.
package ephemeral

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// Store is what the service persists to.
type Store interface {
	storage.Receipts
	storage.ToDevice
	storage.Presences
	storage.Devices
}

// Options configure the service.
type Options struct {
	ServerName      string
	PresenceEnabled bool
	// Federation lets to-device messages go to users of other servers
	// (queued here, sent by federation/outbound as m.direct_to_device).
	Federation bool
	// OfflineAfter is how long after their last sync ended (with no other
	// sync running) a user who was online or unavailable is marked offline
	// (default one minute).
	OfflineAfter time.Duration
	// RemoteOfflineAfter is how long another server's user shown online
	// or unavailable stays so without news from their server (default 30
	// minutes, Synapse's FEDERATION_TIMEOUT; remote.go).
	RemoteOfflineAfter time.Duration
	Logger             *slog.Logger
	Now                func() time.Time
}

// Service implements the ephemeral streams.
type Service struct {
	store    Store
	rooms    *rooms.Reader
	notifier stream.Notifier
	opts     Options

	mu        sync.Mutex
	typing    map[id.RoomID]map[id.UserID]*time.Timer
	typingPos int64
	// roomTypingPos is the typing position of each room's last change.
	roomTypingPos map[id.RoomID]int64
	// typingLog holds the recent changes, for other servers (TypingUpdates).
	typingLog []typingChange
	// acked is the to-device position each device last acknowledged, so that
	// a sync deletes only when there can be something to delete. Bounded
	// (maxAcked): a device forgotten here costs one delete that finds
	// nothing.
	acked  sync.Map // deviceKey → int64
	nAcked atomic.Int64

	presence presenceState
	remote   remotePresence
}

// New builds the service.
func New(store Store, r *rooms.Reader, n stream.Notifier, opts Options) (*Service, error) {
	if store == nil || r == nil || n == nil {
		return nil, errors.New("ephemeral: store, rooms and notifier are required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.OfflineAfter <= 0 {
		opts.OfflineAfter = time.Minute
	}
	if opts.RemoteOfflineAfter <= 0 {
		opts.RemoteOfflineAfter = 30 * time.Minute
	}
	s := &Service{store: store, rooms: r, notifier: n, opts: opts, typing: map[id.RoomID]map[id.UserID]*time.Timer{},
		roomTypingPos: map[id.RoomID]int64{}}
	s.presence.init(n.Current()[stream.Presence])
	n.Observe(s.observePresence)
	return s, nil
}

// Start runs the presence sweeper, which marks offline the users who
// stopped syncing (see Options.OfflineAfter); until ctx ends or Stop.
func (s *Service) Start(ctx context.Context) error {
	if !s.opts.PresenceEnabled {
		return nil
	}
	return s.startSweeper(ctx)
}

// Stop cancels the typing timers and stops the presence sweeper.
func (s *Service) Stop() {
	s.stopSweeper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, users := range s.typing {
		for _, t := range users {
			t.Stop()
		}
	}
	s.typing = map[id.RoomID]map[id.UserID]*time.Timer{}
}

// StartPos is where the typing stream starts: positions are milliseconds
// of the wall clock (or one more than the last), so tokens from before a
// restart never run ahead of the new process.
func (s *Service) nextTypingPos() int64 {
	s.typingPos = max(s.typingPos+1, s.opts.Now().UnixMilli())
	return s.typingPos
}

// TypingPos is the current typing position.
func (s *Service) TypingPos() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.typingPos == 0 {
		s.typingPos = s.opts.Now().UnixMilli()
	}
	return s.typingPos
}

func (s *Service) requireJoined(ctx context.Context, roomID id.RoomID, user id.UserID) error {
	m, _, err := s.rooms.Membership(ctx, roomID, user)
	if err != nil {
		return err
	}
	if m != "join" {
		return types.Forbidden("You are not in room %s", roomID)
	}
	return nil
}

// SetTyping starts (for timeout) or stops the user's typing notification
// (PUT /rooms/{roomId}/typing/{userId}).
func (s *Service) SetTyping(ctx context.Context, roomID id.RoomID, user id.UserID, typing bool, timeout time.Duration) error {
	if err := s.requireJoined(ctx, roomID, user); err != nil {
		return err
	}
	timeout = min(max(timeout, time.Second), 2*time.Minute)
	s.mu.Lock()
	defer s.mu.Unlock()
	users := s.typing[roomID]
	if users == nil {
		users = map[id.UserID]*time.Timer{}
		s.typing[roomID] = users
	}
	old, was := users[user]
	if was {
		old.Stop()
		delete(users, user)
	}
	if typing {
		users[user] = time.AfterFunc(timeout, func() { s.expireTyping(roomID, user) })
	}
	if typing || was {
		s.bumpTypingLocked(roomID, user, typing)
	}
	return nil
}

func (s *Service) expireTyping(roomID id.RoomID, user id.UserID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.typing[roomID][user]; ok {
		delete(s.typing[roomID], user)
		s.bumpTypingLocked(roomID, user, false)
	}
}

func (s *Service) bumpTypingLocked(roomID id.RoomID, user id.UserID, typing bool) {
	pos := s.nextTypingPos()
	s.roomTypingPos[roomID] = pos
	s.logTypingLocked(pos, roomID, user, typing)
	s.notifier.Publish(stream.Change{Stream: stream.Typing, Pos: pos, RoomID: roomID, Users: []id.UserID{user}})
}

// TypingSince returns, for each room whose typing changed after since, the
// users typing now (an m.typing event's content).
func (s *Service) TypingSince(roomIDs []id.RoomID, since int64) map[id.RoomID][]id.UserID {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[id.RoomID][]id.UserID{}
	for _, r := range roomIDs {
		if s.roomTypingPos[r] > since {
			out[r] = s.typingLocked(r)
		}
	}
	return out
}

// typingLocked lists who types in a room now, in order (s.mu held).
func (s *Service) typingLocked(roomID id.RoomID) []id.UserID {
	users := make([]id.UserID, 0, len(s.typing[roomID]))
	for u := range s.typing[roomID] {
		users = append(users, u)
	}
	slices.Sort(users)
	return users
}

// TypingChanged returns, for every room whose typing changed in (since,
// upto], the users typing now.
func (s *Service) TypingChanged(since, upto int64) map[id.RoomID][]id.UserID {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[id.RoomID][]id.UserID{}
	for r, pos := range s.roomTypingPos {
		if pos > since && pos <= upto {
			out[r] = s.typingLocked(r)
		}
	}
	return out
}

// Receipt types clients may send.
const (
	ReceiptRead        = "m.read"
	ReceiptReadPrivate = "m.read.private"
)

// SetReceipt records a read receipt (POST /rooms/{roomId}/receipt/{type}/{eventId}).
func (s *Service) SetReceipt(ctx context.Context, roomID id.RoomID, user id.UserID, receiptType string, eventID id.EventID, threadID string) error {
	if receiptType != ReceiptRead && receiptType != ReceiptReadPrivate {
		return types.InvalidParam("Unknown receipt type %q", receiptType)
	}
	if err := checkThreadID(threadID); err != nil {
		return err
	}
	if err := s.requireJoined(ctx, roomID, user); err != nil {
		return err
	}
	// Bridges mark read by the event IDs they chose for backfilled events.
	eventID, err := s.rooms.ResolveEventID(ctx, eventID)
	if err != nil {
		return err
	}
	if _, err := s.rooms.Event(ctx, roomID, user, eventID); err != nil {
		return err
	}
	return s.putReceipt(ctx, roomID, user, receiptType, eventID, threadID)
}

// checkThreadID: a receipt's thread is "main" or its root event's ID
// (client-server API, "Threaded read receipts"), "" for an unthreaded
// receipt. Anything longer would also overflow the receipts index on
// PostgreSQL.
func checkThreadID(threadID string) error {
	if threadID == "" || threadID == "main" {
		return nil
	}
	if len(threadID) > 255 || threadID[0] != '$' || !types.ValidText(threadID) {
		return types.InvalidParam("thread_id must be \"main\" or an event ID")
	}
	return nil
}

func (s *Service) putReceipt(ctx context.Context, roomID id.RoomID, user id.UserID, receiptType string, eventID id.EventID, threadID string) error {
	pos, err := s.store.PutReceipt(ctx, &storage.Receipt{RoomID: roomID, UserID: user, Type: receiptType,
		ThreadID: threadID, EventID: eventID, TS: s.opts.Now().UnixMilli()})
	if err != nil {
		return err
	}
	if pos > 0 {
		// Naming the user lets /sync forget what it counted as unread for them.
		s.notifier.Publish(stream.Change{Stream: stream.Receipts, Pos: pos, RoomID: roomID, Users: []id.UserID{user}})
	}
	return nil
}

// CanBeMarkedRead reports whether batch send's mark_read_by may name the
// user: a member of the room, joined or invited (bridges invite the user
// whose chat it is and backfill before they accept).
func (s *Service) CanBeMarkedRead(ctx context.Context, roomID id.RoomID, user id.UserID) (bool, error) {
	m, _, err := s.rooms.Membership(ctx, roomID, user)
	return m == "join" || m == "invite", err
}

// MarkReadBy sets an m.read receipt for a user on an event an appservice
// just batch sent (mark_read_by; see CanBeMarkedRead).
func (s *Service) MarkReadBy(ctx context.Context, roomID id.RoomID, user id.UserID, eventID id.EventID) error {
	if ok, err := s.CanBeMarkedRead(ctx, roomID, user); err != nil {
		return err
	} else if !ok {
		return types.Forbidden("%s is not in room %s", user, roomID)
	}
	return s.putReceipt(ctx, roomID, user, ReceiptRead, eventID, "")
}

// ReceiptsSince builds each room's m.receipt content from the receipts
// changed in (since, upto]; private receipts only reach their own user.
func (s *Service) ReceiptsSince(ctx context.Context, viewer id.UserID, roomIDs []id.RoomID, since, upto int64) (map[id.RoomID]map[string]any, error) {
	rs, err := s.store.ReceiptsSince(ctx, roomIDs, since, upto)
	if err != nil {
		return nil, err
	}
	return receiptContents(rs, func(user id.UserID) bool { return user == viewer }), nil
}

// ReceiptsRange builds the m.receipt content of every room with receipts
// changed in (since, upto], at most limit receipts; private receipts are
// kept only for users private accepts. The second result is the position
// reached (upto unless the limit cut the range short).
func (s *Service) ReceiptsRange(ctx context.Context, since, upto int64, limit int, private func(user id.UserID) bool) (map[id.RoomID]map[string]any, int64, error) {
	if upto <= since {
		return nil, upto, nil
	}
	rs, err := s.store.ReceiptsRange(ctx, since, upto, limit)
	if err != nil {
		return nil, 0, err
	}
	return receiptContents(rs, private), reached(rs, limit, upto, func(r *storage.Receipt) int64 { return r.StreamPos }), nil
}

// receiptContents groups receipts into m.receipt contents per room.
func receiptContents(rs []*storage.Receipt, private func(user id.UserID) bool) map[id.RoomID]map[string]any {
	out := map[id.RoomID]map[string]any{}
	for _, r := range rs {
		if r.Type == ReceiptReadPrivate && !private(r.UserID) {
			continue
		}
		room := out[r.RoomID]
		if room == nil {
			room = map[string]any{}
			out[r.RoomID] = room
		}
		byType, _ := room[string(r.EventID)].(map[string]any)
		if byType == nil {
			byType = map[string]any{}
			room[string(r.EventID)] = byType
		}
		byUser, _ := byType[r.Type].(map[string]any)
		if byUser == nil {
			byUser = map[string]any{}
			byType[r.Type] = byUser
		}
		entry := map[string]any{"ts": r.TS}
		if r.ThreadID != "" {
			entry["thread_id"] = r.ThreadID
		}
		byUser[string(r.UserID)] = entry
	}
	return out
}

// SendToDevice queues messages for devices (PUT /sendToDevice/{type}/{txnId});
// "*" means every device of the user. Messages to users of other servers
// are queued with their device as given ("*" included: the user's server
// expands it) for federation/outbound; without federation they are refused.
func (s *Service) SendToDevice(ctx context.Context, sender id.UserID, senderDevice id.DeviceID, txnID, evType string,
	messages map[id.UserID]map[string]json.RawMessage) error {
	if evType == "" || len(evType) > 255 {
		return types.InvalidParam("Event types are 1 to 255 bytes")
	}
	if err := types.CheckTxnID(txnID); err != nil {
		return err
	}
	var msgs []*storage.ToDeviceMessage
	var targets []id.UserID
	for user, devices := range messages {
		_, server, err := user.Parse()
		if err != nil {
			return types.InvalidParam("Invalid user ID %q", user)
		}
		remote := server != s.opts.ServerName
		if remote && !s.opts.Federation {
			return types.NewError(400, types.CodeUnrecognized, "Federation is disabled: to-device messages reach local users only")
		}
		for device, content := range devices {
			if len(content) == 0 || content[0] != '{' {
				return types.BadJSON("Message content must be an object")
			}
			var ids []id.DeviceID
			if device == "*" && !remote {
				devs, err := s.store.ListDevices(ctx, user)
				if err != nil {
					return err
				}
				for _, d := range devs {
					ids = append(ids, d.DeviceID)
				}
			} else {
				ids = []id.DeviceID{id.DeviceID(device)}
			}
			for _, d := range ids {
				msgs = append(msgs, &storage.ToDeviceMessage{UserID: user, DeviceID: d, Sender: sender,
					Type: evType, Content: content})
			}
		}
		targets = append(targets, user)
	}
	// Deterministic order: by user, then device.
	slices.SortFunc(msgs, func(a, b *storage.ToDeviceMessage) int {
		if a.UserID != b.UserID {
			return cmp.Compare(a.UserID, b.UserID)
		}
		return cmp.Compare(a.DeviceID, b.DeviceID)
	})
	pos, err := s.store.QueueToDevice(ctx, sender, senderDevice, evType, txnID, msgs)
	if err != nil {
		return err
	}
	if pos > 0 {
		s.notifier.Publish(stream.Change{Stream: stream.ToDevice, Pos: pos, Users: targets})
	}
	return nil
}

// deviceKey names a device of a user.
// maxAcked bounds the devices whose acknowledged to-device position is
// remembered.
const maxAcked = 100_000

type deviceKey struct {
	user   id.UserID
	device id.DeviceID
}

// ToDeviceFor returns a device's messages after since (up to upto, at most
// 100), first deleting those up to since: a client that sends a token has
// received everything before it. The second result is the position reached.
func (s *Service) ToDeviceFor(ctx context.Context, user id.UserID, device id.DeviceID, since, upto int64) ([]map[string]any, int64, error) {
	key := deviceKey{user, device}
	if last, ok := s.acked.Load(key); since > 0 && (!ok || since > last.(int64)) {
		if err := s.store.AckToDevice(ctx, user, device, since); err != nil {
			return nil, 0, err
		}
		if _, had := s.acked.Swap(key, since); !had && s.nAcked.Add(1) > maxAcked {
			s.acked.Range(func(k, _ any) bool {
				if _, ok := s.acked.LoadAndDelete(k); ok {
					s.nAcked.Add(-1)
				}
				return s.nAcked.Load() > maxAcked*3/4
			})
		}
	}
	if upto <= since {
		return nil, upto, nil
	}
	msgs, err := s.store.ToDeviceSince(ctx, user, device, since, upto, 100)
	if err != nil {
		return nil, 0, err
	}
	end := reached(msgs, 100, upto, toDevicePos)
	out := make([]map[string]any, len(msgs))
	for i, m := range msgs {
		out[i] = map[string]any{"sender": m.Sender, "type": m.Type, "content": m.Content}
	}
	return out, end, nil
}

// ToDeviceRange returns the to-device messages of every device in (since,
// upto] whose user wanted accepts (at most limit read), for appservice
// transactions. The second result is the position reached.
func (s *Service) ToDeviceRange(ctx context.Context, since, upto int64, limit int, wanted func(user id.UserID) bool) ([]*storage.ToDeviceMessage, int64, error) {
	if upto <= since {
		return nil, upto, nil
	}
	msgs, err := s.store.ToDeviceRange(ctx, since, upto, limit)
	if err != nil {
		return nil, 0, err
	}
	end := reached(msgs, limit, upto, toDevicePos)
	return slices.DeleteFunc(msgs, func(m *storage.ToDeviceMessage) bool { return !wanted(m.UserID) }), end, nil
}

func toDevicePos(m *storage.ToDeviceMessage) int64 { return m.StreamPos }

// reached is how far a read of at most limit rows of (since, upto] got:
// upto, unless it came back full — then the position of its last row.
func reached[T any](rows []T, limit int, upto int64, pos func(T) int64) int64 {
	if len(rows) == limit && limit > 0 {
		return pos(rows[len(rows)-1])
	}
	return upto
}
