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
// (published) rooms, by user ID and display name; never the searcher. Local
// users are found and shown by their global profile, not by a name they
// took in one room; users of other servers, whose profiles this server does
// not keep, by their member event.
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
	seen := map[id.UserID]bool{searcher: true}
	var local []id.UserID
	var remote []id.EventID
	for _, r := range rooms {
		members, err := s.store.RoomMembers(ctx, r, []string{"join"})
		if err != nil {
			return nil, false, err
		}
		for _, m := range members {
			if seen[m.UserID] {
				continue
			}
			seen[m.UserID] = true
			if s.opts.Profiles != nil && m.UserID.Homeserver() == s.opts.ServerName {
				local = append(local, m.UserID)
			} else {
				remote = append(remote, m.EventID)
			}
		}
	}
	matches := func(user id.UserID, name string) bool {
		return term == "" || strings.Contains(strings.ToLower(string(user)), term) ||
			strings.Contains(strings.ToLower(name), term)
	}
	var out []DirectoryUser
	if len(local) > 0 {
		names, avatars, err := s.opts.Profiles.Profiles(ctx, local)
		if err != nil {
			return nil, false, err
		}
		for _, u := range local {
			if matches(u, names[u]) {
				out = append(out, DirectoryUser{UserID: u, DisplayName: names[u], AvatarURL: avatars[u]})
			}
		}
	}
	for chunk := range slices.Chunk(remote, 1000) {
		evs, err := s.store.GetEvents(ctx, chunk)
		if err != nil {
			return nil, false, err
		}
		for _, e := range evs {
			name := gjson.GetBytes(e.JSON, "content.displayname").Str
			if matches(id.UserID(*e.StateKey), name) {
				out = append(out, DirectoryUser{UserID: id.UserID(*e.StateKey), DisplayName: name,
					AvatarURL: gjson.GetBytes(e.JSON, "content.avatar_url").Str})
			}
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
