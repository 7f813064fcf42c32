package rooms

import (
	"context"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"
)

// Summary is what directories and hierarchies show of a room.
type Summary struct {
	RoomID           id.RoomID    `json:"room_id"`
	Name             string       `json:"name,omitempty"`
	Topic            string       `json:"topic,omitempty"`
	CanonicalAlias   id.RoomAlias `json:"canonical_alias,omitempty"`
	AvatarURL        string       `json:"avatar_url,omitempty"`
	NumJoinedMembers int          `json:"num_joined_members"`
	WorldReadable    bool         `json:"world_readable"`
	GuestCanJoin     bool         `json:"guest_can_join"`
	JoinRule         string       `json:"join_rule,omitempty"`
	// AllowedRoomIDs are the rooms whose members may join a restricted room.
	AllowedRoomIDs []id.RoomID `json:"allowed_room_ids,omitempty"`
	RoomType       string      `json:"room_type,omitempty"`
	RoomVersion    string      `json:"-"`
	Encryption     string      `json:"-"`
	// children are the m.space.child state events with a via (by state key).
	children map[string]childEvent
}

// childEvent is an m.space.child event as hierarchies show it.
type childEvent struct {
	content        []byte
	sender         id.UserID
	originServerTS int64
}

// allowedRooms are the rooms whose members the m.room.join_rules content
// lets join a restricted room (its m.room_membership allow entries).
func allowedRooms(joinRules gjson.Result) []id.RoomID {
	var out []id.RoomID
	for _, a := range joinRules.Get("allow").Array() {
		if a.Get("type").Str == "m.room_membership" && a.Get("room_id").Type == gjson.String {
			out = append(out, id.RoomID(a.Get("room_id").Str))
		}
	}
	return out
}

// inAllowedRoom reports whether the user is joined to one of rooms.
func (s *Reader) inAllowedRoom(ctx context.Context, rooms []id.RoomID, user id.UserID) (bool, error) {
	for _, r := range rooms {
		if m, _, err := s.Membership(ctx, r, user); err != nil || m == "join" {
			return m == "join", err
		}
	}
	return false, nil
}

// Summary reads a room's summary from its current state.
func (s *Reader) Summary(ctx context.Context, roomID id.RoomID) (*Summary, error) {
	room, err := s.getRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	entries, err := s.store.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{"m.room.name": true, "m.room.topic": true, "m.room.canonical_alias": true,
		"m.room.avatar": true, "m.room.history_visibility": true, "m.room.guest_access": true,
		"m.room.join_rules": true, "m.room.create": true, "m.room.encryption": true, "m.space.child": true}
	var ids []id.EventID
	for _, e := range entries {
		if want[e.Type] && (e.StateKey == "" || e.Type == "m.space.child") {
			ids = append(ids, e.EventID)
		}
	}
	evs, err := s.store.GetEvents(ctx, ids)
	if err != nil {
		return nil, err
	}
	sum := &Summary{RoomID: roomID, RoomVersion: room.RoomVersion, children: map[string]childEvent{}}
	for _, e := range evs {
		c := gjson.GetBytes(e.JSON, "content")
		switch e.Type {
		case "m.room.name":
			sum.Name = c.Get("name").Str
		case "m.room.topic":
			sum.Topic = c.Get("topic").Str
		case "m.room.canonical_alias":
			sum.CanonicalAlias = id.RoomAlias(c.Get("alias").Str)
		case "m.room.avatar":
			sum.AvatarURL = c.Get("url").Str
		case "m.room.history_visibility":
			sum.WorldReadable = c.Get("history_visibility").Str == "world_readable"
		case "m.room.guest_access":
			sum.GuestCanJoin = c.Get("guest_access").Str == "can_join"
		case "m.room.join_rules":
			sum.JoinRule = c.Get("join_rule").Str
			sum.AllowedRoomIDs = allowedRooms(c)
		case "m.room.create":
			sum.RoomType = c.Get("type").Str
		case "m.room.encryption":
			sum.Encryption = c.Get("algorithm").Str
		case "m.space.child":
			// A redacted link keeps no via in its content: it is no child.
			if e.RedactedBy == "" && c.Get("via").IsArray() && len(c.Get("via").Array()) > 0 {
				sum.children[*e.StateKey] = childEvent{content: []byte(c.Raw), sender: e.Sender,
					originServerTS: e.OriginServerTS}
			}
		}
	}
	members, err := s.store.RoomMembers(ctx, roomID, []string{"join"})
	if err != nil {
		return nil, err
	}
	sum.NumJoinedMembers = len(members)
	return sum, nil
}
