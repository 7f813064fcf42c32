package storagetest

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// searchTests are the cases of the full-text index (SearchEvents,
// CountSearchEvents).
var searchTests = []struct {
	name string
	fn   func(t *testing.T, s storage.Store)
}{
	{"Search/Keys", testSearchKeys},
	{"Search/Terms", testSearchTerms},
	{"Search/RoomsAndBounds", testSearchRooms},
	{"Search/Filters", testSearchFilters},
	{"Search/RecentPaging", testSearchRecentPaging},
	{"Search/RankPaging", testSearchRankPaging},
	{"Search/Redactions", testSearchRedactions},
	{"Search/ManyCommits", testSearchManyCommits},
	{"Search/Counts", testSearchCounts},
	{"Search/ManyRooms", testSearchManyRooms},
	{"Search/History", testSearchHistory},
}

var searchTypes = []string{"m.room.message", "m.room.name", "m.room.topic"}

// contentEv makes an event with the given content.
func contentEv(room id.RoomID, eventID id.EventID, evType string, sender id.UserID, stateKey *string, content map[string]any) *storage.Event {
	raw, err := json.Marshal(map[string]any{"event_id": eventID, "type": evType, "content": content})
	if err != nil {
		panic(err)
	}
	return &storage.Event{EventID: eventID, RoomID: room, Type: evType, StateKey: stateKey, Sender: sender,
		OriginServerTS: 1000, Depth: 1, JSON: raw}
}

// msg makes an m.room.message from sender with the body.
func msg(room id.RoomID, eventID id.EventID, sender id.UserID, body string) *storage.Event {
	return contentEv(room, eventID, "m.room.message", sender, nil, map[string]any{"msgtype": "m.text", "body": body})
}

// query is a search of the rooms (unbounded) for the terms, most recent first.
func query(terms []string, rooms ...id.RoomID) *storage.EventSearch {
	q := &storage.EventSearch{Terms: terms, Types: searchTypes, Limit: 100}
	for _, r := range rooms {
		q.Rooms = append(q.Rooms, storage.SearchRoom{RoomID: r})
	}
	return q
}

func search(t *testing.T, s storage.Store, q *storage.EventSearch) []storage.SearchHit {
	t.Helper()
	hits, err := s.SearchEvents(ctx(t), q)
	must(t, err)
	return hits
}

func hitIDs(hits []storage.SearchHit) []id.EventID {
	out := make([]id.EventID, len(hits))
	for i, h := range hits {
		out[i] = h.Event.EventID
	}
	return out
}

// found runs the query and returns the IDs found, in order.
func found(t *testing.T, s storage.Store, q *storage.EventSearch) []id.EventID {
	t.Helper()
	return hitIDs(search(t, s, q))
}

// Groupings of count.
const (
	byTotal  = ""
	byRoom   = "room_id"
	bySender = "sender"
)

// count sums what CountSearchEvents finds in total ("": always present),
// per room or per sender.
func count(t *testing.T, s storage.Store, q *storage.EventSearch, groupBy string) map[string]int64 {
	t.Helper()
	rows, err := s.CountSearchEvents(ctx(t), q)
	must(t, err)
	out := map[string]int64{}
	if groupBy == byTotal {
		out[""] = 0
	}
	for _, c := range rows {
		if c.Count <= 0 {
			t.Fatalf("count row %+v", c)
		}
		switch groupBy {
		case byTotal:
			out[""] += c.Count
		case byRoom:
			out[c.RoomID.String()] += c.Count
		case bySender:
			out[c.Sender.String()] += c.Count
		}
	}
	return out
}

func eqCounts(t *testing.T, what string, got, want map[string]int64) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

