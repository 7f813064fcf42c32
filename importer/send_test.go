package importer

import (
	"context"
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
)

// refusingTarget takes batches as the server does, all or nothing: it
// refuses a batch holding a message marked "refuse", or a message whose
// sender has not joined (the room's membership rule).
type refusingTarget struct {
	Target
	joined  map[id.UserID]bool
	written []*Event
}

func (f *refusingTarget) BatchSend(_ context.Context, _ id.RoomID, evs []*Event) ([]id.EventID, error) {
	joined := map[id.UserID]bool{}
	for u := range f.joined {
		joined[u] = true
	}
	for _, ev := range evs {
		switch {
		case ev.Type == "m.room.member" && strings.Contains(string(ev.Content), `"join"`):
			joined[*(*id.UserID)(ev.StateKey)] = true
		case ev.Type == "m.room.message" && strings.Contains(string(ev.Content), "refuse"):
			return nil, types.TooLarge("event too large")
		case ev.Type == "m.room.message" && !joined[ev.Sender]:
			return nil, types.Forbidden("%s is not in the room", ev.Sender)
		}
	}
	f.joined = joined
	f.written = append(f.written, evs...)
	return make([]id.EventID, len(evs)), nil
}

// TestSendKeepsARefusedMessagesJoins: when the server refuses a message,
// it alone is left out and reported, and the joins that came with it are
// still written, or every later message of its sender is refused too.
func TestSendKeepsARefusedMessagesJoins(t *testing.T) {
	ft := &refusingTarget{joined: map[id.UserID]bool{}}
	alice := id.UserID("@slack_t-u1:localhost")
	bob := id.UserID("@slack_t-u2:localhost")
	bot := id.UserID("@slackbot:localhost")
	msg := func(from id.UserID, body string) *Event {
		return &Event{Type: "m.room.message", Sender: from, Content: []byte(`{"msgtype":"m.text","body":"` + body + `"}`)}
	}
	evs := []*Event{
		MemberEvent(bot, bob, "", "", "invite", false, 1),
		MemberEvent(bot, bob, "", "", "join", false, 1),
		msg(bob, "bob's first"),
		MemberEvent(bot, alice, "", "", "invite", false, 2),
		MemberEvent(bot, alice, "", "", "join", false, 2),
		msg(alice, "please refuse this one"),
		msg(alice, "a later message"),
		msg(bob, "bob's last"),
	}
	spans := []Span{{Start: 0, Key: "1"}, {Start: 3, Key: "2"}, {Start: 6, Key: "3"}, {Start: 7, Key: "4"}}
	var refused []string
	n, err := Send(t.Context(), ft, "!room:localhost", evs, spans, func(key string, err error) {
		refused = append(refused, key)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 1 || refused[0] != "2" {
		t.Errorf("refused %v, want the message 2", refused)
	}
	if !ft.joined[alice] {
		t.Error("the joins sent with the refused message were dropped")
	}
	if n != 7 || len(ft.written) != 7 {
		t.Errorf("%d events written (%d counted), want all 7 but the refused message", len(ft.written), n)
	}
}
