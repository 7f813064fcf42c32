package events

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	stdjson "encoding/json"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
)

func testSigner(t testing.TB) (*Signer, *federation.SigningKey) {
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

// codePoints are the code points the spec's canonical JSON must carry:
// every C0 and C1 control, DEL, the line and paragraph separators, a BOM
// and non-characters, and astral characters.
func codePoints() []rune {
	var rs []rune
	for r := rune(0); r <= 0x1F; r++ {
		rs = append(rs, r)
	}
	for r := rune(0x7F); r <= 0x9F; r++ {
		rs = append(rs, r)
	}
	return append(rs, 0x2028, 0x2029, 0xFEFF, 0xFFFF, 0x1F600, 0x10FFFF)
}

// specCanonical encodes a value decoded by encoding/json (numbers as
// json.Number) as content/appendices.md's grammar says, independently of
// core/canonicaljson: keys in code point order, only the grammar's escapes.
func specCanonical(v any) string {
	switch v := v.(type) {
	case map[string]any:
		keys := slices.Sorted(maps.Keys(v))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = specString(k) + ":" + specCanonical(v[k])
		}
		return "{" + strings.Join(parts, ",") + "}"
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = specCanonical(e)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case string:
		return specString(v)
	case nil:
		return "null"
	default: // json.Number, bool
		return fmt.Sprint(v)
	}
}

