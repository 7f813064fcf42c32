package keys

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// DeviceSigningRequest is POST /keys/device_signing/upload (without auth).
type DeviceSigningRequest struct {
	MasterKey      json.RawMessage `json:"master_key"`
	SelfSigningKey json.RawMessage `json:"self_signing_key"`
	UserSigningKey json.RawMessage `json:"user_signing_key"`
}

// crossKey is a parsed cross-signing key.
type crossKey struct {
	raw    json.RawMessage
	obj    *signedObject
	pub    string
	keyID  string
	usage  string
	stored bool
}

func parseCrossKey(raw json.RawMessage, user id.UserID, usage, field string) (*crossKey, error) {
	if len(raw) > maxCrossSigningKeyJSONLen {
		return nil, types.TooLarge("%s is too large", field)
	}
	o, err := parseObject(raw, field)
	if err != nil {
		return nil, err
	}
	if o.UserID != user {
		return nil, types.InvalidParam("%s.user_id must be %s", field, user)
	}
	if !slices.Contains(o.Usage, usage) {
		return nil, types.InvalidParam("%s.usage must include %q", field, usage)
	}
	if len(o.Keys) != 1 {
		return nil, types.InvalidParam("%s must hold exactly one key", field)
	}
	k := &crossKey{raw: raw, obj: o, usage: usage}
	for kid, v := range o.Keys {
		alg, pub, _ := strings.Cut(kid, ":")
		if alg != "ed25519" || pub == "" || pub != v {
			return nil, types.InvalidParam("%s: the key ID must be ed25519:<public key>", field)
		}
		k.pub, k.keyID = pub, kid
	}
	return k, nil
}

// NeedsUIA reports whether uploading these cross-signing keys needs
// user-interactive authentication: not for a user's first master key, nor
// for re-uploading the keys already stored (MSC3967, spec v1.11).
func (s *Service) NeedsUIA(ctx context.Context, user id.UserID, req *DeviceSigningRequest) (bool, error) {
	stored, err := s.store.CrossSigningKeys(ctx, user)
	if err != nil {
		return false, internal("read cross-signing keys", err)
	}
	if _, ok := stored[usageMaster]; !ok {
		return false, nil
	}
	for usage, raw := range map[string]json.RawMessage{usageMaster: req.MasterKey, usageSelfSigning: req.SelfSigningKey,
		usageUserSigning: req.UserSigningKey} {
		if isNull(raw) {
			continue
		}
		if old, ok := stored[usage]; !ok || !sameKey(old, raw) {
			return true, nil
		}
	}
	return false, nil
}

// UploadDeviceSigning stores cross-signing keys (the caller did UIA).
func (s *Service) UploadDeviceSigning(ctx context.Context, user id.UserID, req *DeviceSigningRequest) error {
	stored, err := s.store.CrossSigningKeys(ctx, user)
	if err != nil {
		return internal("read cross-signing keys", err)
	}
	var master *crossKey
	var upload []*crossKey
	if !isNull(req.MasterKey) {
		if master, err = parseCrossKey(req.MasterKey, user, usageMaster, "master_key"); err != nil {
			return err
		}
		upload = append(upload, master)
	} else if raw, ok := stored[usageMaster]; ok {
		if master, err = parseCrossKey(raw, user, usageMaster, "master_key"); err != nil {
			return internal("stored master key", err)
		}
		master.stored = true
	}
	for _, x := range []struct {
		raw          json.RawMessage
		usage, field string
	}{{req.SelfSigningKey, usageSelfSigning, "self_signing_key"}, {req.UserSigningKey, usageUserSigning, "user_signing_key"}} {
		if isNull(x.raw) {
			continue
		}
		k, err := parseCrossKey(x.raw, user, x.usage, x.field)
		if err != nil {
			return err
		}
		if master == nil {
			return types.MissingParam("No master signing key is available")
		}
		if err := verify(k.raw, user, master.keyID, master.pub); err != nil {
			return err
		}
		upload = append(upload, k)
	}
	if len(upload) == 0 {
		return nil
	}
	devs, err := s.store.ListDevices(ctx, user)
	if err != nil {
		return internal("list devices", err)
	}
	for _, k := range upload {
		for _, d := range devs {
			if d.DeviceID == id.DeviceID(k.pub) {
				return types.Forbidden("Key ID in use")
			}
		}
	}
	var pos int64
	err = s.store.WithTx(ctx, func(ctx context.Context) error {
		for _, k := range upload {
			if err := s.store.PutCrossSigningKey(ctx, user, k.usage, k.raw); err != nil {
				return err
			}
		}
		var err error
		pos, err = s.deviceListChanged(ctx, user)
		return err
	})
	if err != nil {
		return internal("store cross-signing keys", err)
	}
	s.publish(ctx, user, pos)
	return nil
}

