package importer

import (
	"context"
	"encoding/json/v2"
	"errors"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
)

// IsClientError reports whether the server refused what was sent (a 4xx:
// a message it will not take), rather than failed.
func IsClientError(err error) bool {
	var me *types.Error
	return errors.As(err, &me) && me.Status >= 400 && me.Status < 500
}

// Send writes a batch of a room's events, spans marking where each source
// message's events start (the first at 0). When the server refuses the
// batch (a message it will not take), it is written in halves, down to
// that message alone, which is left out, all but its membership events
// (the joins later messages of its people need), and handed to refused
// with its span's key and the server's error. It returns how many events
// were written, and stops on the first error that is not a refusal.
func Send(ctx context.Context, t Target, roomID id.RoomID, evs []*Event, spans []Span, refused func(key string, err error)) (int, error) {
	return send(ctx, t, roomID, evs, spans, 0, refused)
}

// send is Send of evs, which start at index base of the first batch.
func send(ctx context.Context, t Target, roomID id.RoomID, evs []*Event, spans []Span, base int, refused func(string, error)) (int, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	_, err := t.BatchSend(ctx, roomID, evs)
	if err == nil {
		return len(evs), nil
	}
	if !IsClientError(err) {
		return 0, err
	}
	if len(spans) <= 1 {
		key := ""
		if len(spans) == 1 {
			key = spans[0].Key
		}
		refused(key, err)
		var members []*Event
		for _, ev := range evs {
			if ev.Type == "m.room.member" {
				members = append(members, ev)
			}
		}
		if len(members) > 0 && len(members) < len(evs) {
			if _, err := t.BatchSend(ctx, roomID, members); err == nil {
				return len(members), nil
			} else if !IsClientError(err) {
				return 0, err
			}
		}
		return 0, nil
	}
	mid := len(spans) / 2
	cut := spans[mid].Start - base
	n, err := send(ctx, t, roomID, evs[:cut], spans[:mid], base, refused)
	if err != nil {
		return n, err
	}
	m, err := send(ctx, t, roomID, evs[cut:], spans[mid:], base+cut, refused)
	return n + m, err
}

// SendPins sets a room's pinned events, as bot at ts, to the events of
// aliases that were written, and returns how many that is. An error the
// server refused the event with is IsClientError's.
func SendPins(ctx context.Context, t Target, roomID id.RoomID, bot id.UserID, aliases []id.EventID, ts int64) (int, error) {
	real, err := t.ResolveAliases(ctx, aliases)
	if err != nil {
		return 0, err
	}
	pinned := []id.EventID{}
	for _, a := range aliases {
		if e, ok := real[a]; ok {
			pinned = append(pinned, e)
		}
	}
	content, err := json.Marshal(map[string]any{"pinned": pinned})
	if err != nil {
		return 0, err
	}
	empty := ""
	_, err = t.BatchSend(ctx, roomID, []*Event{{Type: "m.room.pinned_events", StateKey: &empty, Sender: bot,
		Content: content, OriginServerTS: ts}})
	return len(pinned), err
}
