package events

// Content hashes, reference hashes, event IDs and signatures over
// canonical JSON (core/canonicaljson). mautrix's pdu methods for these
// (Sign, GetEventID, GetReferenceHash, CalculateContentHash,
// VerifyContentHash, VerifySignature) encode with jsontext and then check
// the result against crypto/canonicaljson, and the two disagree: every event
// holding U+000B, U+000E, U+000F or U+001A–U+001F (which the second writes
// as \u000B… where the spec's grammar has \u000b…), keys that sort apart in
// UTF-16 and code point order, integers beyond 2^53 or numbers with an
// exponent failed with "canonical JSON mismatch". The functions here take
// their place; the PDU types, redaction and everything else stay mautrix's.

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json/v2"
	"errors"
	"fmt"
	"sync"
	"time"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/canonicaljson"
)

// canonical is v as canonical JSON.
func canonical(v any) ([]byte, error) {
	return appendCanonical(nil, v)
}

// appendCanonical appends v as canonical JSON to dst. v's JSON, which
// only passes through, is written into a buffer kept for the next event.
func appendCanonical(dst []byte, v any) ([]byte, error) {
	raw := scratch.Get().(*bytes.Buffer)
	defer putScratch(raw)
	raw.Reset()
	if err := json.MarshalWrite(raw, v); err != nil {
		return nil, err
	}
	if dst == nil {
		dst = make([]byte, 0, raw.Len())
	}
	return canonicaljson.AppendCanonical(dst, raw.Bytes())
}

// scratch are buffers for the JSON of values on their way to canonical
// JSON: an event built is encoded and canonicalised twice (its content
// hash, its redacted form), and allocating each encoding anew was a tenth
// of the bytes a send allocated.
var scratch = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxKept bounds the buffers kept for later (scratch, hashed): those a
// big event grew are left to the collector.
const maxKept = 64 << 10

// putScratch keeps a buffer for later unless a big event grew it.
func putScratch(b *bytes.Buffer) {
	if b.Cap() <= maxKept {
		scratch.Put(b)
	}
}

// hashed are buffers for canonical JSON that is hashed and dropped.
var hashed = sync.Pool{New: func() any { return new([]byte) }}

func sha256Of(v any) ([32]byte, error) {
	b := hashed.Get().(*[]byte)
	raw, err := appendCanonical((*b)[:0], v)
	if err != nil {
		return [32]byte{}, err
	}
	sum := sha256.Sum256(raw)
	if cap(raw) <= maxKept {
		*b = raw[:0]
		hashed.Put(b)
	}
	return sum, nil
}

// ContentHash is an event's content hash (server-server API, "Calculating
// the content hash for an event"): of the event without unsigned,
// signatures and hashes.
func ContentHash(ev *pdu.PDU) ([32]byte, error) {
	c := ev.Clone()
	c.Signatures, c.Unsigned, c.Hashes = nil, nil, nil
	return sha256Of(c)
}

// ContentHashV1 is ContentHash for the legacy format of room versions 1 and 2.
func ContentHashV1(ev *pdu.RoomV1PDU) ([32]byte, error) {
	c := ev.Clone()
	c.Signatures, c.Unsigned, c.Hashes = nil, nil, nil
	return sha256Of(c)
}

// VerifyContentHash reports whether an event carries its own content hash.
func VerifyContentHash(ev *pdu.PDU) bool {
	if ev.Hashes == nil {
		return false
	}
	h, err := ContentHash(ev)
	return err == nil && hmac.Equal(h[:], ev.Hashes.SHA256)
}

// VerifyContentHashV1 is VerifyContentHash for the legacy format.
func VerifyContentHashV1(ev *pdu.RoomV1PDU) bool {
	if ev.Hashes == nil {
		return false
	}
	h, err := ContentHashV1(ev)
	return err == nil && hmac.Equal(h[:], ev.Hashes.SHA256)
}

// ReferenceHash is the reference hash of an event with its content hash
// filled in: of the event redacted, without signatures and unsigned.
func ReferenceHash(rv id.RoomVersion, ev *pdu.PDU) ([32]byte, error) {
	if ev.Hashes == nil {
		return [32]byte{}, errors.New("event has no content hash")
	}
	return sha256Of(ev.Clone().RedactForSignature(rv))
}

// ReferenceHashV1 is ReferenceHash for the legacy format.
func ReferenceHashV1(rv id.RoomVersion, ev *pdu.RoomV1PDU) ([32]byte, error) {
	if ev.Hashes == nil {
		return [32]byte{}, errors.New("event has no content hash")
	}
	return sha256Of(ev.Clone().RedactForSignature(rv))
}

// EventID computes the ID of an event of room version 3 or later from its
// reference hash (whatever InternalMeta says).
func EventID(rv id.RoomVersion, ev *pdu.PDU) (id.EventID, error) {
	hash, err := ReferenceHash(rv, ev)
	if err != nil {
		return "", err
	}
	switch rv.EventIDFormat() {
	case id.EventIDFormatBase64:
		return id.EventID("$" + base64.RawStdEncoding.EncodeToString(hash[:])), nil
	case id.EventIDFormatURLSafeBase64:
		return id.EventID("$" + base64.RawURLEncoding.EncodeToString(hash[:])), nil
	}
	return "", fmt.Errorf("room version %s has no reference-hash event IDs", rv)
}

