package slack

import (
	"context"
	"strings"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/importer"
)

// refusingTarget takes batches as the server does, all or nothing: it
// refuses a batch holding a message marked "refuse", or a message whose
// sender has not joined (the room's membership rule).
type refusingTarget struct {
	importer.Target
	joined  map[id.UserID]bool
	written []*importer.Event
}

func (f *refusingTarget) BatchSend(_ context.Context, _ id.RoomID, evs []*importer.Event) ([]id.EventID, error) {
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

// TestRefusedMessageKeepsItsJoins: when the server refuses a message, the
// joins that came with it are still written, or every later message of its
// sender is refused too.
func TestRefusedMessageKeepsItsJoins(t *testing.T) {
	ft := &refusingTarget{joined: map[id.UserID]bool{}}
	cv := &conversation{r: &run{t: ft}, c: &Conversation{ID: "C1", Name: "general"}, room: "!room:localhost",
		sum: Summary{Unknown: map[string]int{}}}
	alice := id.UserID("@slack_t-u1:localhost")
	bot := id.UserID("@slackbot:localhost")
	msg := func(body string) *importer.Event {
		return &importer.Event{Type: "m.room.message", Sender: alice, Content: []byte(`{"msgtype":"m.text","body":"` + body + `"}`)}
	}
	evs := []*importer.Event{
		importer.MemberEvent(bot, alice, "", "", "invite", false, 1),
		importer.MemberEvent(bot, alice, "", "", "join", false, 1),
		msg("please refuse this one"),
		msg("a later message"),
	}
	spans := []msgSpan{{Start: 0, Key: "1.000001"}, {Start: 3, Key: "2.000001"}}
	if err := cv.send(t.Context(), evs, spans, 0); err != nil {
		t.Fatal(err)
	}
	if cv.sum.FailedMessages != 1 {
		t.Errorf("%d messages refused, want 1 (%v)", cv.sum.FailedMessages, cv.sum.Problems)
	}
	if !ft.joined[alice] {
		t.Error("the joins sent with the refused message were dropped")
	}
	if n := len(ft.written); n != 3 {
		t.Errorf("%d events written, want 3 (the invite, the join and the later message)", n)
	}
}
