package users

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"runtime"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Argon2id parameters: the OWASP minimum (19 MiB, 2 passes, 1 lane), which
// keeps a login near 20 ms and the memory of concurrent logins bounded.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
)

// hashSlots bounds concurrent password hashing so a burst of logins cannot
// take more than a few argon2 buffers of memory at once.
var hashSlots = make(chan struct{}, max(2, runtime.NumCPU()))

// HashPassword returns an argon2id hash in the PHC string format.
func HashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	hashSlots <- struct{}{}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	<-hashSlots
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// dummyHash is checked against when a user does not exist, so that the
// answer takes as long as for a wrong password. It is a constant (the hash of
// a throwaway password with the parameters above) so that start-up does not
// spend an argon2 run and its 19 MiB on it.
const dummyHash = "$argon2id$v=19$m=19456,t=2,p=1$aDj91d5iWaD2Ng5cBvipzg$gySMqOJ8sJH2UE+IhH+rf/moZ+444mvQ9sh8cjNZyDw"

// CheckPassword reports whether password matches hash: argon2id hashes made
// here, or bcrypt hashes imported from Synapse.
func CheckPassword(hash, password string) bool {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		return checkArgon2id(hash, password)
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		hashSlots <- struct{}{}
		defer func() { <-hashSlots }()
		return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
	default:
		checkArgon2id(dummyHash, password)
		return false
	}
}

func checkArgon2id(hash, password string) bool {
	parts := strings.Split(hash, "$")
	// "", "argon2id", "v=19", "m=…,t=…,p=…", salt, key
	if len(parts) != 6 {
		return false
	}
	var version int
	var mem, iter uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &iter, &threads); err != nil {
		return false
	}
	if mem == 0 || mem > 1<<20 || iter == 0 || iter > 16 || threads == 0 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	hashSlots <- struct{}{}
	got := argon2.IDKey([]byte(password), salt, iter, mem, threads, uint32(len(want)))
	<-hashSlots
	return subtle.ConstantTimeCompare(got, want) == 1
}
