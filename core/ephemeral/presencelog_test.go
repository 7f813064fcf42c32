package ephemeral

import (
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
	l.add(11, "@a:x", row)
	l.add(13, "@b:x", nil) // 12 not published here yet
	if _, ok := l.changed(10, 13); ok {
		t.Fatal("a range with a missing position was answered")
	}
	if es, ok := l.changed(10, 11); !ok || !slices.Equal(users(es), []id.UserID{"@a:x"}) || es[0].row != row {
		t.Fatalf("changed(10, 11) = %+v %v", es, ok)
	}
	l.add(12, "@a:x", nil)
	l.add(11, "@a:x", nil) // the notifier repeats what the writer logged
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
	l.add(5, "@old:x", nil)
	if len(l.entries) != 3 {
		t.Fatal("a position before the floor was kept")
	}
}

func TestPresenceLogTrims(t *testing.T) {
	l := presenceLog{max: 4}
	for pos := int64(1); pos <= 5; pos++ {
		l.add(pos, id.UserID("@u:x"), nil)
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
