package rooms

import (
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"slices"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/types"
)

// upgradeCopied is the state carried into the replacement room.
var upgradeCopied = []string{"m.room.server_acl", "m.room.encryption", "m.room.name", "m.room.join_rules",
	"m.room.topic", "m.room.guest_access", "m.room.history_visibility", "m.room.avatar"}

// Upgrade replaces a room with a new one of another version (POST
// /rooms/{roomId}/upgrade): the new room gets the old one's important state
// and aliases, the old one a tombstone and power levels that mute it.
func (s *Service) Upgrade(ctx context.Context, roomID id.RoomID, user id.UserID, newVersion id.RoomVersion,
	additionalCreators []id.UserID) (id.RoomID, error) {
	if _, err := s.restricted(ctx, user, false); err != nil {
		return "", err
	}
	if !events.IsSupported(newVersion) {
		return "", errUnsupportedRoomVersion(newVersion)
	}
	oldVersion, err := s.roomVersion(ctx, roomID)
	if err != nil {
		return "", err
	}
	if ok, err := s.mayChangeState(ctx, roomID, user, "m.room.tombstone"); err != nil {
		return "", err
	} else if !ok {
		return "", types.Forbidden("You need permission to send m.room.tombstone to upgrade this room")
	}
	old, err := s.readableState(ctx, roomID, user)
	if err != nil {
		return "", err
	}
	stateContent := map[string]jsontext.Value{}
	var createContent, plContent jsontext.Value
	var oldCreator id.UserID
	for _, e := range old {
		if e.StateKey != "" {
			continue
		}
		if e.Type != "m.room.create" && e.Type != "m.room.power_levels" && !slices.Contains(upgradeCopied, e.Type) {
			continue
		}
		ev, err := s.store.GetEvent(ctx, e.EventID)
		if err != nil {
			return "", err
		}
		content := jsontext.Value(gjson.GetBytes(ev.JSON, "content").Raw)
		switch e.Type {
		case "m.room.create":
			createContent, oldCreator = content, ev.Sender
		case "m.room.power_levels":
			plContent = content
		default:
			stateContent[e.Type] = content
		}
	}
	creation := map[string]jsontext.Value{"predecessor": mustJSON(map[string]any{"room_id": roomID})}
	if t := gjson.GetBytes(createContent, "type"); t.Exists() {
		creation["type"] = jsontext.Value(t.Raw)
	}
	if len(additionalCreators) > 0 {
		creation["additional_creators"] = mustJSON(additionalCreators)
	}
	var initial []StateEvent
	for _, t := range upgradeCopied {
		if c, ok := stateContent[t]; ok {
			initial = append(initial, StateEvent{Type: t, Content: c})
		}
	}
	override := map[string]jsontext.Value{}
	if plContent != nil {
		var pl map[string]jsontext.Value
		if err := json.Unmarshal(plContent, &pl); err == nil {
			override = pl
		}
		if newVersion.PrivilegedRoomCreators() {
			// Creators hold infinite power from v12 and must not be listed.
			var users map[string]jsontext.Value
			_ = json.Unmarshal(override["users"], &users)
			delete(users, string(user))
			for _, c := range additionalCreators {
				delete(users, string(c))
			}
			override["users"] = mustJSON(users)
		} else if oldVersion.PrivilegedRoomCreators() {
			// From v12 down: the old room's creators held infinite power
			// and are not listed, so the new room's creator (the upgrader)
			// and the old creators get the highest level the room uses.
			var users map[string]jsontext.Value
			_ = json.Unmarshal(override["users"], &users)
			if users == nil {
				users = map[string]jsontext.Value{}
			}
			top := mustJSON(maxPowerLevel(plContent))
			creators := append([]id.UserID{user}, additionalCreators...)
			creators = append(creators, oldCreator)
			for _, c := range gjson.GetBytes(createContent, "additional_creators").Array() {
				creators = append(creators, id.UserID(c.Str))
			}
			for _, c := range creators {
				if c != "" {
					users[string(c)] = top
				}
			}
			override["users"] = mustJSON(users)
		}
	}
	aliases, err := s.store.AliasesOfRoom(ctx, roomID)
	if err != nil {
		return "", err
	}
	visibility, err := s.Visibility(ctx, roomID)
	if err != nil {
		return "", err
	}
	newRoom, err := s.CreateRoom(ctx, &CreateRequest{Creator: user, RoomVersion: newVersion, Visibility: visibility,
		CreationContent: creation, InitialState: initial, PowerOverride: override, Preset: "private_chat"})
	if err != nil {
		return "", err
	}
	// The local members' push rules for the room follow it (as in Synapse).
	if s.opts.Pusher != nil {
		members, err := s.store.RoomMembers(ctx, roomID, []string{"join"})
		if err != nil {
			return "", err
		}
		for _, m := range members {
			if m.UserID.Homeserver() != s.opts.ServerName {
				continue
			}
			if err := s.opts.Pusher.CopyRoomRules(ctx, m.UserID, roomID, newRoom); err != nil {
				s.log.Warn("copying push rules to the upgraded room", "user", m.UserID, "room", newRoom, "err", err)
			}
		}
	}
	empty := ""
	if _, err := s.Send(ctx, &SendRequest{RoomID: roomID, Sender: user, Type: "m.room.tombstone", StateKey: &empty,
		Content: mustJSON(map[string]any{"body": "This room has been replaced", "replacement_room": newRoom})}); err != nil {
		return "", err
	}
	// Move the local aliases and the canonical alias.
	for _, a := range aliases {
		if err := s.store.DeleteAlias(ctx, a); err != nil {
			return "", err
		}
		if err := s.CreateAlias(ctx, user, a, newRoom); err != nil {
			return "", err
		}
	}
	if ev, err := s.StateEvent(ctx, roomID, user, "m.room.canonical_alias", ""); err == nil && len(aliases) > 0 {
		if _, err := s.Send(ctx, &SendRequest{RoomID: newRoom, Sender: user, Type: "m.room.canonical_alias",
			StateKey: &empty, Content: ev.Content}); err != nil {
			return "", err
		}
		if _, err := s.Send(ctx, &SendRequest{RoomID: roomID, Sender: user, Type: "m.room.canonical_alias",
			StateKey: &empty, Content: jsontext.Value("{}")}); err != nil {
			return "", err
		}
	}
	if visibility == "public" {
		if err := s.store.SetRoomPublished(ctx, roomID, false); err != nil {
			return "", err
		}
	}
	// Mute the old room: only moderators may talk or invite.
	if plContent != nil {
		var pl map[string]any
		if err := json.Unmarshal(plContent, &pl); err == nil {
			level := 50
			if ud, ok := pl["users_default"].(float64); ok && int(ud)+1 > level {
				level = int(ud) + 1
			}
			pl["events_default"], pl["invite"] = level, level
			if _, err := s.Send(ctx, &SendRequest{RoomID: roomID, Sender: user, Type: "m.room.power_levels",
				StateKey: &empty, Content: mustJSON(pl)}); err != nil {
				s.log.Warn("muting the upgraded room", "room", roomID, "err", err)
			}
		}
	}
	return newRoom, nil
}

// maxPowerLevel is the highest level a power_levels content names (at least 100).
func maxPowerLevel(content jsontext.Value) int64 {
	top := int64(100)
	c := gjson.ParseBytes(content)
	for _, key := range []string{"ban", "kick", "redact", "invite", "state_default", "events_default", "users_default"} {
		top = max(top, c.Get(key).Int())
	}
	for _, group := range []string{"events", "users", "notifications"} {
		c.Get(group).ForEach(func(_, v gjson.Result) bool { top = max(top, v.Int()); return true })
	}
	return top
}

func mustJSON(v any) jsontext.Value {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err) // only called with maps and slices of plain values
	}
	return raw
}
