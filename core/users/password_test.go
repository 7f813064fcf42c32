package users

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestPasswordHashing(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("unexpected hash format %q", h)
	}
	if !CheckPassword(h, "correct horse") {
		t.Error("right password refused")
	}
	if CheckPassword(h, "correct horsE") {
		t.Error("wrong password accepted")
	}
	h2, _ := HashPassword("correct horse")
	if h == h2 {
		t.Error("two hashes of one password are equal: salt missing")
	}
}

func TestDummyHashMatchesParameters(t *testing.T) {
	// The constant must cost what a real hash costs, or timing tells which users exist.
	want := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$", argonMemoryKiB, argonTime, argonThreads)
	if !strings.HasPrefix(dummyHash, want) || !CheckPassword(dummyHash, "tributary-dummy-password") {
		t.Fatalf("dummyHash %q is not an argon2id hash with the current parameters", dummyHash)
	}
}

func TestPasswordBcryptAndMalformed(t *testing.T) {
	b, err := bcrypt.GenerateFromPassword([]byte("from synapse"), 4)
	if err != nil {
		t.Fatal(err)
	}
	if !CheckPassword(string(b), "from synapse") || CheckPassword(string(b), "nope") {
		t.Error("bcrypt hash not checked correctly")
	}
	for _, bad := range []string{"", "plain", "$argon2id$v=19$m=1", "$argon2id$v=18$m=19456,t=2,p=1$AAAA$AAAA",
		"$argon2id$v=19$m=0,t=2,p=1$AAAA$AAAA", "$argon2id$v=19$m=19456,t=2,p=1$!!$AAAA"} {
		if CheckPassword(bad, "x") {
			t.Errorf("malformed hash %q accepted", bad)
		}
	}
}
