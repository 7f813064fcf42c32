// Package events builds, hashes, signs and checks PDUs exactly as they go
// over federation (maunium.net/go/mautrix/federation/pdu), and wraps
// eventauth.Authorize. It imports mautrix, core/canonicaljson and core/types
// only.
package events

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"net/http"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/canonicaljson"
	"github.com/tributary-hs/tributary/core/types"
)

// MaxPDUBytes is the largest event the spec allows, as canonical JSON.
const MaxPDUBytes = 65536

// DefaultRoomVersion is what createRoom uses when the client names none
// (content/rooms/_index.md recommends it).
const DefaultRoomVersion = id.RoomV12

// SupportedRoomVersions are the versions rooms can be created in and joined.
var SupportedRoomVersions = []id.RoomVersion{id.RoomV1, id.RoomV2, id.RoomV3, id.RoomV4, id.RoomV5, id.RoomV6,
	id.RoomV7, id.RoomV8, id.RoomV9, id.RoomV10, id.RoomV11, id.RoomV12}

func init() {
	// Events of rooms v1 and v2 carry their ID instead of deriving it from
	// their hash; Tributary keeps every event's ID in InternalMeta (set when
	// built or loaded), so eventauth may read it from there for all versions.
	pdu.UseInternalMetaForGetEventID = true
}

// IsSupported reports whether rooms of version rv can be created and joined.
func IsSupported(rv id.RoomVersion) bool {
	for _, v := range SupportedRoomVersions {
		if v == rv {
			return true
		}
	}
	return false
}

// Signer signs the events of one server.
type Signer struct {
	ServerName string
	KeyID      id.KeyID
	Private    ed25519.PrivateKey
}

// NewSigner wraps a federation signing key.
func NewSigner(serverName string, key *federation.SigningKey) *Signer {
	return &Signer{ServerName: serverName, KeyID: key.ID, Private: key.Priv}
}

// Proto is an event before it joins the room graph.
type Proto struct {
	Type           string
	StateKey       *string
	Sender         id.UserID
	Content        any // marshalled to JSON; jsontext.Value is used as it is
	Redacts        *id.EventID
	OriginServerTS int64
	Unsigned       jsontext.Value
}

// RefsFunc returns the v1 event references (ID and reference hash) of
// events, for the legacy format of room versions 1 and 2.
type RefsFunc func(ids []id.EventID) ([]pdu.V1EventReference, error)

// Build turns a proto event into a signed PDU with its room position (prev
// and auth events, depth) and fills InternalMeta.EventID. It returns the
// event in the internal form eventauth works on and as its wire JSON (the
// legacy format for room versions 1 and 2, where refs gives the hashes of
// prev and auth events). roomID is empty for the create event of a room
// version whose room ID is the create event's ID.
func (s *Signer) Build(rv id.RoomVersion, roomID id.RoomID, p *Proto, prev, auth []id.EventID, depth int64,
	refs RefsFunc) (*pdu.PDU, []byte, error) {
	if !IsSupported(rv) {
		return nil, nil, fmt.Errorf("room version %q not supported", rv)
	}
	ev, err := newPDU(rv, roomID, p, prev, auth, depth)
	if err != nil {
		return nil, nil, err
	}
	var raw []byte
	if rv.EventIDFormat() == id.EventIDFormatCustom {
		raw, err = s.buildV1(rv, ev, refs)
	} else {
		raw, err = s.buildHashed(rv, ev)
	}
	if err != nil {
		return nil, nil, err
	}
	if len(raw) > MaxPDUBytes {
		return nil, nil, types.TooLarge("Event is larger than %d bytes", MaxPDUBytes)
	}
	return ev, raw, nil
}

