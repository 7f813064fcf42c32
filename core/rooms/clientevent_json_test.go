package rooms

import (
	v1 "encoding/json"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"testing"
)

// plainEvent is ClientEvent without its MarshalJSONTo: what the
// reflective encoder writes.
type plainEvent ClientEvent

// ClientEvent's own encoder writes, with encoding/json's Marshal (as the
// server answers) and with json v2's, the very bytes the reflective
// encoder wrote: field order, omitted fields, escaping, sorted unsigned
// keys, nested events.
func TestClientEventMarshalAsReflective(t *testing.T) {
	sk, empty := "@bob:x <&>", ""
	nested := func() (*ClientEvent, *plainEvent) {
		ce := &ClientEvent{Content: jsontext.Value(`{"reason":"spam <script>"}`), EventID: "$red", OriginServerTS: 5,
			RoomID: "!r:x", Sender: "@mod:x", Type: "m.room.redaction", Redacts: "$target",
			Unsigned: map[string]any{"age": int64(3)}}
		p := plainEvent(*ce)
		return ce, &p
	}
	cases := []*ClientEvent{
		{Content: jsontext.Value(`{"body":"a <b> & c \u2028","msgtype":"m.text"}`), EventID: "$e1", OriginServerTS: 1796613690970,
			RoomID: "!room:x", Sender: "@alice:x", Type: "m.room.message",
			Unsigned: map[string]any{"age": int64(76), "membership": "join", "transaction_id": "t<1>"}},
		{Content: jsontext.Value(`{ "membership" : "join" }`), EventID: "$e2", RoomID: "!room:x", Sender: "@bob:x",
			StateKey: &sk, Type: "m.room.member", Unsigned: map[string]any{
				"prev_content": jsontext.Value(`{"membership":"invite"}`), "replaces_state": "$prev", "age": int64(0),
				"m.relations":       map[string]any{"m.thread": map[string]any{"count": int64(2), "current_user_participated": true}},
				"invite_room_state": []map[string]any{{"type": "m.room.name", "content": map[string]any{"name": "x"}}},
				"zz":                nil, "float": 1.5, "list": []any{}, "nil list": []string(nil)}},
		{EventID: "$e3", RoomID: "!room:x", Sender: "@bad\xffutf8:x", StateKey: &empty, Type: "m.room.create"},
		{Content: jsontext.Value(`{}`), EventID: "$e4", Type: "t", Unsigned: map[string]any{}},
	}
	red, plainRed := nested()
	redacted := &ClientEvent{Content: jsontext.Value(`{}`), EventID: "$target", RoomID: "!room:x", Sender: "@alice:x",
		Type: "m.room.message", Unsigned: map[string]any{"redacted_because": red, "age": int64(9)}}
	cases = append(cases, redacted)
	for i, ce := range cases {
		p := plainEvent(*ce)
		if ce == redacted {
			p.Unsigned = map[string]any{"redacted_because": plainRed, "age": int64(9)}
		}
		want, err := v1.Marshal(&p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := v1.Marshal(ce)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("event %d with encoding/json:\n%s\nwant\n%s", i, got, want)
		}
		want, _ = json.Marshal(&p, json.Deterministic(true))
		got, _ = json.Marshal(ce, json.Deterministic(true))
		if string(got) != string(want) {
			t.Errorf("event %d with json v2:\n%s\nwant\n%s", i, got, want)
		}
		// In a list and inside other values, as a sync answer holds them.
		want, _ = v1.Marshal(map[string]any{"events": []*plainEvent{&p}})
		got, _ = v1.Marshal(map[string]any{"events": []*ClientEvent{ce}})
		if string(got) != string(want) {
			t.Errorf("event %d in a list:\n%s\nwant\n%s", i, got, want)
		}
	}
	var none *ClientEvent
	if got, _ := v1.Marshal(none); string(got) != "null" {
		t.Errorf("nil event: %s", got)
	}
}
