package ephemeral

// What other servers' EDUs bring (server-server API): their users'
// presence (m.presence) and to-device messages for this server's devices
// (m.direct_to_device). federation/inbound checks that the origin owns
// the users; the service checks it again.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// maxRemoteToDevice bounds the messages one m.direct_to_device delivers
// (its "*" expanded).
const maxRemoteToDevice = 10_000

// remoteOwned fails unless user belongs to origin, which is not this server.
func (s *Service) remoteOwned(origin string, user id.UserID) error {
	_, server, err := user.Parse()
	if err != nil || server != origin || server == s.opts.ServerName {
		return types.Forbidden("%s is not a user of %s", user, origin)
	}
	return nil
}

// RemotePresence is one entry of an m.presence EDU's push list.
type RemotePresence struct {
	UserID        id.UserID `json:"user_id"`
	Presence      string    `json:"presence"`
	StatusMsg     string    `json:"status_msg,omitempty"`
	LastActiveAgo int64     `json:"last_active_ago"`
}

// SetRemotePresence stores the presence of a user of origin, for the local
// users who share a room with them (PresenceSince shows it only to them).
// A user in no room here is ignored: nobody here may see them.
func (s *Service) SetRemotePresence(ctx context.Context, origin string, p *RemotePresence) error {
	if err := s.remoteOwned(origin, p.UserID); err != nil {
		return err
	}
	if !slices.Contains(presenceStates, p.Presence) {
		return types.InvalidParam("presence must be online, offline or unavailable")
	}
	if len(p.StatusMsg) > 1024 || !types.ValidText(p.StatusMsg) {
		return types.InvalidParam("status_msg is too long")
	}
	if !s.opts.PresenceEnabled {
		return nil
	}
	joined, err := s.rooms.JoinedRooms(ctx, p.UserID)
	if err != nil || len(joined) == 0 {
		return err
	}
	l := s.remote.lock(p.UserID)
	l.Lock()
	defer l.Unlock()
	at := s.opts.Now()
	now := at.UnixMilli()
	row := &storage.Presence{UserID: p.UserID, Presence: p.Presence, StatusMsg: p.StatusMsg,
		LastActiveTS: now - min(max(p.LastActiveAgo, 0), now)}
	pos, err := s.store.SetPresence(ctx, row)
	if err != nil {
		return err
	}
	s.remote.heard(p.UserID, p.Presence, at)
	if pos == 0 {
		return nil // as stored already: heard of all the same
	}
	s.presence.log.add(pos, p.UserID, row, joined)
	s.notifier.Publish(stream.Change{Stream: stream.Presence, Pos: pos, Users: []id.UserID{p.UserID}, Rooms: joined})
	return nil
}