// newPDU lays a proto event out as a PDU, unhashed and unsigned.
func newPDU(rv id.RoomVersion, roomID id.RoomID, p *Proto, prev, auth []id.EventID, depth int64) (*pdu.PDU, error) {
	var content jsontext.Value
	switch c := p.Content.(type) {
	case jsontext.Value:
		content = c
	case []byte:
		content = jsontext.Value(c)
	default:
		raw, err := json.Marshal(c)
		if err != nil {
			return nil, types.BadJSON("invalid event content: %v", err)
		}
		content = raw
	}
	if rv.ForbidFloatsAndBigInts() {
		// Canonical JSON from room version 6: integers within ±(2^53-1) only.
		if err := canonicaljson.ValidateCanonical(content); err != nil {
			return nil, types.BadJSON("Invalid event content: %v", err)
		}
	}
	if prev == nil {
		prev = []id.EventID{}
	}
	if auth == nil {
		auth = []id.EventID{}
	}
	ev := &pdu.PDU{
		AuthEvents: auth, Content: content, Depth: depth, OriginServerTS: p.OriginServerTS, PrevEvents: prev,
		RoomID: roomID, Sender: p.Sender, StateKey: p.StateKey, Type: p.Type, Unsigned: p.Unsigned,
	}
	if p.Redacts != nil && !rv.RedactsInContent() {
		// From room v11 "redacts" lives in the content only.
		ev.Redacts = p.Redacts
	}
	return ev, nil
}

// buildHashed signs an event of room v3+, whose ID is its reference hash.
func (s *Signer) buildHashed(rv id.RoomVersion, ev *pdu.PDU) ([]byte, error) {
	redacted, err := hashAndID(rv, ev)
	if err != nil {
		return nil, err
	}
	return s.Complete(ev, redacted)
}

// BuildUnsigned is Build for room versions 3 and later, but for the
// signature: the content hash and the event ID are final (neither covers
// signatures), so the next event may name it as its prev event, and
// Complete signs it later. It returns the canonical JSON of the redacted
// event, which the ID hashes and the signature signs. A batch builds its
// events one after another and signs them together, on every core.
func (s *Signer) BuildUnsigned(rv id.RoomVersion, roomID id.RoomID, p *Proto, prev, auth []id.EventID,
	depth int64) (*pdu.PDU, []byte, error) {
	if !IsSupported(rv) || rv.EventIDFormat() == id.EventIDFormatCustom {
		return nil, nil, fmt.Errorf("room version %q has no unsigned builds", rv)
	}
	ev, err := newPDU(rv, roomID, p, prev, auth, depth)
	if err != nil {
		return nil, nil, err
	}
	redacted, err := hashAndID(rv, ev)
	if err != nil {
		return nil, nil, err
	}
	return ev, redacted, nil
}

// Complete signs an event BuildUnsigned built (redacted is what it
// returned) and returns its wire JSON.
func (s *Signer) Complete(ev *pdu.PDU, redacted []byte) ([]byte, error) {
	ev.Signatures = addSignature(ev.Signatures, s.ServerName, s.KeyID, ed25519.Sign(s.Private, redacted))
	raw, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	if len(raw) > MaxPDUBytes {
		return nil, types.TooLarge("Event is larger than %d bytes", MaxPDUBytes)
	}
	return raw, nil
}

// buildV1 signs an event in the legacy format of room versions 1 and 2: a
// random event ID, prev and auth events as (ID, hashes) pairs.
func (s *Signer) buildV1(rv id.RoomVersion, ev *pdu.PDU, refs RefsFunc) ([]byte, error) {
	if refs == nil {
		if len(ev.PrevEvents)+len(ev.AuthEvents) > 0 {
			return nil, fmt.Errorf("room version %s needs event references", rv)
		}
		refs = func([]id.EventID) ([]pdu.V1EventReference, error) { return []pdu.V1EventReference{}, nil }
	}
	prevRefs, err := refs(ev.PrevEvents)
	if err != nil {
		return nil, err
	}
	authRefs, err := refs(ev.AuthEvents)
	if err != nil {
		return nil, err
	}
	v1 := &pdu.RoomV1PDU{AuthEvents: authRefs, Content: ev.Content, Depth: ev.Depth,
		EventID: id.EventID("$" + randomID(18) + ":" + s.ServerName), OriginServerTS: ev.OriginServerTS,
		PrevEvents: prevRefs, Redacts: ev.Redacts, RoomID: ev.RoomID, Sender: ev.Sender, StateKey: ev.StateKey,
		Type: ev.Type, Unsigned: ev.Unsigned}
	if err := s.signV1(rv, v1); err != nil {
		return nil, fmt.Errorf("sign event: %w", err)
	}
	ev.Hashes, ev.Signatures = v1.Hashes, v1.Signatures
	ev.InternalMeta.EventID = v1.EventID
	return json.Marshal(v1)
}

