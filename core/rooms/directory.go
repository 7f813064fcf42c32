package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// checkAlias validates an alias for this server.
func (s *Reader) checkAlias(roomAlias id.RoomAlias) error {
	if err := types.CheckRoomAlias(roomAlias); err != nil {
		return err
	}
	// The grammar holds (sigil, localpart, server, length); aliases made
	// here also keep whitespace and "#" out of their localpart.
	alias := roomAlias.String()
	local, server, _ := strings.Cut(alias[1:], ":")
	if strings.ContainsAny(local, " \t\n#") {
		return types.InvalidParam("Invalid room alias %q", alias)
	}
	if server != s.opts.ServerName {
		return types.InvalidParam("Room alias %q is not on this server", alias)
	}
	return nil
}

// checkReserved refuses an alias an appservice claims exclusively to
// anyone but that appservice (400 M_EXCLUSIVE, as for user IDs).
func (s *Reader) checkReserved(alias id.RoomAlias, user id.UserID) error {
	if s.opts.ReservedAlias != nil && s.opts.ReservedAlias(alias, user) {
		return types.NewError(http.StatusBadRequest, types.CodeExclusive, "This alias is reserved by an application service")
	}
	return nil
}

// CreateAlias maps an alias of this server to a room (PUT /directory/room/{alias}).
func (s *Reader) CreateAlias(ctx context.Context, user id.UserID, alias id.RoomAlias, roomID id.RoomID) error {
	if err := s.checkAlias(alias); err != nil {
		return err
	}
	if err := s.checkReserved(alias, user); err != nil {
		return err
	}
	if _, err := s.getRoom(ctx, roomID); err != nil {
		return err
	}
	err := s.store.CreateAlias(ctx, &storage.RoomAlias{Alias: alias, RoomID: roomID, Creator: user})
	if errors.Is(err, storage.ErrConflict) {
		return types.NewError(http.StatusConflict, types.CodeUnknown, "Room alias %s already exists", alias)
	}
	return err
}

// GetAlias resolves an alias (GET /directory/room/{alias}).
func (s *Reader) GetAlias(ctx context.Context, alias id.RoomAlias) (id.RoomID, []string, error) {
	if !strings.HasPrefix(alias.String(), "#") || !strings.Contains(alias.String(), ":") {
		return "", nil, types.InvalidParam("Invalid room alias %q", alias)
	}
	if _, server, _ := strings.Cut(alias.String(), ":"); server != s.opts.ServerName && s.opts.Remote != nil {
		return s.remoteAlias(ctx, alias)
	}
	a, err := s.lookupAlias(ctx, alias)
	if storageNotFound(err) {
		return "", nil, types.NotFound("Room alias %s not found", alias)
	} else if err != nil {
		return "", nil, err
	}
	// The servers in the room, this one first (where a joining server may
	// ask), as a directory query answers.
	servers := []string{s.opts.ServerName}
	joined, err := s.JoinedServers(ctx, a.RoomID)
	if err != nil {
		return "", nil, err
	}
	for _, sv := range joined {
		if sv != s.opts.ServerName {
			servers = append(servers, sv)
		}
	}
	return a.RoomID, servers, nil
}

// DeleteAlias removes an alias: its creator, a server admin, or a room
// member allowed to change the canonical alias may (DELETE
// /directory/room/{alias}). When the room's m.room.canonical_alias names
// it, the event is sent again without it, by the deleting user (when they
// may; as in Synapse, the deletion stands either way).
func (s *Service) DeleteAlias(ctx context.Context, user id.UserID, isAdmin bool, alias id.RoomAlias) error {
	a, err := s.store.GetAlias(ctx, alias)
	if err == nil {
		defer s.dropCanonicalAlias(context.WithoutCancel(ctx), user, a.RoomID, alias)
	}
	return s.deleteAlias(ctx, user, isAdmin, alias)
}

// dropCanonicalAlias removes a deleted alias from the room's canonical alias event.
func (s *Service) dropCanonicalAlias(ctx context.Context, user id.UserID, roomID id.RoomID, alias id.RoomAlias) {
	if _, err := s.store.GetAlias(ctx, alias); err == nil {
		return // not deleted
	}
	content, err := s.currentStateContent(ctx, roomID, "m.room.canonical_alias", "")
	if err != nil || content == nil {
		return
	}
	var c map[string]any
	if json.Unmarshal(content, &c) != nil {
		return
	}
	changed := false
	if c["alias"] == string(alias) {
		delete(c, "alias")
		changed = true
	}
	if alt, ok := c["alt_aliases"].([]any); ok {
		kept := slices.DeleteFunc(slices.Clone(alt), func(v any) bool { return v == string(alias) })
		if len(kept) != len(alt) {
			c["alt_aliases"], changed = kept, true
		}
	}
	if !changed {
		return
	}
	empty := ""
	if _, err := s.Send(ctx, &SendRequest{RoomID: roomID, Sender: user, Type: "m.room.canonical_alias", StateKey: &empty,
		Content: mustJSON(c)}); err != nil {
		s.log.Info("a deleted alias stays in the canonical alias event", "room", roomID, "alias", alias, "err", err)
	}
}

