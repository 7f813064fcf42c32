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
// Options.Remote): the events, state, auth chains and history this server
// is missing, and the handshakes that change a local user's membership in
// a room this server is not in (make_/send_join, _leave, _knock) or invite
// a user of another server. Sending events out is not here: they leave
// through the interest queue like every other consumer's (DESIGN decision 5).
//
// Events come back as wire JSON as the other server sent them: whatever
// is fetched goes through the checks on receipt (format, signatures,
// hashes, auth) like anything pushed to us, so nothing is trusted for
// having been asked for. A server that answers with a Matrix error, or
// does not answer, gives a *RemoteError.
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
	// StateAt fetches the room's state before an event with the auth
	// chain of that state (GET /_matrix/federation/v1/state/{roomId}?event_id=…),
	// for an event whose prev events cannot all be fetched.
	StateAt(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) (*RemoteState, error)
	// StateIDs is StateAt as event IDs
	// (GET /_matrix/federation/v1/state_ids/{roomId}?event_id=…).
	StateIDs(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) (stateIDs, authIDs []id.EventID, err error)
	// AuthChain fetches the auth chain of an event
	// (GET /_matrix/federation/v1/event_auth/{roomId}/{eventId}).
	AuthChain(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID) ([]jsontext.Value, error)
	// Backfill fetches up to limit events of the room from the given
	// events back through their prev events
	// (GET /_matrix/federation/v1/backfill/{roomId}?v=…&limit=…).
	Backfill(ctx context.Context, server string, roomID id.RoomID, from []id.EventID, limit int) ([]jsontext.Value, error)
	// MakeJoin asks server for the template of user's join event, in a
	// room version this server supports
	// (GET /_matrix/federation/v1/make_join/{roomId}/{userId}?ver=…). The
	// template is an unsigned event: prev and auth events, depth, content.
	MakeJoin(ctx context.Context, server string, roomID id.RoomID, user id.UserID,
		versions []id.RoomVersion) (id.RoomVersion, jsontext.Value, error)
	// SendJoin hands server the join built from the template and signed
	// here, and returns the room as it was before it
	// (PUT /_matrix/federation/v2/send_join/{roomId}/{eventId}, v1 where
	// the server has no v2).
	SendJoin(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID,
		join jsontext.Value) (*RemoteJoin, error)
	// MakeLeave asks server for the template of user's leave
	// (GET /_matrix/federation/v1/make_leave/{roomId}/{userId}).
	MakeLeave(ctx context.Context, server string, roomID id.RoomID, user id.UserID) (id.RoomVersion, jsontext.Value, error)
	// SendLeave hands server the signed leave
	// (PUT /_matrix/federation/v2/send_leave/{roomId}/{eventId}).
	SendLeave(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID, leave jsontext.Value) error
	// MakeKnock asks server for the template of user's knock
	// (GET /_matrix/federation/v1/make_knock/{roomId}/{userId}?ver=…).
	MakeKnock(ctx context.Context, server string, roomID id.RoomID, user id.UserID,
		versions []id.RoomVersion) (id.RoomVersion, jsontext.Value, error)
	// SendKnock hands server the signed knock and returns the stripped
	// state it gives for the knocking user to see the room by
	// (PUT /_matrix/federation/v1/send_knock/{roomId}/{eventId}).
	SendKnock(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID, knock jsontext.Value) ([]jsontext.Value, error)
	// Invite hands the invitee's server an invite made here, with the
	// stripped state that lets the invitee see the room, and returns the
	// event signed by that server too
	// (PUT /_matrix/federation/v2/invite/{roomId}/{eventId}).
	Invite(ctx context.Context, server string, roomID id.RoomID, eventID id.EventID, rv id.RoomVersion,
		invite jsontext.Value, stripped []jsontext.Value) (jsontext.Value, error)
	// QueryAlias asks the alias's server which room it names and which
	// servers are in it (GET /_matrix/federation/v1/query/directory).
	QueryAlias(ctx context.Context, alias id.RoomAlias) (id.RoomID, []string, error)
}

// RemoteError is another server's failure to answer a request: Status and
// Code are its Matrix error when it gave one (Status 0: no answer).
type RemoteError struct {
	Server  string
	Status  int
	Code    string
	Message string
	Err     error
}

func (e *RemoteError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("%s did not answer: %v", e.Server, e.Err)
	}
	return fmt.Sprintf("%s answered %d %s: %s", e.Server, e.Status, e.Code, e.Message)
}
func (e *RemoteError) Unwrap() error { return e.Err }

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