// ParsePDU decodes an event's wire JSON (either format) into the internal
// form with InternalMeta.EventID set: from the JSON for the legacy format,
// else to eventID, which the caller knows (it is not in the JSON).
func ParsePDU(raw []byte, eventID id.EventID) (*pdu.PDU, error) {
	if eid := gjson.GetBytes(raw, "event_id"); eid.Exists() {
		var v1 pdu.RoomV1PDU
		if err := json.Unmarshal(raw, &v1); err != nil {
			return nil, err
		}
		ev := &pdu.PDU{AuthEvents: refIDs(v1.AuthEvents), Content: v1.Content, Depth: v1.Depth, Hashes: v1.Hashes,
			OriginServerTS: v1.OriginServerTS, PrevEvents: refIDs(v1.PrevEvents), Redacts: v1.Redacts,
			RoomID: v1.RoomID, Sender: v1.Sender, Signatures: v1.Signatures, StateKey: v1.StateKey, Type: v1.Type,
			Unsigned: v1.Unsigned}
		ev.InternalMeta.EventID = v1.EventID
		return ev, nil
	}
	var ev pdu.PDU
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, err
	}
	ev.InternalMeta.EventID = eventID
	return &ev, nil
}

func refIDs(refs []pdu.V1EventReference) []id.EventID {
	out := make([]id.EventID, len(refs))
	for i, r := range refs {
		out[i] = r.ID
	}
	return out
}

// ReferenceOf is the v1 event reference of a legacy-format event's wire JSON.
func ReferenceOf(rv id.RoomVersion, raw []byte) (pdu.V1EventReference, error) {
	var v1 pdu.RoomV1PDU
	if err := json.Unmarshal(raw, &v1); err != nil {
		return pdu.V1EventReference{}, err
	}
	hash, err := ReferenceHashV1(rv, &v1)
	if err != nil {
		return pdu.V1EventReference{}, err
	}
	return pdu.V1EventReference{ID: v1.EventID, Hashes: pdu.Hashes{SHA256: hash[:]}}, nil
}

func randomID(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// RoomIDFromCreate is the room ID of a room whose ID is its create event's ID (v12+).
func RoomIDFromCreate(createID id.EventID) id.RoomID {
	return id.RoomID("!" + string(createID[1:]))
}

// AuthError is an event that failed authorisation; it wraps eventauth's
// AuthFailError, whose Index names the spec rule.
type AuthError struct{ Err error }

func (e *AuthError) Error() string { return "event not allowed: " + e.Err.Error() }
func (e *AuthError) Unwrap() error { return e.Err }

// Forbidden turns an authorisation failure into a Matrix 403.
func Forbidden(err error) error {
	var ae *AuthError
	if errors.As(err, &ae) {
		return &types.Error{Status: http.StatusForbidden, Code: types.CodeForbidden, Message: ae.Err.Error()}
	}
	return err
}

// Public is the signer's public key in unpadded base64.
func (s *Signer) Public() id.SigningKey {
	return id.SigningKey(base64.RawStdEncoding.EncodeToString(s.Private.Public().(ed25519.PublicKey)))
}
