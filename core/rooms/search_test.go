package rooms

import (
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

func TestSearchTerms(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"martians and men", []string{"martians", "and", "men"}},
		{"  Martians, MARTIANS!  men-of-mars ", []string{"martians", "men", "of", "mars"}},
		{`"quoted" OR -not * NEAR(a b)`, []string{"quoted", "or", "not", "near", "a", "b"}},
		{"Wörld 1.5 ünïcode", []string{"wörld", "1", "5", "ünïcode"}},
		{"nai\u0308ve", []string{"nai\u0308ve"}}, // a combining mark stays in its word
		{"日本語 テキスト", []string{"日本語", "テキスト"}},
		{"!!! ... ''", nil},
		{"", nil},
	} {
		if got := searchTerms(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("searchTerms(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestSearchTokenRoundTrip(t *testing.T) {
	for _, tok := range []searchToken{
		{Until: 10, Pos: 7},
		{ByRank: true, Until: 10, Pos: -3, Rank: 0.1 + 0.2},
		{ByRank: true, Until: 1 << 40, Pos: 5, Rank: 1e-300, GroupKey: "room_id", GroupValue: "!r:x"},
		{Until: 10, Pos: 7, GroupKey: "sender", GroupValue: "@a:x"},
	} {
		s, err := tok.encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseSearchToken(s)
		if err != nil {
			t.Fatalf("parse %q (%+v): %v", s, tok, err)
		}
		if *got != tok {
			t.Errorf("token %+v came back as %+v", tok, *got)
		}
	}
	for _, bad := range []string{"", "!!",
		"bm90IGpzb24", // "not json"
		"W10",         // []
		mustEncode(t, searchToken{GroupKey: "type", GroupValue: "m.room.message"}),
		mustEncode(t, searchToken{GroupKey: "room_id"}),
		mustEncode(t, searchToken{GroupValue: "!r:x"}),
	} {
		if _, err := parseSearchToken(bad); !isCode(err, types.CodeInvalidParam) {
			t.Errorf("parse %q: got %v, want M_INVALID_PARAM", bad, err)
		}
	}
}

func mustEncode(t *testing.T, tok searchToken) string {
	t.Helper()
	s, err := tok.encode()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func isCode(err error, code string) bool {
	me, ok := types.AsError(err)
	return ok && me.Code == code
}

func ptr[T any](v T) *T { return &v }

func TestPlanSearch(t *testing.T) {
	term := ptr("volcano")
	plan := func(c *SearchCriteria, next string) (*searchPlan, error) {
		return planSearch(&SearchRequest{User: "@a:x", Criteria: c, NextBatch: next})
	}
	rankTok := mustEncode(t, searchToken{ByRank: true, Until: 9, Pos: 4, Rank: 0.5})
	senderTok := mustEncode(t, searchToken{Until: 9, Pos: 4, GroupKey: "sender", GroupValue: "@b:x"})

	t.Run("Defaults", func(t *testing.T) {
		p, err := plan(&SearchCriteria{SearchTerm: term}, "")
		if err != nil {
			t.Fatal(err)
		}
		if !p.byRank || p.limit != searchDefaultLimit || p.context != nil || p.token != nil || p.senders != nil {
			t.Fatalf("plan %+v", p)
		}
		if want := []string{"m.room.message", "m.room.name", "m.room.topic"}; !slices.Equal(p.types, want) {
			t.Fatalf("types %v, want %v", p.types, want)
		}
	})
	t.Run("KeysAndFilterTypes", func(t *testing.T) {
		p, err := plan(&SearchCriteria{SearchTerm: term, Keys: []string{"content.topic", "content.body"},
			Filter: &SearchFilter{EventFilter: EventFilter{NotTypes: []string{"m.room.top*"}}}}, "")
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"m.room.message"}; !slices.Equal(p.types, want) {
			t.Fatalf("types %v, want %v", p.types, want)
		}
		p, err = plan(&SearchCriteria{SearchTerm: term,
			Filter: &SearchFilter{EventFilter: EventFilter{Types: []string{"m.room.name", "m.room.member"}}}}, "")
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"m.room.name"}; !slices.Equal(p.types, want) {
			t.Fatalf("types %v, want %v", p.types, want)
		}
	})
	t.Run("Limits", func(t *testing.T) {
		p, err := plan(&SearchCriteria{SearchTerm: term, OrderBy: "recent",
			Filter:       &SearchFilter{EventFilter: EventFilter{Limit: 1000}},
			EventContext: &SearchEventContext{AfterLimit: ptr(0), BeforeLimit: ptr(1000)}}, "")
		if err != nil {
			t.Fatal(err)
		}
		if p.byRank || p.limit != searchMaxLimit || p.before != searchMaxContext || p.after != 0 {
			t.Fatalf("plan %+v", p)
		}
		p, err = plan(&SearchCriteria{SearchTerm: term, EventContext: &SearchEventContext{}}, "")
		if err != nil {
			t.Fatal(err)
		}
		if p.before != searchDefaultContext || p.after != searchDefaultContext {
			t.Fatalf("context limits %d, %d", p.before, p.after)
		}
	})
	t.Run("SenderGroupToken", func(t *testing.T) {
		for _, tc := range []struct {
			filter *SearchFilter
			want   []id.UserID
		}{
			{nil, []id.UserID{"@b:x"}},
			{&SearchFilter{EventFilter: EventFilter{Senders: []id.UserID{"@a:x", "@b:x"}}}, []id.UserID{"@b:x"}},
			{&SearchFilter{EventFilter: EventFilter{Senders: []id.UserID{"@a:x"}}}, []id.UserID{}},
			{&SearchFilter{EventFilter: EventFilter{NotSenders: []id.UserID{"@b:x"}}}, []id.UserID{}},
		} {
			p, err := plan(&SearchCriteria{SearchTerm: term, OrderBy: "recent", Filter: tc.filter}, senderTok)
			if err != nil {
				t.Fatal(err)
			}
			if p.senders == nil || !slices.Equal(p.senders, tc.want) {
				t.Errorf("filter %+v: senders %v, want %v", tc.filter, p.senders, tc.want)
			}
		}
	})
	t.Run("Errors", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			c    *SearchCriteria
			next string
			code string
		}{
			{"no criteria", nil, "", types.CodeMissingParam},
			{"no search_term", &SearchCriteria{}, "", types.CodeMissingParam},
			{"unknown key", &SearchCriteria{SearchTerm: term, Keys: []string{"content.msgtype"}}, "", types.CodeInvalidParam},
			{"unknown order", &SearchCriteria{SearchTerm: term, OrderBy: "oldest"}, "", types.CodeInvalidParam},
			{"negative limit", &SearchCriteria{SearchTerm: term, Filter: &SearchFilter{EventFilter: EventFilter{Limit: -1}}}, "",
				types.CodeInvalidParam},
			{"negative before_limit", &SearchCriteria{SearchTerm: term, EventContext: &SearchEventContext{BeforeLimit: ptr(-1)}}, "",
				types.CodeInvalidParam},
			{"negative after_limit", &SearchCriteria{SearchTerm: term, EventContext: &SearchEventContext{AfterLimit: ptr(-1)}}, "",
				types.CodeInvalidParam},
			{"unknown group", &SearchCriteria{SearchTerm: term,
				Groupings: &SearchGroupings{GroupBy: []SearchGroupKey{{Key: "room_id"}, {Key: "type"}}}}, "", types.CodeInvalidParam},
			{"bad token", &SearchCriteria{SearchTerm: term}, "garbage!", types.CodeInvalidParam},
			{"token of another order", &SearchCriteria{SearchTerm: term, OrderBy: "recent"}, rankTok, types.CodeInvalidParam},
			{"too many senders", &SearchCriteria{SearchTerm: term, Filter: &SearchFilter{EventFilter: EventFilter{
				NotSenders: make([]id.UserID, searchMaxSenders+1)}}}, "", types.CodeInvalidParam},
			{"too many words", &SearchCriteria{SearchTerm: ptr("a b c d e f g h i j k l m n o p q r s t u v w x y z " +
				"aa bb cc dd ee ff gg")}, "", types.CodeInvalidParam},
		} {
			if _, err := plan(tc.c, tc.next); !isCode(err, tc.code) {
				t.Errorf("%s: got %v, want %s", tc.name, err, tc.code)
			}
		}
	})
}

func TestSearchHighlights(t *testing.T) {
	hit := func(body string) storage.SearchHit {
		return storage.SearchHit{Event: &storage.Event{Type: "m.room.message",
			JSON: []byte(`{"content":{"body":` + quote(body) + `}}`)}}
	}
	got := searchHighlights([]string{"volc", "ash"}, []storage.SearchHit{
		hit("The Volcano erupted; volcanic ASH everywhere"), hit("volcano again, no cash"),
	})
	want := []string{"ASH", "Volcano", "ash", "volc", "volcanic", "volcano"}
	if !slices.Equal(got, want) {
		t.Fatalf("highlights %q, want %q", got, want)
	}
}

func quote(s string) string { return `"` + s + `"` }
