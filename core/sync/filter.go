package sync

import (
	"encoding/json/v2"
	"errors"
	"slices"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/canonicaljson"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/types"
)

// EventTypeFilter filters non-room events (account data, presence).
type EventTypeFilter struct {
	Limit      int      `json:"limit,omitempty"`
	Types      []string `json:"types,omitempty"`
	NotTypes   []string `json:"not_types,omitempty"`
	Senders    []string `json:"senders,omitempty"`
	NotSenders []string `json:"not_senders,omitempty"`
}

// AllowsSender reports whether an event of the sender passes senders and
// not_senders.
func (f *EventTypeFilter) AllowsSender(sender string) bool {
	if f == nil {
		return true
	}
	if f.Senders != nil && !slices.Contains(f.Senders, sender) {
		return false
	}
	return !slices.Contains(f.NotSenders, sender)
}

// Allows reports whether an event type passes.
func (f *EventTypeFilter) Allows(t string) bool {
	if f == nil {
		return true
	}
	match := func(p string) bool {
		if pre, ok := strings.CutSuffix(p, "*"); ok {
			return strings.HasPrefix(t, pre)
		}
		return p == t
	}
	if f.Types != nil && !slices.ContainsFunc(f.Types, match) {
		return false
	}
	return !slices.ContainsFunc(f.NotTypes, match)
}

// StateFilter is the room state filter.
type StateFilter struct {
	rooms.EventFilter
	IncludeRedundantMembers bool `json:"include_redundant_members,omitempty"`
}

// RoomFilter is the "room" part of a filter.
type RoomFilter struct {
	Rooms        []string           `json:"rooms,omitempty"`
	NotRooms     []string           `json:"not_rooms,omitempty"`
	IncludeLeave bool               `json:"include_leave,omitempty"`
	Timeline     *rooms.EventFilter `json:"timeline,omitempty"`
	State        *StateFilter       `json:"state,omitempty"`
	Ephemeral    *rooms.EventFilter `json:"ephemeral,omitempty"`
	AccountData  *rooms.EventFilter `json:"account_data,omitempty"`
}

// Filter is a sync filter (POST /user/{userId}/filter).
type Filter struct {
	EventFields []string         `json:"event_fields,omitempty"`
	EventFormat string           `json:"event_format,omitempty"`
	Presence    *EventTypeFilter `json:"presence,omitempty"`
	AccountData *EventTypeFilter `json:"account_data,omitempty"`
	Room        *RoomFilter      `json:"room,omitempty"`
}

// ParseFilter decodes and checks a filter definition: a stored one, or one
// inline in /sync's query, which no body check has seen. It must pass
// canonicaljson.Validate (else M_NOT_JSON or M_BAD_JSON) and have a
// filter's shape (else M_BAD_JSON).
func ParseFilter(raw []byte) (*Filter, error) {
	if err := canonicaljson.Validate(raw); err != nil {
		var je *canonicaljson.Error
		if errors.As(err, &je) && je.Kind == canonicaljson.Invalid {
			return nil, types.BadJSON("Invalid filter: %v", err)
		}
		return nil, types.NotJSON("Filter is not JSON: %v", err)
	}
	var f Filter
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, types.BadJSON("Invalid filter: %v", err)
	}
	if err := checkFilterIDs(raw); err != nil {
		return nil, err
	}
	switch f.EventFormat {
	case "", "client", "federation":
	default:
		return nil, types.BadJSON("event_format must be client or federation")
	}
	if t := f.timeline(); t != nil && t.Limit < 0 {
		return nil, types.BadJSON("room.timeline.limit must not be negative")
	}
	return &f, nil
}

// wantsRoom applies rooms / not_rooms.
func (f *Filter) wantsRoom(roomID string) bool {
	if f == nil || f.Room == nil {
		return true
	}
	if f.Room.Rooms != nil && !slices.Contains(f.Room.Rooms, roomID) {
		return false
	}
	return !slices.Contains(f.Room.NotRooms, roomID)
}

func (f *Filter) timeline() *rooms.EventFilter {
	if f == nil || f.Room == nil {
		return nil
	}
	return f.Room.Timeline
}

func (f *Filter) lazyMembers() bool {
	return f != nil && f.Room != nil && f.Room.State != nil && f.Room.State.LazyLoadMembers
}

func (f *Filter) includeLeave() bool { return f != nil && f.Room != nil && f.Room.IncludeLeave }

func (f *Filter) accountData() *EventTypeFilter {
	if f == nil {
		return nil
	}
	return f.AccountData
}

func (f *Filter) roomAccountData() *rooms.EventFilter {
	if f == nil || f.Room == nil {
		return nil
	}
	return f.Room.AccountData
}

// presence is the presence filter; wanted is false when it drops presence
// altogether (its types exclude m.presence, or its senders are an empty
// list), so that /sync does no presence work at all.
func (f *Filter) presence() (pf *EventTypeFilter, wanted bool) {
	if f == nil || f.Presence == nil {
		return nil, true
	}
	p := f.Presence
	if !p.Allows("m.presence") || (p.Senders != nil && len(p.Senders) == 0) {
		return nil, false
	}
	return p, true
}

// ephemeralAllows applies room.ephemeral's types to m.typing and m.receipt.
func (f *Filter) ephemeralAllows(evType string) bool {
	if f == nil || f.Room == nil || f.Room.Ephemeral == nil {
		return true
	}
	return typeAllowed(f.Room.Ephemeral, evType)
}

// filterIDLists are the lists of IDs of a filter part: the spec's
// EventFilter has senders and not_senders, RoomEventFilter and RoomFilter
// rooms and not_rooms.
type filterIDLists struct {
	Rooms      []string `json:"rooms"`
	NotRooms   []string `json:"not_rooms"`
	Senders    []string `json:"senders"`
	NotSenders []string `json:"not_senders"`
}

// checkFilterIDs refuses, with M_BAD_JSON as Synapse's filter schema does,
// a filter whose room and user ID lists are not lists of room and user IDs:
// such a filter would silently match nothing.
func checkFilterIDs(raw []byte) error {
	var f struct {
		Presence    *filterIDLists `json:"presence"`
		AccountData *filterIDLists `json:"account_data"`
		Room        *struct {
			filterIDLists
			Timeline    *filterIDLists `json:"timeline"`
			State       *filterIDLists `json:"state"`
			Ephemeral   *filterIDLists `json:"ephemeral"`
			AccountData *filterIDLists `json:"account_data"`
		} `json:"room"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return types.BadJSON("Invalid filter: %v", err)
	}
	parts := map[string]*filterIDLists{"presence": f.Presence, "account_data": f.AccountData}
	if f.Room != nil {
		parts["room"] = &f.Room.filterIDLists
		parts["room.timeline"], parts["room.state"] = f.Room.Timeline, f.Room.State
		parts["room.ephemeral"], parts["room.account_data"] = f.Room.Ephemeral, f.Room.AccountData
	}
	for name, p := range parts {
		if p == nil {
			continue
		}
		for _, r := range append(slices.Clip(p.Rooms), p.NotRooms...) {
			if types.CheckRoomID(id.RoomID(r)) != nil {
				return types.BadJSON("Invalid filter: %s names %q, which is not a room ID", name, r)
			}
		}
		for _, u := range append(slices.Clip(p.Senders), p.NotSenders...) {
			// Any server's user: the localpart rules of this server's own
			// users are for registration, not for naming.
			if types.CheckUserID(id.UserID(u), "") != nil {
				return types.BadJSON("Invalid filter: %s names %q, which is not a user ID", name, u)
			}
		}
	}
	return nil
}
