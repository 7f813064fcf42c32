package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tidwall/sjson"
	"go.mau.fi/util/exgjson"
	"go.mau.fi/util/jsontime"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// Spec, server-server API "Retrieving server keys": "Servers MUST use the
// lesser of this field and 7 days into the future when determining if a key
// is valid."
const maxKeyValidity = 7 * 24 * time.Hour

// refetchAfter is the least time between two fetches of one server's keys
// that are made because a key was missing or too old: a stream of requests
// naming made-up key IDs must not become a stream of fetches.
const refetchAfter = time.Minute

// errRecentFetch: the server was asked moments ago; what it gave is stored.
var errRecentFetch = errors.New("keys were fetched moments ago")

// ErrNoKey is the answer when a server's key cannot be found.
var ErrNoKey = errors.New("signing key not found")

// Fetcher is what the Ring asks other servers with: mautrix's federation
// client (direct GET /_matrix/key/v2/server and a notary's POST
// /_matrix/key/v2/query).
type Fetcher interface {
	ServerKeys(ctx context.Context, serverName string) (*federation.ServerKeyResponse, error)
	QueryKeys(ctx context.Context, serverName string, req *federation.ReqQueryKeys) (*federation.QueryKeysResponse, error)
}

// Options configure a Ring.
type Options struct {
	// ServerName and Key are this server's.
	ServerName string
	Key        *federation.SigningKey
	Store      storage.ServerKeys
	// Fetcher reaches other servers; nil: only stored keys are known
	// (federation switched off).
	Fetcher Fetcher
	// Notaries are the trusted key servers asked when a server cannot be
	// asked itself; none by default.
	Notaries []string
	Logger   *slog.Logger
	// Now is the clock (tests); time.Now when nil.
	Now func() time.Time
}

// Ring is this server's signing key and its cache of other servers' keys:
// it answers rooms.KeyRing (event signatures), mautrix's
// federation.KeyCache (request signatures) and the key and notary
// endpoints.
type Ring struct {
	opts Options

	mu        sync.Mutex
	lastFetch map[string]time.Time   // last fetch attempt per server
	fetching  map[string]*sync.Mutex // one fetch per server at a time
}

