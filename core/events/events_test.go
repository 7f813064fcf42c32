package events

import (
	"encoding/json/v2"
	"errors"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
)

func testSigner(t *testing.T) (*Signer, *federation.SigningKey) {
	t.Helper()
	key := federation.GenerateSigningKey()
	return NewSigner("example.org", key), key
}

func strp(s string) *string { return &s }

func TestBuildSignsAndHashesForEveryVersion(t *testing.T) {
	s, key := testSigner(t)
	getKey := func(server string, kid id.KeyID, _ time.Time) (id.SigningKey, time.Time, error) {
		if server != "example.org" || kid != key.ID {
			return "", time.Time{}, errors.New("unknown key")
		}
		return key.Pub, time.Now().Add(time.Hour), nil
	}
	for _, rv := range SupportedRoomVersions {
		t.Run(string(rv), func(t *testing.T) {
			create, wire, err := s.Build(rv, roomIDFor(rv), &Proto{Type: "m.room.create", StateKey: strp(""),
				Sender: "@alice:example.org", Content: map[string]any{"room_version": rv}, OriginServerTS: 1},
				nil, nil, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := ParsePDU(wire, create.InternalMeta.EventID)
			if err != nil || parsed.InternalMeta.EventID != create.InternalMeta.EventID {
				t.Fatalf("wire JSON parses to %v, %v", parsed, err)
			}
			if rv.EventIDFormat() == id.EventIDFormatCustom {
				var v1 pdu.RoomV1PDU
				if err := json.Unmarshal(wire, &v1); err != nil {
					t.Fatal(err)
				}
				if !v1.VerifyContentHash() {
					t.Fatal("v1 content hash does not verify")
				}
				if err := v1.VerifySignature(rv, "example.org", getKey); err != nil {
					t.Fatalf("v1 signature: %v", err)
				}
				if !strings.HasPrefix(string(v1.EventID), "$") || !strings.HasSuffix(string(v1.EventID), ":example.org") {
					t.Fatalf("v1 event ID %q", v1.EventID)
				}
				ref, err := ReferenceOf(rv, wire)
				if err != nil || ref.ID != v1.EventID || len(ref.Hashes.SHA256) != 32 {
					t.Fatalf("reference %+v, %v", ref, err)
				}
				return
			}
			if !create.VerifyContentHash() {
				t.Fatal("content hash does not verify")
			}
			if err := create.VerifySignature(rv, "example.org", getKey); err != nil {
				t.Fatalf("signature: %v", err)
			}
			eid, err := create.GetEventID(rv)
			if err != nil || eid != create.InternalMeta.EventID || !strings.HasPrefix(string(eid), "$") {
				t.Fatalf("event ID %q (meta %q): %v", eid, create.InternalMeta.EventID, err)
			}
			// Tampering with the content breaks hash and signature alike.
			bad := create.Clone()
			bad.Content = []byte(`{"room_version":"1"}`)
			if bad.VerifyContentHash() {
				t.Fatal("tampered content still matches its hash")
			}
			raw, err := json.Marshal(create)
			if err != nil {
				t.Fatal(err)
			}
			var back pdu.PDU
			if err := json.Unmarshal(raw, &back); err != nil {
				t.Fatal(err)
			}
			if id2, _ := back.GetEventID(rv); id2 != eid {
				t.Fatalf("event ID changed through JSON: %s vs %s", id2, eid)
			}
			if rv.RoomIDIsCreateEventID() {
				if create.RoomID != "" {
					t.Fatal("v12 create event carries a room_id")
				}
				if got := RoomIDFromCreate(eid); string(got[1:]) != string(eid[1:]) || got[0] != '!' {
					t.Fatalf("room ID %s from %s", got, eid)
				}
			}
		})
	}
}

func roomIDFor(rv id.RoomVersion) id.RoomID {
	if rv.RoomIDIsCreateEventID() {
		return ""
	}
	return "!room:example.org"
}

func TestBuildRefusesOversizeAndUnknownVersions(t *testing.T) {
	s, _ := testSigner(t)
	_, _, err := s.Build(id.RoomV10, "!r:example.org", &Proto{Type: "m.room.message", Sender: "@a:example.org",
		Content: map[string]any{"body": strings.Repeat("x", MaxPDUBytes)}}, []id.EventID{"$p"}, []id.EventID{"$a"}, 2, nil)
	if me, ok := types.AsError(err); !ok || me.Code != types.CodeTooLarge {
		t.Fatalf("oversize event: %v, want M_TOO_LARGE", err)
	}
	for _, rv := range []id.RoomVersion{"99", "0"} {
		if _, _, err := s.Build(rv, "!r:example.org", &Proto{Type: "m.room.message", Sender: "@a:example.org",
			Content: map[string]any{}}, nil, nil, 1, nil); err == nil {
			t.Errorf("room version %q accepted", rv)
		}
	}
}

func TestRedactionsFollowTheRoomVersion(t *testing.T) {
	s, _ := testSigner(t)
	target := id.EventID("$target")
	for _, tc := range []struct {
		rv        id.RoomVersion
		inContent bool
	}{{id.RoomV10, false}, {id.RoomV11, true}, {id.RoomV12, true}} {
		content := map[string]any{"reason": "spam"}
		if tc.inContent {
			content["redacts"] = target
		}
		ev, _, err := s.Build(tc.rv, "!r:example.org", &Proto{Type: "m.room.redaction", Sender: "@a:example.org",
			Content: content, Redacts: &target}, []id.EventID{"$p"}, []id.EventID{"$a"}, 3, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.inContent && ev.Redacts != nil {
			t.Errorf("v%s: top-level redacts set, the version keeps it in content", tc.rv)
		}
		if !tc.inContent && (ev.Redacts == nil || *ev.Redacts != target) {
			t.Errorf("v%s: top-level redacts missing", tc.rv)
		}
	}
}

func TestForbiddenNamesTheRule(t *testing.T) {
	err := Forbidden(&AuthError{Err: errors.New("fail 8: sender does not have sufficient power level")})
	me, ok := types.AsError(err)
	if !ok || me.Status != 403 || me.Code != types.CodeForbidden || !strings.Contains(me.Message, "fail 8") {
		t.Fatalf("Forbidden = %v", err)
	}
	plain := errors.New("disk on fire")
	if Forbidden(plain) != plain {
		t.Fatal("Forbidden changed a non-auth error")
	}
}

// Legacy-format events reference their prev and auth events by ID and
// reference hash, and the chain authorises.
func TestLegacyFormatChain(t *testing.T) {
	s, _ := testSigner(t)
	for _, rv := range []id.RoomVersion{id.RoomV1, id.RoomV2} {
		t.Run(string(rv), func(t *testing.T) {
			room := id.RoomID("!legacy:example.org")
			create, createWire, err := s.Build(rv, room, &Proto{Type: "m.room.create", StateKey: strp(""),
				Sender: "@alice:example.org", Content: map[string]any{"creator": "@alice:example.org"}}, nil, nil, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			refs := func(ids []id.EventID) ([]pdu.V1EventReference, error) {
				out := make([]pdu.V1EventReference, len(ids))
				for i := range ids {
					ref, err := ReferenceOf(rv, createWire)
					if err != nil {
						return nil, err
					}
					out[i] = ref
				}
				return out, nil
			}
			cid := create.InternalMeta.EventID
			join, joinWire, err := s.Build(rv, room, &Proto{Type: "m.room.member", StateKey: strp("@alice:example.org"),
				Sender: "@alice:example.org", Content: map[string]any{"membership": "join"}},
				[]id.EventID{cid}, []id.EventID{cid}, 2, refs)
			if err != nil {
				t.Fatal(err)
			}
			var wire pdu.RoomV1PDU
			if err := json.Unmarshal(joinWire, &wire); err != nil {
				t.Fatal(err)
			}
			want, _ := ReferenceOf(rv, createWire)
			if len(wire.PrevEvents) != 1 || wire.PrevEvents[0].ID != cid ||
				string(wire.PrevEvents[0].Hashes.SHA256) != string(want.Hashes.SHA256) {
				t.Fatalf("prev_events %+v, want %+v", wire.PrevEvents, want)
			}
			get := func(ids []id.EventID) ([]*pdu.PDU, error) {
				out := make([]*pdu.PDU, len(ids))
				for i, x := range ids {
					if x == cid {
						out[i] = create
					}
				}
				return out, nil
			}
			if err := Authorize(rv, join, get, nil); err != nil {
				t.Fatalf("creator's join in a v%s room: %v", rv, err)
			}
			if _, _, err := s.Build(rv, room, &Proto{Type: "m.room.message", Sender: "@alice:example.org",
				Content: map[string]any{}}, []id.EventID{cid}, nil, 2, nil); err == nil {
				t.Fatal("legacy event with prev events but no references was built")
			}
		})
	}
}