// SignatureFailure is one entry of the failures map of /keys/signatures/upload.
type SignatureFailure struct {
	ErrCode string `json:"errcode"`
	Error   string `json:"error"`
}

func failure(err error) *SignatureFailure {
	if me, ok := types.AsError(err); ok {
		return &SignatureFailure{ErrCode: me.Code, Error: me.Message}
	}
	return &SignatureFailure{ErrCode: "M_UNKNOWN", Error: "Internal error"}
}

// UploadSignatures stores signatures of keys (POST /keys/signatures/upload):
// the caller's devices and master key by their own keys, other users'
// master keys by the caller's user-signing key. Each signature is checked;
// those that fail are returned, the others stored.
func (s *Service) UploadSignatures(ctx context.Context, caller id.UserID, req map[id.UserID]map[string]json.RawMessage) (map[id.UserID]map[string]*SignatureFailure, error) {
	failures := map[id.UserID]map[string]*SignatureFailure{}
	fail := func(user id.UserID, keyID string, err error) {
		if failures[user] == nil {
			failures[user] = map[string]*SignatureFailure{}
		}
		failures[user][keyID] = failure(err)
	}
	n := 0
	for _, keys := range req {
		n += len(keys)
	}
	if n > maxKeysPerUpload {
		return nil, types.TooLarge("At most %d signed keys per upload", maxKeysPerUpload)
	}
	mine, err := s.store.CrossSigningKeys(ctx, caller)
	if err != nil {
		return nil, internal("read cross-signing keys", err)
	}
	var sigs []*storage.KeySignature
	changedUsers := map[id.UserID][]string{} // by user, the key IDs signed
	for user, keys := range req {
		for keyID, raw := range keys {
			got, err := s.checkSigned(ctx, caller, mine, user, keyID, raw)
			if err != nil {
				if _, ok := types.AsError(err); !ok {
					return nil, err
				}
				fail(user, keyID, err)
				continue
			}
			if len(got) > 0 {
				sigs = append(sigs, got...)
				for _, sg := range got {
					changedUsers[user] = append(changedUsers[user], sg.TargetKeyID)
				}
			}
		}
	}
	if len(sigs) == 0 {
		return failures, nil
	}
	positions := map[id.UserID]int64{}
	err = s.store.WithTx(ctx, func(ctx context.Context) error {
		for _, sg := range sigs {
			if err := s.store.PutKeySignature(ctx, sg); err != nil {
				return err
			}
		}
		for u, keyIDs := range changedUsers {
			changed, err := s.signedDevices(ctx, u, keyIDs)
			if err != nil {
				return err
			}
			pos, err := s.deviceListChanged(ctx, u, changed...)
			if err != nil {
				return err
			}
			positions[u] = pos
		}
		return nil
	})
	if err != nil {
		return nil, internal("store signatures", err)
	}
	for u, pos := range positions {
		s.publish(ctx, u, pos)
	}
	return failures, nil
}

