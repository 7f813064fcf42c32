package rooms

import (
	"context"
	"slices"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"
)

// DirectoryUser is a result of the user directory.
type DirectoryUser struct {
	UserID      id.UserID `json:"user_id"`
	DisplayName string    `json:"display_name,omitempty"`
	AvatarURL   string    `json:"avatar_url,omitempty"`
}

// SearchUsers searches the user directory as Synapse does by default: the
// users who share a room with the searcher and the members of public
// (published) rooms, by user ID and display name.
func (s *Reader) SearchUsers(ctx context.Context, searcher id.UserID, term string, limit int) ([]DirectoryUser, bool, error) {
	if limit <= 0 {
		limit = 10
	}
	limit = min(limit, 100)
	term = strings.ToLower(strings.TrimSpace(term))
	rooms, err := s.JoinedRooms(ctx, searcher)
	if err != nil {
		return nil, false, err
	}
	public, err := s.store.ListPublishedRooms(ctx)
	if err != nil {
		return nil, false, err
	}
	rooms = append(rooms, public...)
	slices.Sort(rooms)
	rooms = slices.Compact(rooms)
	seen := map[id.UserID]bool{}
	var out []DirectoryUser
	for _, r := range rooms {
		members, err := s.store.RoomMembers(ctx, r, []string{"join"})
		if err != nil {
			return nil, false, err
		}
		var ids []id.EventID
		for _, m := range members {
			if !seen[m.UserID] {
				ids = append(ids, m.EventID)
				seen[m.UserID] = true
			}
		}
		evs, err := s.store.GetEvents(ctx, ids)
		if err != nil {
			return nil, false, err
		}
		for _, e := range evs {
			name := gjson.GetBytes(e.JSON, "content.displayname").Str
			if term != "" && !strings.Contains(strings.ToLower(*e.StateKey), term) && !strings.Contains(strings.ToLower(name), term) {
				continue
			}
			out = append(out, DirectoryUser{UserID: id.UserID(*e.StateKey), DisplayName: name,
				AvatarURL: gjson.GetBytes(e.JSON, "content.avatar_url").Str})
		}
	}
	slices.SortFunc(out, func(a, b DirectoryUser) int { return strings.Compare(string(a.UserID), string(b.UserID)) })
	limited := len(out) > limit
	if limited {
		out = out[:limit]
	}
	if out == nil {
		out = []DirectoryUser{}
	}
	return out, limited, nil
}
