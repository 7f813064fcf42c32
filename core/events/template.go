package events

import (
	"encoding/json/jsontext"
	"encoding/json/v2"
	"fmt"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// FromTemplate completes an event template another server made for one of
// this server's users (make_join, make_leave, make_knock: the room's
// position of the event — prev and auth events, depth — in the room
// version's format): it takes content and the timestamp ts, gets an event
// ID (a fresh one in rooms v1 and v2, "origin" this server), its content
// hash and this server's signature. It returns the event in the internal
// form eventauth works on (InternalMeta.EventID set) and as wire JSON.
// What the template says besides is kept as it is (the resident server
// chose it; the signature covers it); hashes, signatures and unsigned it
// may carry are not.
func (s *Signer) FromTemplate(rv id.RoomVersion, tmpl []byte, content jsontext.Value, ts int64) (*pdu.PDU, []byte, error) {
	if !IsSupported(rv) {
		return nil, nil, fmt.Errorf("room version %q not supported", rv)
	}
	if rv.EventIDFormat() == id.EventIDFormatCustom {
		var v1 pdu.RoomV1PDU
		if err := json.Unmarshal(tmpl, &v1); err != nil {
			return nil, nil, fmt.Errorf("event template: %w", err)
		}
		v1.Hashes, v1.Signatures, v1.Unsigned = nil, nil, nil
		v1.Content, v1.OriginServerTS = content, ts
		v1.EventID = id.EventID("$" + randomID(18) + ":" + s.ServerName)
		origin, err := json.Marshal(s.ServerName)
		if err != nil {
			return nil, nil, err
		}
		v1.DeprecatedOrigin = origin
		if err := s.signV1(rv, &v1); err != nil {
			return nil, nil, fmt.Errorf("sign event: %w", err)
		}
		raw, err := json.Marshal(&v1)
		if err != nil {
			return nil, nil, err
		}
		ev, err := ParsePDU(raw, "")
		if err != nil {
			return nil, nil, err
		}
		return ev, raw, nil
	}
	var ev pdu.PDU
	if err := json.Unmarshal(tmpl, &ev); err != nil {
		return nil, nil, fmt.Errorf("event template: %w", err)
	}
	ev.Hashes, ev.Signatures, ev.Unsigned = nil, nil, nil
	ev.Content, ev.OriginServerTS = content, ts
	raw, err := s.buildHashed(rv, &ev)
	if err != nil {
		return nil, nil, err
	}
	if len(raw) > MaxPDUBytes {
		return nil, nil, fmt.Errorf("event is larger than %d bytes", MaxPDUBytes)
	}
	return &ev, raw, nil
}
