package keys

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"go.mau.fi/util/jsontime"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
	"github.com/tributary-hs/tributary/storage/sqlite"
)

// fakeFetcher answers key requests from in-memory servers.
type fakeFetcher struct {
	direct  map[string]func() (*federation.ServerKeyResponse, error)
	notary  map[string]func(server string) (*federation.QueryKeysResponse, error)
	directN int
}

func (f *fakeFetcher) ServerKeys(_ context.Context, server string) (*federation.ServerKeyResponse, error) {
	f.directN++
	if fn := f.direct[server]; fn != nil {
		return fn()
	}
	return nil, errors.New("unreachable")
}

func (f *fakeFetcher) QueryKeys(_ context.Context, notary string, req *federation.ReqQueryKeys) (*federation.QueryKeysResponse, error) {
	fn := f.notary[notary]
	if fn == nil {
		return nil, errors.New("unreachable")
	}
	for server := range req.ServerKeys {
		return fn(server)
	}
	return &federation.QueryKeysResponse{}, nil
}

// wire is skr as it arrives: marshalled and parsed, so Raw is set.
func wire(t *testing.T, skr *federation.ServerKeyResponse) *federation.ServerKeyResponse {
	t.Helper()
	raw, err := json.Marshal(skr)
	if err != nil {
		t.Fatal(err)
	}
	var out federation.ServerKeyResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// response builds serverName's key response signed by key, valid until
// validUntil, listing old keys.
func response(t *testing.T, serverName string, key *federation.SigningKey, validUntil time.Time,
	old map[id.KeyID]federation.OldVerifyKey) *federation.ServerKeyResponse {
	t.Helper()
	skr := &federation.ServerKeyResponse{ServerName: serverName, ValidUntilTS: jsontime.UM(validUntil),
		VerifyKeys: map[id.KeyID]federation.ServerVerifyKey{key.ID: {Key: key.Pub}}, OldVerifyKeys: old}
	sig, err := key.SignJSON(skr)
	if err != nil {
		t.Fatal(err)
	}
	skr.Signatures = map[string]map[id.KeyID]string{serverName: {key.ID: sig}}
	return wire(t, skr)
}

func newRing(t *testing.T, f *fakeFetcher, notaries []string, now time.Time) *Ring {
	t.Helper()
	return newRingClock(t, f, notaries, &now)
}

func newRingClock(t *testing.T, f *fakeFetcher, notaries []string, now *time.Time) *Ring {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	r, err := NewRing(Options{ServerName: "me.example", Key: federation.GenerateSigningKey(), Store: store,
		Fetcher: f, Notaries: notaries, Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRingFetchesCachesAndCapsValidity(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	remote := federation.GenerateSigningKey()
	f := &fakeFetcher{direct: map[string]func() (*federation.ServerKeyResponse, error){
		"a.example": func() (*federation.ServerKeyResponse, error) {
			return response(t, "a.example", remote, now.Add(30*24*time.Hour), nil), nil
		},
	}}
	clock := now
	r := newRingClock(t, f, nil, &clock)
	key, until, err := r.ServerKey(t.Context(), "a.example", remote.ID, now)
	if err != nil || key != remote.Pub {
		t.Fatalf("ServerKey = %q, %v; want %q", key, err, remote.Pub)
	}
	if !until.Equal(now.Add(maxKeyValidity)) {
		t.Fatalf("validity %v, want capped at 7 days (%v)", until, now.Add(maxKeyValidity))
	}
	// Cached: no second fetch.
	if _, _, err := r.ServerKey(t.Context(), "a.example", remote.ID, now.Add(time.Hour)); err != nil || f.directN != 1 {
		t.Fatalf("second lookup: err %v, %d fetches", err, f.directN)
	}
	// An unknown key ID: one fetch (the last was long enough ago), then no
	// more within refetchAfter.
	clock = now.Add(2 * refetchAfter)
	for range 3 {
		if _, _, err := r.ServerKey(t.Context(), "a.example", "ed25519:nope", now); !errors.Is(err, ErrNoKey) {
			t.Fatalf("unknown key ID: %v", err)
		}
	}
	if f.directN != 2 {
		t.Fatalf("%d fetches for an unknown key ID, want 1 more", f.directN-1)
	}
}

func TestRingRefusesBadResponses(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	remote, other := federation.GenerateSigningKey(), federation.GenerateSigningKey()
	for name, fn := range map[string]func() *federation.ServerKeyResponse{
		"signed by another key": func() *federation.ServerKeyResponse {
			skr := response(t, "a.example", remote, now.Add(time.Hour), nil)
			forged := response(t, "a.example", other, now.Add(time.Hour), nil)
			skr.Signatures = forged.Signatures
			return wire(t, skr)
		},
		"another server's name": func() *federation.ServerKeyResponse {
			return response(t, "b.example", remote, now.Add(time.Hour), nil)
		},
		"unsigned": func() *federation.ServerKeyResponse {
			skr := response(t, "a.example", remote, now.Add(time.Hour), nil)
			skr.Signatures = nil
			return wire(t, skr)
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := &fakeFetcher{direct: map[string]func() (*federation.ServerKeyResponse, error){
				"a.example": func() (*federation.ServerKeyResponse, error) { return fn(), nil }}}
			r := newRing(t, f, nil, now)
			if _, _, err := r.ServerKey(t.Context(), "a.example", remote.ID, now); !errors.Is(err, ErrNoKey) {
				t.Fatalf("got %v, want ErrNoKey", err)
			}
		})
	}
}

// A key the server lists in old_verify_keys is valid until its expired_ts
// (spec: for events signed before then).
func TestRingOldVerifyKeys(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	current, retired := federation.GenerateSigningKey(), federation.GenerateSigningKey()
	expired := now.Add(-time.Hour)
	f := &fakeFetcher{direct: map[string]func() (*federation.ServerKeyResponse, error){
		"a.example": func() (*federation.ServerKeyResponse, error) {
			return response(t, "a.example", current, now.Add(time.Hour), map[id.KeyID]federation.OldVerifyKey{
				retired.ID: {Key: retired.Pub, ExpiredTS: jsontime.UM(expired)}}), nil
		},
	}}
	r := newRing(t, f, nil, now)
	key, until, err := r.ServerKey(t.Context(), "a.example", retired.ID, now.Add(-2*time.Hour))
	if err != nil || key != retired.Pub || !until.Equal(expired) {
		t.Fatalf("old key: %q until %v (%v); want %q until %v", key, until, err, retired.Pub, expired)
	}
}

// When the server cannot be reached, a trusted notary's copy signed by both
// the server and the notary is taken; one the notary did not sign is not.
func TestRingNotaryFallback(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	remote, notaryKey := federation.GenerateSigningKey(), federation.GenerateSigningKey()
	notarised := func(signByNotary bool) func(string) (*federation.QueryKeysResponse, error) {
		return func(server string) (*federation.QueryKeysResponse, error) {
			skr := response(t, server, remote, now.Add(time.Hour), nil)
			if signByNotary {
				sig, err := notaryKey.SignJSON(skr)
				if err != nil {
					return nil, err
				}
				skr.Signatures["notary.example"] = map[id.KeyID]string{notaryKey.ID: sig}
			}
			return &federation.QueryKeysResponse{ServerKeys: []*federation.ServerKeyResponse{wire(t, skr)}}, nil
		}
	}
	for _, signed := range []bool{true, false} {
		f := &fakeFetcher{
			direct: map[string]func() (*federation.ServerKeyResponse, error){
				"notary.example": func() (*federation.ServerKeyResponse, error) {
					return response(t, "notary.example", notaryKey, now.Add(time.Hour), nil), nil
				}},
			notary: map[string]func(string) (*federation.QueryKeysResponse, error){"notary.example": notarised(signed)},
		}
		r := newRing(t, f, []string{"notary.example"}, now)
		key, _, err := r.ServerKey(t.Context(), "a.example", remote.ID, now)
		if signed && (err != nil || key != remote.Pub) {
			t.Fatalf("notarised key: %q, %v", key, err)
		}
		if !signed && !errors.Is(err, ErrNoKey) {
			t.Fatalf("key the notary did not sign: %q, %v", key, err)
		}
	}
}

// A notary answer keeps the origin's signature and adds this server's.
func TestNotariseCountersigns(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	remote := federation.GenerateSigningKey()
	f := &fakeFetcher{direct: map[string]func() (*federation.ServerKeyResponse, error){
		"a.example": func() (*federation.ServerKeyResponse, error) {
			return response(t, "a.example", remote, now.Add(time.Hour), nil), nil
		},
	}}
	r := newRing(t, f, nil, now)
	out, err := r.Notarise(t.Context(), "a.example", nil, time.Time{})
	if err != nil || len(out) != 1 {
		t.Fatalf("Notarise: %d responses, %v", len(out), err)
	}
	if err := signutil.VerifyJSON("a.example", remote.ID, remote.Pub, out[0]); err != nil {
		t.Fatalf("origin signature: %v", err)
	}
	if err := signutil.VerifyJSON("me.example", r.opts.Key.ID, r.opts.Key.Pub, out[0]); err != nil {
		t.Fatalf("notary signature: %v", err)
	}
	own, err := r.Notarise(t.Context(), "me.example", nil, time.Time{})
	if err != nil || len(own) != 1 || signutil.VerifyJSON("me.example", r.opts.Key.ID, r.opts.Key.Pub, own[0]) != nil {
		t.Fatalf("own keys through the notary: %s, %v", own, err)
	}
	// A server that cannot be reached and was never cached: nothing.
	none, err := r.Notarise(t.Context(), "b.example", []id.KeyID{"ed25519:x"}, now)
	if err != nil || len(none) != 0 {
		t.Fatalf("unknown server: %s, %v", none, err)
	}
}

// missOnce is a key store whose first read finds nothing, as a lookup does
// that reads just before another request's fetch stores the key.
type missOnce struct {
	storage.ServerKeys
	missed bool
}

func (m *missOnce) GetServerKeys(ctx context.Context, serverName string) ([]storage.ServerKey, error) {
	if !m.missed {
		m.missed = true
		return nil, nil
	}
	return m.ServerKeys.GetServerKeys(ctx, serverName)
}

// A lookup that missed the key while another request fetched it finds the
// key that fetch stored, rather than failing because the server was asked
// moments ago (two servers' first requests to each other, in parallel).
func TestRingLookupDuringAnotherFetch(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	remote := federation.GenerateSigningKey()
	f := &fakeFetcher{direct: map[string]func() (*federation.ServerKeyResponse, error){
		"a.example": func() (*federation.ServerKeyResponse, error) {
			return response(t, "a.example", remote, now.Add(24*time.Hour), nil), nil
		},
	}}
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	r, err := NewRing(Options{ServerName: "me.example", Key: federation.GenerateSigningKey(), Store: &missOnce{ServerKeys: store},
		Fetcher: f, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	// The other request's fetch, then this lookup, whose first read missed.
	if err := r.Fetch(t.Context(), "a.example", false); err != nil {
		t.Fatal(err)
	}
	r.opts.Store.(*missOnce).missed = false
	key, _, err := r.ServerKey(t.Context(), "a.example", remote.ID, now)
	if err != nil || key != remote.Pub {
		t.Fatalf("ServerKey = %q, %v; want %q", key, err, remote.Pub)
	}
	if f.directN != 1 {
		t.Fatalf("%d fetches, want 1", f.directN)
	}
}