// DeliverRemoteToDevice queues an m.direct_to_device EDU's messages for
// this server's devices ("*": each of the user's devices); messages for
// other servers' users are dropped. messageID makes it idempotent: a
// resent EDU queues nothing.
func (s *Service) DeliverRemoteToDevice(ctx context.Context, origin string, sender id.UserID, evType, messageID string,
	messages map[id.UserID]map[string]json.RawMessage) error {
	if err := s.remoteOwned(origin, sender); err != nil {
		return err
	}
	if evType == "" || len(evType) > 255 || !types.ValidText(evType) {
		return types.InvalidParam("Event types are 1 to 255 bytes")
	}
	if messageID == "" || len(messageID) > 255 || !types.ValidText(messageID) {
		return types.InvalidParam("message_id must be 1 to 255 bytes")
	}
	var msgs []*storage.ToDeviceMessage
	var targets []id.UserID
	for user, devices := range messages {
		if _, server, err := user.Parse(); err != nil || server != s.opts.ServerName {
			continue
		}
		var all []id.DeviceID
		for device, content := range devices {
			if len(content) == 0 || content[0] != '{' {
				continue
			}
			ids := []id.DeviceID{id.DeviceID(device)}
			if device == "*" {
				if all == nil {
					devs, err := s.store.ListDevices(ctx, user)
					if err != nil {
						return err
					}
					all = []id.DeviceID{}
					for _, d := range devs {
						all = append(all, d.DeviceID)
					}
				}
				ids = all
			} else if !types.ValidText(device) || len(device) > 255 {
				continue
			}
			for _, d := range ids {
				msgs = append(msgs, &storage.ToDeviceMessage{UserID: user, DeviceID: d, Sender: sender,
					Type: evType, Content: content})
			}
		}
		targets = append(targets, user)
		if len(msgs) > maxRemoteToDevice {
			return types.TooLarge("at most %d to-device messages per EDU", maxRemoteToDevice)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	slices.SortFunc(msgs, func(a, b *storage.ToDeviceMessage) int {
		if a.UserID != b.UserID {
			return cmp.Compare(a.UserID, b.UserID)
		}
		return cmp.Compare(a.DeviceID, b.DeviceID)
	})
	// The sender's device is not known over federation: message IDs are
	// the sender's (their server makes them unique).
	pos, err := s.store.QueueToDevice(ctx, sender, "", evType, messageID, msgs)
	if err != nil {
		return err
	}
	if pos > 0 {
		s.notifier.Publish(stream.Change{Stream: stream.ToDevice, Pos: pos, Users: targets})
	}
	return nil
}

// remotePresence remembers when each other server's user shown online or
// unavailable was last heard of (an m.presence naming them), so that they
// are shown offline once their server has said nothing for
// Options.RemoteOfflineAfter (as Synapse's FEDERATION_TIMEOUT: a server
// that went away, or forgets to say its users left, leaves nobody online
// forever; a live server sends its online users' presence again at
// intervals, federation/outbound's pings). Per process, as activity is:
// with several processes, the one taking other servers' transactions
// keeps the times; users stored as not offline when a process starts get
// the timeout from then.
type remotePresence struct {
	mu sync.Mutex
	at map[id.UserID]time.Time
	// locks serialise a user's update with the sweep marking them
	// offline (striped by user).
	locks [64]sync.Mutex
}

func (r *remotePresence) lock(user id.UserID) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(user))
	return &r.locks[h.Sum32()%uint32(len(r.locks))]
}

// heard records news of user from their server (offline: nothing to time
// out).
func (r *remotePresence) heard(user id.UserID, presence string, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.at == nil {
		r.at = map[id.UserID]time.Time{}
	}
	if presence == presenceOffline {
		delete(r.at, user)
	} else {
		r.at[user] = at
	}
}

// expired lists the users not heard of since before.
func (r *remotePresence) expired(before time.Time) []id.UserID {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []id.UserID
	for u, at := range r.at {
		if at.Before(before) {
			out = append(out, u)
		}
	}
	return out
}

// sweepRemote shows offline the other servers' users not heard of for
// Options.RemoteOfflineAfter, keeping their status message and last
// activity.
func (s *Service) sweepRemote(ctx context.Context) {
	now := s.opts.Now()
	for _, user := range s.remote.expired(now.Add(-s.opts.RemoteOfflineAfter)) {
		if err := s.remoteTimedOut(ctx, user, now); err != nil {
			s.opts.Logger.Warn("presence: marking another server's user offline", "user", user, "err", err)
		}
		if ctx.Err() != nil {
			return
		}
	}
}

func (s *Service) remoteTimedOut(ctx context.Context, user id.UserID, now time.Time) error {
	l := s.remote.lock(user)
	l.Lock()
	defer l.Unlock()
	s.remote.mu.Lock()
	at, ok := s.remote.at[user]
	s.remote.mu.Unlock()
	if !ok || now.Sub(at) < s.opts.RemoteOfflineAfter {
		return nil // heard of meanwhile
	}
	cur, err := s.store.GetPresence(ctx, user)
	if errors.Is(err, storage.ErrNotFound) {
		s.remote.heard(user, presenceOffline, now)
		return nil
	} else if err != nil {
		return err
	}
	if cur.Presence != presenceOffline {
		row := &storage.Presence{UserID: user, Presence: presenceOffline, StatusMsg: cur.StatusMsg, LastActiveTS: cur.LastActiveTS}
		pos, err := s.store.SetPresence(ctx, row)
		if err != nil {
			return err
		}
		if pos > 0 {
			joined, err := s.rooms.JoinedRooms(ctx, user)
			if err != nil {
				s.opts.Logger.Warn("presence: listing the rooms to notify", "user", user, "err", err)
			}
			s.presence.log.add(pos, user, row, joined)
			s.notifier.Publish(stream.Change{Stream: stream.Presence, Pos: pos, Users: []id.UserID{user}, Rooms: joined})
		}
	}
	s.remote.heard(user, presenceOffline, now)
	return nil
}
