package outbound

import (
	"context"
	"slices"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/stream"
)

// Interest says which other servers an event is sent to, so that core/rooms
// queues it for them in the transaction that persists it (DESIGN decision
// 5). A server sends the events it creates — those of its own users — to
// every other server with a member joined in the room as the event leaves
// it; an event received from another server is its origin's to send,
// except a join, leave or knock handed over through send_join, send_leave
// or send_knock, which the resident server passes on to the others
// ("Joining Rooms"). A membership event also goes to its target's server
// (an invite, a kick, a ban of a user whose server is not, or no longer,
// in the room), unless the room's server ACL denies that server: a server
// still in the room is sent the room's events whatever the ACL says
// (client-server API, "Server ACLs": servers should still send events to
// denied servers if they are still residents of the room). Servers the
// allow/deny list refuses are sent nothing. History inserted backward is
// never queued (core/rooms leaves it out).
type Interest struct {
	ServerName string
	// FederatesWith is the allow/deny list (nil: every server).
	FederatesWith func(serverName string) bool
}

var _ rooms.InterestResolver = Interest{}

// Kind implements rooms.InterestResolver.
func (Interest) Kind() string { return stream.KindFederation }

// ForBatch implements rooms.InterestResolver.
func (i Interest) ForBatch(room rooms.InterestRoom) rooms.BatchInterest {
	return batchInterest{i: i, room: room}
}

type batchInterest struct {
	i    Interest
	room rooms.InterestRoom
}

func (b batchInterest) Interested(ctx context.Context, ev *pdu.PDU) ([]string, error) {
	origin := ev.Sender.Homeserver()
	if (rooms.Received(ctx) || origin != b.i.ServerName) && !rooms.Relayed(ctx) {
		return nil, nil // another server sent it: its to send
	}
	var out []string
	for _, srv := range b.room.JoinedServers() {
		if srv != b.i.ServerName && srv != origin {
			out = append(out, srv)
		}
	}
	if ev.Type == "m.room.member" && ev.StateKey != nil {
		target := id.UserID(*ev.StateKey).Homeserver()
		if target != "" && target != b.i.ServerName && target != origin && !slices.Contains(out, target) {
			ok, err := b.room.ServerAllowed(ctx, target)
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, target)
			}
		}
	}
	if b.i.FederatesWith != nil {
		out = slices.DeleteFunc(out, func(srv string) bool { return !b.i.FederatesWith(srv) })
	}
	return out, nil
}
