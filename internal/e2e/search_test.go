package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// searchEvent is an event of a search answer.
type searchEvent struct {
	EventID  id.EventID     `json:"event_id"`
	RoomID   id.RoomID      `json:"room_id"`
	Sender   id.UserID      `json:"sender"`
	Type     string         `json:"type"`
	StateKey *string        `json:"state_key"`
	Content  map[string]any `json:"content"`
}

type searchGroup struct {
	Results   []id.EventID `json:"results"`
	Order     int          `json:"order"`
	NextBatch string       `json:"next_batch"`
}

// searchAnswer is the room_events category of a POST /search answer.
type searchAnswer struct {
	Count      *int64   `json:"count"`
	Highlights []string `json:"highlights"`
	Results    []struct {
		Rank    float64     `json:"rank"`
		Result  searchEvent `json:"result"`
		Context *struct {
			Start        string        `json:"start"`
			End          string        `json:"end"`
			EventsBefore []searchEvent `json:"events_before"`
			EventsAfter  []searchEvent `json:"events_after"`
			ProfileInfo  map[id.UserID]struct {
				DisplayName string `json:"displayname"`
			} `json:"profile_info"`
		} `json:"context"`
	} `json:"results"`
	State     map[id.RoomID][]searchEvent       `json:"state"`
	Groups    map[string]map[string]searchGroup `json:"groups"`
	NextBatch string                            `json:"next_batch"`
}

// ids are the event IDs of the results, in order.
func (a *searchAnswer) ids() []id.EventID {
	out := []id.EventID{}
	for _, r := range a.Results {
		out = append(out, r.Result.EventID)
	}
	return out
}

// searchRaw posts a search (criteria is the room_events category) and
// returns the status and the raw answer.
func searchRaw(t *testing.T, srv *testserver.Server, token, nextBatch string, criteria map[string]any) (int, []byte) {
	t.Helper()
	path := "/_matrix/client/v3/search"
	if nextBatch != "" {
		path += "?next_batch=" + url.QueryEscape(nextBatch)
	}
	return srv.DoRaw(t, http.MethodPost, path, token, map[string]any{"search_categories": map[string]any{"room_events": criteria}})
}

