package sync

import (
	"slices"
	"testing"

	"github.com/tributary-hs/tributary/core/stream"
)

func TestMergeByPos(t *testing.T) {
	id := func(p int64) int64 { return p }
	for _, tc := range []struct {
		name    string
		pages   []streamPage[int64]
		limit   int
		want    []int64
		wantEnd int64
	}{
		{name: "nothing", want: nil, wantEnd: 50, limit: 10},
		{name: "interleaved rooms in stream order", limit: 10,
			pages:   []streamPage[int64]{{events: []int64{3, 7, 9}, reached: 50}, {events: []int64{1, 8}, reached: 50}},
			want:    []int64{1, 3, 7, 8, 9},
			wantEnd: 50},
		{name: "a room cut short holds the stream back", limit: 10,
			// Room A stopped reading at 7: it may have events in (7, 50],
			// so room B's 8 and 20 wait for the next request.
			pages:   []streamPage[int64]{{events: []int64{3, 7}, reached: 7}, {events: []int64{1, 8, 20}, reached: 50}},
			want:    []int64{1, 3, 7},
			wantEnd: 7},
		{name: "the limit cuts the merged stream", limit: 3,
			pages:   []streamPage[int64]{{events: []int64{2, 4, 6}, reached: 50}, {events: []int64{1, 3, 5}, reached: 50}},
			want:    []int64{1, 2, 3},
			wantEnd: 3},
		{name: "a page that reached its own end does not hold back", limit: 10,
			pages:   []streamPage[int64]{{events: []int64{}, reached: 50}, {events: []int64{10}, reached: 50}},
			want:    []int64{10},
			wantEnd: 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, end := mergeByPos(tc.pages, 50, tc.limit, id)
			if !slices.Equal(got, tc.want) || end != tc.wantEnd {
				t.Fatalf("got %v up to %d, want %v up to %d", got, end, tc.want, tc.wantEnd)
			}
		})
	}
}

// Paging through a stream with mergeByPos, request after request, yields
// every event once, in order, whatever the limits.
func TestMergeByPosContinuity(t *testing.T) {
	rooms := [][]int64{{1, 4, 5, 6, 12, 13, 20}, {2, 3, 7, 8, 9, 10, 11}, {14, 15, 16, 17, 18, 19}}
	const upto = 25
	for _, roomLimit := range []int{1, 2, 3, 100} {
		for _, limit := range []int{1, 2, 5, 100} {
			var got []int64
			after := int64(0)
			for range 100 {
				var pages []streamPage[int64]
				for _, evs := range rooms {
					// A room read of (after, upto] stopped after roomLimit events.
					var p streamPage[int64]
					p.reached = upto
					for _, e := range evs {
						if e > after {
							p.events = append(p.events, e)
							if len(p.events) == roomLimit {
								p.reached = e
								break
							}
						}
					}
					pages = append(pages, p)
				}
				chunk, end := mergeByPos(pages, upto, limit, func(p int64) int64 { return p })
				if end < after {
					t.Fatalf("stream went back from %d to %d", after, end)
				}
				got = append(got, chunk...)
				if end == upto {
					break
				}
				after = end
			}
			want := slices.Concat(rooms...)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("room limit %d, limit %d: streamed %v, want %v", roomLimit, limit, got, want)
			}
		}
	}
}

func TestParseEventsToken(t *testing.T) {
	sync, err := parseEventsToken("s12_3_4_5_7_0_9")
	if err != nil || sync != (stream.Positions{12, 3, 4, 5, 7, 0, 9}) {
		t.Fatalf("sync token: %v %v", sync, err)
	}
	// A pagination token points before an event: the stream goes on after
	// the one before it.
	page, err := parseEventsToken("s12")
	if err != nil || page[stream.Events] != 11 {
		t.Fatalf("pagination token: %v %v", page, err)
	}
	if zero, err := parseEventsToken("s0"); err != nil || zero[stream.Events] != 0 {
		t.Fatalf("s0: %v %v", zero, err)
	}
	for _, bad := range []string{"", "x", "s-3", "s1_y", "t44-3453_9_0"} {
		if _, err := parseEventsToken(bad); err == nil {
			t.Errorf("parseEventsToken(%q) accepted", bad)
		}
	}
}
