package rooms

import (
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// ClientEvent is an event as the client-server API shows it.
type ClientEvent struct {
	Content        jsontext.Value `json:"content"`
	EventID        id.EventID     `json:"event_id"`
	OriginServerTS int64          `json:"origin_server_ts"`
	RoomID         id.RoomID      `json:"room_id"`
	Sender         id.UserID      `json:"sender"`
	StateKey       *string        `json:"state_key,omitempty"`
	Type           string         `json:"type"`
	Redacts        id.EventID     `json:"redacts,omitempty"`
	Unsigned       map[string]any `json:"unsigned,omitempty"`

	// pos is the stream position (for tokens); not serialised.
	pos int64
}

// formatter turns stored events into client events for one request.
type formatter struct {
	s   *Service
	rv  id.RoomVersion
	now int64
}

func (s *Service) formatter(rv id.RoomVersion) *formatter {
	return &formatter{s: s, rv: rv, now: s.nowMS()}
}

// format renders events; redacted ones lose their content as the room
// version's redaction algorithm says and carry redacted_because.
func (f *formatter) format(ctx context.Context, evs []*storage.Event) ([]*ClientEvent, error) {
	out := make([]*ClientEvent, 0, len(evs))
	for _, e := range evs {
		ce, err := f.one(ctx, e, true)
		if err != nil {
			return nil, err
		}
		out = append(out, ce)
	}
	return out, nil
}

func (f *formatter) one(ctx context.Context, e *storage.Event, withRedaction bool) (*ClientEvent, error) {
	p, err := parsePDU(e)
	if err != nil {
		return nil, err
	}
	ce := &ClientEvent{EventID: id.EventID(e.EventID), OriginServerTS: p.OriginServerTS, RoomID: id.RoomID(e.RoomID),
		Sender: p.Sender, StateKey: p.StateKey, Type: p.Type, Content: p.Content, pos: e.StreamPos,
		Unsigned: map[string]any{"age": max(0, f.now-p.OriginServerTS)}}
	if p.Type == "m.room.redaction" {
		if p.Redacts != nil {
			ce.Redacts = *p.Redacts
		} else {
			var c struct {
				Redacts id.EventID `json:"redacts"`
			}
			_ = json.Unmarshal(p.Content, &c)
			ce.Redacts = c.Redacts
		}
	}
	if e.ReplacesState != "" {
		if prev, err := f.s.store.GetEvent(ctx, e.ReplacesState); err == nil {
			if pp, err := parsePDU(prev); err == nil {
				if prev.RedactedBy != "" {
					pp = pp.Redact(f.rv)
				}
				ce.Unsigned["prev_content"] = pp.Content
				ce.Unsigned["replaces_state"] = e.ReplacesState
			}
		}
	}
	if e.RedactedBy != "" && withRedaction {
		red := p.Clone().Redact(f.rv)
		ce.Content = red.Content
		if r, err := f.s.store.GetEvent(ctx, e.RedactedBy); err == nil {
			if rce, err := f.one(ctx, r, false); err == nil {
				ce.Unsigned["redacted_because"] = rce
			}
		}
	}
	return ce, nil
}

// pduOf is used by callers that need the raw PDU of a stored event.
func pduOf(e *storage.Event) (*pdu.PDU, error) { return parsePDU(e) }
