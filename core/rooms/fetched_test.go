package rooms

import (
	"encoding/json/jsontext"
	"errors"
	"testing"

	"github.com/tidwall/sjson"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
)

// checkFetched takes a set of another server's events whole or not at
// all: sound events pass (each once, however often given), a content
// hash that does not match makes the event its redacted copy, and a bad
// signature, an event of another room or one its auth events do not
// allow (or that cites auth events nobody has) refuses the set.
func TestCheckFetched(t *testing.T) {
	for _, rv := range []id.RoomVersion{id.RoomV1, id.RoomV11, id.RoomV12} {
		t.Run(string(rv), func(t *testing.T) {
			r := newIntakeRoom(t, rv)
			sk := string(rita)
			join, joinRaw := r.build(&events.Proto{Type: "m.room.member", StateKey: &sk, Sender: rita,
				Content: map[string]any{"membership": "join", "displayname": "Rita"}}, r.extremities(), nil)
			check := func(raws ...[]byte) (*fetchedSet, error) {
				vs := make([]jsontext.Value, len(raws))
				for i, raw := range raws {
					vs[i] = raw
				}
				set, _, err := r.s.checkFetched(r.ctx, "remote.example", rv, r.roomID, vs)
				return set, err
			}
			set, err := check(joinRaw, joinRaw)
			if err != nil {
				t.Fatalf("a sound event: %v", err)
			}
			if len(set.order) != 1 || set.get(join.InternalMeta.EventID) == nil {
				t.Fatalf("set: %v", set.order)
			}

			// The display name changed: the hash fails, the signature (of
			// the redacted event) holds: taken redacted.
			renamed, err := sjson.SetBytes(joinRaw, "content.displayname", "Mallory")
			if err != nil {
				t.Fatal(err)
			}
			if set, err = check(renamed); err != nil {
				t.Fatalf("an event with a bad hash: %v", err)
			}
			got := set.get(join.InternalMeta.EventID)
			if got == nil || !got.redacted || string(got.ev.Content) != `{"membership":"join"}` {
				t.Fatalf("the event with a bad hash was not taken redacted: %+v", got)
			}

			// Signed by a key that is not remote.example's.
			forger := events.NewSigner("remote.example", federation.GenerateSigningKey())
			forger.KeyID = r.remote.KeyID
			honest := r.remote
			r.remote = forger
			_, bad := r.build(&events.Proto{Type: "m.room.member", StateKey: &sk, Sender: rita,
				Content: map[string]any{"membership": "join"}}, r.extremities(), nil)
			r.remote = honest
			if _, err := check(joinRaw, bad); !errors.Is(err, errBadAnswer) {
				t.Fatalf("a forged signature: %v", err)
			}

			// An event of another room.
			other, err := sjson.SetBytes(joinRaw, "room_id", "!other:remote.example")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := check(other); !errors.Is(err, errBadAnswer) {
				t.Fatalf("an event of another room: %v", err)
			}

			// A message of rita before she joined: not allowed by its auth events.
			_, early := r.message(rita, "too early", r.extremities(), nil)
			if _, err := check(early); !errors.Is(err, errBadAnswer) {
				t.Fatalf("an event its auth events do not allow: %v", err)
			}

			if rv == id.RoomV1 {
				return // the message below cites her join by its hash, which needs it stored
			}
			// A message after her join, whose join nobody has: its auth
			// event is missing.
			st := r.stateAt(r.extremities()[0])
			st[pdu.StateKey{Type: "m.room.member", StateKey: string(rita)}] = join.InternalMeta.EventID
			_, orphan := r.message(rita, "hello", r.extremities(), st)
			if _, err := check(orphan); !errors.Is(err, errBadAnswer) {
				t.Fatalf("an event whose auth event nobody has: %v", err)
			}
			if _, err := check(joinRaw, orphan); err != nil {
				t.Fatalf("the message with the join it cites: %v", err)
			}
		})
	}
}
