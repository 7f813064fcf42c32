package rooms

import (
	"cmp"
	"context"
	"slices"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// AppServiceInterest says which appservices care about users and rooms
// (appservice/registry implements it).
type AppServiceInterest interface {
	Any() bool
	Owners(user id.UserID) []string
	RoomOwners(roomID id.RoomID) []string
	AnyAliases() bool
	AliasOwners(alias string) []string
}

// appServicesFor lists the appservices interested in an event: its sender
// or target is theirs, the room is in their namespace, or one of their
// users is in the room (application service API, "Pushing events").
func (s *Service) appServicesFor(ctx context.Context, b *batchState, ev *pdu.PDU, roomID id.RoomID) ([]string, error) {
	in := s.opts.AppServices
	if in == nil || !in.Any() {
		return nil, nil
	}
	set := map[string]bool{}
	add := func(ids []string) {
		for _, x := range ids {
			set[x] = true
		}
	}
	add(in.Owners(ev.Sender))
	if ev.Type == "m.room.member" && ev.StateKey != nil {
		add(in.Owners(id.UserID(*ev.StateKey)))
	}
	add(in.RoomOwners(roomID))
	if b.asMembers == nil {
		// Once per batch: which appservices have users among the room's
		// local members (ghosts are local users), or an alias of the room
		// in their namespace.
		members := map[string]bool{}
		for _, u := range b.joinedUsers() {
			for _, x := range in.Owners(u) {
				members[x] = true
			}
		}
		if in.AnyAliases() {
			aliases, err := s.store.AliasesOfRoom(ctx, string(roomID))
			if err != nil {
				return nil, err
			}
			for _, a := range aliases {
				for _, x := range in.AliasOwners(a) {
					members[x] = true
				}
			}
		}
		b.asMembers = members
	}
	for x := range b.asMembers {
		set[x] = true
	}
	if ev.Type == "m.room.member" && ev.StateKey != nil {
		for _, x := range in.Owners(id.UserID(*ev.StateKey)) {
			b.asMembers[x] = true // their user joins: later events concern them too
		}
	}
	out := make([]string, 0, len(set))
	for x := range set {
		out = append(out, x)
	}
	slices.Sort(out)
	return out, nil
}

// clientEvent formats one stored event of any room, in its room's version.
func (s *Service) clientEvent(ctx context.Context, e *storage.Event) (*ClientEvent, error) {
	rv, err := s.roomVersion(ctx, id.RoomID(e.RoomID))
	if err != nil {
		return nil, err
	}
	return s.formatter(rv).one(ctx, e, true)
}

// EventsAt formats the events at the given stream positions, in order, for
// an appservice transaction.
func (s *Service) EventsAt(ctx context.Context, positions []int64) ([]*ClientEvent, error) {
	evs, err := s.store.GetEventsByPos(ctx, positions)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(evs, func(a, b *storage.Event) int { return cmp.Compare(a.StreamPos, b.StreamPos) })
	out := make([]*ClientEvent, 0, len(evs))
	for _, e := range evs {
		ce, err := s.clientEvent(ctx, e)
		if err != nil {
			return nil, err
		}
		out = append(out, ce)
	}
	return out, nil
}