func (s *Reader) deleteAlias(ctx context.Context, user id.UserID, isAdmin bool, alias id.RoomAlias) error {
	a, err := s.store.GetAlias(ctx, alias)
	if storageNotFound(err) {
		return types.NotFound("Room alias %s not found", alias)
	} else if err != nil {
		return err
	}
	if a.Creator != user && !isAdmin {
		ok, err := s.mayChangeState(ctx, a.RoomID, user, "m.room.canonical_alias")
		if err != nil {
			return err
		}
		if !ok {
			return types.Forbidden("You may not delete this alias")
		}
	}
	return s.store.DeleteAlias(ctx, alias)
}

// mayChangeState reports whether a joined user's power level allows a state event type.
func (s *Reader) mayChangeState(ctx context.Context, roomID id.RoomID, user id.UserID, evType string) (bool, error) {
	cur, _, err := s.Membership(ctx, roomID, user)
	if err != nil || cur != "join" {
		return false, err
	}
	rs, err := s.loadRoomState(ctx, roomID)
	if err != nil {
		return false, err
	}
	pl, err := s.powerLevels(ctx, newBatch(rs))
	if err != nil {
		return false, err
	}
	return pl.GetUserLevel(user) >= pl.GetEventLevel(stateType(evType)), nil
}

// RoomAliases lists a room's local aliases (GET /rooms/{id}/aliases); members only, or world_readable.
func (s *Reader) RoomAliases(ctx context.Context, roomID id.RoomID, user id.UserID) ([]id.RoomAlias, error) {
	if _, err := s.readableState(ctx, roomID, user); err != nil {
		return nil, err
	}
	if cur, _, err := s.Membership(ctx, roomID, user); err != nil {
		return nil, err
	} else if cur != "join" {
		if ok, err := s.mayPeek(ctx, roomID); err != nil || !ok {
			return nil, errors.Join(err, errNotMember(roomID))
		}
	}
	aliases, err := s.store.AliasesOfRoom(ctx, roomID)
	if aliases == nil {
		aliases = []id.RoomAlias{}
	}
	return aliases, err
}

// checkCanonicalAlias enforces that m.room.canonical_alias names only
// aliases that point to the room (400 M_BAD_ALIAS otherwise).
func (s *Reader) checkCanonicalAlias(ctx context.Context, roomID id.RoomID, content []byte) error {
	c := gjson.ParseBytes(content)
	var aliases []id.RoomAlias
	if a := c.Get("alias"); a.Exists() {
		if a.Type != gjson.String {
			return types.BadJSON("alias must be a string")
		}
		aliases = append(aliases, id.RoomAlias(a.Str))
	}
	if alt := c.Get("alt_aliases"); alt.Exists() {
		if !alt.IsArray() {
			return types.BadJSON("alt_aliases must be a list")
		}
		for _, a := range alt.Array() {
			if a.Type != gjson.String {
				return types.BadJSON("alt_aliases must be a list of strings")
			}
			aliases = append(aliases, id.RoomAlias(a.Str))
		}
	}
	for _, alias := range aliases {
		if !strings.HasPrefix(alias.String(), "#") || !strings.Contains(alias.String(), ":") {
			return types.InvalidParam("Invalid room alias %q", alias)
		}
		if !strings.HasSuffix(alias.String(), ":"+s.opts.ServerName) {
			continue // remote aliases are checked over federation, later
		}
		a, err := s.store.GetAlias(ctx, alias)
		if (err == nil && a.RoomID != roomID) || storageNotFound(err) {
			return types.NewError(http.StatusBadRequest, "M_BAD_ALIAS", "Room alias %s does not point to this room", alias)
		} else if err != nil {
			return err
		}
	}
	return nil
}

// Visibility is the room directory visibility of a room.
func (s *Reader) Visibility(ctx context.Context, roomID id.RoomID) (string, error) {
	r, err := s.getRoom(ctx, roomID)
	if err != nil {
		return "", err
	}
	if r.Published {
		return "public", nil
	}
	return "private", nil
}

// SetVisibility publishes or hides a room in the directory; room members
// allowed to change the canonical alias, or server admins, may.
func (s *Reader) SetVisibility(ctx context.Context, roomID id.RoomID, user id.UserID, isAdmin bool, visibility string) error {
	if visibility != "public" && visibility != "private" {
		return types.InvalidParam("visibility must be public or private")
	}
	if _, err := s.getRoom(ctx, roomID); err != nil {
		return err
	}
	if !isAdmin {
		ok, err := s.mayChangeState(ctx, roomID, user, "m.room.canonical_alias")
		if err != nil {
			return err
		}
		if !ok {
			return types.Forbidden("You may not change the directory visibility of this room")
		}
	}
	return s.store.SetRoomPublished(ctx, roomID, visibility == "public")
}

