package rooms

import (
	"context"
	"encoding/json"
	"encoding/json/jsontext"
	"slices"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
)

// HierarchyRoom is one room of a space hierarchy.
type HierarchyRoom struct {
	*Summary
	ChildrenState []map[string]any `json:"children_state"`
}

// HierarchyRequest is GET /v1/rooms/{roomId}/hierarchy.
type HierarchyRequest struct {
	RoomID        id.RoomID
	User          id.UserID
	SuggestedOnly bool
	Limit         int
	MaxDepth      int // -1: unlimited
	From          string
}

// accessible reports whether the user may see a room's summary in a
// hierarchy: members, and anyone for rooms that are world readable or that
// they could join or knock on — restricted rooms included, for members of
// one of the rooms their join rules allow.
func (s *Reader) accessible(ctx context.Context, sum *Summary, user id.UserID) (bool, error) {
	if sum.WorldReadable || sum.JoinRule == "public" || sum.JoinRule == "knock" || sum.JoinRule == "knock_restricted" {
		return true, nil
	}
	cur, _, err := s.Membership(ctx, sum.RoomID, user)
	if err != nil || cur == "join" || cur == "invite" {
		return cur == "join" || cur == "invite", err
	}
	if sum.JoinRule == "restricted" {
		return s.inAllowedRoom(ctx, sum.AllowedRoomIDs, user)
	}
	return false, nil
}

// RoomSummary answers GET /v1/room_summary/{roomIdOrAlias}: a room's
// summary for those who may preview it — anyone (even unauthenticated,
// user "") for rooms that are world readable or that can be joined or
// knocked on, and the room's members (with their membership). Others, and
// rooms this server is not in, get 404.
func (s *Reader) RoomSummary(ctx context.Context, roomIDOrAlias string, user id.UserID) (map[string]any, error) {
	roomID, err := s.ResolveRoom(ctx, roomIDOrAlias)
	if err != nil {
		return nil, err
	}
	if _, err := s.getRoom(ctx, roomID); storageNotFound(err) {
		return nil, types.NotFound("Room not found")
	} else if err != nil {
		return nil, err
	}
	sum, err := s.Summary(ctx, roomID)
	if err != nil {
		return nil, err
	}
	open := sum.WorldReadable || sum.JoinRule == "public" || sum.JoinRule == "knock" || sum.JoinRule == "knock_restricted"
	membership := ""
	if user != "" {
		if membership, _, err = s.Membership(ctx, roomID, user); err != nil {
			return nil, err
		}
	}
	if !open && membership != "join" && membership != "invite" && membership != "knock" {
		return nil, types.NotFound("Room not found")
	}
	raw, err := json.Marshal(sum)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	out["room_version"] = sum.RoomVersion
	if sum.Encryption != "" {
		out["encryption"] = sum.Encryption
	}
	if membership != "" {
		out["membership"] = membership
	}
	return out, nil
}

// Hierarchy walks a space's m.space.child events breadth first. Only rooms on
// this server are walked; remote children come with federation.
func (s *Reader) Hierarchy(ctx context.Context, req *HierarchyRequest) ([]*HierarchyRoom, string, error) {
	root, err := s.Summary(ctx, req.RoomID)
	if err != nil {
		if me, ok := types.AsError(err); ok && me.Code == types.CodeNotFound {
			return nil, "", errNotMember(req.RoomID)
		}
		return nil, "", err
	}
	if ok, err := s.accessible(ctx, root, req.User); err != nil {
		return nil, "", err
	} else if !ok {
		return nil, "", errNotMember(req.RoomID)
	}
	skip := 0
	if req.From != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(req.From, "h"))
		if err != nil || n < 0 || !strings.HasPrefix(req.From, "h") {
			return nil, "", types.InvalidParam("Invalid from token")
		}
		skip = n
	}
	limit := req.Limit
	if limit <= 0 {
		limit = 50
	}
	type item struct {
		roomID id.RoomID
		depth  int
	}
	queue := []item{{req.RoomID, 0}}
	seen := map[id.RoomID]bool{req.RoomID: true}
	var out []*HierarchyRoom
	index := 0
	for len(queue) > 0 && len(out) < limit {
		it := queue[0]
		queue = queue[1:]
		sum, err := s.Summary(ctx, it.roomID)
		if err != nil {
			if me, ok := types.AsError(err); ok && me.Code == types.CodeNotFound {
				continue // a child this server does not know
			}
			return nil, "", err
		}
		if ok, err := s.accessible(ctx, sum, req.User); err != nil {
			return nil, "", err
		} else if !ok {
			continue
		}
		hr := &HierarchyRoom{Summary: sum, ChildrenState: []map[string]any{}}
		keys := make([]string, 0, len(sum.children))
		for k := range sum.children {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, child := range keys {
			ce := sum.children[child]
			if req.SuggestedOnly && !gjson.GetBytes(ce.content, "suggested").Bool() {
				continue
			}
			// A StrippedChildStateEvent: stripped state plus origin_server_ts.
			hr.ChildrenState = append(hr.ChildrenState, map[string]any{"type": "m.space.child", "state_key": child,
				"content": jsontext.Value(ce.content), "sender": ce.sender, "origin_server_ts": ce.originServerTS})
			if (req.MaxDepth < 0 || it.depth < req.MaxDepth) && !seen[id.RoomID(child)] {
				seen[id.RoomID(child)] = true
				queue = append(queue, item{id.RoomID(child), it.depth + 1})
			}
		}
		if index >= skip {
			out = append(out, hr)
		}
		index++
	}
	next := ""
	if len(queue) > 0 {
		next = "h" + strconv.Itoa(index)
	}
	return out, next, nil
}
