package pusher

import (
	"context"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/appservice/registry"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/stream"
)

// Interest says which appservices an event concerns (application service
// API, "Pushing events"): its sender or target is theirs, the room is in
// their namespace, one of their users is in the room, or the room has an
// alias in their namespace. core/rooms queues the event for them in the
// transaction that persists it.
type Interest struct{ Registry *registry.Registry }

var _ rooms.InterestResolver = Interest{}

// Kind implements rooms.InterestResolver.
func (Interest) Kind() string { return stream.KindAppService }

// ForBatch implements rooms.InterestResolver.
func (i Interest) ForBatch(room rooms.InterestRoom) rooms.BatchInterest {
	if i.Registry == nil || !i.Registry.Any() {
		return nil
	}
	return &batchInterest{reg: i.Registry, room: room}
}

type batchInterest struct {
	reg  *registry.Registry
	room rooms.InterestRoom
	// members are the appservices with users in the room or an alias of
	// it (nil: not yet computed — once per commit).
	members map[string]bool
}

func (b *batchInterest) Interested(ctx context.Context, ev *pdu.PDU) ([]string, error) {
	var out []string
	out = append(out, b.reg.Owners(ev.Sender)...)
	var target []string
	if ev.Type == "m.room.member" && ev.StateKey != nil {
		target = b.reg.Owners(id.UserID(*ev.StateKey))
		out = append(out, target...)
	}
	out = append(out, b.reg.RoomOwners(b.room.RoomID())...)
	if b.members == nil {
		// Ghosts are local users: the appservices owning any of the room's
		// local members, or an alias of the room.
		b.members = map[string]bool{}
		for _, u := range b.room.LocalMembers() {
			for _, x := range b.reg.Owners(u) {
				b.members[x] = true
			}
		}
		if b.reg.AnyAliases() {
			aliases, err := b.room.Aliases(ctx)
			if err != nil {
				return nil, err
			}
			for _, a := range aliases {
				for _, x := range b.reg.AliasOwners(a.String()) {
					b.members[x] = true
				}
			}
		}
	}
	for x := range b.members {
		out = append(out, x)
	}
	for _, x := range target {
		b.members[x] = true // their user joins: later events concern them too
	}
	return out, nil
}
