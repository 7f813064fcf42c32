// Package events builds, hashes, signs and checks PDUs exactly as they go
// over federation (maunium.net/go/mautrix/federation/pdu), and wraps
// eventauth.Authorize. It imports mautrix and core/types only.
package events

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"net/http"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
)

// MaxPDUBytes is the largest event the spec allows, as canonical JSON.
const MaxPDUBytes = 65536

// DefaultRoomVersion is what createRoom uses when the client names none
// (content/rooms/_index.md recommends it).
const DefaultRoomVersion = id.RoomV12

// SupportedRoomVersions are the versions rooms can be created in. Versions 1
// and 2 use the legacy event format and (v1) state resolution v1; they are
// not built yet.
var SupportedRoomVersions = []id.RoomVersion{id.RoomV3, id.RoomV4, id.RoomV5, id.RoomV6, id.RoomV7,
	id.RoomV8, id.RoomV9, id.RoomV10, id.RoomV11, id.RoomV12}

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

// Build turns a proto event into a signed PDU with its room position (prev
// and auth events, depth) and fills InternalMeta.EventID. roomID is empty
// for the create event of a room version whose room ID is the create
// event's ID.
func (s *Signer) Build(rv id.RoomVersion, roomID id.RoomID, p *Proto, prev, auth []id.EventID, depth int64) (*pdu.PDU, error) {
	if !IsSupported(rv) {
		return nil, fmt.Errorf("room version %q not supported", rv)
	}
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
	if p.Redacts != nil {
		if rv.RedactsInContent() {
			// Content already carries "redacts" (room v11+); the top-level key is gone.
		} else {
			ev.Redacts = p.Redacts
		}
	}
	if err := ev.Sign(rv, s.ServerName, s.KeyID, s.Private); err != nil {
		return nil, fmt.Errorf("sign event: %w", err)
	}
	eventID, err := ev.GetEventID(rv)
	if err != nil {
		return nil, err
	}
	ev.InternalMeta.EventID = eventID
	raw, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	if len(raw) > MaxPDUBytes {
		return nil, types.TooLarge("Event is larger than %d bytes", MaxPDUBytes)
	}
	return ev, nil
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
