package rooms

import (
	"context"
	"crypto/rand"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// StateEvent is an entry of createRoom's initial_state.
type StateEvent struct {
	Type     string         `json:"type"`
	StateKey string         `json:"state_key"`
	Content  jsontext.Value `json:"content"`
}

// CreateRequest is a parsed POST /createRoom body.
type CreateRequest struct {
	Creator         id.UserID
	Visibility      string                    `json:"visibility"`
	RoomAliasName   string                    `json:"room_alias_name"`
	Name            *string                   `json:"name"`
	Topic           *string                   `json:"topic"`
	Invite          []id.UserID               `json:"invite"`
	CreationContent map[string]jsontext.Value `json:"creation_content"`
	InitialState    []StateEvent              `json:"initial_state"`
	Preset          string                    `json:"preset"`
	IsDirect        bool                      `json:"is_direct"`
	RoomVersion     id.RoomVersion            `json:"room_version"`
	PowerOverride   map[string]jsontext.Value `json:"power_level_content_override"`
	// Timestamp overrides origin_server_ts of every event (appservices); 0 means now.
	Timestamp int64 `json:"-"`
}

// ErrUnsupportedRoomVersion is createRoom's answer for a version it cannot make.
func errUnsupportedRoomVersion(v id.RoomVersion) error {
	return types.NewError(http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION", "Room version %q is not supported", v)
}

// CreateRoom makes a room with the events createRoom describes, in the
// order the spec gives, committed in one transaction.
func (s *Service) CreateRoom(ctx context.Context, req *CreateRequest) (id.RoomID, error) {
	if _, err := s.restricted(ctx, req.Creator, false); err != nil {
		return "", err
	}
	rv := req.RoomVersion
	if rv == "" {
		rv = s.opts.DefaultVersion
	}
	if !events.IsSupported(rv) {
		return "", errUnsupportedRoomVersion(rv)
	}
	preset := req.Preset
	switch preset {
	case "":
		preset = "private_chat"
		if req.Visibility == "public" {
			preset = "public_chat"
		}
	case "private_chat", "public_chat", "trusted_private_chat":
	default:
		return "", types.InvalidParam("Unknown preset %q", req.Preset)
	}
	switch req.Visibility {
	case "", "private", "public":
	default:
		return "", types.InvalidParam("visibility must be public or private")
	}
	var alias id.RoomAlias
	if req.RoomAliasName != "" {
		if strings.ContainsAny(req.RoomAliasName, ":# \t\n") {
			return "", types.InvalidParam("room_alias_name must be the localpart of an alias")
		}
		alias = id.RoomAlias("#" + req.RoomAliasName + ":" + s.opts.ServerName)
		if err := types.CheckRoomAlias(alias); err != nil {
			return "", err
		}
		if err := s.checkReserved(alias, req.Creator); err != nil {
			return "", err
		}
		if _, err := s.store.GetAlias(ctx, alias); err == nil {
			return "", types.NewError(http.StatusBadRequest, "M_ROOM_IN_USE", "Room alias already taken")
		} else if !storageNotFound(err) {
			return "", err
		}
	}
	for _, u := range req.Invite {
		if err := types.CheckUserID(u, s.opts.ServerName); err != nil {
			return "", err
		}
		// An invitee who blocks the creator's invites refuses the whole
		// request before anything is made: the client learns of the 403
		// and no room it cannot name is left behind.
		if err := s.checkInvite(ctx, req.Creator, u); err != nil {
			return "", err
		}
	}
	for _, st := range req.InitialState {
		if err := checkType(st.Type, &st.StateKey); err != nil {
			return "", err
		}
		if st.Type == "m.room.create" || st.Type == "m.room.member" {
			return "", types.BadJSON("initial_state cannot hold %s events", st.Type)
		}
		if err := checkContent(st.Content); err != nil {
			return "", err
		}
	}
	protos, err := s.createProtos(ctx, req, rv, preset, alias)
	if err != nil {
		return "", err
	}
	rs := &roomState{version: rv, state: map[pdu.StateKey]id.EventID{}}
	if !rv.RoomIDIsCreateEventID() {
		rs.roomID = id.RoomID("!" + randomLocal(18) + ":" + s.opts.ServerName)
	}
	b := newBatch(rs)
	var writes []*storage.EventWrite
	var built []*pdu.PDU
	for _, p := range protos {
		ev, wr, err := s.prepare(ctx, b, p)
		if err != nil {
			var me *types.Error
			if errors.As(err, &me) && p.Type == "m.room.power_levels" {
				return "", types.BadJSON("power_level_content_override is not valid: %s", me.Message)
			}
			if errors.As(err, &me) && p.Type == "m.room.create" {
				return "", types.BadJSON("creation_content is not valid: %s", me.Message)
			}
			return "", err
		}
		writes = append(writes, wr)
		built = append(built, ev)
	}
	roomID := b.roomID
	err = s.store.WithTx(ctx, func(ctx context.Context) error {
		if err := s.store.CreateRoomRecord(ctx, &storage.Room{RoomID: roomID, RoomVersion: string(rv),
			Creator: req.Creator, CreatedAt: s.nowMS(), Published: req.Visibility == "public"}); err != nil {
			return err
		}
		if alias != "" {
			if err := s.store.CreateAlias(ctx, &storage.RoomAlias{Alias: alias, RoomID: roomID,
				Creator: req.Creator}); err != nil {
				if errors.Is(err, storage.ErrConflict) {
					return types.NewError(http.StatusBadRequest, "M_ROOM_IN_USE", "Room alias already taken")
				}
				return err
			}
		}
		return s.store.PersistEvents(ctx, writes)
	})
	if err != nil {
		return "", err
	}
	b.commit()
	for _, ev := range built {
		s.cache.put(ev.InternalMeta.EventID, ev)
	}
	s.adopt(roomID, rs)
	s.persisted(roomID, writes)
	return roomID, nil
}

func randomLocal(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func strPtr(s string) *string { return &s }

// createProtos lists createRoom's events in the spec's order.
func (s *Service) createProtos(ctx context.Context, req *CreateRequest, rv id.RoomVersion, preset string,
	alias id.RoomAlias) ([]*events.Proto, error) {
	creator := req.Creator
	ts := req.Timestamp
	if ts == 0 && rv.RoomIDIsCreateEventID() {
		// From v12 the room ID is the create event's hash: two rooms made by
		// one user in the same millisecond would get the same ID, so every
		// create event of this process gets a timestamp of its own.
		ts = s.uniqueCreateTS()
	}
	state := func(t, key string, content any) *events.Proto {
		return &events.Proto{Type: t, StateKey: strPtr(key), Sender: creator, Content: content, OriginServerTS: ts}
	}
	createContent := map[string]any{}
	for k, v := range req.CreationContent {
		createContent[k] = v
	}
	createContent["room_version"] = rv
	if rv.CreatorInContent() {
		createContent["creator"] = creator
	} else {
		delete(createContent, "creator")
	}
	var creators []id.UserID
	creators = append(creators, creator)
	if rv.PrivilegedRoomCreators() {
		if raw, ok := req.CreationContent["additional_creators"]; ok {
			var extra []id.UserID
			if err := json.Unmarshal(raw, &extra); err != nil {
				return nil, types.BadJSON("additional_creators must be a list of user IDs")
			}
			for _, u := range extra {
				if err := types.CheckUserID(u, s.opts.ServerName); err != nil {
					return nil, types.BadJSON("additional_creators holds an invalid user ID %q", u)
				}
			}
			creators = append(creators, extra...)
		}
		if preset == "trusted_private_chat" {
			// The invitees are the creator's peers: from v12, where
			// creators hold power no level gives, they are creators too
			// (as Synapse does).
			for _, u := range req.Invite {
				if !containsUser(creators, u) && u != creator {
					creators = append(creators, u)
				}
			}
			if len(creators) > 1 {
				createContent["additional_creators"] = creators[1:]
			}
		}
	}
	protos := []*events.Proto{state("m.room.create", "", createContent)}

	member, err := s.memberContent(ctx, creator, "join")
	if err != nil {
		return nil, err
	}
	protos = append(protos, state("m.room.member", string(creator), member))

	users := map[string]any{}
	if !rv.PrivilegedRoomCreators() {
		users[string(creator)] = 100
	}
	if preset == "trusted_private_chat" {
		for _, u := range req.Invite {
			if !rv.PrivilegedRoomCreators() || !containsUser(creators, u) {
				users[string(u)] = 100
			}
		}
	}
	pl := map[string]any{
		"users": users, "users_default": 0, "events_default": 0, "state_default": 50,
		"ban": 50, "kick": 50, "redact": 50, "invite": 0,
		"events": map[string]any{
			"m.room.name": 50, "m.room.power_levels": 100, "m.room.history_visibility": 100,
			"m.room.canonical_alias": 50, "m.room.avatar": 50, "m.room.tombstone": 100,
			"m.room.server_acl": 100, "m.room.encryption": 100,
		},
		"notifications": map[string]any{"room": 50},
	}
	if rv.PrivilegedRoomCreators() {
		// Room v12+ (spec v1.16, MSC4289): upgrading is for the creators
		// unless they say otherwise, "explicitly higher than" the admins'
		// state powers: 150 where admins have 100.
		pl["events"].(map[string]any)["m.room.tombstone"] = 150
	}
	for k, v := range req.PowerOverride {
		pl[k] = v
	}
	protos = append(protos, state("m.room.power_levels", "", pl))
	if alias != "" {
		protos = append(protos, state("m.room.canonical_alias", "", map[string]any{"alias": alias}))
	}
	given := map[pdu.StateKey]bool{}
	for _, st := range req.InitialState {
		given[pdu.StateKey{Type: st.Type, StateKey: st.StateKey}] = true
	}
	presetState := func(t string, content any) {
		if !given[pdu.StateKey{Type: t}] {
			protos = append(protos, state(t, "", content))
		}
	}
	joinRule := "invite"
	guest := "can_join"
	if preset == "public_chat" {
		joinRule, guest = "public", "forbidden"
	}
	presetState("m.room.join_rules", map[string]any{"join_rule": joinRule})
	presetState("m.room.history_visibility", map[string]any{"history_visibility": "shared"})
	presetState("m.room.guest_access", map[string]any{"guest_access": guest})
	for _, st := range req.InitialState {
		if (st.Type == "m.room.name" && req.Name != nil) || (st.Type == "m.room.topic" && req.Topic != nil) {
			continue // name and topic keys win over initial_state
		}
		protos = append(protos, state(st.Type, st.StateKey, st.Content))
	}
	if req.Name != nil {
		protos = append(protos, state("m.room.name", "", map[string]any{"name": *req.Name}))
	}
	if req.Topic != nil {
		// The plain topic and its rich form (m.topic, spec v1.15), as the
		// spec's createRoom describes the event it makes.
		protos = append(protos, state("m.room.topic", "", map[string]any{"topic": *req.Topic,
			"m.topic": map[string]any{"m.text": []map[string]any{{"mimetype": "text/plain", "body": *req.Topic}}}}))
	}
	for _, u := range req.Invite {
		if u == creator {
			continue
		}
		content, err := s.memberContent(ctx, u, "invite")
		if err != nil {
			return nil, err
		}
		if req.IsDirect {
			content["is_direct"] = true
		}
		protos = append(protos, state("m.room.member", string(u), content))
	}
	return protos, nil
}

func containsUser(list []id.UserID, u id.UserID) bool {
	for _, x := range list {
		if x == u {
			return true
		}
	}
	return false
}

// memberContent is the content of a membership event for a user, with their
// display name and avatar when they are local and have them.
func (s *Service) memberContent(ctx context.Context, user id.UserID, membership string) (map[string]any, error) {
	content := map[string]any{"membership": membership}
	if s.opts.Profiles == nil || user.Homeserver() != s.opts.ServerName {
		return content, nil
	}
	name, avatar, err := s.opts.Profiles.Profile(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("profile of %s: %w", user, err)
	}
	if name != "" {
		content["displayname"] = name
	}
	if avatar != "" {
		content["avatar_url"] = avatar
	}
	return content, nil
}

// uniqueCreateTS is now in milliseconds, or one more than the last value
// it gave.
func (s *Service) uniqueCreateTS() int64 {
	for {
		last := s.lastCreateTS.Load()
		ts := max(s.nowMS(), last+1)
		if s.lastCreateTS.CompareAndSwap(last, ts) {
			return ts
		}
	}
}
