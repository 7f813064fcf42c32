package rooms

import (
	"encoding/json/jsontext"
	"encoding/json/v2"
	"slices"
)

// MarshalJSONTo writes the event as its struct tags say, field by field,
// without reflection: a first sync writes hundreds of events, and the
// reflective encoder spent most of its time on each event's unsigned map
// (v1's sorted keys). The encoder's options (those of encoding/json's
// Marshal, such as HTML escaping) apply as before, to names, strings and
// the content; unsigned keys are written in sorted order, as Marshal
// writes maps.
func (ce *ClientEvent) MarshalJSONTo(enc *jsontext.Encoder) error {
	if ce == nil {
		return enc.WriteToken(jsontext.Null)
	}
	if err := enc.WriteToken(jsontext.BeginObject); err != nil {
		return err
	}
	if err := enc.WriteToken(jsontext.String("content")); err != nil {
		return err
	}
	var err error
	if len(ce.Content) == 0 {
		err = enc.WriteToken(jsontext.Null)
	} else {
		err = enc.WriteValue(ce.Content)
	}
	if err != nil {
		return err
	}
	str := func(name, v string) error {
		if err := enc.WriteToken(jsontext.String(name)); err != nil {
			return err
		}
		return enc.WriteToken(jsontext.String(v))
	}
	if err := str("event_id", string(ce.EventID)); err != nil {
		return err
	}
	if err := enc.WriteToken(jsontext.String("origin_server_ts")); err != nil {
		return err
	}
	if err := enc.WriteToken(jsontext.Int(ce.OriginServerTS)); err != nil {
		return err
	}
	if err := str("room_id", string(ce.RoomID)); err != nil {
		return err
	}
	if err := str("sender", string(ce.Sender)); err != nil {
		return err
	}
	if ce.StateKey != nil {
		if err := str("state_key", *ce.StateKey); err != nil {
			return err
		}
	}
	if err := str("type", ce.Type); err != nil {
		return err
	}
	if ce.Redacts != "" {
		if err := str("redacts", string(ce.Redacts)); err != nil {
			return err
		}
	}
	if len(ce.Unsigned) > 0 {
		if err := enc.WriteToken(jsontext.String("unsigned")); err != nil {
			return err
		}
		if err := marshalUnsigned(enc, ce.Unsigned); err != nil {
			return err
		}
	}
	return enc.WriteToken(jsontext.EndObject)
}

// marshalUnsigned writes an event's unsigned map, keys sorted; the values
// formatting puts there directly, the others through json.
func marshalUnsigned(enc *jsontext.Encoder, m map[string]any) error {
	var buf [8]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if err := enc.WriteToken(jsontext.BeginObject); err != nil {
		return err
	}
	for _, k := range keys {
		if err := enc.WriteToken(jsontext.String(k)); err != nil {
			return err
		}
		var err error
		switch v := m[k].(type) {
		case int64:
			err = enc.WriteToken(jsontext.Int(v))
		case string:
			err = enc.WriteToken(jsontext.String(v))
		case *ClientEvent:
			err = v.MarshalJSONTo(enc)
		default:
			err = json.MarshalEncode(enc, v)
		}
		if err != nil {
			return err
		}
	}
	return enc.WriteToken(jsontext.EndObject)
}
