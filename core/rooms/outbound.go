package rooms

import (
	"cmp"
	"context"
	"encoding/json/jsontext"
	"slices"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// OutboundPDU is a queued event as sent to other servers.
type OutboundPDU struct {
	Pos     int64
	RoomID  id.RoomID
	EventID id.EventID
	JSON    jsontext.Value
}

// FederationPDUs returns the events at the stream positions, oldest
// first, as they are sent to other servers: their wire JSON, redacted if
// a redaction applies to them by now (signatures and hashes kept, so that
// the receiver checks them). Positions with no event are skipped, and so
// is history inserted backward (never sent to other servers).
func (s *Reader) FederationPDUs(ctx context.Context, positions []int64) ([]OutboundPDU, error) {
	evs, err := s.store.GetEventsByPos(ctx, positions)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(evs, func(a, b *storage.Event) int { return cmp.Compare(a.StreamPos, b.StreamPos) })
	out := make([]OutboundPDU, 0, len(evs))
	for _, e := range evs {
		if e.StreamPos <= 0 || e.Rejected {
			continue
		}
		raw, err := s.fedJSON(ctx, e)
		if err != nil {
			return nil, err
		}
		out = append(out, OutboundPDU{Pos: e.StreamPos, RoomID: e.RoomID, EventID: e.EventID, JSON: raw})
	}
	return out, nil
}
