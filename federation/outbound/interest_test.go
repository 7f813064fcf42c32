package outbound

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/rooms"
)

// fakeRoom is a room with servers in it and an ACL denying some.
type fakeRoom struct {
	servers []string
	denied  []string
}

func (r fakeRoom) RoomID() id.RoomID                               { return "!r:a.example" }
func (r fakeRoom) LocalMembers() []id.UserID                       { return nil }
func (r fakeRoom) Aliases(context.Context) ([]id.RoomAlias, error) { return nil, nil }
func (r fakeRoom) JoinedServers() []string                         { return r.servers }
func (r fakeRoom) ServerAllowed(_ context.Context, s string) (bool, error) {
	return !slices.Contains(r.denied, s), nil
}

var _ rooms.InterestRoom = fakeRoom{}

func member(sender, target id.UserID, membership string) *pdu.PDU {
	sk := string(target)
	return &pdu.PDU{Type: "m.room.member", Sender: sender, StateKey: &sk, Content: []byte(`{"membership":"` + membership + `"}`)}
}

func TestInterest(t *testing.T) {
	room := fakeRoom{servers: []string{"a.example", "b.example", "c.example", "e.example"}, denied: []string{"d.example", "b.example"}}
	in := Interest{ServerName: "a.example", FederatesWith: func(s string) bool { return s != "e.example" }}
	msg := func(sender id.UserID) *pdu.PDU { return &pdu.PDU{Type: "m.room.message", Sender: sender} }
	for _, tc := range []struct {
		name     string
		ev       *pdu.PDU
		relayed  bool
		received bool
		want     []string
	}{
		{"a local message goes to every other server in the room (denied residents too)", msg("@u:a.example"), false, false,
			[]string{"b.example", "c.example"}},
		{"a remote event is its origin's to send", msg("@u:c.example"), false, true, nil},
		{"so is one of ours another server sent back", msg("@u:a.example"), false, true, nil},
		{"a join handed over by send_join is passed on to the others", member("@u:c.example", "@u:c.example", "join"), true,
			true, []string{"b.example"}},
		{"an invite also goes to the invitee's server", member("@u:a.example", "@x:f.example", "invite"), false, false,
			[]string{"b.example", "c.example", "f.example"}},
		{"a ban of a user whose server the ACL denies does not", member("@u:a.example", "@x:d.example", "ban"), false, false,
			[]string{"b.example", "c.example"}},
		{"a kick of a resident's user", member("@u:a.example", "@x:c.example", "leave"), false, false,
			[]string{"b.example", "c.example"}},
		{"the allow/deny list refuses a target", member("@u:a.example", "@x:e.example", "ban"), false, false,
			[]string{"b.example", "c.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.relayed {
				ctx = rooms.WithRelay(ctx)
			}
			if tc.received {
				ctx = rooms.WithReceived(ctx)
			}
			got, err := in.ForBatch(room).Interested(ctx, tc.ev)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// Refusals a retry cannot change drop the transaction; the others are
// retried.
func TestPermanent(t *testing.T) {
	for code, want := range map[int]bool{400: true, 413: true, 401: false, 403: false, 404: false, 429: false, 500: false, 502: false} {
		err := mautrix.HTTPError{Response: &http.Response{StatusCode: code}}
		if got := permanent(err); got != want {
			t.Errorf("%d: permanent %v, want %v", code, got, want)
		}
	}
	if permanent(context.DeadlineExceeded) {
		t.Error("a timeout is permanent")
	}
}
