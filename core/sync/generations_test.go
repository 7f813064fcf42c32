package sync

import (
	"fmt"
	"testing"

	"maunium.net/go/mautrix/id"
)

// The stamps of users' membership changes are bounded, and a user whose
// stamp was forgotten still never has a read that raced their change kept.
func TestGenerationsAreBounded(t *testing.T) {
	s := &Service{}
	u := id.UserID("@u:example.org")
	before := s.generation(u)
	for i := range maxGenerations + 10 {
		s.membershipsChanged([]id.UserID{id.UserID(fmt.Sprintf("@x%d:example.org", i))})
	}
	if n := s.nGens.Load(); n > maxGenerations {
		t.Fatalf("%d stamps kept, more than %d", n, maxGenerations)
	}
	s.membershipsChanged([]id.UserID{u})
	if s.generation(u) == before {
		t.Fatal("a change of u keeps the stamp a read before it saw")
	}
	// Forgotten: the clock's value, still unlike the stamp before.
	s.generations.Delete(u)
	if s.generation(u) == before {
		t.Fatal("a forgotten stamp equals one read before a change")
	}
}
