package rooms

import (
	"context"
	"fmt"
	"slices"

	"github.com/tidwall/gjson"
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
	// LocalMembers are the local users joined, as the room stands now
	// (the writer's list: callers must not change it).
	LocalMembers() []id.UserID
	// Aliases are the room's aliases.
	Aliases(ctx context.Context) ([]id.RoomAlias, error)
	// JoinedServers are the servers with members joined (this one too),
	// as the room stands now, sorted.
	JoinedServers() []string
	// ServerAllowed applies the room's server ACL, as the room stands
	// now, to a server.
	ServerAllowed(ctx context.Context, server string) (bool, error)
}

// relayKey marks the context of an event another server handed this one
// to pass on (send_join, send_leave, send_knock); receivedKey that of any
// event another server sent.
type (
	relayKey    struct{}
	receivedKey struct{}
)

// Received reports whether the event being resolved came from another
// server (a transaction, send_join, a fetch), not from this server's users.
func Received(ctx context.Context) bool {
	v, _ := ctx.Value(receivedKey{}).(bool)
	return v
}

// WithRelay marks ctx as that of an event to pass on (see Relayed): core/rooms
// marks send_join, send_leave and send_knock so; resolvers' tests may too.
func WithRelay(ctx context.Context) context.Context { return context.WithValue(ctx, relayKey{}, true) }

// WithReceived marks ctx as that of an event another server sent (see
// Received): core/rooms marks every event its intake stores; resolvers'
// tests may too.
func WithReceived(ctx context.Context) context.Context {
	return context.WithValue(ctx, receivedKey{}, true)
}

// Relayed reports whether the event being resolved is one another server
// handed this one through send_join, send_leave or send_knock: a resident
// server passes those on to the other servers in the room (server-server
// API, "Joining Rooms"), where an event received in a transaction is its
// origin's to send.
func Relayed(ctx context.Context) bool {
	v, _ := ctx.Value(relayKey{}).(bool)
	return v
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
func (r interestRoom) JoinedServers() []string { return r.b.joinedServers() }

func (r interestRoom) ServerAllowed(ctx context.Context, server string) (bool, error) {
	eid := r.b.get(pdu.StateKey{Type: "m.room.server_acl"})
	if eid == "" {
		return true, nil
	}
	evs, err := r.s.batchEvents(ctx, r.b)([]id.EventID{eid})
	if err != nil {
		return false, err
	}
	if len(evs) == 0 || evs[0] == nil {
		return false, fmt.Errorf("server ACL %s of %s missing", eid, r.roomID)
	}
	return aclAllows(gjson.ParseBytes(evs[0].Content), server), nil
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
