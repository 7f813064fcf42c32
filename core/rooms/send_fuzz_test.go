package rooms

import (
	"context"
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
)

// FuzzSendContent sends arbitrary bytes as event content (and type and
// state key) through the whole send path in-process: it never panics,
// refuses with a 4xx Matrix error, or stores an event whose JSON parses
// and carries the content.
func FuzzSendContent(f *testing.F) {
	for _, seed := range []struct{ typ, content string }{
		{"m.room.message", `{"msgtype":"m.text","body":"hi"}`},
		{"m.room.message", `{"body":"\u000b\u0000\ud83d\ude00"}`},
		{"m.room.topic", `{"topic":1.5}`},
		{"m.reaction", `{"m.relates_to":{"rel_type":"m.annotation","event_id":"$x","key":"👍"}}`},
		{"x", `[1,2]`},
		{"x", `{"a":{"a":{"a":{"a":{}}}}}`},
		{"", `{}`},
	} {
		f.Add(seed.typ, []byte(seed.content), false)
	}
	s, _ := newTestRooms(f)
	alice := id.UserID("@alice:example.org")
	roomID, err := s.CreateRoom(context.Background(), &CreateRequest{Creator: alice, Preset: "private_chat"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, evType string, content []byte, state bool) {
		req := &SendRequest{RoomID: roomID, Sender: alice, Type: evType, Content: content}
		if state {
			key := "k"
			req.StateKey = &key
		}
		eid, err := s.Send(context.Background(), req)
		if err != nil {
			if me, ok := types.AsError(err); !ok || me.Status < 400 || me.Status >= 500 {
				t.Fatalf("send %q %q: %v", evType, content, err)
			}
			return
		}
		ev, err := s.store.GetEvent(context.Background(), eid)
		if err != nil {
			t.Fatal(err)
		}
		var pdu struct {
			Type    string          `json:"type"`
			Content json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(ev.JSON, &pdu); err != nil || pdu.Type != evType {
			t.Fatalf("stored event %s does not parse (%v) or lost its type", ev.JSON, err)
		}
	})
}