// testSearchKeys: the body of messages, the name and the topic (both of its
// forms) are found; other events and other fields are not.
func testSearchKeys(t *testing.T, s storage.Store) {
	persist(t, s,
		msg(roomA, "$body", alice, "the giraffe is tall"),
		contentEv(roomA, "$name", "m.room.name", alice, strPtr(""), map[string]any{"name": "Giraffe club"}),
		contentEv(roomA, "$topic", "m.room.topic", alice, strPtr(""), map[string]any{"topic": "all about giraffes"}),
		contentEv(roomA, "$mtopic", "m.room.topic", alice, strPtr(""), map[string]any{"topic": "",
			"m.topic": map[string]any{"m.text": []any{
				map[string]any{"mimetype": "text/html", "body": "<b>okapi</b> lovers"},
				map[string]any{"body": "zebra lovers"},
			}}}),
		// Not searchable: other types, other keys, state messages, names
		// with a state key, non-string bodies.
		contentEv(roomA, "$notice", "com.example.giraffe", alice, nil, map[string]any{"body": "giraffe"}),
		contentEv(roomA, "$member", "m.room.member", alice, strPtr(alice), map[string]any{"membership": "join",
			"displayname": "giraffe", "body": "giraffe"}),
		contentEv(roomA, "$statemsg", "m.room.message", alice, strPtr(""), map[string]any{"body": "giraffe"}),
		contentEv(roomA, "$keyedname", "m.room.name", alice, strPtr("x"), map[string]any{"name": "giraffe"}),
		contentEv(roomA, "$otherkey", "m.room.message", alice, nil, map[string]any{"body": "hello", "giraffe": "giraffe"}),
		contentEv(roomA, "$numbody", "m.room.message", alice, nil, map[string]any{"body": 12}),
	)
	eqList(t, "giraffe", found(t, s, query([]string{"giraffe"}, roomA)), []id.EventID{"$topic", "$name", "$body"})
	eqList(t, "zebra (m.topic text/plain)", found(t, s, query([]string{"zebra"}, roomA)), []id.EventID{"$mtopic"})
	eqList(t, "okapi (m.topic text/html only)", found(t, s, query([]string{"okapi"}, roomA)), []id.EventID{})
	eqList(t, "12 (a number body)", found(t, s, query([]string{"12"}, roomA)), []id.EventID{})

	q := query([]string{"giraffe"}, roomA)
	q.Types = []string{"m.room.name", "m.room.topic"}
	eqList(t, "giraffe in names and topics", found(t, s, q), []id.EventID{"$topic", "$name"})
	q.Types = []string{}
	eqList(t, "giraffe in no type", found(t, s, q), []id.EventID{})
}

// testSearchTerms: every term must start a word of the text, in any case
// and any order.
func testSearchTerms(t *testing.T, s storage.Store) {
	persist(t, s,
		msg(roomA, "$1", alice, "Martians and men"),
		msg(roomA, "$2", alice, "men of Mars: MARTIAN-LANGUAGE lessons"),
		msg(roomA, "$3", alice, "smartians"),
		msg(roomA, "$4", alice, "what's up? 'quoted' \"double\" back\\slash"),
	)
	cases := []struct {
		terms []string
		want  []id.EventID
	}{
		{[]string{"martians"}, []id.EventID{"$1"}},
		{[]string{"martian"}, []id.EventID{"$2", "$1"}},
		{[]string{"mart"}, []id.EventID{"$2", "$1"}}, // a prefix, not a substring ($3)
		{[]string{"men", "mar"}, []id.EventID{"$2", "$1"}},
		{[]string{"language", "men"}, []id.EventID{"$2"}},
		{[]string{"martians", "lessons"}, []id.EventID{}},
		{[]string{"venus"}, []id.EventID{}},
		{[]string{"quoted"}, []id.EventID{"$4"}},
		{[]string{"double"}, []id.EventID{"$4"}},
		// Terms that would be syntax in the engines' query languages are words.
		{[]string{`"`}, []id.EventID{}},
		{[]string{`'`}, []id.EventID{}},
		{[]string{`or`}, []id.EventID{}},
		{[]string{`and`}, []id.EventID{"$1"}},
		{[]string{`*`}, []id.EventID{}},
	}
	for _, tc := range cases {
		eqList(t, fmt.Sprintf("terms %q", tc.terms), found(t, s, query(tc.terms, roomA)), tc.want)
	}
	eqList(t, "no terms", found(t, s, query(nil, roomA)), []id.EventID{})
}

