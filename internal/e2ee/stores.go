//go:build goolm

package e2ee

import (
	"context"
	"maps"
	"sync"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// NewStateStore is a mautrix memory state store that keeps copies of
// member contents.
func NewStateStore() CopyingStateStore {
	mem := mautrix.NewMemoryStateStore().(*mautrix.MemoryStateStore)
	// mautrix's constructor leaves JoinRules nil (SetJoinRules panics).
	mem.JoinRules = map[id.RoomID]*event.JoinRulesEventContent{}
	return CopyingStateStore{mem}
}

// NewCryptoStore is a mautrix memory crypto store safe for concurrent use.
func NewCryptoStore() *LockedStore {
	return &LockedStore{MemoryStore: crypto.NewMemoryStore(nil)}
}

// CopyingStateStore keeps a copy of member contents: mautrix's
// MemoryStateStore keeps the event's own content, and SetMembership (after
// CreateRoom, JoinRoom…) then changes it in place under the syncer's feet.
type CopyingStateStore struct{ *mautrix.MemoryStateStore }

// SetMember stores a copy of member.
func (s CopyingStateStore) SetMember(ctx context.Context, room id.RoomID, user id.UserID, member *event.MemberEventContent) error {
	c := *member
	return s.MemoryStateStore.SetMember(ctx, room, user, &c)
}

// LockedStore fixes data races of mautrix's MemoryStore (v0.26 to v0.33),
// whose PutSignature, DropSignaturesByKey and PutCrossSigningKey write
// maps under a read lock (and GetCrossSigningKeys hands out the stored
// map): every use of those maps goes through mu here.
type LockedStore struct {
	*crypto.MemoryStore
	mu sync.RWMutex
}

// PutSignature implements crypto.Store.
func (s *LockedStore) PutSignature(ctx context.Context, signedUser id.UserID, signedKey id.Ed25519, signerUser id.UserID, signerKey id.Ed25519, signature string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.MemoryStore.PutSignature(ctx, signedUser, signedKey, signerUser, signerKey, signature)
}

// DropSignaturesByKey implements crypto.Store.
func (s *LockedStore) DropSignaturesByKey(ctx context.Context, user id.UserID, key id.Ed25519) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.MemoryStore.DropSignaturesByKey(ctx, user, key)
}

// GetSignaturesForKeyBy implements crypto.Store.
func (s *LockedStore) GetSignaturesForKeyBy(ctx context.Context, user id.UserID, key id.Ed25519, signer id.UserID) (map[id.Ed25519]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.MemoryStore.GetSignaturesForKeyBy(ctx, user, key, signer)
}

// IsKeySignedBy implements crypto.Store.
func (s *LockedStore) IsKeySignedBy(ctx context.Context, user id.UserID, key id.Ed25519, signer id.UserID, signerKey id.Ed25519) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.MemoryStore.IsKeySignedBy(ctx, user, key, signer, signerKey)
}

// PutCrossSigningKey implements crypto.Store.
func (s *LockedStore) PutCrossSigningKey(ctx context.Context, user id.UserID, usage id.CrossSigningUsage, key id.Ed25519) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.MemoryStore.PutCrossSigningKey(ctx, user, usage, key)
}

// GetCrossSigningKeys implements crypto.Store.
func (s *LockedStore) GetCrossSigningKeys(ctx context.Context, user id.UserID) (map[id.CrossSigningUsage]id.CrossSigningKey, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	keys, err := s.MemoryStore.GetCrossSigningKeys(ctx, user)
	return maps.Clone(keys), err
}