func specString(s string) string {
	short := map[rune]string{'\b': `\b`, '\t': `\t`, '\n': `\n`, '\f': `\f`, '\r': `\r`, '"': `\"`, '\\': `\\`}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if e, ok := short[r]; ok {
			b.WriteString(e)
		} else if r < 0x20 {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Events holding any code point are built, and their content hash is the
// SHA-256 of the spec's canonical JSON. mautrix's pdu.Sign failed with
// "canonical JSON mismatch" on U+000B, U+000E, U+000F and U+001A–U+001F.
func TestBuildControlCharacters(t *testing.T) {
	s, key := testSigner(t)
	getKey := func(string, id.KeyID, time.Time) (id.SigningKey, time.Time, error) {
		return key.Pub, time.Now().Add(time.Hour), nil
	}
	for _, rv := range []id.RoomVersion{id.RoomV1, id.RoomV10, id.RoomV12} {
		for _, r := range codePoints() {
			text := "a" + string(r) + "b"
			ev, wire, err := s.Build(rv, "!r:example.org", &Proto{Type: "m.room.member", StateKey: strp("@x:example.org"),
				Sender: "@x:example.org", Content: map[string]any{"membership": "join", "displayname": text, "k" + text: text},
				OriginServerTS: 1}, nil, nil, 1, nil)
			if err != nil {
				t.Fatalf("v%s U+%04X: %v", rv, r, err)
			}
			var obj map[string]any
			dec := stdjson.NewDecoder(bytes.NewReader(wire))
			dec.UseNumber()
			if err := dec.Decode(&obj); err != nil {
				t.Fatal(err)
			}
			hashes := obj["hashes"].(map[string]any)
			delete(obj, "hashes")
			delete(obj, "signatures")
			delete(obj, "unsigned")
			want := sha256.Sum256([]byte(specCanonical(obj)))
			if got := hashes["sha256"]; got != base64.RawStdEncoding.EncodeToString(want[:]) {
				t.Fatalf("v%s U+%04X: content hash %v is not that of the spec's canonical JSON %s", rv, r, got, specCanonical(obj))
			}
			if rv.EventIDFormat() == id.EventIDFormatCustom {
				var v1 pdu.RoomV1PDU
				if err := json.Unmarshal(wire, &v1); err != nil {
					t.Fatal(err)
				}
				if !VerifyContentHashV1(&v1) || VerifySignatureV1(rv, &v1, "example.org", getKey) != nil {
					t.Fatalf("v%s U+%04X: does not verify", rv, r)
				}
				continue
			}
			if !VerifyContentHash(ev) || VerifySignature(rv, ev, "example.org", getKey) != nil {
				t.Fatalf("v%s U+%04X: does not verify", rv, r)
			}
			if eid, err := EventID(rv, ev); err != nil || eid != ev.InternalMeta.EventID {
				t.Fatalf("v%s U+%04X: event ID %s, %v, want %s", rv, r, eid, err, ev.InternalMeta.EventID)
			}
		}
	}
}

// From room version 6, Build refuses content canonical JSON cannot hold.
func TestBuildRefusesFloatsFromV6(t *testing.T) {
	s, _ := testSigner(t)
	for _, content := range []string{`{"a":1.5}`, `{"a":9007199254740992}`, `{"a":1,"a":2}`} {
		_, _, err := s.Build(id.RoomV10, "!r:example.org", &Proto{Type: "m.room.message", Sender: "@a:example.org",
			Content: jsontext.Value(content)}, []id.EventID{"$p"}, []id.EventID{"$a"}, 2, nil)
		if me, ok := types.AsError(err); !ok || me.Code != types.CodeBadJSON {
			t.Errorf("%s in v10: %v, want M_BAD_JSON", content, err)
		}
	}
	if _, _, err := s.Build(id.RoomV5, "!r:example.org", &Proto{Type: "m.room.message", Sender: "@a:example.org",
		Content: jsontext.Value(`{"a":1.5,"b":1e30}`)}, []id.EventID{"$p"}, []id.EventID{"$a"}, 2, nil); err != nil {
		t.Errorf("float in v5: %v", err)
	}
}

// BenchmarkBuild signs and hashes a typical message (three canonical
// encodings: content hash, signature, event ID); BenchmarkMautrixSign is
// mautrix's pdu.Sign and GetEventID on the same event, for comparison.
func BenchmarkBuild(b *testing.B) {
	s, _ := testSigner(b)
	p := benchProto()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Build(id.RoomV12, "!r:example.org", p, []id.EventID{"$prev"}, []id.EventID{"$a", "$b", "$c"}, 7, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMautrixSign(b *testing.B) {
	s, _ := testSigner(b)
	content, _ := json.Marshal(benchProto().Content)
	b.ReportAllocs()
	for b.Loop() {
		ev := &pdu.PDU{AuthEvents: []id.EventID{"$a", "$b", "$c"}, Content: content, Depth: 7, OriginServerTS: 1,
			PrevEvents: []id.EventID{"$prev"}, RoomID: "!r:example.org", Sender: "@alice:example.org", Type: "m.room.message"}
		if err := ev.Sign(id.RoomV12, s.ServerName, s.KeyID, s.Private); err != nil {
			b.Fatal(err)
		}
		if _, err := ev.GetEventID(id.RoomV12); err != nil {
			b.Fatal(err)
		}
	}
}

func benchProto() *Proto {
	return &Proto{Type: "m.room.message", Sender: "@alice:example.org", OriginServerTS: 1, Content: map[string]any{
		"msgtype": "m.text", "body": strings.Repeat("Hello there, a message of a few hundred bytes. ", 8),
		"format": "org.matrix.custom.html", "formatted_body": "<p>" + strings.Repeat("Hello <b>there</b>. ", 8) + "</p>",
		"m.mentions": map[string]any{"user_ids": []string{"@bob:example.org"}}}}
}

// An event built unsigned and completed later is the event Build makes, byte
// for byte (ed25519 signatures are deterministic): same ID, hashes and
// signature, and the signature verifies.
func TestBuildUnsignedThenComplete(t *testing.T) {
	s, key := testSigner(t)
	getKey := func(string, id.KeyID, time.Time) (id.SigningKey, time.Time, error) {
		return key.Pub, time.Now().Add(time.Hour), nil
	}
	for _, rv := range SupportedRoomVersions {
		if rv.EventIDFormat() == id.EventIDFormatCustom {
			if _, _, err := s.BuildUnsigned(rv, roomIDFor(rv), &Proto{Type: "m.room.message", Sender: "@a:example.org"},
				nil, nil, 2); err == nil {
				t.Errorf("%s: an unsigned build of a legacy-format event", rv)
			}
			continue
		}
		t.Run(string(rv), func(t *testing.T) {
			p := &Proto{Type: "m.room.message", Sender: "@alice:example.org", OriginServerTS: 7,
				Content: jsontext.Value(`{"msgtype":"m.text","body":"hello \u000b"}`)}
			prev := []id.EventID{"$prev"}
			whole, wholeRaw, err := s.Build(rv, roomIDFor(rv), p, prev, prev, 3, nil)
			if err != nil {
				t.Fatal(err)
			}
			later, redacted, err := s.BuildUnsigned(rv, roomIDFor(rv), p, prev, prev, 3)
			if err != nil {
				t.Fatal(err)
			}
			if later.InternalMeta.EventID != whole.InternalMeta.EventID || later.Signatures != nil {
				t.Fatalf("unsigned build: ID %s (want %s), signatures %v", later.InternalMeta.EventID,
					whole.InternalMeta.EventID, later.Signatures)
			}
			raw, err := s.Complete(later, redacted)
			if err != nil {
				t.Fatal(err)
			}
			if string(raw) != string(wholeRaw) {
				t.Fatalf("completed event\n%s\nis not the built one\n%s", raw, wholeRaw)
			}
			if err := VerifySignature(rv, later, "example.org", getKey); err != nil {
				t.Fatal(err)
			}
			if eid, err := EventID(rv, later); err != nil || eid != later.InternalMeta.EventID {
				t.Fatalf("EventID %s %v, want %s", eid, err, later.InternalMeta.EventID)
			}
		})
	}
}