// testSearchRooms: only the rooms asked for are searched, each up to its
// bound.
func testSearchRooms(t *testing.T, s storage.Store) {
	a1, b1, c1 := msg(roomA, "$a1", alice, "apple"), msg(roomB, "$b1", alice, "apple"), msg("!c:example.org", "$c1", alice, "apple")
	persist(t, s, a1, b1, c1)
	a2, b2 := msg(roomA, "$a2", alice, "apple"), msg(roomB, "$b2", alice, "apple")
	persist(t, s, a2, b2)
	eqList(t, "rooms a and b", found(t, s, query([]string{"apple"}, roomA, roomB)), []id.EventID{"$b2", "$a2", "$b1", "$a1"})
	eqList(t, "room b", found(t, s, query([]string{"apple"}, roomB)), []id.EventID{"$b2", "$b1"})
	eqList(t, "no rooms", found(t, s, query([]string{"apple"})), []id.EventID{})
	q := query([]string{"apple"}, roomA)
	q.Rooms = append(q.Rooms, storage.SearchRoom{RoomID: roomB, Before: b2.StreamPos})
	eqList(t, "room b up to $b2", found(t, s, q), []id.EventID{"$a2", "$b1", "$a1"})
	q.Rooms = []storage.SearchRoom{{RoomID: roomA, Before: a1.StreamPos}, {RoomID: roomB, Before: b2.StreamPos}}
	eqList(t, "room a up to $a1, room b up to $b2", found(t, s, q), []id.EventID{"$b1"})
}

// testSearchFilters: senders, senders left out and the upper bound.
func testSearchFilters(t *testing.T, s storage.Store) {
	persist(t, s, msg(roomA, "$1", alice, "pear"), msg(roomA, "$2", bob, "pear"), msg(roomA, "$3", carol, "pear"))
	q := query([]string{"pear"}, roomA)
	q.Senders = []id.UserID{alice, carol}
	eqList(t, "senders alice and carol", found(t, s, q), []id.EventID{"$3", "$1"})
	q.NotSenders = []id.UserID{carol}
	eqList(t, "senders alice and carol but not carol", found(t, s, q), []id.EventID{"$1"})
	q.Senders = []id.UserID{}
	eqList(t, "no senders", found(t, s, q), []id.EventID{})
	q.Senders = nil
	eqList(t, "any sender but carol", found(t, s, q), []id.EventID{"$2", "$1"})
	q = query([]string{"pear"}, roomA)
	q.Until = getEvent(t, s, "$2").StreamPos
	eqList(t, "until $2", found(t, s, q), []id.EventID{"$2", "$1"})
}

// pageAll pages through a query with limit n, checking that no hit comes twice.
func pageAll(t *testing.T, s storage.Store, q *storage.EventSearch, n int) []id.EventID {
	t.Helper()
	q.Limit = n
	q.After = nil
	var all []id.EventID
	for range 100 {
		hits := search(t, s, q)
		if len(hits) > n {
			t.Fatalf("page of %d hits with limit %d", len(hits), n)
		}
		for _, h := range hits {
			if slices.Contains(all, h.Event.EventID) {
				t.Fatalf("%s found twice while paging (%v)", h.Event.EventID, all)
			}
			all = append(all, h.Event.EventID)
		}
		if len(hits) < n {
			return all
		}
		c := hits[len(hits)-1].Cursor()
		q.After = &c
	}
	t.Fatal("paging does not end")
	return nil
}

// testSearchRecentPaging: most recent first, resumed after a cursor.
func testSearchRecentPaging(t *testing.T, s storage.Store) {
	var want []id.EventID
	for i := range 7 {
		eventID := id.EventID(fmt.Sprintf("$%d", i))
		persist(t, s, msg(roomA, eventID, alice, fmt.Sprintf("plum number %d", i)))
		want = append([]id.EventID{eventID}, want...)
	}
	persist(t, s, msg(roomA, "$other", alice, "cherry"))
	for _, n := range []int{1, 2, 3, 7, 8} {
		eqList(t, fmt.Sprintf("paging by %d", n), pageAll(t, s, query([]string{"plum"}, roomA), n), want)
	}
	q := query([]string{"plum"}, roomA)
	q.Limit = 3
	eqList(t, "first page", found(t, s, q), want[:3])
}

