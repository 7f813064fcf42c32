package storagetest

import (
	"context"
	"testing"

	"github.com/tributary-hs/tributary/storage"
)

// ReopenKeepsData checks that a closed database opens again with its data
// and its stream positions, re-running migrations harmlessly, and that a
// second handle sees the first's data. openRaw opens a handle the test
// closes itself; open one that is closed when the test ends.
func ReopenKeepsData(t *testing.T, openRaw func(ctx context.Context) (storage.Store, error),
	open func(t *testing.T) storage.Store) {
	ctx := t.Context()
	s, err := openRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(ctx, &storage.Account{UserID: "@a:x", Localpart: "a", CreatedAt: 1}); err != nil {
		t.Fatal(err)
	}
	pos1, err := s.PutAccountData(ctx, "@a:x", "", "t", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Opening again re-runs the migrations, which must skip what is applied.
	s2 := open(t)
	if _, err := s2.GetAccount(ctx, "@a:x"); err != nil {
		t.Fatalf("account after reopening: %v", err)
	}
	pos2, err := s2.PutAccountData(ctx, "@a:x", "", "t", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if pos2 <= pos1 {
		t.Fatalf("stream position %d after reopening, was %d: the stream restarted", pos2, pos1)
	}
	// A second handle while the first is open.
	s3 := open(t)
	if n, err := s3.CountAccounts(ctx); err != nil || n != 1 {
		t.Fatalf("CountAccounts through a second handle = %d, %v; want 1", n, err)
	}
}
