package ephemeral

// What other servers' EDUs bring (server-server API): their users'
// presence (m.presence) and to-device messages for this server's devices
// (m.direct_to_device). federation/inbound checks that the origin owns
// the users; the service checks it again.

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"

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
	now := s.opts.Now().UnixMilli()
	row := &storage.Presence{UserID: p.UserID, Presence: p.Presence, StatusMsg: p.StatusMsg,
		LastActiveTS: now - min(max(p.LastActiveAgo, 0), now)}
	pos, err := s.store.SetPresence(ctx, row)
	if err != nil || pos == 0 {
		return err
	}
	s.presence.log.add(pos, p.UserID, row)
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
