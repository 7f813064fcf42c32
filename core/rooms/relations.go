package rooms

import (
	"context"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// RelationsRequest is GET /v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]].
type RelationsRequest struct {
	RoomID    id.RoomID
	User      id.UserID
	EventID   id.EventID
	RelType   string
	EventType string
	From      string
	Forwards  bool
	Limit     int
}

// RelationsPage is the answer of the relations endpoint.
type RelationsPage struct {
	Chunk     []*ClientEvent `json:"chunk"`
	NextBatch string         `json:"next_batch,omitempty"`
	PrevBatch string         `json:"prev_batch,omitempty"`
}

// Relations lists the events that relate to an event the user may see.
func (s *Reader) Relations(ctx context.Context, req *RelationsRequest) (*RelationsPage, error) {
	if _, err := s.Event(ctx, req.RoomID, req.User, req.EventID); err != nil {
		return nil, err
	}
	rv, err := s.roomVersion(ctx, req.RoomID)
	if err != nil {
		return nil, err
	}
	limit := req.Limit
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	from := int64(1 << 62)
	if req.Forwards {
		from = -1 << 62
	}
	if req.From != "" {
		if from, err = ParseToken(req.From); err != nil {
			return nil, err
		}
		if req.Forwards {
			from-- // the token is the point before an event
		}
	}
	evs, err := s.store.Relations(ctx, req.EventID, req.RelType, req.EventType, from, !req.Forwards, limit+1)
	if err != nil {
		return nil, err
	}
	page := &RelationsPage{}
	if len(evs) > limit {
		evs = evs[:limit]
		last := evs[limit-1].StreamPos
		if req.Forwards {
			last++
		}
		page.NextBatch = Token(last)
	}
	v, err := s.newViewer(ctx, req.RoomID, req.User)
	if err != nil {
		return nil, err
	}
	if evs, err = v.filter(ctx, evs); err != nil {
		return nil, err
	}
	if page.Chunk, err = s.formatter(rv).forUser(req.User).format(ctx, evs); err != nil {
		return nil, err
	}
	if req.From != "" {
		page.PrevBatch = req.From
	}
	return page, nil
}

// Threads lists a room's thread roots, most recently active first
// (GET /v1/rooms/{roomId}/threads); participated keeps the user's threads.
func (s *Reader) Threads(ctx context.Context, roomID id.RoomID, user id.UserID, from string, limit int, participated bool) (*RelationsPage, error) {
	rv, err := s.roomVersion(ctx, roomID)
	if err != nil {
		return nil, err
	}
	if _, ok, err := s.stateGroupFor(ctx, roomID, user); err != nil {
		return nil, err
	} else if !ok {
		return nil, errNotMember(roomID)
	}
	if limit <= 0 {
		limit = 50
	}
	limit = min(limit, 1000)
	pos := int64(1 << 62)
	if from != "" {
		if pos, err = ParseToken(from); err != nil {
			return nil, err
		}
	}
	v, err := s.newViewer(ctx, roomID, user)
	if err != nil {
		return nil, err
	}
	f := s.formatter(rv).forUser(user)
	page := &RelationsPage{Chunk: []*ClientEvent{}}
	for len(page.Chunk) < limit {
		start := pos
		roots, err := s.store.ThreadRoots(ctx, roomID, pos, limit)
		if err != nil {
			return nil, err
		}
		if len(roots) == 0 {
			break
		}
		// Paging follows every root's latest activity, including roots the
		// user may not see, so that hidden roots neither stop the walk nor
		// make it skip or repeat threads.
		latest, err := s.threadActivity(ctx, roots)
		if err != nil {
			return nil, err
		}
		visible, err := v.filter(ctx, roots)
		if err != nil {
			return nil, err
		}
		formatted, err := f.format(ctx, visible)
		if err != nil {
			return nil, err
		}
		shown := make(map[id.EventID]*ClientEvent, len(formatted))
		for _, ce := range formatted {
			shown[ce.EventID] = ce
		}
		for _, r := range roots {
			if p, ok := latest[r.EventID]; ok {
				pos = p
			}
			ce := shown[r.EventID]
			if ce == nil {
				continue
			}
			rel, _ := ce.Unsigned["m.relations"].(map[string]any)
			th, _ := rel["m.thread"].(map[string]any)
			if th == nil {
				continue
			}
			if participated && th["current_user_participated"] != true {
				continue
			}
			page.Chunk = append(page.Chunk, ce)
			if len(page.Chunk) == limit {
				page.NextBatch = Token(pos)
				break
			}
		}
		if len(roots) < limit || pos >= start {
			break
		}
	}
	return page, nil
}

// threadActivity is the position of the latest reply of each thread root,
// counted as ThreadRoots orders them.
func (s *Reader) threadActivity(ctx context.Context, roots []*storage.Event) (map[id.EventID]int64, error) {
	ids := make([]id.EventID, len(roots))
	for i, r := range roots {
		ids[i] = r.EventID
	}
	aggs, err := s.store.RelationAggregates(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[id.EventID]int64, len(roots))
	for _, a := range aggs {
		if a.RelType == "m.thread" {
			out[a.Parent] = max(out[a.Parent], a.LatestPos)
		}
	}
	return out, nil
}
