package storagetest

import (
	"testing"

	"github.com/tributary-hs/tributary/storage"
)

// testAccountRestrictions: suspension and locks are stored per account.
func testAccountRestrictions(t *testing.T, s storage.Store) {
	c := ctx(t)
	acc := newAccount(s, t, "@restricted:example.org")
	_, _, err := s.AccountRestrictions(c, "@nobody:example.org")
	wantErr(t, err, storage.ErrNotFound, "restrictions of nobody")
	wantErr(t, s.SetAccountLocked(c, "@nobody:example.org", true), storage.ErrNotFound, "locking nobody")
	check := func(wantSuspended, wantLocked bool) {
		t.Helper()
		suspended, locked, err := s.AccountRestrictions(c, acc.UserID)
		must(t, err)
		if suspended != wantSuspended || locked != wantLocked {
			t.Fatalf("suspended %v locked %v; want %v %v", suspended, locked, wantSuspended, wantLocked)
		}
	}
	check(false, false)
	must(t, s.SetAccountSuspended(c, acc.UserID, true))
	check(true, false)
	must(t, s.SetAccountLocked(c, acc.UserID, true))
	must(t, s.SetAccountSuspended(c, acc.UserID, false))
	check(false, true)
}
