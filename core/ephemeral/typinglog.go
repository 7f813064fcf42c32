package ephemeral

import (
	"cmp"
	"slices"

	"maunium.net/go/mautrix/id"
)

// maxTypingLog bounds the typing changes kept for TypingUpdates.
const maxTypingLog = 10_000

// typingChange is one change of a user's typing in a room.
type typingChange struct {
	pos    int64
	room   id.RoomID
	user   id.UserID
	typing bool
}

// TypingUpdate is a user's typing in a room as it last changed.
type TypingUpdate struct {
	RoomID id.RoomID
	UserID id.UserID
	Typing bool
}

// logTypingLocked records a change (s.mu held); past maxTypingLog the older
// half is dropped: typing is worth sending only while it is fresh.
func (s *Service) logTypingLocked(pos int64, room id.RoomID, user id.UserID, typing bool) {
	s.typingLog = append(s.typingLog, typingChange{pos: pos, room: room, user: user, typing: typing})
	if len(s.typingLog) > maxTypingLog {
		s.typingLog = append([]typingChange(nil), s.typingLog[len(s.typingLog)-maxTypingLog/2:]...)
	}
}

// TypingUpdates returns the typing changes in (since, upto] that are
// still held, the latest of each user in each room, oldest first (for
// other servers: m.typing EDUs are per user). Changes older than the log
// are gone: typing is not worth catching up on.
func (s *Service) TypingUpdates(since, upto int64) []TypingUpdate {
	s.mu.Lock()
	defer s.mu.Unlock()
	byPos := func(c typingChange, p int64) int { return cmp.Compare(c.pos, p) }
	from, _ := slices.BinarySearchFunc(s.typingLog, since+1, byPos)
	to, _ := slices.BinarySearchFunc(s.typingLog, upto+1, byPos)
	type key struct {
		room id.RoomID
		user id.UserID
	}
	seen := map[key]bool{}
	var out []TypingUpdate
	for i := to - 1; i >= from; i-- {
		c := s.typingLog[i]
		if k := (key{c.room, c.user}); !seen[k] {
			seen[k] = true
			out = append(out, TypingUpdate{RoomID: c.room, UserID: c.user, Typing: c.typing})
		}
	}
	slices.Reverse(out)
	return out
}