// hashAndID fills in the content hash and the event ID of an unsigned
// event of room v3+, and returns the canonical JSON of the redacted event:
// what the reference hash (the ID) hashes and the signature signs, the
// same bytes, made once.
func hashAndID(rv id.RoomVersion, ev *pdu.PDU) ([]byte, error) {
	h, err := ContentHash(ev)
	if err != nil {
		return nil, err
	}
	ev.Hashes = &pdu.Hashes{SHA256: h[:]}
	redacted, err := canonical(ev.Clone().RedactForSignature(rv))
	if err != nil {
		return nil, err
	}
	ref := sha256.Sum256(redacted)
	switch rv.EventIDFormat() {
	case id.EventIDFormatBase64:
		ev.InternalMeta.EventID = id.EventID("$" + base64.RawStdEncoding.EncodeToString(ref[:]))
	case id.EventIDFormatURLSafeBase64:
		ev.InternalMeta.EventID = id.EventID("$" + base64.RawURLEncoding.EncodeToString(ref[:]))
	default:
		return nil, fmt.Errorf("room version %s has no reference-hash event IDs", rv)
	}
	return redacted, nil
}

// signV1 is sign for the legacy format.
func (s *Signer) signV1(rv id.RoomVersion, ev *pdu.RoomV1PDU) error {
	h, err := ContentHashV1(ev)
	if err != nil {
		return err
	}
	ev.Hashes = &pdu.Hashes{SHA256: h[:]}
	ev.Signatures, err = s.signRedacted(ev.Signatures, ev.Clone().RedactForSignature(rv))
	return err
}

// signRedacted adds the signer's signature of an event's redacted form to sigs.
func (s *Signer) signRedacted(sigs map[string]map[id.KeyID]string, redacted any) (map[string]map[id.KeyID]string, error) {
	raw, err := canonical(redacted)
	if err != nil {
		return sigs, err
	}
	return addSignature(sigs, s.ServerName, s.KeyID, ed25519.Sign(s.Private, raw)), nil
}

func addSignature(sigs map[string]map[id.KeyID]string, server string, keyID id.KeyID,
	sig []byte) map[string]map[id.KeyID]string {
	if sigs == nil {
		sigs = map[string]map[id.KeyID]string{}
	}
	if sigs[server] == nil {
		sigs[server] = map[id.KeyID]string{}
	}
	sigs[server][keyID] = base64.RawStdEncoding.EncodeToString(sig)
	return sigs
}

// VerifySignature checks the signatures of server on an event, as
// pdu.PDU.VerifySignature does: each one with the key getKey gives (an
// error if it gives none), which must, where the room version says so, have
// been valid when the event was sent; at least one signature is needed.
func VerifySignature(rv id.RoomVersion, ev *pdu.PDU, server string, getKey pdu.GetKeyFunc) error {
	raw, err := canonical(ev.Clone().RedactForSignature(rv))
	if err != nil {
		return fmt.Errorf("redacted event as canonical JSON: %w", err)
	}
	return verifySignatures(raw, ev.Signatures[server], server, ev.OriginServerTS, rv.EnforceSigningKeyValidity(), getKey)
}

// VerifySignatureV1 is VerifySignature for the legacy format.
func VerifySignatureV1(rv id.RoomVersion, ev *pdu.RoomV1PDU, server string, getKey pdu.GetKeyFunc) error {
	raw, err := canonical(ev.Clone().RedactForSignature(rv))
	if err != nil {
		return fmt.Errorf("redacted event as canonical JSON: %w", err)
	}
	return verifySignatures(raw, ev.Signatures[server], server, ev.OriginServerTS, rv.EnforceSigningKeyValidity(), getKey)
}

func verifySignatures(raw []byte, sigs map[id.KeyID]string, server string, ts int64, enforceValidity bool,
	getKey pdu.GetKeyFunc) error {
	if len(sigs) == 0 {
		return fmt.Errorf("no signatures of %s", server)
	}
	sent := time.UnixMilli(ts)
	for keyID, sig := range sigs {
		key, validUntil, err := getKey(server, keyID, sent)
		switch {
		case err != nil:
			return fmt.Errorf("key %s of %s: %w", keyID, server, err)
		case key == "":
			return fmt.Errorf("key %s of %s not found", keyID, server)
		case enforceValidity && validUntil.Before(sent):
			return fmt.Errorf("key %s of %s is valid until %s, before the event (%s)", keyID, server, validUntil, sent)
		}
		if err := verifyRaw(key, sig, raw); err != nil {
			return fmt.Errorf("signature with key %s of %s: %w", keyID, server, err)
		}
	}
	return nil
}

// verifyRaw checks an unpadded base64 ed25519 signature of message.
func verifyRaw(key id.SigningKey, sig string, message []byte) error {
	pub, err := base64.RawStdEncoding.DecodeString(string(key))
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return errors.New("malformed public key")
	}
	raw, err := base64.RawStdEncoding.DecodeString(sig)
	if err != nil {
		return errors.New("malformed signature")
	}
	if !ed25519.Verify(pub, message, raw) {
		return errors.New("signature does not verify")
	}
	return nil
}

// Countersign adds the signer's signature to an event another server
// built and signed (an invite to one of this server's users), leaving its
// hashes as they are.
func (s *Signer) Countersign(rv id.RoomVersion, ev *pdu.PDU) (err error) {
	ev.Signatures, err = s.signRedacted(ev.Signatures, ev.Clone().RedactForSignature(rv))
	return err
}

// CountersignV1 is Countersign for the legacy format (rooms v1 and v2).
func (s *Signer) CountersignV1(rv id.RoomVersion, ev *pdu.RoomV1PDU) (err error) {
	ev.Signatures, err = s.signRedacted(ev.Signatures, ev.Clone().RedactForSignature(rv))
	return err
}
