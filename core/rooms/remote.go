package rooms

import (
	"context"
	"encoding/json/jsontext"
	"fmt"
	"time"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// RemoteRooms is what the room pipeline needs from other servers (DESIGN:
// core declares it, federation/outbound implements it, cmd hands it over as
// Options.Remote): the events, state and auth chains this server is
// missing, and the make_join/send_join handshake that joins a local user to
// a room through a server already in it. Sending events out is not here:
// they leave through the interest queue like every other consumer's
// (DESIGN decision 5).
//
// Events come back as wire JSON as the other server sent them: whatever
// is fetched goes through Intake's checks (format, signatures, hashes,
// auth) like anything pushed to us, so nothing is trusted for having been
// asked for.
//
// Nothing calls it yet: Intake refuses an event whose prev or auth events
// are unknown with a *MissingEventsError, and fetching them is the
// federation issue's work.
type RemoteRooms interface {
	// Event fetches one event from server
	// (GET /_matrix/federation/v1/event/{eventId}).
	Event(ctx context.Context, server string, eventID id.EventID) (jsontext.Value, error)
	// MissingEvents fetches up to limit events of the room that lie between
	// earliest (what this server has: its forward extremities) and latest
	// (the events whose prev events are missing), no deeper than minDepth
	// (POST /_matrix/federation/v1/get_missing_events/{roomId}).
	MissingEvents(ctx context.Context, server string, roomID id.RoomID, earliest, latest []id.EventID, limit int,
		minDepth int64) ([]jsontext.Value, error)
	// StateAt fetches the room's state at an event with the auth chain of
	// that state (GET /_matrix/federation/v1/state/{roomId}?event_id=…),
	// for an event whose prev events cannot all be fetched.
	StateAt(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) (*RemoteState, error)
	// AuthChain fetches the auth chain of an event
	// (GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}).
	AuthChain(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) ([]jsontext.Value, error)
	// MakeJoin asks server for the template of user's join event, in a
	// room version this server supports
	// (GET /_matrix/federation/v1/make_join/{roomId}/{userId}?ver=…). The
	// template is an unsigned event: prev and auth events, depth, content.
	MakeJoin(ctx context.Context, server string, roomID id.RoomID, user id.UserID,
		versions []id.RoomVersion) (id.RoomVersion, jsontext.Value, error)
	// SendJoin hands server the join built from the template and signed
	// here, and returns the room as it was before it
	// (PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}).
	SendJoin(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID,
		join jsontext.Value) (*RemoteJoin, error)
}

// RemoteState is a room state fetched from another server: its events and
// the auth chain that authorises them, as wire JSON.
type RemoteState struct {
	State     []jsontext.Value
	AuthChain []jsontext.Value
}

// RemoteJoin is a resident server's answer to send_join.
type RemoteJoin struct {
	RemoteState
	// Event is the join as the resident server signed it too (restricted
	// rooms: join_authorised_via_users_server); nil when it added nothing.
	Event jsontext.Value
}

// KeyRing finds the signing keys of other servers, so that the signatures
// of their events can be checked (federation/keys implements it, fetching
// from the server or a notary and caching). This server's own key is never
// asked for: the Signer has it.
type KeyRing interface {
	// ServerKey returns serverName's public key keyID valid at or after
	// minValidUntil, or else the latest it knows, with its valid_until_ts
	// (pdu.GetKeyFunc's contract: the caller checks the validity); an
	// error when it has none.
	ServerKey(ctx context.Context, serverName string, keyID id.KeyID, minValidUntil time.Time) (id.SigningKey, time.Time, error)
}

// keyFetchTimeout bounds a key lookup made where no request context
// reaches (eventauth's callbacks).
const keyFetchTimeout = 10 * time.Second

// keyFunc answers signature checks made for a request: this server's key
// from the Signer, other servers' from the KeyRing within ctx.
func (s *Reader) keyFunc(ctx context.Context) pdu.GetKeyFunc {
	return func(serverName string, keyID id.KeyID, minValidUntil time.Time) (id.SigningKey, time.Time, error) {
		if serverName == s.opts.Signer.ServerName || s.opts.KeyRing == nil {
			return s.getKey(serverName, keyID, minValidUntil)
		}
		return s.opts.KeyRing.ServerKey(ctx, serverName, keyID, minValidUntil)
	}
}

// remoteKey is getKey's answer for other servers (eventauth's callback has
// no context: restricted joins check the authorising server's signature).
func (s *Reader) remoteKey(serverName string, keyID id.KeyID, minValidUntil time.Time) (id.SigningKey, time.Time, error) {
	if s.opts.KeyRing == nil || serverName == s.opts.Signer.ServerName {
		return "", time.Time{}, fmt.Errorf("no key %s for %s", keyID, serverName)
	}
	ctx, cancel := context.WithTimeout(context.Background(), keyFetchTimeout)
	defer cancel()
	return s.opts.KeyRing.ServerKey(ctx, serverName, keyID, minValidUntil)
}
