package events

import (
	"testing"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// The creator's first join of a v1–v10 room is allowed by rule 5.3.1; a
// stranger's join straight after the create event is not.
func TestAuthorizeCreatorJoinInContentCreatorVersions(t *testing.T) {
	s, _ := testSigner(t)
	for _, rv := range []id.RoomVersion{id.RoomV3, id.RoomV6, id.RoomV10} {
		t.Run(string(rv), func(t *testing.T) {
			room := id.RoomID("!r:example.org")
			create, _, err := s.Build(rv, room, &Proto{Type: "m.room.create", StateKey: strp(""), Sender: "@alice:example.org",
				Content: map[string]any{"room_version": rv, "creator": "@alice:example.org"}, OriginServerTS: 1}, nil, nil, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			get := func(ids []id.EventID) ([]*pdu.PDU, error) {
				out := make([]*pdu.PDU, len(ids))
				for i, x := range ids {
					if x == create.InternalMeta.EventID {
						out[i] = create
					}
				}
				return out, nil
			}
			join := func(user id.UserID) *pdu.PDU {
				ev, _, err := s.Build(rv, room, &Proto{Type: "m.room.member", StateKey: strp(string(user)), Sender: user,
					Content: map[string]any{"membership": "join"}, OriginServerTS: 2},
					[]id.EventID{create.InternalMeta.EventID}, []id.EventID{create.InternalMeta.EventID}, 2, nil)
				if err != nil {
					t.Fatal(err)
				}
				return ev
			}
			if err := Authorize(rv, join("@alice:example.org"), get, nil); err != nil {
				t.Fatalf("creator's first join refused: %v", err)
			}
			err = Authorize(rv, join("@mallory:example.org"), get, nil)
			if err == nil {
				t.Fatal("a stranger's join right after the create event was allowed")
			}
		})
	}
}
