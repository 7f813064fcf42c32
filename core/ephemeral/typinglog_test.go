package ephemeral

import (
	"slices"
	"testing"
)

// TypingUpdates gives the latest change of each user in each room of a
// range, oldest first; past its bound the log forgets the oldest half.
func TestTypingUpdates(t *testing.T) {
	s := &Service{}
	s.logTypingLocked(10, "!a:x", "@u:x", true)
	s.logTypingLocked(11, "!a:x", "@v:x", true)
	s.logTypingLocked(12, "!b:x", "@u:x", true)
	s.logTypingLocked(13, "!a:x", "@u:x", false)
	got := s.TypingUpdates(10, 13)
	want := []TypingUpdate{{"!a:x", "@v:x", true}, {"!b:x", "@u:x", true}, {"!a:x", "@u:x", false}}
	if !slices.Equal(got, want) {
		t.Fatalf("updates in (10, 13]: %+v, want %+v", got, want)
	}
	if got := s.TypingUpdates(0, 10); !slices.Equal(got, []TypingUpdate{{"!a:x", "@u:x", true}}) {
		t.Fatalf("updates in (0, 10]: %+v", got)
	}
	if got := s.TypingUpdates(13, 20); len(got) != 0 {
		t.Fatalf("updates after the last: %+v", got)
	}
	for i := range maxTypingLog {
		s.logTypingLocked(int64(100+i), "!c:x", "@w:x", i%2 == 0)
	}
	if n := len(s.typingLog); n > maxTypingLog {
		t.Fatalf("the log holds %d changes, over %d", n, maxTypingLog)
	}
	if got := s.TypingUpdates(0, 13); len(got) != 0 {
		t.Fatalf("changes past the bound are kept: %+v", got)
	}
}
