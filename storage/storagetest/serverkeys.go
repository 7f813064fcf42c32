package storagetest

import (
	"testing"

	"github.com/tributary-hs/tributary/storage"
)

var serverKeyTests = []struct {
	name string
	fn   func(t *testing.T, s storage.Store)
}{
	{"ServerKeys/PutGet", testServerKeysPutGet},
	{"ServerKeys/OnlyNewerNews", testServerKeysOnlyNewerNews},
}

func testServerKeysPutGet(t *testing.T, s storage.Store) {
	c := ctx(t)
	got, err := s.GetServerKeys(c, "a.example")
	must(t, err)
	eq(t, "keys of an unknown server", len(got), 0)
	resp := []byte(`{"server_name":"a.example"}`)
	must(t, s.PutServerKeys(c, []storage.ServerKey{
		{ServerName: "a.example", KeyID: "ed25519:new", PublicKey: "pubnew", ValidUntilTS: 2000, FetchedTS: 10, Response: resp},
		{ServerName: "a.example", KeyID: "ed25519:old", PublicKey: "pubold", ValidUntilTS: 2000, ExpiredTS: 500, FetchedTS: 10, Response: resp},
		{ServerName: "127.0.0.1:8448", KeyID: "ed25519:x", PublicKey: "pubx", ValidUntilTS: 3000, FetchedTS: 11, Response: []byte(`{}`)},
	}))
	got, err = s.GetServerKeys(c, "a.example")
	must(t, err)
	eq(t, "keys of a.example", len(got), 2)
	eq(t, "first key", got[0].KeyID, "ed25519:new")
	eq(t, "its public key", got[0].PublicKey, "pubnew")
	eq(t, "its valid_until_ts", got[0].ValidUntilTS, 2000)
	eq(t, "its expired_ts", got[0].ExpiredTS, 0)
	eq(t, "its fetched_ts", got[0].FetchedTS, 10)
	eq(t, "its response", string(got[0].Response), string(resp))
	eq(t, "old key's expired_ts", got[1].ExpiredTS, 500)
	got, err = s.GetServerKeys(c, "127.0.0.1:8448")
	must(t, err)
	eq(t, "keys of 127.0.0.1:8448", len(got), 1)
}

// A response older than the stored one (a notary's stale copy) changes
// nothing; a later one replaces it; an expiry report sticks.
func testServerKeysOnlyNewerNews(t *testing.T, s storage.Store) {
	c := ctx(t)
	put := func(validUntil, expired int64, resp string) {
		t.Helper()
		must(t, s.PutServerKeys(c, []storage.ServerKey{{ServerName: "b.example", KeyID: "ed25519:k", PublicKey: "pub",
			ValidUntilTS: validUntil, ExpiredTS: expired, FetchedTS: validUntil, Response: []byte(resp)}}))
	}
	check := func(what string, validUntil, expired int64, resp string) {
		t.Helper()
		got, err := s.GetServerKeys(c, "b.example")
		must(t, err)
		if len(got) != 1 || got[0].ValidUntilTS != validUntil || got[0].ExpiredTS != expired || string(got[0].Response) != resp {
			t.Fatalf("%s: got %+v, want valid_until %d expired %d response %s", what, got, validUntil, expired, resp)
		}
	}
	put(2000, 0, "r2000")
	put(1000, 0, "r1000")
	check("after an older response", 2000, 0, "r2000")
	put(3000, 0, "r3000")
	check("after a newer response", 3000, 0, "r3000")
	put(2500, 2400, "old2500")
	check("after the key expired", 2500, 2400, "old2500")
	put(4000, 0, "r4000")
	check("a current listing after the expiry", 2500, 2400, "old2500")
	put(5000, 2400, "old5000")
	check("a later response listing it as old", 5000, 2400, "old5000")
}