// PublicRoomsRequest is GET and POST /publicRooms.
type PublicRoomsRequest struct {
	Limit      int
	Since      string
	SearchTerm string
	RoomTypes  []*string // nil entry: rooms without a type
	// ThirdPartyInstanceID lists one appservice network's rooms instead
	// ("appservice|network"); IncludeAllNetworks adds every network's.
	ThirdPartyInstanceID string
	IncludeAllNetworks   bool
}

// NetworkInstanceID names an appservice network's room list.
func NetworkInstanceID(asID, networkID string) string { return asID + "|" + networkID }

// SetNetworkListed publishes (or withdraws) a room in an appservice
// network's room list (PUT /directory/list/appservice/{networkId}/{roomId}).
func (s *Reader) SetNetworkListed(ctx context.Context, asID, networkID string, roomID id.RoomID, listed bool) error {
	if err := s.requireRoomExists(ctx, roomID); err != nil {
		return err
	}
	return s.store.SetAppServiceRoomListed(ctx, storage.ListedRoom{AppServiceID: asID, NetworkID: networkID,
		RoomID: roomID}, listed)
}

func (s *Reader) requireRoomExists(ctx context.Context, roomID id.RoomID) error {
	if _, err := s.store.GetRoom(ctx, roomID); storageNotFound(err) {
		return types.NotFound("Unknown room %s", roomID)
	} else if err != nil {
		return err
	}
	return nil
}

// publicRoomIDs are the rooms a directory request lists: the server's own
// list, one network's, or the server's and every network's.
func (s *Reader) publicRoomIDs(ctx context.Context, req *PublicRoomsRequest) ([]id.RoomID, error) {
	var ids []id.RoomID
	if req.ThirdPartyInstanceID == "" {
		own, err := s.store.ListPublishedRooms(ctx)
		if err != nil {
			return nil, err
		}
		ids = own
	}
	if req.ThirdPartyInstanceID == "" && !req.IncludeAllNetworks {
		return ids, nil
	}
	listed, err := s.store.AppServiceListedRooms(ctx)
	if err != nil {
		return nil, err
	}
	for _, l := range listed {
		if req.IncludeAllNetworks || NetworkInstanceID(l.AppServiceID, l.NetworkID) == req.ThirdPartyInstanceID {
			ids = append(ids, l.RoomID)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// PublicRooms lists published rooms by joined members, then room ID.
func (s *Reader) PublicRooms(ctx context.Context, req *PublicRoomsRequest) (map[string]any, error) {
	if req.ThirdPartyInstanceID != "" && req.IncludeAllNetworks {
		return nil, types.InvalidParam("third_party_instance_id cannot be used with include_all_networks")
	}
	ids, err := s.publicRoomIDs(ctx, req)
	if err != nil {
		return nil, err
	}
	var all []*Summary
	term := strings.ToLower(req.SearchTerm)
	for _, rid := range ids {
		sum, err := s.Summary(ctx, rid)
		if err != nil {
			return nil, err
		}
		if term != "" && !strings.Contains(strings.ToLower(sum.Name+" "+sum.Topic+" "+string(sum.CanonicalAlias)), term) {
			continue
		}
		if req.RoomTypes != nil && !slices.ContainsFunc(req.RoomTypes, func(t *string) bool {
			return (t == nil && sum.RoomType == "") || (t != nil && *t == sum.RoomType)
		}) {
			continue
		}
		all = append(all, sum)
	}
	slices.SortFunc(all, func(a, b *Summary) int {
		if a.NumJoinedMembers != b.NumJoinedMembers {
			return b.NumJoinedMembers - a.NumJoinedMembers
		}
		return strings.Compare(string(a.RoomID), string(b.RoomID))
	})
	offset := 0
	if req.Since != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(req.Since, "o"))
		if err != nil || n < 0 || !strings.HasPrefix(req.Since, "o") {
			return nil, types.InvalidParam("Invalid since token")
		}
		offset = min(n, len(all))
	}
	limit := req.Limit
	if limit <= 0 {
		limit = 100
	}
	end := min(offset+limit, len(all))
	chunk := all[offset:end]
	if chunk == nil {
		chunk = []*Summary{}
	}
	out := map[string]any{"chunk": chunk, "total_room_count_estimate": len(all)}
	if end < len(all) {
		out["next_batch"] = "o" + strconv.Itoa(end)
	}
	if offset > 0 {
		out["prev_batch"] = "o" + strconv.Itoa(max(0, offset-limit))
	}
	return out, nil
}

// lookupAlias reads an alias, asking the appservices when it is unknown.
func (s *Reader) lookupAlias(ctx context.Context, alias id.RoomAlias) (*storage.RoomAlias, error) {
	a, err := s.store.GetAlias(ctx, alias)
	if storageNotFound(err) && s.opts.QueryAlias != nil && s.opts.QueryAlias(ctx, alias) {
		return s.store.GetAlias(ctx, alias)
	}
	return a, err
}
