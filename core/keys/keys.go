// Package keys is the server side of end-to-end encryption: device keys,
// one-time and fallback keys, cross-signing keys and signatures, the
// device-list stream and server-side key backup, and copies of other
// servers' users' device lists (remotelists.go). Each change of a user's
// keys — a local user's, or a remote user's as their server reports it —
// advances the device_lists stream and is published to core/stream's
// notifier for the rooms the user is in. It imports core/stream,
// core/types, mautrix (signature checks) and the storage interfaces.
package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"

	"maunium.net/go/mautrix/federation/signutil"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// Error codes of this area.
const (
	CodeInvalidSignature      = "M_INVALID_SIGNATURE"
	CodeWrongRoomKeysVersion  = "M_WRONG_ROOM_KEYS_VERSION"
	maxKeysPerUpload          = 1000
	maxQueryUsers             = 1000
	algSignedCurve25519       = "signed_curve25519"
	usageMaster               = "master"
	usageSelfSigning          = "self_signing"
	usageUserSigning          = "user_signing"
	eventMember               = "m.room.member"
	membershipJoin            = "join"
	membershipLeave, memBan   = "leave", "ban"
	maxDeviceKeysJSONBytes    = 16 * 1024
	maxOneTimeKeyJSONBytes    = 4 * 1024
	maxCrossSigningKeyJSONLen = 16 * 1024
)

// Store is what the service persists to and reads.
type Store interface {
	storage.Keys
	storage.RemoteDeviceLists
	ListDevices(ctx context.Context, userID id.UserID) ([]*storage.Device, error)
	GetAccount(ctx context.Context, userID id.UserID) (*storage.Account, error)
	RoomsOfUser(ctx context.Context, userID id.UserID, memberships []string) ([]storage.CurrentMember, error)
	RoomMembers(ctx context.Context, roomID id.RoomID, memberships []string) ([]storage.CurrentMember, error)
	MemberEventsBetween(ctx context.Context, after, upto int64) ([]*storage.Event, error)
	UpsertDevice(ctx context.Context, d *storage.Device) error
	DeleteDevices(ctx context.Context, userID id.UserID, deviceIDs []id.DeviceID) error
	ToDeviceSince(ctx context.Context, userID id.UserID, deviceID id.DeviceID, since, upto int64, limit int) ([]*storage.ToDeviceMessage, error)
	AckToDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID, upto int64) error
	MaxToDevicePos(ctx context.Context) (int64, error)
	WithTx(ctx context.Context, fn func(ctx context.Context) error) error
}

// Options configure the service.
type Options struct {
	ServerName string
	Logger     *slog.Logger
	// Remote asks other servers for their users' keys (nil: federation
	// is off, and they are failures).
	Remote RemoteKeys
}

// Service implements the keys endpoints.
type Service struct {
	store     Store
	notifier  stream.Notifier
	opts      Options
	log       *slog.Logger
	keyCounts countCache
	resyncs   resyncs
}