// testSearchRankPaging: the better match first; paging by rank visits
// every hit once, ties in stream order.
func testSearchRankPaging(t *testing.T, s storage.Store) {
	// Words rare in the room rank (their inverse document frequency is
	// positive); the text with the term three times ranks first.
	var filler []*storage.Event
	for i := range 12 {
		filler = append(filler, msg(roomA, id.EventID(fmt.Sprintf("$filler%d", i)), alice, fmt.Sprintf("nothing to see here %d", i)))
	}
	persist(t, s, filler...)
	persist(t, s,
		msg(roomA, "$once", alice, "a kiwi in a long sentence about many other things entirely"),
		msg(roomA, "$thrice", alice, "kiwi kiwi kiwi"),
		msg(roomA, "$once2", alice, "one more kiwi among a great many other words in this message"),
	)
	q := query([]string{"kiwi"}, roomA)
	q.ByRank = true
	hits := search(t, s, q)
	eqList(t, "kiwi by rank", hitIDs(hits)[:1], []id.EventID{"$thrice"})
	if len(hits) != 3 {
		t.Fatalf("kiwi by rank: %v", hitIDs(hits))
	}
	for i := 1; i < len(hits); i++ {
		if hits[i].Rank > hits[i-1].Rank {
			t.Fatalf("ranks not in order: %v then %v", hits[i-1].Rank, hits[i].Rank)
		}
	}
	if hits[0].Rank <= hits[2].Rank {
		t.Fatalf("$thrice ranks %v, no better than %s at %v", hits[0].Rank, hits[2].Event.EventID, hits[2].Rank)
	}
	full := hitIDs(hits)
	for _, n := range []int{1, 2, 3} {
		q := query([]string{"kiwi"}, roomA)
		q.ByRank = true
		eqList(t, fmt.Sprintf("by rank, paging by %d", n), pageAll(t, s, q, n), full)
	}
	// Paging goes on where it was when new events change the statistics
	// that ranks come from (SQLite's bm25): no hit twice, none left out.
	q = query([]string{"kiwi"}, roomA)
	q.ByRank, q.Limit = true, 1
	first := search(t, s, q)
	var more []*storage.Event
	for i := range 5 {
		more = append(more, msg(roomB, id.EventID(fmt.Sprintf("$new%d", i)), alice, "kiwi and grape"))
	}
	persist(t, s, more...)
	q.Until = getEvent(t, s, "$once2").StreamPos
	got := hitIDs(first)
	for range 10 {
		c := first[len(first)-1].Cursor()
		q.After = &c
		if first = search(t, s, q); len(first) == 0 {
			break
		}
		got = append(got, hitIDs(first)...)
	}
	eqList(t, "by rank, paging while the index grows", got, full)
	// The cursor's event is gone (redacted): paging goes on from its rank.
	q.After = nil
	first = search(t, s, q)
	eqList(t, "first by rank", hitIDs(first), full[:1])
	must(t, s.SetRedactedBy(ctx(t), full[0], "$redaction"))
	c := first[0].Cursor()
	q.After = &c
	eqList(t, "by rank after a redacted cursor", found(t, s, q), full[1:2])
	// Equal ranks page in stream order, most recent first.
	persist(t, s, msg(roomB, "$t1", alice, "lime"), msg(roomB, "$t2", alice, "lime"), msg(roomB, "$t3", alice, "lime"))
	q = query([]string{"lime"}, roomB)
	q.ByRank = true
	eqList(t, "ties by rank", pageAll(t, s, q, 1), []id.EventID{"$t3", "$t2", "$t1"})
}

// testSearchRedactions: redacted, rejected and soft-failed events are not
// found, however the redaction came.
func testSearchRedactions(t *testing.T, s storage.Store) {
	c := ctx(t)
	persist(t, s, msg(roomA, "$m1", alice, "secret plan"), msg(roomA, "$m2", alice, "secret recipe"),
		msg(roomA, "$m3", alice, "secret garden"))
	rejected, soft := msg(roomA, "$rejected", alice, "secret door"), msg(roomA, "$soft", alice, "secret passage")
	rejected.Rejected, soft.SoftFailed = true, true
	early := msg(roomA, "$early", alice, "secret handshake")
	early.RedactedBy = "$r-early" // its redaction came first
	persist(t, s, rejected, soft, early)
	q := query([]string{"secret"}, roomA)
	eqList(t, "before redactions", found(t, s, q), []id.EventID{"$m3", "$m2", "$m1"})

	must(t, s.PersistEvents(c, []*storage.EventWrite{
		{Event: ev(roomA, "$r1", "m.room.redaction"), Redacts: "$m1"},
		{Event: msg(roomA, "$m4", alice, "secret sauce")},
		{Event: ev(roomA, "$r4", "m.room.redaction"), Redacts: "$m4"},
	}))
	eqList(t, "after redacting $m1 and $m4 (same batch)", found(t, s, q), []id.EventID{"$m3", "$m2"})
	must(t, s.SetRedactedBy(c, "$m3", "$r3"))
	eqList(t, "after SetRedactedBy($m3)", found(t, s, q), []id.EventID{"$m2"})
	eqCounts(t, "count", count(t, s, q, byTotal), map[string]int64{"": 1})
	// A failed redaction batch keeps the event in the index (the batch
	// fails on its second use of an alias, after the redaction is marked).
	err := s.PersistEvents(c, []*storage.EventWrite{
		{Event: ev(roomA, "$r2", "m.room.redaction"), Redacts: "$m2", Alias: "$alias"},
		{Event: ev(roomA, "$x", "m.room.message"), Alias: "$alias"},
	})
	if err == nil {
		t.Fatal("a batch using an alias twice was stored")
	}
	eqList(t, "after a failed redaction of $m2", found(t, s, q), []id.EventID{"$m2"})
}

