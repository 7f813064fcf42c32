package rooms

import (
	"context"
	"encoding/base64"
	"encoding/json/v2"
	"math"
	"slices"
	"strings"
	"unicode"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// Server-side search (client-server API, "Server Side Search"), category
// room_events: the events a user may see, in the rooms they are or were
// joined to, whose body, name or topic hold every word searched for (each
// as the start of a word). The full-text index belongs to storage; this
// file decides which rooms and events a user may find and shapes the answer.

// SearchCriteria is the room_events category of a POST /search.
type SearchCriteria struct {
	SearchTerm   *string             `json:"search_term"`
	Keys         []string            `json:"keys"`
	Filter       *SearchFilter       `json:"filter"`
	OrderBy      string              `json:"order_by"`
	EventContext *SearchEventContext `json:"event_context"`
	IncludeState bool                `json:"include_state"`
	Groupings    *SearchGroupings    `json:"groupings"`
}

// SearchFilter is the RoomEventFilter of a search.
type SearchFilter struct {
	EventFilter
	Rooms    []id.RoomID `json:"rooms"`
	NotRooms []id.RoomID `json:"not_rooms"`
}

// SearchEventContext asks for the events around each result.
type SearchEventContext struct {
	BeforeLimit    *int `json:"before_limit"`
	AfterLimit     *int `json:"after_limit"`
	IncludeProfile bool `json:"include_profile"`
}

// SearchGroupings asks for the results to be grouped.
type SearchGroupings struct {
	GroupBy []SearchGroupKey `json:"group_by"`
}

// SearchGroupKey is one grouping: room_id or sender.
type SearchGroupKey struct {
	Key string `json:"key"`
}

// SearchRequest is a POST /search of the room_events category.
type SearchRequest struct {
	User   id.UserID
	Device id.DeviceID
	// NextBatch is the next_batch token of an earlier answer ("" for the first page).
	NextBatch string
	Criteria  *SearchCriteria
}

// SearchResults is the room_events category of the answer.
type SearchResults struct {
	Count      int64                                    `json:"count"`
	Highlights []string                                 `json:"highlights"`
	Results    []*SearchResult                          `json:"results"`
	State      map[id.RoomID][]*ClientEvent             `json:"state,omitempty"`
	Groups     map[string]map[string]*SearchGroupResult `json:"groups,omitempty"`
	NextBatch  string                                   `json:"next_batch,omitempty"`
}

// SearchResult is one event found.
type SearchResult struct {
	Rank    float64        `json:"rank"`
	Result  *ClientEvent   `json:"result"`
	Context *SearchContext `json:"context,omitempty"`
}

// SearchContext is what came before and after a result.
type SearchContext struct {
	Start        string                      `json:"start"`
	End          string                      `json:"end"`
	EventsBefore []*ClientEvent              `json:"events_before"`
	EventsAfter  []*ClientEvent              `json:"events_after"`
	ProfileInfo  map[id.UserID]SearchProfile `json:"profile_info,omitempty"`
}

// SearchProfile is a sender's profile in the room at the time of a result.
type SearchProfile struct {
	DisplayName *string `json:"displayname,omitempty"`
	AvatarURL   *string `json:"avatar_url,omitempty"`
}

// SearchGroupResult is the results of a page that share a room or sender.
type SearchGroupResult struct {
	Results []id.EventID `json:"results"`
	// Order ranks the groups by their first result in the page (1 first).
	Order     int    `json:"order"`
	NextBatch string `json:"next_batch,omitempty"`
}

// searchKeys maps the spec's search keys to the event type each searches.
var searchKeys = map[string]string{
	"content.body":  "m.room.message",
	"content.name":  "m.room.name",
	"content.topic": "m.room.topic",
}

const (
	searchDefaultLimit   = 10
	searchMaxLimit       = 100
	searchDefaultContext = 5
	searchMaxContext     = 100
	searchMaxTerms       = 32
	// searchMaxSenders keeps the senders of a filter, which the index
	// query lists, within the databases' limits on parameters.
	searchMaxSenders = 1000
	// searchMaxRounds bounds the index reads of one page when the user may
	// see few of the events found; the page then ends early, with a token.
	searchMaxRounds = 20
)

// searchToken is the opaque next_batch: where the last page ended, in which
// order, the stream position the first page was taken at (later events are
// left out, so that pages and counts hold still), and the group paged
// within, if any.
type searchToken struct {
	ByRank     bool    `json:"k,omitempty"`
	Until      int64   `json:"u"`
	Pos        int64   `json:"p"`
	Rank       float64 `json:"r,omitempty"`
	GroupKey   string  `json:"g,omitempty"`
	GroupValue string  `json:"v,omitempty"`
}

func (t searchToken) encode() (string, error) {
	raw, err := json.Marshal(t)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

func parseSearchToken(s string) (*searchToken, error) {
	bad := types.InvalidParam("Invalid next_batch token")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	var t searchToken
	if err := json.Unmarshal(raw, &t); err != nil || math.IsNaN(t.Rank) {
		return nil, bad
	}
	switch {
	case t.GroupKey == "" && t.GroupValue == "":
	case (t.GroupKey == "room_id" || t.GroupKey == "sender") && t.GroupValue != "":
	default:
		return nil, bad
	}
	return &t, nil
}

// searchTerms splits a search term into the lower-cased words to find:
// runs of letters, digits and combining marks; everything else separates
// them (and so cannot be query syntax for the index).
func searchTerms(term string) []string {
	var out []string
	for _, w := range strings.FieldsFunc(term, notWordRune) {
		if w = strings.ToLower(w); !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

func notWordRune(r rune) bool {
	return !unicode.IsLetter(r) && !unicode.IsNumber(r) && !unicode.IsMark(r)
}

// searchPlan is a validated request.
type searchPlan struct {
	terms      []string
	types      []string
	filter     *SearchFilter
	byRank     bool
	limit      int
	context    *SearchEventContext
	before     int
	after      int
	groupKeys  []string
	token      *searchToken
	senders    []id.UserID
	notSenders []id.UserID
}

func planSearch(req *SearchRequest) (*searchPlan, error) {
	c := req.Criteria
	if c == nil || c.SearchTerm == nil {
		return nil, types.MissingParam("search_term is required")
	}
	p := &searchPlan{terms: searchTerms(*c.SearchTerm), filter: c.Filter, limit: searchDefaultLimit, byRank: true}
	if len(p.terms) > searchMaxTerms {
		return nil, types.InvalidParam("search_term has more than %d words", searchMaxTerms)
	}
	switch c.OrderBy {
	case "", "rank":
	case "recent":
		p.byRank = false
	default:
		return nil, types.InvalidParam("order_by must be recent or rank")
	}
	keys := c.Keys
	if len(keys) == 0 {
		keys = []string{"content.body", "content.name", "content.topic"}
	}
	for _, k := range keys {
		t, ok := searchKeys[k]
		if !ok {
			return nil, types.InvalidParam("Unknown search key %q: keys are content.body, content.name and content.topic", k)
		}
		if !slices.Contains(p.types, t) && (p.filter == nil || p.filter.allowsType(t)) {
			p.types = append(p.types, t)
		}
	}
	slices.Sort(p.types)
	if f := p.filter; f != nil {
		if f.Limit < 0 {
			return nil, types.InvalidParam("filter.limit must be positive")
		}
		if f.Limit > 0 {
			p.limit = min(f.Limit, searchMaxLimit)
		}
		if len(f.Senders) > searchMaxSenders || len(f.NotSenders) > searchMaxSenders {
			return nil, types.InvalidParam("filter.senders and filter.not_senders hold at most %d users each", searchMaxSenders)
		}
		if f.Senders != nil {
			p.senders = slices.Clone(f.Senders)
		}
		p.notSenders = f.NotSenders
	}
	if ec := c.EventContext; ec != nil {
		p.context, p.before, p.after = ec, searchDefaultContext, searchDefaultContext
		for _, l := range []struct {
			n    *int
			to   *int
			name string
		}{{ec.BeforeLimit, &p.before, "before_limit"}, {ec.AfterLimit, &p.after, "after_limit"}} {
			if l.n == nil {
				continue
			}
			if *l.n < 0 {
				return nil, types.InvalidParam("event_context.%s must not be negative", l.name)
			}
			*l.to = min(*l.n, searchMaxContext)
		}
	}
	if g := c.Groupings; g != nil {
		for _, k := range g.GroupBy {
			if k.Key != "room_id" && k.Key != "sender" {
				return nil, types.InvalidParam("Unknown group key %q: groups are by room_id or sender", k.Key)
			}
			if !slices.Contains(p.groupKeys, k.Key) {
				p.groupKeys = append(p.groupKeys, k.Key)
			}
		}
	}
	if req.NextBatch != "" {
		t, err := parseSearchToken(req.NextBatch)
		if err != nil {
			return nil, err
		}
		if t.ByRank != p.byRank {
			return nil, types.InvalidParam("next_batch belongs to a search in another order")
		}
		p.token = t
		if t.GroupKey == "sender" {
			// Paging within a sender's group: that sender, if the filter allows them.
			sender := id.UserID(t.GroupValue)
			if (p.senders == nil || slices.Contains(p.senders, sender)) && !slices.Contains(p.notSenders, sender) {
				p.senders = []id.UserID{sender}
			} else {
				p.senders = []id.UserID{}
			}
		}
	}
	return p, nil
}

// allowsType applies the filter's types and not_types to an event type.
func (f *SearchFilter) allowsType(t string) bool {
	if f.Types != nil && !slices.ContainsFunc(f.Types, func(p string) bool { return typeMatches(p, t) }) {
		return false
	}
	return !slices.ContainsFunc(f.NotTypes, func(p string) bool { return typeMatches(p, t) })
}

// allowsRoom applies the filter's rooms and not_rooms.
func (f *SearchFilter) allowsRoom(r id.RoomID) bool {
	if f == nil {
		return true
	}
	return (f.Rooms == nil || slices.Contains(f.Rooms, r)) && !slices.Contains(f.NotRooms, r)
}

// searchableRooms are the rooms the user may search, each with the viewer
// that decides which of its events they may see. A room they are joined
// to is searched whole; one they left (or were kicked or banned from, or
// are invited back to) up to the end of their last stay, unless they
// forgot it; rooms they never joined are not searched.
func (s *Reader) searchableRooms(ctx context.Context, user id.UserID, p *searchPlan) ([]storage.SearchRoom, map[id.RoomID]*viewer, error) {
	ms, err := s.store.RoomsOfUser(ctx, user, []string{"join", "leave", "ban", "invite", "knock"})
	if err != nil {
		return nil, nil, err
	}
	var rooms []storage.SearchRoom
	viewers := map[id.RoomID]*viewer{}
	for _, m := range ms {
		roomID := m.RoomID
		if !p.filter.allowsRoom(roomID) ||
			(p.token != nil && p.token.GroupKey == "room_id" && p.token.GroupValue != roomID.String()) {
			continue
		}
		if m.Membership != "join" {
			if forgotten, err := s.store.IsForgotten(ctx, user, m.RoomID); err != nil {
				return nil, nil, err
			} else if forgotten {
				continue
			}
		}
		v, err := s.viewerWith(ctx, roomID, user, m.Membership, m.EventID)
		if err != nil {
			return nil, nil, err
		}
		if v.joinedUntil == 0 {
			continue
		}
		r := storage.SearchRoom{RoomID: m.RoomID}
		if v.joinedUntil != math.MaxInt64 {
			r.Before = v.joinedUntil
		}
		rooms = append(rooms, r)
		viewers[roomID] = v
	}
	return rooms, viewers, nil
}

// Search runs a POST /search of the room_events category.
func (s *Reader) Search(ctx context.Context, req *SearchRequest) (*SearchResults, error) {
	p, err := planSearch(req)
	if err != nil {
		return nil, err
	}
	res := &SearchResults{Highlights: []string{}, Results: []*SearchResult{}}
	if len(p.terms) == 0 || len(p.types) == 0 {
		return res, nil
	}
	rooms, viewers, err := s.searchableRooms(ctx, req.User, p)
	if err != nil {
		return nil, err
	}
	q := &storage.EventSearch{Terms: p.terms, Rooms: rooms, Types: p.types, Senders: p.senders,
		NotSenders: p.notSenders, ByRank: p.byRank}
	if p.token != nil {
		q.Until = p.token.Until
	} else if q.Until, err = s.store.MaxStreamPos(ctx); err != nil {
		return nil, err
	}
	counts, err := s.visibleCounts(ctx, q, viewers)
	if err != nil {
		return nil, err
	}
	res.Count = counts.total
	if p.token != nil {
		q.After = &storage.SearchCursor{Rank: p.token.Rank, StreamPos: p.token.Pos}
	}
	hits, more, err := s.searchPage(ctx, q, p, viewers)
	if err != nil {
		return nil, err
	}
	if res.Results, err = s.searchResults(ctx, req, hits); err != nil {
		return nil, err
	}
	res.Highlights = searchHighlights(p.terms, hits)
	if p.context != nil {
		for i, r := range res.Results {
			if r.Context, err = s.searchContext(ctx, req, p, hits[i].Event, r.Result); err != nil {
				return nil, err
			}
		}
	}
	if req.Criteria.IncludeState {
		if res.State, err = s.searchState(ctx, req.User, hits); err != nil {
			return nil, err
		}
	}
	next := searchToken{ByRank: p.byRank, Until: q.Until}
	if p.token != nil {
		next.GroupKey, next.GroupValue = p.token.GroupKey, p.token.GroupValue
	}
	if more {
		next.Pos, next.Rank = q.After.StreamPos, q.After.Rank
		if res.NextBatch, err = next.encode(); err != nil {
			return nil, err
		}
	}
	if len(p.groupKeys) > 0 {
		if res.Groups, err = s.searchGroups(ctx, q, p, hits, more, next, viewers); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// searchPage reads the index until it has a page of events the user may
// see, leaving q.After at the last event read; more says whether the index
// may hold further events.
func (s *Reader) searchPage(ctx context.Context, q *storage.EventSearch, p *searchPlan, viewers map[id.RoomID]*viewer) ([]storage.SearchHit, bool, error) {
	var picked []storage.SearchHit
	var f *EventFilter // contains_url, which the index does not know
	if p.filter != nil {
		f = &p.filter.EventFilter
	}
	// One more than a page: when every event is visible, the extra one
	// tells that there are more without another read.
	q.Limit = p.limit + 1
	for range searchMaxRounds {
		hits, err := s.store.SearchEvents(ctx, q)
		if err != nil {
			return nil, false, err
		}
		exhausted := len(hits) < q.Limit
		for _, h := range hits {
			if len(picked) == p.limit {
				return picked, true, nil // h is left for the next page
			}
			c := h.Cursor()
			q.After = &c
			if !f.Allows(h.Event) {
				continue
			}
			ok, err := viewers[h.Event.RoomID].canSee(ctx, h.Event)
			if err != nil {
				return nil, false, err
			}
			if ok {
				picked = append(picked, h)
			}
		}
		if exhausted {
			return picked, false, nil
		}
		// Most of what was read was hidden: read more at a time.
		q.Limit = min(q.Limit*2, 500)
	}
	return picked, true, nil
}

// searchResults formats the hits, room by room (a formatter is for one room).
func (s *Reader) searchResults(ctx context.Context, req *SearchRequest, hits []storage.SearchHit) ([]*SearchResult, error) {
	byRoom := map[id.RoomID][]*storage.Event{}
	for _, h := range hits {
		byRoom[h.Event.RoomID] = append(byRoom[h.Event.RoomID], h.Event)
	}
	formatted := map[id.EventID]*ClientEvent{}
	for roomID, evs := range byRoom {
		rv, err := s.roomVersion(ctx, roomID)
		if err != nil {
			return nil, err
		}
		ces, err := s.formatter(rv).forUser(req.User).forDevice(req.Device).format(ctx, evs)
		if err != nil {
			return nil, err
		}
		for _, ce := range ces {
			formatted[ce.EventID] = ce
		}
	}
	out := make([]*SearchResult, len(hits))
	for i, h := range hits {
		out[i] = &SearchResult{Rank: h.Rank, Result: formatted[h.Event.EventID]}
	}
	return out, nil
}

// searchHighlights are the words to highlight: the terms searched for and
// the words of the results that they start.
func searchHighlights(terms []string, hits []storage.SearchHit) []string {
	out := slices.Clone(terms)
	for _, h := range hits {
		for _, w := range strings.FieldsFunc(storage.SearchableText(h.Event), notWordRune) {
			lw := strings.ToLower(w)
			if !slices.Contains(out, w) && slices.ContainsFunc(terms, func(t string) bool { return strings.HasPrefix(lw, t) }) {
				out = append(out, w)
			}
		}
	}
	slices.Sort(out)
	return out
}

// searchContext is the events around a result that the user may see, as
// GET /context gives them, with the senders' profiles if asked for.
func (s *Reader) searchContext(ctx context.Context, req *SearchRequest, p *searchPlan, e *storage.Event, ce *ClientEvent) (*SearchContext, error) {
	roomID := e.RoomID
	out := &SearchContext{Start: Token(e.StreamPos), End: Token(e.StreamPos + 1),
		EventsBefore: []*ClientEvent{}, EventsAfter: []*ClientEvent{}}
	if p.before > 0 {
		page, err := s.Messages(ctx, &MessagesRequest{RoomID: roomID, User: req.User, Device: req.Device,
			From: Token(e.StreamPos), Backwards: true, Limit: p.before})
		if err != nil {
			return nil, err
		}
		out.EventsBefore = page.Chunk
		if n := len(page.Chunk); n > 0 {
			out.Start = Token(page.Chunk[n-1].pos)
		}
	}
	if p.after > 0 {
		page, err := s.Messages(ctx, &MessagesRequest{RoomID: roomID, User: req.User, Device: req.Device,
			From: Token(e.StreamPos + 1), Limit: p.after})
		if err != nil {
			return nil, err
		}
		out.EventsAfter = page.Chunk
		if n := len(page.Chunk); n > 0 {
			out.End = Token(page.Chunk[n-1].pos + 1)
		}
	}
	if !p.context.IncludeProfile {
		return out, nil
	}
	// The profiles as the room knew them at the last event returned.
	group := e.StateGroup
	if n := len(out.EventsAfter); n > 0 {
		last, err := s.store.GetEvent(ctx, out.EventsAfter[n-1].EventID)
		if err != nil {
			return nil, err
		}
		group = last.StateGroup
	}
	var senders []id.UserID
	for _, c := range slices.Concat(out.EventsBefore, []*ClientEvent{ce}, out.EventsAfter) {
		if !slices.Contains(senders, c.Sender) {
			senders = append(senders, c.Sender)
		}
	}
	var memberIDs []id.EventID
	for _, u := range senders {
		eid, err := s.store.StateEntryAt(ctx, group, "m.room.member", string(u))
		if err != nil {
			return nil, err
		}
		if eid != "" {
			memberIDs = append(memberIDs, eid)
		}
	}
	members, err := s.store.GetEvents(ctx, memberIDs)
	if err != nil {
		return nil, err
	}
	out.ProfileInfo = map[id.UserID]SearchProfile{}
	for _, m := range members {
		if m.StateKey == nil {
			continue
		}
		var prof SearchProfile
		if v := gjson.GetBytes(m.JSON, "content.displayname"); v.Type == gjson.String {
			prof.DisplayName = &v.Str
		}
		if v := gjson.GetBytes(m.JSON, "content.avatar_url"); v.Type == gjson.String {
			prof.AvatarURL = &v.Str
		}
		out.ProfileInfo[id.UserID(*m.StateKey)] = prof
	}
	return out, nil
}

// searchState is the state of each room of the results that the user may
// read: the current state, or the state when they left.
func (s *Reader) searchState(ctx context.Context, user id.UserID, hits []storage.SearchHit) (map[id.RoomID][]*ClientEvent, error) {
	out := map[id.RoomID][]*ClientEvent{}
	for _, h := range hits {
		roomID := h.Event.RoomID
		if _, done := out[roomID]; done {
			continue
		}
		st, err := s.State(ctx, roomID, user)
		if me, ok := types.AsError(err); ok && me.Code == types.CodeForbidden {
			continue
		} else if err != nil {
			return nil, err
		}
		out[roomID] = st
	}
	return out, nil
}

// searchGroups groups the page's results by room and by sender. A group
// has a next_batch (the page's, within the group) when the index holds
// more of its events past the page.
func (s *Reader) searchGroups(ctx context.Context, q *storage.EventSearch, p *searchPlan, hits []storage.SearchHit,
	more bool, next searchToken, viewers map[id.RoomID]*viewer) (map[string]map[string]*SearchGroupResult, error) {
	var past *searchCounts // what the user may see past the page
	if more {
		var err error
		if past, err = s.visibleCounts(ctx, q, viewers); err != nil {
			return nil, err
		}
	}
	out := map[string]map[string]*SearchGroupResult{}
	for _, key := range p.groupKeys {
		groups := map[string]*SearchGroupResult{}
		for _, h := range hits {
			v := h.Event.RoomID.String()
			if key == "sender" {
				v = h.Event.Sender.String()
			}
			g := groups[v]
			if g == nil {
				g = &SearchGroupResult{Results: []id.EventID{}, Order: len(groups) + 1}
				groups[v] = g
			}
			g.Results = append(g.Results, h.Event.EventID)
		}
		if more {
			rest := past.byRoom
			if key == "sender" {
				rest = past.bySender
			}
			for v, g := range groups {
				if rest[v] == 0 {
					continue
				}
				t := next
				t.GroupKey, t.GroupValue = key, v
				var err error
				if g.NextBatch, err = t.encode(); err != nil {
					return nil, err
				}
			}
		}
		out[key] = groups
	}
	return out, nil
}

// searchCounts are the events a search finds that the user may see, in
// all, per room and per sender.
type searchCounts struct {
	total    int64
	byRoom   map[string]int64
	bySender map[string]int64
}

// visibleCounts counts what the search finds that each room's viewer lets
// the user see: a count that took in events hidden by history visibility
// would tell a later joiner that a word was said before they came. The
// store counts per state group, so each group's visibility is decided
// once, whatever the number of events.
func (s *Reader) visibleCounts(ctx context.Context, q *storage.EventSearch, viewers map[id.RoomID]*viewer) (*searchCounts, error) {
	rows, err := s.store.CountSearchEvents(ctx, q)
	if err != nil {
		return nil, err
	}
	out := &searchCounts{byRoom: map[string]int64{}, bySender: map[string]int64{}}
	for _, c := range rows {
		v := viewers[c.RoomID]
		if v == nil {
			continue
		}
		// The searched types are messages, names and topics (never the
		// user's own membership), and a room is searched only up to the
		// end of the user's last stay, so the group decides.
		ok, err := v.canSee(ctx, &storage.Event{RoomID: c.RoomID, StateGroup: c.StateGroup, Type: "m.room.message",
			StreamPos: v.joinedUntil - 1})
		if err != nil {
			return nil, err
		}
		if ok {
			out.total += c.Count
			out.byRoom[c.RoomID.String()] += c.Count
			out.bySender[c.Sender.String()] += c.Count
		}
	}
	return out, nil
}