// New builds the service.
func New(store Store, n stream.Notifier, opts Options) (*Service, error) {
	if store == nil || n == nil {
		return nil, errors.New("keys: store and notifier are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Service{store: store, notifier: n, opts: opts, log: opts.Logger}, nil
}

func internal(what string, err error) error {
	if _, ok := types.AsError(err); ok {
		return err
	}
	return fmt.Errorf("keys: %s: %w", what, err)
}

func invalidSignature(format string, args ...any) *types.Error {
	return types.NewError(http.StatusBadRequest, CodeInvalidSignature, format, args...)
}

// deviceListChanged records a change of the user's keys (inside the
// caller's transaction) and returns its position for publish: of the
// devices named, or of the user's cross-signing keys when none (or "") is
// named — other servers are told per device or of the cross-signing keys.
func (s *Service) deviceListChanged(ctx context.Context, user id.UserID, devices ...id.DeviceID) (int64, error) {
	return s.store.AddDeviceListChange(ctx, user, devices...)
}

// publish wakes the user's own syncs and those of everyone in a room with them.
func (s *Service) publish(ctx context.Context, user id.UserID, pos int64) {
	if pos == 0 {
		return
	}
	s.notifier.Publish(stream.Change{Stream: stream.DeviceLists, Pos: pos, Users: []id.UserID{user}})
	rooms, err := s.store.RoomsOfUser(ctx, user, []string{membershipJoin})
	if err != nil {
		s.log.Warn("listing rooms for a device-list change", "user", user, "err", err)
		return
	}
	for _, r := range rooms {
		s.notifier.Publish(stream.Change{Stream: stream.DeviceLists, Pos: pos, RoomID: r.RoomID})
	}
}

// ---- signed JSON helpers ----

// signedObject is the part of a signed key object the server reads.
type signedObject struct {
	UserID     id.UserID                       `json:"user_id"`
	DeviceID   id.DeviceID                     `json:"device_id"`
	Algorithms []string                        `json:"algorithms"`
	Usage      []string                        `json:"usage"`
	Keys       map[string]string               `json:"keys"`
	Key        string                          `json:"key"`
	Signatures map[id.UserID]map[string]string `json:"signatures"`
}

func parseObject(raw json.RawMessage, what string) (*signedObject, error) {
	var o signedObject
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, types.BadJSON("%s must be an object", what)
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, types.BadJSON("%s is malformed", what)
	}
	return &o, nil
}

// verify checks the signature of raw by user's key keyID ("ed25519:X")
// with the public key pub.
func verify(raw json.RawMessage, user id.UserID, keyID, pub string) error {
	if pub == "" {
		return invalidSignature("No key %s to check the signature with", keyID)
	}
	if err := signutil.VerifyJSON(string(user), id.KeyID(keyID), id.SigningKey(pub), raw); err != nil {
		if errors.Is(err, signutil.ErrSignatureNotFound) {
			return invalidSignature("Missing signature by %s of %s", keyID, user)
		}
		return invalidSignature("Invalid signature by %s of %s", keyID, user)
	}
	return nil
}

// withoutSignatures is raw with "signatures" and "unsigned" removed, compacted
// canonically enough to compare two uploads of one key.
func withoutSignatures(raw json.RawMessage) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, "signatures")
	delete(m, "unsigned")
	for k, v := range m {
		var buf bytes.Buffer
		if err := json.Compact(&buf, v); err == nil {
			m[k] = buf.Bytes()
		}
	}
	return m, nil
}

func sameKey(a, b json.RawMessage) bool {
	ma, err1 := withoutSignatures(a)
	mb, err2 := withoutSignatures(b)
	if err1 != nil || err2 != nil || len(ma) != len(mb) {
		return false
	}
	for k, v := range ma {
		if !bytes.Equal(v, mb[k]) {
			return false
		}
	}
	return true
}

// mergeSignatures adds sigs (signer user → key ID → signature) to a key
// object's signatures, and sets unsigned fields.
func mergeSignatures(raw json.RawMessage, sigs []*storage.KeySignature, unsigned map[string]any) json.RawMessage {
	if len(sigs) == 0 && len(unsigned) == 0 {
		return raw
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return raw
	}
	if len(sigs) > 0 {
		all, _ := m["signatures"].(map[string]any)
		if all == nil {
			all = map[string]any{}
		}
		for _, sg := range sigs {
			by, _ := all[string(sg.SignerUserID)].(map[string]any)
			if by == nil {
				by = map[string]any{}
				all[string(sg.SignerUserID)] = by
			}
			by[sg.SignerKeyID] = sg.Signature
		}
		m["signatures"] = all
	}
	if len(unsigned) > 0 {
		u, _ := m["unsigned"].(map[string]any)
		if u == nil {
			u = map[string]any{}
		}
		for k, v := range unsigned {
			u[k] = v
		}
		m["unsigned"] = u
	}
	out, err := json.Marshal(m)
	if err != nil {
		return raw
	}
	return out
}

// ---- upload ----

// UploadRequest is POST /keys/upload.
type UploadRequest struct {
	DeviceKeys   json.RawMessage            `json:"device_keys"`
	OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
	FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
}