// testSearchManyCommits: events committed one at a time are all found
// at once (SQLite indexes them behind their commits, many at a time), in
// their order, except those redacted before any search.
func testSearchManyCommits(t *testing.T, s storage.Store) {
	c := ctx(t)
	var want []id.EventID
	for i := range 150 {
		eventID := id.EventID(fmt.Sprintf("$many%d", i))
		persist(t, s, msg(roomA, eventID, alice, fmt.Sprintf("harbour note %d", i)))
		if i%7 == 3 {
			must(t, s.SetRedactedBy(c, eventID, id.EventID(fmt.Sprintf("$r-many%d", i))))
			continue
		}
		want = append([]id.EventID{eventID}, want...)
	}
	q := query([]string{"harbour"}, roomA)
	q.Limit = 200
	eqList(t, "found", found(t, s, q), want)
	persist(t, s, msg(roomA, "$many-last", alice, "harbour at last"))
	eq(t, "found after one more", found(t, s, q)[0], "$many-last")
}

// testSearchCounts: counts of all hits, per room and per sender, from a cursor.
func testSearchCounts(t *testing.T, s storage.Store) {
	persist(t, s,
		msg(roomA, "$1", alice, "fig"), msg(roomA, "$2", bob, "fig"), msg(roomB, "$3", alice, "fig"),
		msg(roomB, "$4", alice, "fig tree"), msg(roomB, "$5", alice, "olive"))
	q := query([]string{"fig"}, roomA, roomB)
	eqCounts(t, "total", count(t, s, q, byTotal), map[string]int64{"": 4})
	eqCounts(t, "by room", count(t, s, q, byRoom), map[string]int64{roomA: 2, roomB: 2})
	eqCounts(t, "by sender", count(t, s, q, bySender), map[string]int64{alice: 3, bob: 1})
	c := storage.SearchHit{Event: getEvent(t, s, "$3")}.Cursor()
	q.After = &c
	eqCounts(t, "by room after $3", count(t, s, q, byRoom), map[string]int64{roomA: 2})
	eqCounts(t, "nothing", count(t, s, query([]string{"grape"}, roomA), byTotal), map[string]int64{"": 0})
	eqCounts(t, "nothing by room", count(t, s, query([]string{"grape"}, roomA), byRoom), map[string]int64{})
}

// testSearchManyRooms: a search of more rooms than one query takes.
func testSearchManyRooms(t *testing.T, s storage.Store) {
	var evs []*storage.Event
	var rooms []id.RoomID
	for i := range 1200 {
		room := id.RoomID(fmt.Sprintf("!r%04d:example.org", i))
		rooms = append(rooms, room)
		evs = append(evs, msg(room, id.EventID(fmt.Sprintf("$e%04d", i)), alice, "walnut"))
	}
	persist(t, s, evs...)
	q := query([]string{"walnut"}, rooms...)
	q.Limit = 5
	eqList(t, "latest five", found(t, s, q), []id.EventID{"$e1199", "$e1198", "$e1197", "$e1196", "$e1195"})
	eqCounts(t, "count", count(t, s, q, byTotal), map[string]int64{"": 1200})
	q.ByRank = true
	if got := pageAll(t, s, q, 500); len(got) != 1200 {
		t.Fatalf("paging by rank found %d events, want 1200", len(got))
	}
}

// testSearchHistory: events put before the timeline (negative positions)
// are found, after it in the most recent first order.
func testSearchHistory(t *testing.T, s storage.Store) {
	persist(t, s, msg(roomA, "$live", alice, "almond"))
	writes := bare(msg(roomA, "$old", alice, "almond"))
	writes[0].History = true
	must(t, s.PersistEvents(ctx(t), writes))
	eqList(t, "almond", found(t, s, query([]string{"almond"}, roomA)), []id.EventID{"$live", "$old"})
}
