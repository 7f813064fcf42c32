package rooms

import (
	"context"
	"slices"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// InterestResolver says which consumers of one kind an event concerns, so
// that the event is queued for them in the transaction that persists it
// (DESIGN decision 5). Core declares it; those outside supply it:
// appservice namespaces now (appservice/pusher), federation destinations
// and bridge plugins next.
type InterestResolver interface {
	// Kind is the kind of consumer resolved (core/stream's Kind… names).
	Kind() string
	// ForBatch begins resolving the events of one commit in a room; nil
	// when no consumer of the kind can be interested in anything.
	ForBatch(room InterestRoom) BatchInterest
}

// BatchInterest resolves the events of one commit, in order.
type BatchInterest interface {
	// Interested lists the consumers the event concerns. It is asked for
	// each event of the commit in order, with the room as it stands after
	// the event (its membership applied).
	Interested(ctx context.Context, ev *pdu.PDU) ([]string, error)
}

// InterestRoom is what a resolver may ask of the room of the events.
type InterestRoom interface {
	RoomID() id.RoomID
	// LocalMembers are the local users joined, as the room stands now.
	LocalMembers() []id.UserID
	// Aliases are the room's aliases.
	Aliases(ctx context.Context) ([]id.RoomAlias, error)
}

// interestRoom answers resolvers from a batch's state.
type interestRoom struct {
	s      *Service
	b      *batchState
	roomID id.RoomID
}

func (r interestRoom) RoomID() id.RoomID         { return r.roomID }
func (r interestRoom) LocalMembers() []id.UserID { return r.b.joinedUsers() }
func (r interestRoom) Aliases(ctx context.Context) ([]id.RoomAlias, error) {
	return r.s.store.AliasesOfRoom(ctx, r.roomID)
}

// interestedIn lists the consumers of every kind an event concerns, in a
// stable order.
func (s *Service) interestedIn(ctx context.Context, b *batchState, ev *pdu.PDU, roomID id.RoomID) ([]storage.Consumer, error) {
	if len(s.opts.Interest) == 0 {
		return nil, nil
	}
	if b.interest == nil {
		// Once per commit (the room of a v12 create batch is known only
		// from its first event on).
		b.interest = make([]BatchInterest, len(s.opts.Interest))
		for i, r := range s.opts.Interest {
			b.interest[i] = r.ForBatch(interestRoom{s: s, b: b, roomID: roomID})
		}
	}
	var out []storage.Consumer
	for i, bi := range b.interest {
		if bi == nil {
			continue
		}
		ids, err := bi.Interested(ctx, ev)
		if err != nil {
			return nil, err
		}
		slices.Sort(ids)
		kind := s.opts.Interest[i].Kind()
		for _, x := range slices.Compact(ids) {
			out = append(out, storage.Consumer{Kind: kind, ID: x})
		}
	}
	return out, nil
}