// searchOK posts a search that must succeed.
func searchOK(t *testing.T, srv *testserver.Server, cli *mautrix.Client, nextBatch string, criteria map[string]any) *searchAnswer {
	t.Helper()
	code, raw := searchRaw(t, srv, cli.AccessToken, nextBatch, criteria)
	if code != http.StatusOK {
		t.Fatalf("search %v: HTTP %d %s", criteria, code, raw)
	}
	var body struct {
		SearchCategories struct {
			RoomEvents *searchAnswer `json:"room_events"`
		} `json:"search_categories"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("search answer %s: %v", raw, err)
	}
	a := body.SearchCategories.RoomEvents
	if a == nil || a.Count == nil || a.Highlights == nil || a.Results == nil {
		t.Fatalf("search answer without room_events, count, highlights or results: %s", raw)
	}
	return a
}

// searchFor is a search of the term, most recent first, with more criteria.
func searchFor(term string, more ...any) map[string]any {
	c := map[string]any{"search_term": term, "order_by": "recent"}
	for i := 0; i+1 < len(more); i += 2 {
		c[more[i].(string)] = more[i+1]
	}
	return c
}

func wantIDs(t *testing.T, what string, got []id.EventID, want ...id.EventID) {
	t.Helper()
	if want == nil {
		want = []id.EventID{}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: found %v, want %v", what, got, want)
	}
}

func searchSend(t *testing.T, cli *mautrix.Client, room id.RoomID, body string) id.EventID {
	t.Helper()
	resp, err := cli.SendText(t.Context(), room, body)
	if err != nil {
		t.Fatalf("send %q: %v", body, err)
	}
	return resp.EventID
}

func searchRoom(t *testing.T, cli *mautrix.Client, req *mautrix.ReqCreateRoom) id.RoomID {
	t.Helper()
	resp, err := cli.CreateRoom(t.Context(), req)
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	return resp.RoomID
}

func searchJoin(t *testing.T, cli *mautrix.Client, room id.RoomID) {
	t.Helper()
	if _, err := cli.JoinRoomByID(t.Context(), room); err != nil {
		t.Fatalf("%s joins %s: %v", cli.UserID, room, err)
	}
}

// searchStateEvent is the event ID of a room's current state event.
func searchStateEvent(t *testing.T, srv *testserver.Server, cli *mautrix.Client, room id.RoomID, evType string) id.EventID {
	t.Helper()
	code, raw := srv.DoRaw(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(string(room))+"/state", cli.AccessToken, nil)
	if code != http.StatusOK {
		t.Fatalf("state of %s: HTTP %d %s", room, code, raw)
	}
	var evs []searchEvent
	if err := json.Unmarshal(raw, &evs); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if e.Type == evType && e.StateKey != nil && *e.StateKey == "" {
			return e.EventID
		}
	}
	t.Fatalf("no %s in %s", evType, room)
	return ""
}

// TestSearch runs server-side search on both databases.
func TestSearch(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { testSearch(t, startOpen(t)) })
	t.Run("PostgreSQL", func(t *testing.T) {
		srv := testserver.Start(t, testserver.Options{Args: append([]string{"--database-url", pgtest.URL(t)}, openArgs...)})
		testSearch(t, srv)
	})
}

func testSearch(t *testing.T, srv *testserver.Server) {
	ctx := t.Context()
	alice, bob, carol := register(t, srv, "alice", defaultPassword), register(t, srv, "bob", defaultPassword),
		register(t, srv, "carol", defaultPassword)
	for _, c := range []*mautrix.Client{alice, bob} {
		if err := c.SetDisplayName(ctx, strings.ToUpper(c.UserID.Localpart())); err != nil {
			t.Fatal(err)
		}
	}
	volcano := searchRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Volcano club", Topic: "lava and ash talk"})
	searchJoin(t, bob, volcano)
	erupted := searchSend(t, alice, volcano, "The volcano erupted")
	ashes := searchSend(t, bob, volcano, "volcanic ash everywhere")
	quiet := searchSend(t, alice, volcano, "all quiet today")
	again := searchSend(t, bob, volcano, "Volcano, again!")
	alone := searchRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	aloneVolcano := searchSend(t, alice, alone, "a volcano of my own")
	secret := searchRoom(t, carol, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	carolVolcano := searchSend(t, carol, secret, "carol's secret volcano")
	nameEvent := searchStateEvent(t, srv, alice, volcano, "m.room.name")
	topicEvent := searchStateEvent(t, srv, alice, volcano, "m.room.topic")

	t.Run("Keys", func(t *testing.T) {
		a := searchOK(t, srv, alice, "", searchFor("volcano"))
		wantIDs(t, "volcano", a.ids(), aloneVolcano, again, erupted, nameEvent)
		wantIDs(t, "volcano in bodies", searchOK(t, srv, alice, "", searchFor("volcano", "keys", []string{"content.body"})).ids(),
			aloneVolcano, again, erupted)
		wantIDs(t, "volcano in names", searchOK(t, srv, alice, "", searchFor("volcano", "keys", []string{"content.name"})).ids(),
			nameEvent)
		wantIDs(t, "lava", searchOK(t, srv, alice, "", searchFor("lava")).ids(), topicEvent)
		wantIDs(t, "lava in topics", searchOK(t, srv, alice, "", searchFor("lava", "keys", []string{"content.topic"})).ids(),
			topicEvent)
		wantIDs(t, "lava in bodies", searchOK(t, srv, alice, "", searchFor("lava", "keys", []string{"content.body"})).ids())
		// Words start with the terms, every term must be found, case does not matter.
		wantIDs(t, "VOLC", searchOK(t, srv, alice, "", searchFor("VOLC", "keys", []string{"content.body"})).ids(),
			aloneVolcano, again, ashes, erupted)
		wantIDs(t, "volcano erupted", searchOK(t, srv, alice, "", searchFor("erupted volcano")).ids(), erupted)
		wantIDs(t, "olcano", searchOK(t, srv, alice, "", searchFor("olcano")).ids())
		wantIDs(t, "punctuation only", searchOK(t, srv, alice, "", searchFor("?!")).ids())
		// A member of the room finds the same events in it.
		wantIDs(t, "bob's volcano", searchOK(t, srv, bob, "", searchFor("volcano")).ids(), again, erupted, nameEvent)
	})

	t.Run("Highlights", func(t *testing.T) {
		a := searchOK(t, srv, alice, "", searchFor("volc", "keys", []string{"content.body"}))
		for _, w := range []string{"volc", "volcano", "Volcano", "volcanic"} {
			if !slices.Contains(a.Highlights, w) {
				t.Fatalf("highlights %q lack %q", a.Highlights, w)
			}
		}
		if slices.Contains(a.Highlights, "ash") {
			t.Fatalf("highlights %q hold a word not searched for", a.Highlights)
		}
	})

	t.Run("OnlyRoomsOfTheUser", func(t *testing.T) {
		a := searchOK(t, srv, carol, "", searchFor("volcano"))
		wantIDs(t, "carol's volcano", a.ids(), carolVolcano)
		if *a.Count != 1 {
			t.Fatalf("carol's count %d, want 1", *a.Count)
		}
		// Naming a room one is not in does not help.
		wantIDs(t, "carol in the volcano room",
			searchOK(t, srv, carol, "", searchFor("volcano", "filter", map[string]any{"rooms": []id.RoomID{volcano}})).ids())
	})

	t.Run("LeftRooms", func(t *testing.T) {
		// Bob sees a room he left up to his leave; one with "joined"
		// history only from his join; one he never joined not at all.
		glacier := searchRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		searchJoin(t, bob, glacier)
		before := searchSend(t, alice, glacier, "glacier before")
		if _, err := bob.LeaveRoom(ctx, glacier); err != nil {
			t.Fatal(err)
		}
		searchSend(t, alice, glacier, "glacier after")
		wantIDs(t, "bob's glacier", searchOK(t, srv, bob, "", searchFor("glacier")).ids(), before)

		fjord := searchRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", InitialState: []*event.Event{{
			Type: event.StateHistoryVisibility, StateKey: ptrTo(""),
			Content: event.Content{Raw: map[string]any{"history_visibility": "joined"}}}}})
		searchSend(t, alice, fjord, "fjord early")
		searchJoin(t, bob, fjord)
		late := searchSend(t, alice, fjord, "fjord late")
		wantIDs(t, "bob's fjord", searchOK(t, srv, bob, "", searchFor("fjord")).ids(), late)

		open := searchRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", InitialState: []*event.Event{{
			Type: event.StateHistoryVisibility, StateKey: ptrTo(""),
			Content: event.Content{Raw: map[string]any{"history_visibility": "world_readable"}}}}})
		searchSend(t, alice, open, "tundra for all")
		wantIDs(t, "bob's tundra", searchOK(t, srv, bob, "", searchFor("tundra")).ids())

		// An invitation is not a stay, even where it lets one read the room.
		meadow := searchRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat", InitialState: []*event.Event{{
			Type: event.StateHistoryVisibility, StateKey: ptrTo(""),
			Content: event.Content{Raw: map[string]any{"history_visibility": "invited"}}}}})
		if _, err := alice.InviteUser(ctx, meadow, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
			t.Fatal(err)
		}
		searchSend(t, alice, meadow, "meadow flowers")
		wantIDs(t, "invited carol's meadow", searchOK(t, srv, carol, "", searchFor("meadow")).ids())
	})

	t.Run("Order", func(t *testing.T) {
		// "kiwi" is rare among all the indexed text: its frequency in a
		// message makes the rank.
		orchard := searchRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		for i := range 15 {
			searchSend(t, alice, orchard, fmt.Sprintf("filler message number %d", i))
		}
		thrice := searchSend(t, alice, orchard, "kiwi kiwi kiwi")
		once := searchSend(t, alice, orchard, "a single kiwi in a long message with many other words around it")
		onceMore := searchSend(t, alice, orchard, "one more kiwi in another long message with plenty of other words")
		wantIDs(t, "recent", searchOK(t, srv, alice, "", searchFor("kiwi")).ids(), onceMore, once, thrice)
		byRank := searchOK(t, srv, alice, "", map[string]any{"search_term": "kiwi", "order_by": "rank"})
		if ids := byRank.ids(); len(ids) != 3 || ids[0] != thrice {
			t.Fatalf("by rank: %v, want %s first", ids, thrice)
		}
		if byRank.Results[0].Rank <= byRank.Results[2].Rank {
			t.Fatalf("ranks %v, %v, %v do not put the best first", byRank.Results[0].Rank, byRank.Results[1].Rank,
				byRank.Results[2].Rank)
		}
		// Rank is the default order.
		wantIDs(t, "default order", searchOK(t, srv, alice, "", map[string]any{"search_term": "kiwi"}).ids(), byRank.ids()...)
	})

	t.Run("Pagination", func(t *testing.T) {
		quarry := searchRoom(t, alice, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		var want []id.EventID
		for i := range 7 {
			want = append([]id.EventID{searchSend(t, alice, quarry, fmt.Sprintf("pebble %d", i))}, want...)
		}
		for _, order := range []string{"recent", "rank"} {
			criteria := map[string]any{"search_term": "pebble", "order_by": order, "filter": map[string]any{"limit": 3}}
			var got []id.EventID
			next := ""
			var sizes []int
			for range 10 {
				a := searchOK(t, srv, alice, next, criteria)
				if *a.Count != 7 {
					t.Fatalf("%s: count %d, want 7", order, *a.Count)
				}
				got = append(got, a.ids()...)
				sizes = append(sizes, len(a.Results))
				if next = a.NextBatch; next == "" {
					break
				}
			}
			if !slices.Equal(sizes, []int{3, 3, 1}) {
				t.Fatalf("%s: page sizes %v, want [3 3 1]", order, sizes)
			}
			if order == "recent" {
				wantIDs(t, "pages", got, want...)
			} else if sorted := slices.Sorted(slices.Values(got)); !slices.Equal(sorted, slices.Sorted(slices.Values(want))) {
				t.Fatalf("rank pages: %v, want each of %v once", got, want)
			}
		}
		// A message sent while paging does not slip into later pages.
		first := searchOK(t, srv, alice, "", map[string]any{"search_term": "pebble", "order_by": "rank",
			"filter": map[string]any{"limit": 3}})
		searchSend(t, alice, quarry, "pebble pebble pebble latecomer")
		second := searchOK(t, srv, alice, first.NextBatch, map[string]any{"search_term": "pebble", "order_by": "rank",
			"filter": map[string]any{"limit": 3}})
		if *second.Count != 7 || len(second.Results) != 3 {
			t.Fatalf("second page after a new message: count %d, %d results", *second.Count, len(second.Results))
		}
		for _, e := range second.ids() {
			if slices.Contains(first.ids(), e) || !slices.Contains(want, e) {
				t.Fatalf("second page %v after a new message, first page %v", second.ids(), first.ids())
			}
		}
		// A token goes with its order.
		code, raw := searchRaw(t, srv, alice.AccessToken, first.NextBatch, searchFor("pebble"))
		wantStatus(t, "rank token in a recent search", code, decode(t, raw), http.StatusBadRequest, "M_INVALID_PARAM")
	})

	t.Run("Filter", func(t *testing.T) {
		wantIDs(t, "room", searchOK(t, srv, alice, "", searchFor("volcano",
			"filter", map[string]any{"rooms": []id.RoomID{alone}})).ids(), aloneVolcano)
		wantIDs(t, "not room", searchOK(t, srv, alice, "", searchFor("volcano",
			"filter", map[string]any{"not_rooms": []id.RoomID{volcano}})).ids(), aloneVolcano)
		wantIDs(t, "sender", searchOK(t, srv, alice, "", searchFor("volc",
			"filter", map[string]any{"senders": []id.UserID{bob.UserID}})).ids(), again, ashes)
		wantIDs(t, "not sender", searchOK(t, srv, alice, "", searchFor("volcano",
			"filter", map[string]any{"not_senders": []id.UserID{alice.UserID}})).ids(), again)
		wantIDs(t, "types", searchOK(t, srv, alice, "", searchFor("volcano",
			"filter", map[string]any{"types": []string{"m.room.name"}})).ids(), nameEvent)
		wantIDs(t, "not types", searchOK(t, srv, alice, "", searchFor("volcano",
			"filter", map[string]any{"not_types": []string{"m.room.message", "m.room.topic"}})).ids(), nameEvent)
		file, err := alice.SendMessageEvent(ctx, alone, event.EventMessage, map[string]any{
			"msgtype": "m.file", "body": "volcano-report.pdf", "url": "mxc://localhost/report"})
		if err != nil {
			t.Fatal(err)
		}
		wantIDs(t, "contains_url", searchOK(t, srv, alice, "", searchFor("volcano",
			"filter", map[string]any{"contains_url": true})).ids(), file.EventID)
		wantIDs(t, "limit", searchOK(t, srv, alice, "", searchFor("volcano",
			"filter", map[string]any{"contains_url": false, "limit": 2})).ids(), aloneVolcano, again)
		if _, err := alice.RedactEvent(ctx, alone, file.EventID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("EventContext", func(t *testing.T) {
		a := searchOK(t, srv, alice, "", searchFor("ash", "keys", []string{"content.body"},
			"event_context", map[string]any{"before_limit": 1, "after_limit": 2, "include_profile": true}))
		wantIDs(t, "ash", a.ids(), ashes)
		c := a.Results[0].Context
		if c == nil {
			t.Fatal("no context")
		}
		var before, after []id.EventID
		for _, e := range c.EventsBefore {
			before = append(before, e.EventID)
		}
		for _, e := range c.EventsAfter {
			after = append(after, e.EventID)
		}
		wantIDs(t, "events before", before, erupted)
		wantIDs(t, "events after", after, quiet, again)
		if c.Start == "" || c.End == "" || c.Start == c.End {
			t.Fatalf("context tokens %q, %q", c.Start, c.End)
		}
		if len(c.ProfileInfo) != 2 || c.ProfileInfo[alice.UserID].DisplayName != "ALICE" ||
			c.ProfileInfo[bob.UserID].DisplayName != "BOB" {
			t.Fatalf("profile info %+v", c.ProfileInfo)
		}
		// The tokens page on from the context: before it, bob's join; after
		// it, nothing yet.
		messages := func(dir, from string) []any {
			t.Helper()
			code, body := srv.Do(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(string(volcano))+
				"/messages?limit=1&dir="+dir+"&from="+url.QueryEscape(from), alice.AccessToken, nil)
			wantStatus(t, "messages from a context token", code, body, http.StatusOK, "")
			chunk, _ := body["chunk"].([]any)
			return chunk
		}
		if chunk := messages("b", c.Start); len(chunk) != 1 || chunk[0].(map[string]any)["type"] != "m.room.member" ||
			chunk[0].(map[string]any)["state_key"] != string(bob.UserID) {
			t.Fatalf("messages before the context: %v", chunk)
		}
		if chunk := messages("f", c.End); len(chunk) != 0 {
			t.Fatalf("messages after the context: %v", chunk)
		}
		// Without event_context, no context; the defaults are 5 each side.
		if a := searchOK(t, srv, alice, "", searchFor("ash", "keys", []string{"content.body"})); a.Results[0].Context != nil {
			t.Fatal("context without event_context")
		}
		a = searchOK(t, srv, alice, "", searchFor("ash", "keys", []string{"content.body"}, "event_context", map[string]any{}))
		if c := a.Results[0].Context; c == nil || len(c.EventsBefore) != 5 || len(c.EventsAfter) != 2 || c.ProfileInfo != nil {
			t.Fatalf("default context %+v", c)
		}
	})

	t.Run("IncludeState", func(t *testing.T) {
		a := searchOK(t, srv, alice, "", searchFor("volcano", "include_state", true))
		if len(a.State) != 2 || len(a.State[volcano]) == 0 || len(a.State[alone]) == 0 {
			t.Fatalf("state of %d rooms", len(a.State))
		}
		names := 0
		for _, e := range a.State[volcano] {
			if e.Type == "m.room.name" && e.Content["name"] == "Volcano club" {
				names++
			}
		}
		if names != 1 {
			t.Fatalf("volcano room state without its name: %+v", a.State[volcano])
		}
		if a := searchOK(t, srv, alice, "", searchFor("volcano")); a.State != nil {
			t.Fatal("state without include_state")
		}
	})

	t.Run("Groups", func(t *testing.T) {
		criteria := searchFor("volcano", "keys", []string{"content.body"}, "filter", map[string]any{"limit": 2},
			"groupings", map[string]any{"group_by": []map[string]any{{"key": "room_id"}, {"key": "sender"}}})
		a := searchOK(t, srv, alice, "", criteria)
		wantIDs(t, "first page", a.ids(), aloneVolcano, again)
		if *a.Count != 3 || a.NextBatch == "" {
			t.Fatalf("count %d, next_batch %q", *a.Count, a.NextBatch)
		}
		rooms, senders := a.Groups["room_id"], a.Groups["sender"]
		if len(rooms) != 2 || len(senders) != 2 {
			t.Fatalf("groups %+v", a.Groups)
		}
		wantIDs(t, "alone group", rooms[string(alone)].Results, aloneVolcano)
		wantIDs(t, "volcano group", rooms[string(volcano)].Results, again)
		wantIDs(t, "alice group", senders[string(alice.UserID)].Results, aloneVolcano)
		wantIDs(t, "bob group", senders[string(bob.UserID)].Results, again)
		if rooms[string(alone)].Order != 1 || rooms[string(volcano)].Order != 2 {
			t.Fatalf("room group order %d, %d", rooms[string(alone)].Order, rooms[string(volcano)].Order)
		}
		// More is left in the volcano room (erupted) and of alice, not in
		// her own room nor of bob.
		if rooms[string(alone)].NextBatch != "" || senders[string(bob.UserID)].NextBatch != "" {
			t.Fatalf("next_batch in groups with nothing more: %+v", a.Groups)
		}
		for _, g := range []searchGroup{rooms[string(volcano)], senders[string(alice.UserID)]} {
			if g.NextBatch == "" {
				t.Fatalf("no next_batch in a group with more: %+v", a.Groups)
			}
			rest := searchOK(t, srv, alice, g.NextBatch, criteria)
			wantIDs(t, "rest of the group", rest.ids(), erupted)
			if rest.NextBatch != "" {
				t.Fatalf("next_batch %q after the last of a group", rest.NextBatch)
			}
		}
		rest := searchOK(t, srv, alice, a.NextBatch, criteria)
		wantIDs(t, "second page", rest.ids(), erupted)
	})

	t.Run("Redacted", func(t *testing.T) {
		obsidian := searchSend(t, alice, alone, "obsidian secret")
		wantIDs(t, "before the redaction", searchOK(t, srv, alice, "", searchFor("obsidian")).ids(), obsidian)
		if _, err := alice.RedactEvent(ctx, alone, obsidian); err != nil {
			t.Fatal(err)
		}
		a := searchOK(t, srv, alice, "", searchFor("obsidian"))
		wantIDs(t, "after the redaction", a.ids())
		if *a.Count != 0 {
			t.Fatalf("count %d after the redaction", *a.Count)
		}
		// A redacted name is not found by its old words either.
		wantIDs(t, "redacted file", searchOK(t, srv, alice, "", searchFor("report")).ids())
	})

	t.Run("r0", func(t *testing.T) {
		code, raw := srv.DoRaw(t, http.MethodPost, "/_matrix/client/r0/search", alice.AccessToken,
			map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "erupted"}}})
		if code != http.StatusOK || !strings.Contains(string(raw), string(erupted)) {
			t.Fatalf("r0 search: HTTP %d %s", code, raw)
		}
	})

	t.Run("BadRequests", func(t *testing.T) {
		post := func(what string, body any, next string, status int, code string) {
			t.Helper()
			path := "/_matrix/client/v3/search"
			if next != "" {
				path += "?next_batch=" + url.QueryEscape(next)
			}
			st, b := srv.Do(t, http.MethodPost, path, alice.AccessToken, body)
			wantStatus(t, what, st, b, status, code)
		}
		cat := func(c any) map[string]any {
			return map[string]any{"search_categories": map[string]any{"room_events": c}}
		}
		post("not JSON", "{nope", "", http.StatusBadRequest, "M_NOT_JSON")
		post("no search_categories", map[string]any{}, "", http.StatusBadRequest, "M_MISSING_PARAM")
		post("search_categories not an object", map[string]any{"search_categories": []int{1}}, "", http.StatusBadRequest, "M_BAD_JSON")
		post("room_events not an object", cat("volcano"), "", http.StatusBadRequest, "M_BAD_JSON")
		post("no search_term", cat(map[string]any{}), "", http.StatusBadRequest, "M_MISSING_PARAM")
		post("search_term not a string", cat(map[string]any{"search_term": 5}), "", http.StatusBadRequest, "M_BAD_JSON")
		post("filter not an object", cat(map[string]any{"search_term": "x", "filter": "x"}), "", http.StatusBadRequest, "M_BAD_JSON")
		post("unknown key", cat(map[string]any{"search_term": "x", "keys": []string{"content.msgtype"}}), "",
			http.StatusBadRequest, "M_INVALID_PARAM")
		post("unknown order", cat(map[string]any{"search_term": "x", "order_by": "oldest"}), "", http.StatusBadRequest, "M_INVALID_PARAM")
		post("unknown group", cat(map[string]any{"search_term": "x", "groupings": map[string]any{
			"group_by": []map[string]any{{"key": "type"}}}}), "", http.StatusBadRequest, "M_INVALID_PARAM")
		post("negative limit", cat(map[string]any{"search_term": "x", "filter": map[string]any{"limit": -1}}), "",
			http.StatusBadRequest, "M_INVALID_PARAM")
		post("negative before_limit", cat(map[string]any{"search_term": "x", "event_context": map[string]any{"before_limit": -1}}), "",
			http.StatusBadRequest, "M_INVALID_PARAM")
		post("bad next_batch", cat(map[string]any{"search_term": "x"}), "not a token", http.StatusBadRequest, "M_INVALID_PARAM")
		post("unknown category", map[string]any{"search_categories": map[string]any{"room_events": map[string]any{"search_term": "x"},
			"messages": map[string]any{}}}, "", http.StatusBadRequest, "M_UNRECOGNIZED")
		st, b := srv.Do(t, http.MethodPost, "/_matrix/client/v3/search", "", cat(map[string]any{"search_term": "x"}))
		wantStatus(t, "no access token", st, b, http.StatusUnauthorized, "M_MISSING_TOKEN")
		st, b = srv.Do(t, http.MethodPost, "/_matrix/client/v3/search", alice.AccessToken, map[string]any{"search_categories": map[string]any{}})
		wantStatus(t, "no category", st, b, http.StatusOK, "")
		if cats, ok := b["search_categories"].(map[string]any); !ok || len(cats) != 0 {
			t.Fatalf("no category: %v", b)
		}
	})
}

func ptrTo[T any](v T) *T { return &v }