// signedDevices names the changes new signatures of keyIDs make to the
// user's device list: the devices signed, and "" (the cross-signing keys)
// for a signed key that is no device (the master key).
func (s *Service) signedDevices(ctx context.Context, user id.UserID, keyIDs []string) ([]id.DeviceID, error) {
	devs, err := s.store.ListDevices(ctx, user)
	if err != nil {
		return nil, err
	}
	var out []id.DeviceID
	for _, k := range keyIDs {
		d := id.DeviceID(k)
		if !slices.ContainsFunc(devs, func(x *storage.Device) bool { return x.DeviceID == d }) {
			d = ""
		}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out, nil
}

// checkSigned verifies the caller's new signatures of one key and returns
// them to store.
func (s *Service) checkSigned(ctx context.Context, caller id.UserID, mine map[string]json.RawMessage, user id.UserID, keyID string,
	raw json.RawMessage) ([]*storage.KeySignature, error) {
	o, err := parseObject(raw, "signed key")
	if err != nil {
		return nil, err
	}
	if o.UserID != user {
		return nil, types.InvalidParam("user_id does not match")
	}
	callerSigs := o.Signatures[caller]
	if len(callerSigs) == 0 {
		return nil, invalidSignature("No signature by %s", caller)
	}
	// The key being signed, as stored.
	var storedRaw json.RawMessage
	isDevice := false
	if user == caller || s.isLocal(user) {
		dks, err := s.store.DeviceKeysOf(ctx, []id.UserID{user})
		if err != nil {
			return nil, err
		}
		for _, dk := range dks {
			if dk.DeviceID == id.DeviceID(keyID) {
				storedRaw, isDevice = dk.KeyJSON, true
			}
		}
		if storedRaw == nil {
			cs, err := s.store.CrossSigningKeys(ctx, user)
			if err != nil {
				return nil, err
			}
			if m, ok := cs[usageMaster]; ok && publicKey(m) == keyID {
				storedRaw = m
			}
		}
	} else {
		// Another server's user: their master key as their server says it.
		if m := s.remoteMasterKey(ctx, user); m != nil && publicKey(m) == keyID {
			storedRaw = m
		}
	}
	if storedRaw == nil {
		return nil, types.NotFound("Unknown key %s of %s", keyID, user)
	}
	if !sameKey(storedRaw, raw) {
		return nil, types.InvalidParam("The signed object does not match the stored key")
	}
	var signerKeyID, signerPub string
	switch {
	case user == caller && isDevice:
		// A device of the caller, signed by their self-signing key.
		ssk := publicKey(mine[usageSelfSigning])
		if ssk == "" {
			return nil, types.InvalidParam("No self-signing key to sign devices with")
		}
		signerKeyID, signerPub = "ed25519:"+ssk, ssk
	case user == caller:
		// The caller's master key, signed by one of their devices.
		for kid := range callerSigs {
			dev, ok := strings.CutPrefix(kid, "ed25519:")
			if !ok || kid == "ed25519:"+keyID {
				continue
			}
			pub, _, err := s.deviceEd25519(ctx, caller, id.DeviceID(dev))
			if err != nil {
				return nil, err
			}
			if pub != "" {
				signerKeyID, signerPub = kid, pub
				break
			}
		}
		if signerKeyID == "" {
			return nil, invalidSignature("The master key must be signed by one of your devices")
		}
	case isDevice:
		return nil, types.Forbidden("You cannot sign another user's devices")
	default:
		// Another user's master key, signed by the caller's user-signing key.
		usk := publicKey(mine[usageUserSigning])
		if usk == "" {
			return nil, types.InvalidParam("No user-signing key to sign users with")
		}
		signerKeyID, signerPub = "ed25519:"+usk, usk
	}
	sig, ok := callerSigs[signerKeyID]
	if !ok {
		return nil, invalidSignature("No signature by %s", signerKeyID)
	}
	if err := verify(raw, caller, signerKeyID, signerPub); err != nil {
		return nil, err
	}
	return []*storage.KeySignature{{SignerUserID: caller, SignerKeyID: signerKeyID, TargetUserID: user,
		TargetKeyID: keyID, Signature: sig}}, nil
}
