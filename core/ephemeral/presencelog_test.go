package ephemeral

import (
	"maps"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

func users(es []presenceEntry) []id.UserID {
	out := make([]id.UserID, len(es))
	for i, e := range es {
		out[i] = e.user
	}
	return out
}

func TestPresenceLogAnswersOnlyWholeRanges(t *testing.T) {
	l := presenceLog{floor: 10, max: 100}
	row := &storage.Presence{UserID: "@a:x", StreamPos: 11}
	l.add(11, "@a:x", row, nil)
	l.add(13, "@b:x", nil, nil) // 12 not published here yet
	if _, ok := l.changed(10, 13); ok {
		t.Fatal("a range with a missing position was answered")
	}
	if es, ok := l.changed(10, 11); !ok || !slices.Equal(users(es), []id.UserID{"@a:x"}) || es[0].row != row {
		t.Fatalf("changed(10, 11) = %+v %v", es, ok)
	}
	l.add(12, "@a:x", nil, nil)
	l.add(11, "@a:x", nil, nil) // the notifier repeats what the writer logged
	es, ok := l.changed(10, 13)
	if !ok || !slices.Equal(users(es), []id.UserID{"@a:x", "@b:x"}) || es[0].pos != 12 {
		t.Fatalf("changed(10, 13) = %+v %v: want a's latest change (12), then b", es, ok)
	}
	if _, ok := l.changed(9, 13); ok {
		t.Fatal("a range starting before the log was answered")
	}
	if es, ok := l.changed(13, 13); !ok || len(es) != 0 {
		t.Fatalf("an empty range: %+v %v", es, ok)
	}
	l.add(5, "@old:x", nil, nil)
	if len(l.entries) != 3 {
		t.Fatal("a position before the floor was kept")
	}
}

func TestPresenceLogTrims(t *testing.T) {
	l := presenceLog{max: 4}
	for pos := int64(1); pos <= 5; pos++ {
		l.add(pos, id.UserID("@u:x"), nil, nil)
	}
	if len(l.entries) != 2 || l.floor != 3 {
		t.Fatalf("after trimming: %d entries, floor %d", len(l.entries), l.floor)
	}
	if _, ok := l.changed(2, 5); ok {
		t.Fatal("a trimmed range was answered")
	}
	if _, ok := l.changed(3, 5); !ok {
		t.Fatal("the kept range was not answered")
	}
}

// A user's latest change in a range is found whether or not they changed
// again after it, and after the log was trimmed.
func TestPresenceLogLatestChangeInRange(t *testing.T) {
	l := presenceLog{max: 8}
	for pos, u := range []id.UserID{"@a:x", "@b:x", "@a:x", "@c:x", "@b:x", "@a:x"} {
		l.add(int64(pos+1), u, nil, nil)
	}
	for _, tc := range []struct {
		since, upto int64
		want        []id.UserID
		pos         []int64
	}{
		{0, 6, []id.UserID{"@c:x", "@b:x", "@a:x"}, []int64{4, 5, 6}},
		{0, 4, []id.UserID{"@b:x", "@a:x", "@c:x"}, []int64{2, 3, 4}}, // a and b change again later
		{3, 5, []id.UserID{"@c:x", "@b:x"}, []int64{4, 5}},
		{1, 2, []id.UserID{"@b:x"}, []int64{2}},
	} {
		es, ok := l.changed(tc.since, tc.upto)
		var pos []int64
		for _, e := range es {
			pos = append(pos, e.pos)
		}
		if !ok || !slices.Equal(users(es), tc.want) || !slices.Equal(pos, tc.pos) {
			t.Errorf("changed(%d, %d) = %v at %v, %v: want %v at %v", tc.since, tc.upto, users(es), pos, ok, tc.want, tc.pos)
		}
	}
	for pos := int64(7); pos <= 12; pos++ { // trims 1 to 5
		l.add(pos, "@d:x", nil, nil)
	}
	if want := map[id.UserID]int64{"@a:x": 6, "@d:x": 12}; !maps.Equal(l.latest, want) {
		t.Fatalf("after trimming, latest positions %v: want %v", l.latest, want)
	}
	if es, ok := l.changed(l.floor, 12); !ok || !slices.Equal(users(es), []id.UserID{"@a:x", "@d:x"}) || es[1].pos != 12 {
		t.Fatalf("changed after trimming = %+v %v", es, ok)
	}
}
