package ephemeral

import (
	"cmp"
	"slices"
	"sync"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// presenceLog keeps the recent changes of the presence stream: one entry
// per position, with the user whose presence changed and, when this process
// wrote it, the stored row. The notifier's observer feeds it in every
// process, so it never holds what a change elsewhere made stale. Presence
// positions have no gaps (one per change), so the log can tell whether it
// holds every change of a range: when it does not (the range starts before
// the process, or a change is not yet published here), the caller reads the
// database instead.
type presenceLog struct {
	mu sync.Mutex
	// floor: the log holds no position up to it (they came before the
	// process, or were trimmed).
	floor int64
	// entries are ordered by position.
	entries []presenceEntry
	// max bounds the entries: past it, the older half is dropped.
	max int
	// latest is each logged user's latest position in entries, so that
	// changed needs no set of its own (thousands of woken syncs ask it).
	latest map[id.UserID]int64
}

type presenceEntry struct {
	pos  int64
	user id.UserID
	// row is the presence stored at pos (nil: written by another process).
	row *storage.Presence
	// event shares the entry's m.presence event among the syncs that
	// give it out at the same time (see Service.sharedEvent).
	event *sharedEvent
	// rooms are the user's joined rooms when the change was published
	// (those whose long-polls it woke); nil: not known.
	rooms []id.RoomID
}

func (l *presenceLog) add(pos int64, user id.UserID, row *storage.Presence, rooms []id.RoomID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if pos <= l.floor {
		return
	}
	i, found := slices.BinarySearchFunc(l.entries, pos, func(e presenceEntry, p int64) int { return cmp.Compare(e.pos, p) })
	if found {
		if l.entries[i].row == nil {
			l.entries[i].row = row
		}
		if l.entries[i].rooms == nil {
			l.entries[i].rooms = rooms
		}
		return
	}
	l.entries = slices.Insert(l.entries, i, presenceEntry{pos: pos, user: user, row: row, event: &sharedEvent{}, rooms: rooms})
	if l.latest == nil {
		l.latest = map[id.UserID]int64{}
	}
	if pos > l.latest[user] {
		l.latest[user] = pos
	}
	if l.max > 0 && len(l.entries) > l.max {
		drop := len(l.entries) - l.max/2
		l.floor = l.entries[drop-1].pos
		for _, e := range l.entries[:drop] {
			if l.latest[e.user] == e.pos {
				delete(l.latest, e.user)
			}
		}
		l.entries = append([]presenceEntry(nil), l.entries[drop:]...)
	}
}

// changed returns the latest entry of each user whose presence changed in
// (since, upto], in position order; false when the log does not hold every
// position of the range.
func (l *presenceLog) changed(since, upto int64) ([]presenceEntry, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if since < l.floor {
		return nil, false
	}
	byPos := func(e presenceEntry, p int64) int { return cmp.Compare(e.pos, p) }
	from, _ := slices.BinarySearchFunc(l.entries, since+1, byPos)
	to, _ := slices.BinarySearchFunc(l.entries, upto+1, byPos)
	if int64(to-from) != upto-since {
		return nil, false
	}
	span := l.entries[from:to]
	out := make([]presenceEntry, 0, len(span))
	for _, e := range span {
		switch latest := l.latest[e.user]; {
		case latest == e.pos:
			out = append(out, e)
		case latest > upto:
			// A later change after the range: whether another one is
			// in it takes the set below.
			return l.latestIn(span), true
		} // else the user's latest change is later in the range
	}
	return out, true
}

// latestIn returns the latest entry of each user in span, in position
// order.
func (l *presenceLog) latestIn(span []presenceEntry) []presenceEntry {
	seen := make(map[id.UserID]bool, len(span))
	out := make([]presenceEntry, 0, len(span))
	for i := len(span) - 1; i >= 0; i-- {
		if e := span[i]; !seen[e.user] {
			seen[e.user] = true
			out = append(out, e)
		}
	}
	slices.Reverse(out)
	return out
}