// NewRing builds a Ring.
func NewRing(opts Options) (*Ring, error) {
	if opts.ServerName == "" || opts.Key == nil || opts.Store == nil {
		return nil, errors.New("keys: ServerName, Key and Store are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Ring{opts: opts, lastFetch: map[string]time.Time{}, fetching: map[string]*sync.Mutex{}}, nil
}

// ServerName is this server's name.
func (r *Ring) ServerName() string { return r.opts.ServerName }

// OwnKeys is this server's key response (GET /_matrix/key/v2/server):
// its one key, valid for a day, self-signed. This server has never
// rotated its key, so old_verify_keys is empty.
func (r *Ring) OwnKeys() *federation.ServerKeyResponse {
	skr := &federation.ServerKeyResponse{
		ServerName:   r.opts.ServerName,
		ValidUntilTS: jsontime.UM(r.opts.Now().Add(24 * time.Hour)),
		VerifyKeys:   map[id.KeyID]federation.ServerVerifyKey{r.opts.Key.ID: {Key: r.opts.Key.Pub}},
	}
	// mautrix's GenerateKeyResponse would do, but reads the wall clock.
	sig, err := r.opts.Key.SignJSON(skr)
	if err == nil {
		skr.Signatures = map[string]map[id.KeyID]string{r.opts.ServerName: {r.opts.Key.ID: sig}}
	}
	return skr
}

// validity is until when a stored key may be used: its expiry for an old
// key, else the response's valid_until_ts.
func validity(k storage.ServerKey) time.Time {
	if k.ExpiredTS != 0 {
		return time.UnixMilli(k.ExpiredTS)
	}
	return time.UnixMilli(k.ValidUntilTS)
}

// ServerKey implements rooms.KeyRing: serverName's key keyID valid at or
// after minValidUntil (fetched when the cache has none), or else the
// latest this server knows, with its validity; ErrNoKey if none.
func (r *Ring) ServerKey(ctx context.Context, serverName string, keyID id.KeyID, minValidUntil time.Time) (id.SigningKey, time.Time, error) {
	if serverName == r.opts.ServerName {
		if keyID == r.opts.Key.ID {
			return r.opts.Key.Pub, r.opts.Now().Add(24 * time.Hour), nil
		}
		return "", time.Time{}, fmt.Errorf("%w: %s of %s", ErrNoKey, keyID, serverName)
	}
	find := func() (storage.ServerKey, bool, error) {
		keys, err := r.opts.Store.GetServerKeys(ctx, serverName)
		if err != nil {
			return storage.ServerKey{}, false, err
		}
		for _, k := range keys {
			if k.KeyID == keyID {
				return k, true, nil
			}
		}
		return storage.ServerKey{}, false, nil
	}
	k, ok, err := find()
	if err != nil {
		return "", time.Time{}, err
	}
	// A key known to have expired is not refreshed: its server will not
	// sign with it again.
	if !ok || (k.ExpiredTS == 0 && validity(k).Before(minValidUntil)) {
		// Looked up again whatever Fetch says: a fetch made by another
		// request while this one looked (Fetch then answers errRecentFetch)
		// may have stored the key.
		ferr := r.Fetch(ctx, serverName, false)
		fk, found, err := find()
		if err != nil {
			return "", time.Time{}, err
		}
		if found {
			k, ok = fk, true
		}
		if !ok && ferr != nil {
			return "", time.Time{}, fmt.Errorf("%w: %s of %s: %w", ErrNoKey, keyID, serverName, ferr)
		}
	}
	if !ok {
		return "", time.Time{}, fmt.Errorf("%w: %s of %s", ErrNoKey, keyID, serverName)
	}
	return k.PublicKey, validity(k), nil
}

// Fetch asks serverName for its keys, then each trusted notary until one
// answers (unless directOnly: a notary answering a query asks the server
// only, so that notaries trusting each other do not ask in circles), and
// stores what it gets. Fetches of one server are serialised and not
// repeated within refetchAfter of the last attempt, failed or not (a server
// that cannot be reached is not asked again for every request naming it).
func (r *Ring) Fetch(ctx context.Context, serverName string, directOnly bool) error {
	if r.opts.Fetcher == nil {
		return errors.New("federation is disabled")
	}
	r.mu.Lock()
	lock := r.fetching[serverName]
	if lock == nil {
		lock = &sync.Mutex{}
		r.fetching[serverName] = lock
	}
	r.mu.Unlock()
	lock.Lock()
	defer lock.Unlock()
	r.mu.Lock()
	last, fetched := r.lastFetch[serverName]
	r.mu.Unlock()
	if fetched && r.opts.Now().Sub(last) < refetchAfter {
		return errRecentFetch
	}
	resp, err := r.opts.Fetcher.ServerKeys(ctx, serverName)
	if err == nil {
		err = r.store(ctx, serverName, resp)
	}
	if err != nil && !directOnly {
		r.opts.Logger.InfoContext(ctx, "fetching keys directly failed; asking notaries", "server", serverName, "err", err)
		for _, notary := range r.opts.Notaries {
			if notary == serverName || notary == r.opts.ServerName {
				continue
			}
			if nerr := r.fetchFromNotary(ctx, notary, serverName); nerr != nil {
				r.opts.Logger.InfoContext(ctx, "notary could not give keys", "notary", notary, "server", serverName, "err", nerr)
				continue
			}
			err = nil
			break
		}
	}
	r.mu.Lock()
	r.lastFetch[serverName] = r.opts.Now()
	r.mu.Unlock()
	return err
}

// fetchFromNotary asks notary for serverName's keys (POST
// /_matrix/key/v2/query, all key IDs) and stores each response that both
// serverName and the notary signed.
func (r *Ring) fetchFromNotary(ctx context.Context, notary, serverName string) error {
	resp, err := r.opts.Fetcher.QueryKeys(ctx, notary, &federation.ReqQueryKeys{
		ServerKeys: map[string]map[id.KeyID]federation.QueryKeysCriteria{serverName: {}}})
	if err != nil {
		return err
	}
	stored := 0
	for _, skr := range resp.ServerKeys {
		if skr == nil || skr.ServerName != serverName {
			continue
		}
		if err := r.verifyNotarySignature(ctx, notary, skr); err != nil {
			return err
		}
		if err := r.store(ctx, serverName, skr); err != nil {
			return err
		}
		stored++
	}
	if stored == 0 {
		return fmt.Errorf("notary %s has no keys of %s", notary, serverName)
	}
	return nil
}

// verifyNotarySignature checks that notary signed skr with a key of its
// own (fetched from the notary itself like any server's).
func (r *Ring) verifyNotarySignature(ctx context.Context, notary string, skr *federation.ServerKeyResponse) error {
	sigs := skr.Signatures[notary]
	if len(sigs) == 0 {
		return fmt.Errorf("notary %s did not sign the keys of %s", notary, skr.ServerName)
	}
	for keyID := range sigs {
		key, _, err := r.ServerKey(ctx, notary, keyID, r.opts.Now())
		if err != nil {
			continue
		}
		if signutil.VerifyJSON(notary, keyID, key, skr.Raw) == nil {
			return nil
		}
	}
	return fmt.Errorf("no valid signature of notary %s on the keys of %s", notary, skr.ServerName)
}

// store checks a key response of serverName (server name, self-signatures
// by every key in verify_keys) and stores its keys, current and old, with
// valid_until_ts capped at seven days from now.
func (r *Ring) store(ctx context.Context, serverName string, skr *federation.ServerKeyResponse) error {
	if skr == nil || skr.ServerName != serverName {
		return fmt.Errorf("key response names another server than %s", serverName)
	}
	if err := skr.VerifySelfSignature(); err != nil {
		return fmt.Errorf("keys of %s: %w", serverName, err)
	}
	now := r.opts.Now()
	validUntil := skr.ValidUntilTS.UnixMilli()
	if limit := now.Add(maxKeyValidity).UnixMilli(); validUntil > limit {
		validUntil = limit
	}
	raw := []byte(skr.Raw)
	if len(raw) == 0 {
		var err error
		if raw, err = json.Marshal(skr); err != nil {
			return err
		}
	}
	var keys []storage.ServerKey
	for keyID, k := range skr.VerifyKeys {
		keys = append(keys, storage.ServerKey{ServerName: serverName, KeyID: keyID, PublicKey: k.Key,
			ValidUntilTS: validUntil, FetchedTS: now.UnixMilli(), Response: raw})
	}
	for keyID, k := range skr.OldVerifyKeys {
		if _, current := skr.VerifyKeys[keyID]; current || k.Key == "" || k.ExpiredTS.IsZero() {
			continue
		}
		keys = append(keys, storage.ServerKey{ServerName: serverName, KeyID: keyID, PublicKey: k.Key,
			ValidUntilTS: validUntil, ExpiredTS: k.ExpiredTS.UnixMilli(), FetchedTS: now.UnixMilli(), Response: raw})
	}
	return r.opts.Store.PutServerKeys(ctx, keys)
}

// Notarise answers a notary query for serverName's keys (GET
// /_matrix/key/v2/query/{serverName}, POST /_matrix/key/v2/query): this
// server's own response, or the responses it holds for serverName, each
// also signed by this server. When keyIDs are named and some is unknown or
// not valid until minValidUntil, serverName is asked first; when it cannot
// be reached, what is cached is returned (the spec's "cached keys").
func (r *Ring) Notarise(ctx context.Context, serverName string, keyIDs []id.KeyID, minValidUntil time.Time) ([]json.RawMessage, error) {
	if serverName == r.opts.ServerName {
		raw, err := json.Marshal(r.OwnKeys())
		if err != nil {
			return nil, err
		}
		return []json.RawMessage{raw}, nil
	}
	keys, err := r.opts.Store.GetServerKeys(ctx, serverName)
	if err != nil {
		return nil, err
	}
	if r.needFetch(keys, keyIDs, minValidUntil) && r.opts.Fetcher != nil {
		if err := r.Fetch(ctx, serverName, true); err != nil {
			r.opts.Logger.InfoContext(ctx, "notary: fetching keys failed; answering from the cache", "server", serverName, "err", err)
		}
		if keys, err = r.opts.Store.GetServerKeys(ctx, serverName); err != nil {
			return nil, err
		}
	}
	want := map[id.KeyID]bool{}
	for _, k := range keyIDs {
		want[k] = true
	}
	seen := map[string]bool{}
	out := []json.RawMessage{}
	for _, k := range keys {
		if len(want) > 0 && !want[k.KeyID] {
			continue
		}
		if seen[string(k.Response)] {
			continue
		}
		seen[string(k.Response)] = true
		signed, err := r.countersign(k.Response)
		if err != nil {
			return nil, err
		}
		out = append(out, signed)
	}
	return out, nil
}

// needFetch reports whether the stored keys miss a wanted key ID (any key
// when none is named) or hold one that is not valid long enough.
func (r *Ring) needFetch(keys []storage.ServerKey, keyIDs []id.KeyID, minValidUntil time.Time) bool {
	if len(keys) == 0 {
		return true
	}
	if minValidUntil.IsZero() {
		minValidUntil = r.opts.Now()
	}
	if len(keyIDs) == 0 {
		for _, k := range keys {
			if k.ExpiredTS == 0 && !validity(k).Before(minValidUntil) {
				return false
			}
		}
		return true
	}
	for _, want := range keyIDs {
		found := false
		for _, k := range keys {
			if k.KeyID == want && (k.ExpiredTS != 0 || !validity(k).Before(minValidUntil)) {
				found = true
			}
		}
		if !found {
			return true
		}
	}
	return false
}

// countersign adds this server's signature to a key response, keeping the
// signatures it has (spec: the notary's response carries the origin's
// signatures and its own).
func (r *Ring) countersign(raw []byte) (json.RawMessage, error) {
	sig, err := r.opts.Key.SignJSON(json.RawMessage(raw))
	if err != nil {
		return nil, err
	}
	return sjson.SetBytes(raw, exgjson.Path("signatures", r.opts.ServerName, string(r.opts.Key.ID)), sig)
}
