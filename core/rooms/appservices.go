package rooms

import (
	"cmp"
	"context"
	"slices"

	"github.com/tributary-hs/tributary/storage"
)

// clientEvent formats one stored event of any room, in its room's version.
func (s *Reader) clientEvent(ctx context.Context, e *storage.Event) (*ClientEvent, error) {
	rv, err := s.roomVersion(ctx, e.RoomID)
	if err != nil {
		return nil, err
	}
	return s.formatter(rv).one(ctx, e, true)
}

// EventsAt formats the events at the given stream positions, in order, for
// an appservice transaction.
func (s *Reader) EventsAt(ctx context.Context, positions []int64) ([]*ClientEvent, error) {
	evs, err := s.store.GetEventsByPos(ctx, positions)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(evs, func(a, b *storage.Event) int { return cmp.Compare(a.StreamPos, b.StreamPos) })
	out := make([]*ClientEvent, 0, len(evs))
	for _, e := range evs {
		ce, err := s.clientEvent(ctx, e)
		if err != nil {
			return nil, err
		}
		out = append(out, ce)
	}
	return out, nil
}
