package storagetest

import (
	"testing"

	"github.com/tributary-hs/tributary/storage"
)

// testAccountRestrictions: suspension and locks are stored per account and
// read with the account's access tokens.
func testAccountRestrictions(t *testing.T, s storage.Store) {
	c := ctx(t)
	acc := newAccount(s, t, "@restricted:example.org")
	_, _, err := s.AccountRestrictions(c, "@nobody:example.org")
	wantErr(t, err, storage.ErrNotFound, "restrictions of nobody")
	wantErr(t, s.SetAccountLocked(c, "@nobody:example.org", true), storage.ErrNotFound, "locking nobody")
	must(t, s.CreateAccessToken(c, &storage.AccessToken{TokenHash: "restricted-token", UserID: acc.UserID, DeviceID: "D", CreatedAt: 1}))
	check := func(wantSuspended, wantLocked bool) {
		t.Helper()
		suspended, locked, err := s.AccountRestrictions(c, acc.UserID)
		must(t, err)
		tok, err := s.GetAccessToken(c, "restricted-token")
		must(t, err)
		if suspended != wantSuspended || locked != wantLocked || tok.Suspended != wantSuspended || tok.Locked != wantLocked {
			t.Fatalf("suspended %v locked %v, token %v %v; want %v %v", suspended, locked, tok.Suspended, tok.Locked,
				wantSuspended, wantLocked)
		}
	}
	check(false, false)
	must(t, s.SetAccountSuspended(c, acc.UserID, true))
	check(true, false)
	must(t, s.SetAccountLocked(c, acc.UserID, true))
	must(t, s.SetAccountSuspended(c, acc.UserID, false))
	check(false, true)
}