// deviceEd25519 is the ed25519 key of a stored device, "" if none.
func (s *Service) deviceEd25519(ctx context.Context, user id.UserID, device id.DeviceID) (string, json.RawMessage, error) {
	all, err := s.store.DeviceKeysOf(ctx, []id.UserID{user})
	if err != nil {
		return "", nil, err
	}
	for _, dk := range all {
		if dk.DeviceID == device {
			o, err := parseObject(dk.KeyJSON, "device_keys")
			if err != nil {
				return "", nil, nil
			}
			return o.Keys[ed25519Of(device)], dk.KeyJSON, nil
		}
	}
	return "", nil, nil
}

// ed25519Of is the key ID of a device's ed25519 key.
func ed25519Of(device id.DeviceID) string { return "ed25519:" + string(device) }

// sigTarget is a signed key: a device ID or a cross-signing public key of a user.
type sigTarget struct {
	user  id.UserID
	keyID string
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// Upload stores a device's keys and returns its one-time key counts.
func (s *Service) Upload(ctx context.Context, user id.UserID, device id.DeviceID, req *UploadRequest) (map[string]int64, error) {
	up, err := s.prepareUpload(ctx, user, device, req)
	if err != nil {
		return nil, err
	}
	var pos int64
	err = s.store.WithTx(ctx, func(ctx context.Context) error {
		var err error
		pos, err = s.applyUpload(ctx, up)
		return err
	})
	s.keyCounts.forget(user, device) // even on error: the commit may have happened
	if err != nil {
		return nil, internal("upload keys", err)
	}
	s.publish(ctx, user, pos)
	return s.OneTimeKeyCounts(ctx, user, device)
}

// upload is a checked /keys/upload, ready to store.
type upload struct {
	user          id.UserID
	device        id.DeviceID
	newDeviceKeys json.RawMessage
	otks          []*storage.OneTimeKey
	fallbacks     []*storage.OneTimeKey
}

// prepareUpload checks an upload (signatures included) without storing anything.
func (s *Service) prepareUpload(ctx context.Context, user id.UserID, device id.DeviceID, req *UploadRequest) (*upload, error) {
	if len(req.OneTimeKeys)+len(req.FallbackKeys) > maxKeysPerUpload {
		return nil, types.TooLarge("At most %d keys per upload", maxKeysPerUpload)
	}
	storedEd, storedRaw, err := s.deviceEd25519(ctx, user, device)
	if err != nil {
		return nil, internal("read device keys", err)
	}
	ed := storedEd
	var newDeviceKeys json.RawMessage
	if !isNull(req.DeviceKeys) {
		if len(req.DeviceKeys) > maxDeviceKeysJSONBytes {
			return nil, types.TooLarge("device_keys is too large")
		}
		o, err := parseObject(req.DeviceKeys, "device_keys")
		if err != nil {
			return nil, err
		}
		// Device keys that are not what the spec's DeviceKeys object
		// describes are refused as bad JSON, as Synapse refuses them.
		if o.UserID != user || o.DeviceID != device {
			return nil, types.BadJSON("device_keys must be for user %s and device %s", user, device)
		}
		if len(o.Algorithms) == 0 {
			return nil, types.BadJSON("device_keys.algorithms is required")
		}
		edKey, curveKey := o.Keys[ed25519Of(device)], o.Keys["curve25519:"+string(device)]
		if edKey == "" || curveKey == "" {
			return nil, types.BadJSON("device_keys.keys must hold ed25519:%s and curve25519:%s", device, device)
		}
		for keyID := range o.Keys {
			alg, kid, ok := strings.Cut(keyID, ":")
			if !ok || alg == "" || id.DeviceID(kid) != device {
				return nil, types.BadJSON("Key ID %q does not name the device", keyID)
			}
		}
		if storedEd != "" && storedEd != edKey {
			// A device's identity key never changes; a client that lost it
			// must log in again as a new device.
			return nil, types.InvalidParam("The device's ed25519 key cannot change")
		}
		// Clients check the device's self-signature before they trust its
		// keys; the server need not. Keys without it are stored, as Synapse
		// stores them (some clients upload them so), but a signature
		// that is there must hold: a forged one is refused.
		if _, signed := o.Signatures[user][ed25519Of(device)]; signed {
			if err := verify(req.DeviceKeys, user, ed25519Of(device), edKey); err != nil {
				return nil, err
			}
		}
		ed = edKey
		if storedRaw == nil || !bytes.Equal(bytes.TrimSpace(storedRaw), bytes.TrimSpace(req.DeviceKeys)) {
			newDeviceKeys = req.DeviceKeys
		}
	}
	otks, err := parseKeyMap(req.OneTimeKeys, user, device, ed, "one_time_keys")
	if err != nil {
		return nil, err
	}
	fallbacks, err := parseKeyMap(req.FallbackKeys, user, device, ed, "fallback_keys")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, k := range fallbacks {
		if seen[k.Algorithm] {
			return nil, types.InvalidParam("At most one fallback key per algorithm")
		}
		seen[k.Algorithm] = true
	}
	return &upload{user: user, device: device, newDeviceKeys: newDeviceKeys, otks: otks, fallbacks: fallbacks}, nil
}

// applyUpload stores a prepared upload in the caller's transaction and
// returns the device-list position to publish (0: no change).
func (s *Service) applyUpload(ctx context.Context, up *upload) (int64, error) {
	var pos int64
	if up.newDeviceKeys != nil {
		if err := s.store.PutDeviceKeys(ctx, up.user, up.device, up.newDeviceKeys); err != nil {
			return 0, err
		}
		var err error
		if pos, err = s.deviceListChanged(ctx, up.user, up.device); err != nil {
			return 0, err
		}
	}
	if len(up.otks) > 0 {
		if err := s.store.PutOneTimeKeys(ctx, up.otks); err != nil {
			if errors.Is(err, storage.ErrConflict) {
				return 0, types.InvalidParam("One-time key ID already used with another key")
			}
			return 0, err
		}
	}
	for _, k := range up.fallbacks {
		if err := s.store.PutFallbackKey(ctx, k); err != nil {
			return 0, err
		}
	}
	return pos, nil
}

func parseKeyMap(m map[string]json.RawMessage, user id.UserID, device id.DeviceID, ed, what string) ([]*storage.OneTimeKey, error) {
	var out []*storage.OneTimeKey
	for keyID, raw := range m {
		alg, kid, ok := strings.Cut(keyID, ":")
		if !ok || alg == "" || kid == "" {
			return nil, types.InvalidParam("%s: malformed key ID %q", what, keyID)
		}
		if len(raw) > maxOneTimeKeyJSONBytes {
			return nil, types.TooLarge("%s: key %s is too large", what, keyID)
		}
		t := bytes.TrimSpace(raw)
		switch {
		case len(t) > 0 && t[0] == '"':
			if alg == algSignedCurve25519 {
				return nil, types.InvalidParam("%s: %s must be a signed object", what, keyID)
			}
		case len(t) > 0 && t[0] == '{':
			o, err := parseObject(raw, what+"."+keyID)
			if err != nil {
				return nil, err
			}
			if o.Key == "" {
				return nil, types.InvalidParam("%s: %s has no key", what, keyID)
			}
			if strings.HasPrefix(alg, "signed_") {
				if ed == "" {
					return nil, types.InvalidParam("Upload device keys before signed keys")
				}
				if err := verify(raw, user, ed25519Of(device), ed); err != nil {
					return nil, err
				}
			}
		default:
			return nil, types.BadJSON("%s: %s must be a string or an object", what, keyID)
		}
		out = append(out, &storage.OneTimeKey{UserID: user, DeviceID: device, Algorithm: alg, KeyID: kid,
			KeyJSON: json.RawMessage(t)})
	}
	slices.SortFunc(out, func(a, b *storage.OneTimeKey) int {
		return strings.Compare(a.Algorithm+":"+a.KeyID, b.Algorithm+":"+b.KeyID)
	})
	return out, nil
}

// OneTimeKeyCounts counts a device's unclaimed one-time keys (with
// signed_curve25519 always present). The map may be the cache's: callers
// must not change it (nor UnusedFallbackKeyTypes' slice).
func (s *Service) OneTimeKeyCounts(ctx context.Context, user id.UserID, device id.DeviceID) (map[string]int64, error) {
	known, epoch := s.keyCounts.get(user, device)
	if known.otk != nil {
		return known.otk, nil
	}
	counts, err := s.store.CountOneTimeKeys(ctx, user, device)
	if err != nil {
		return nil, internal("count one-time keys", err)
	}
	if _, ok := counts[algSignedCurve25519]; !ok {
		counts[algSignedCurve25519] = 0
	}
	s.keyCounts.put(user, device, epoch, func(e *deviceCounts) { e.otk = maps.Clone(counts) })
	return counts, nil
}

// UnusedFallbackKeyTypes lists the algorithms of a device's unused fallback keys.
func (s *Service) UnusedFallbackKeyTypes(ctx context.Context, user id.UserID, device id.DeviceID) ([]string, error) {
	known, epoch := s.keyCounts.get(user, device)
	if known.hasFB {
		return known.fallback, nil
	}
	t, err := s.store.UnusedFallbackKeyTypes(ctx, user, device)
	if err != nil {
		return nil, internal("fallback key types", err)
	}
	s.keyCounts.put(user, device, epoch, func(e *deviceCounts) { e.fallback, e.hasFB = slices.Clone(t), true })
	return t, nil
}

// ---- query ----

// QueryResponse is the answer of POST /keys/query.
type QueryResponse struct {
	Failures        map[string]any                                `json:"failures"`
	DeviceKeys      map[id.UserID]map[id.DeviceID]json.RawMessage `json:"device_keys"`
	MasterKeys      map[id.UserID]json.RawMessage                 `json:"master_keys"`
	SelfSigningKeys map[id.UserID]json.RawMessage                 `json:"self_signing_keys"`
	UserSigningKeys map[id.UserID]json.RawMessage                 `json:"user_signing_keys"`
}

func newQueryResponse() *QueryResponse {
	return &QueryResponse{Failures: map[string]any{}, DeviceKeys: map[id.UserID]map[id.DeviceID]json.RawMessage{},
		MasterKeys: map[id.UserID]json.RawMessage{}, SelfSigningKeys: map[id.UserID]json.RawMessage{},
		UserSigningKeys: map[id.UserID]json.RawMessage{}}
}

func (s *Service) isLocal(user id.UserID) bool {
	server := user.Homeserver()
	return server != "" && server == s.opts.ServerName
}

// publicKey is the single public key of a cross-signing key object.
func publicKey(raw json.RawMessage) string {
	o, err := parseObject(raw, "key")
	if err != nil {
		return ""
	}
	for kid, v := range o.Keys {
		if strings.HasPrefix(kid, "ed25519:") {
			return v
		}
	}
	return ""
}

// Query answers POST /keys/query for local users.
func (s *Service) Query(ctx context.Context, caller id.UserID, want map[id.UserID][]id.DeviceID) (*QueryResponse, error) {
	if len(want) > maxQueryUsers {
		return nil, types.TooLarge("At most %d users per query", maxQueryUsers)
	}
	resp := newQueryResponse()
	var users []id.UserID
	for u := range want {
		if _, _, err := u.Parse(); err != nil {
			return nil, types.InvalidParam("Invalid user ID %q", u)
		}
		if !s.isLocal(u) {
			continue
		}
		users = append(users, u)
	}
	s.queryRemote(ctx, want, resp)
	if err := s.mergeRemoteSignatures(ctx, caller, resp); err != nil {
		return nil, err
	}
	slices.Sort(users)
	if len(users) == 0 {
		return resp, nil
	}
	dks, err := s.store.DeviceKeysOf(ctx, users)
	if err != nil {
		return nil, internal("query device keys", err)
	}
	sigs, err := s.store.KeySignaturesOf(ctx, users)
	if err != nil {
		return nil, internal("query signatures", err)
	}
	sigsOf := map[sigTarget][]*storage.KeySignature{}
	for _, sg := range sigs {
		k := sigTarget{sg.TargetUserID, sg.TargetKeyID}
		sigsOf[k] = append(sigsOf[k], sg)
	}
	names := map[id.DeviceID]string{}
	if _, ok := want[caller]; ok {
		devs, err := s.store.ListDevices(ctx, caller)
		if err != nil {
			return nil, internal("list devices", err)
		}
		for _, d := range devs {
			names[d.DeviceID] = d.DisplayName
		}
	}
	for _, u := range users {
		resp.DeviceKeys[u] = map[id.DeviceID]json.RawMessage{}
	}
	for _, dk := range dks {
		if ws := want[dk.UserID]; len(ws) > 0 && !slices.Contains(ws, dk.DeviceID) {
			continue
		}
		var unsigned map[string]any
		if dk.UserID == caller && names[dk.DeviceID] != "" {
			unsigned = map[string]any{"device_display_name": names[dk.DeviceID]}
		}
		resp.DeviceKeys[dk.UserID][dk.DeviceID] = mergeSignatures(dk.KeyJSON, sigsOf[sigTarget{dk.UserID, string(dk.DeviceID)}], unsigned)
	}
	for _, u := range users {
		cs, err := s.store.CrossSigningKeys(ctx, u)
		if err != nil {
			return nil, internal("query cross-signing keys", err)
		}
		if m, ok := cs[usageMaster]; ok {
			var shown []*storage.KeySignature
			for _, sg := range sigsOf[sigTarget{u, publicKey(m)}] {
				// The owner's signatures (by their devices) are for
				// everyone; another user's signature only for that user.
				if sg.SignerUserID == u || sg.SignerUserID == caller {
					shown = append(shown, sg)
				}
			}
			resp.MasterKeys[u] = mergeSignatures(m, shown, nil)
		}
		if k, ok := cs[usageSelfSigning]; ok {
			resp.SelfSigningKeys[u] = k
		}
		if k, ok := cs[usageUserSigning]; ok && u == caller {
			resp.UserSigningKeys[u] = k
		}
	}
	return resp, nil
}

// ---- claim ----

// Claim takes one one-time key (else the fallback key) of each requested
// device: want is user → device → algorithm.
func (s *Service) Claim(ctx context.Context, want map[id.UserID]map[id.DeviceID]string) (map[id.UserID]map[id.DeviceID]map[string]json.RawMessage, map[string]any, error) {
	out := map[id.UserID]map[id.DeviceID]map[string]json.RawMessage{}
	failures := map[string]any{}
	n := 0
	for _, devs := range want {
		n += len(devs)
	}
	if n > maxKeysPerUpload {
		return nil, nil, types.TooLarge("At most %d devices per claim", maxKeysPerUpload)
	}
	for user, devs := range want {
		if _, _, err := user.Parse(); err != nil {
			return nil, nil, types.InvalidParam("Invalid user ID %q", user)
		}
		for dev, alg := range devs {
			if alg == "" {
				return nil, nil, types.InvalidParam("Missing algorithm for %s %s", user, dev)
			}
		}
	}
	s.claimRemote(ctx, want, out, failures)
	for user, devs := range want {
		if !s.isLocal(user) {
			continue
		}
		for dev, alg := range devs {
			var keyID string
			var keyJSON json.RawMessage
			k, err := s.store.ClaimOneTimeKey(ctx, user, dev, alg)
			if err == nil {
				keyID, keyJSON = k.KeyID, k.KeyJSON
				s.keyCounts.forget(user, dev)
			} else if errors.Is(err, storage.ErrNotFound) {
				fk, err := s.store.ClaimFallbackKey(ctx, user, dev, alg)
				s.keyCounts.forget(user, dev) // the fallback key may now be used
				if errors.Is(err, storage.ErrNotFound) {
					continue
				} else if err != nil {
					return nil, nil, internal("claim fallback key", err)
				}
				keyID, keyJSON = fk.KeyID, fk.KeyJSON
			} else {
				return nil, nil, internal("claim one-time key", err)
			}
			if out[user] == nil {
				out[user] = map[id.DeviceID]map[string]json.RawMessage{}
			}
			out[user][dev] = map[string]json.RawMessage{alg + ":" + keyID: keyJSON}
		}
	}
	return out, failures, nil
}

// ---- device lists ----

// DeviceListUpdates are the users whose device lists changed in (since,
// upto] among those sharing a room with user (changed), and those who no
// longer share one (left). Users who newly share a room count as changed.
func (s *Service) DeviceListUpdates(ctx context.Context, user id.UserID, since, upto stream.Positions) (changed, left []id.UserID, err error) {
	me := user
	changedC, leftC := map[id.UserID]bool{}, map[id.UserID]bool{}
	if upto[stream.DeviceLists] > since[stream.DeviceLists] {
		users, err := s.store.DeviceListChanges(ctx, since[stream.DeviceLists], upto[stream.DeviceLists])
		if err != nil {
			return nil, nil, internal("device list changes", err)
		}
		for _, u := range users {
			changedC[u] = true
		}
	}
	if upto[stream.Events] > since[stream.Events] && since[stream.Events] > 0 {
		if err := s.membershipChanges(ctx, me, since[stream.Events], upto[stream.Events], changedC, leftC); err != nil {
			return nil, nil, err
		}
	}
	if len(changedC) == 0 && len(leftC) == 0 {
		return nil, nil, nil
	}
	candidates := make([]id.UserID, 0, len(changedC)+len(leftC))
	for u := range changedC {
		candidates = append(candidates, u)
	}
	for u := range leftC {
		if !changedC[u] {
			candidates = append(candidates, u)
		}
	}
	sharing, err := s.store.UsersSharingRoom(ctx, me, candidates)
	if err != nil {
		return nil, nil, internal("users sharing a room", err)
	}
	shared := map[id.UserID]bool{me: true}
	for _, u := range sharing {
		shared[u] = true
	}
	for u := range changedC {
		if shared[u] {
			changed = append(changed, u)
		}
	}
	for u := range leftC {
		if !shared[u] {
			left = append(left, u)
		}
	}
	slices.Sort(changed)
	slices.Sort(left)
	return changed, left, nil
}

// membershipChanges adds the users whose membership changes in (since,
// upto] may have changed whether they share a room with me: those who
// joined a room of mine, everyone in a room I joined (changed candidates),
// those who left a room of mine and everyone in a room I left (left
// candidates).
func (s *Service) membershipChanges(ctx context.Context, me id.UserID, since, upto int64, changedC, leftC map[id.UserID]bool) error {
	// Most syncs follow messages only: no membership changed, nothing to read.
	evs, err := s.store.MemberEventsBetween(ctx, since, upto)
	if err != nil {
		return internal("member events", err)
	}
	if len(evs) == 0 {
		return nil
	}
	mine, err := s.store.RoomsOfUser(ctx, me, []string{membershipJoin, membershipLeave, memBan})
	if err != nil {
		return internal("rooms of user", err)
	}
	joined := map[id.RoomID]bool{}
	relevant := map[id.RoomID]bool{}
	for _, r := range mine {
		relevant[r.RoomID] = true
		joined[r.RoomID] = r.Membership == membershipJoin
	}
	addMembers := func(roomID id.RoomID, to map[id.UserID]bool) error {
		members, err := s.store.RoomMembers(ctx, roomID, []string{membershipJoin})
		if err != nil {
			return internal("room members", err)
		}
		for _, m := range members {
			if u := m.UserID; u != me {
				to[u] = true
			}
		}
		return nil
	}
	for _, ev := range evs {
		roomID := ev.RoomID
		if !relevant[roomID] {
			continue
		}
		target := id.UserID(*ev.StateKey)
		gone := ev.Membership == membershipLeave || ev.Membership == memBan
		switch {
		case joined[roomID] && target == me && ev.Membership == membershipJoin:
			if err := addMembers(roomID, changedC); err != nil {
				return err
			}
		case joined[roomID] && ev.Membership == membershipJoin:
			changedC[target] = true
		case joined[roomID] && gone && target != me:
			leftC[target] = true
		case !joined[roomID] && target == me && gone:
			if err := addMembers(roomID, leftC); err != nil {
				return err
			}
		}
	}
	return nil
}

// DevicesDeleted deletes the keys of deleted devices and records the
// change of the user's device list (users.Options.OnDevicesDeleted).
func (s *Service) DevicesDeleted(ctx context.Context, user id.UserID, devices []id.DeviceID) {
	if len(devices) == 0 {
		return
	}
	var pos int64
	err := s.store.WithTx(ctx, func(ctx context.Context) error {
		if err := s.store.DeleteDeviceKeys(ctx, user, devices); err != nil {
			return err
		}
		var err error
		pos, err = s.deviceListChanged(ctx, user, devices...)
		return err
	})
	s.keyCounts.forget(user, devices...)
	if err != nil {
		s.log.Error("deleting the keys of deleted devices", "user", user, "err", err)
		return
	}
	s.publish(ctx, user, pos)
}
