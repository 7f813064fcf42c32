package rooms

// Checks 1–3 on receipt of a PDU: a valid event of its room's version
// (else dropped), signed by the servers that must sign it (else dropped),
// with the content hash it claims (else redacted, and the redacted copy
// goes on).

import (
	"bytes"
	"context"
	"encoding/json/jsontext"
	"encoding/json/v2"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/types"
)

// received is an event from another server on its way through the intake.
type received struct {
	origin string
	rv     id.RoomVersion
	roomID id.RoomID
	// ev is the event in the internal form eventauth works on, with
	// InternalMeta.EventID set. legacy is the event as received in rooms
	// v1 and v2, whose format (event ID, reference hashes) signatures and
	// hashes cover; nil for later versions.
	ev       *pdu.PDU
	legacy   *pdu.RoomV1PDU
	redacted bool
	// result is the outcome, set by the writer.
	result *IntakeResult
}

func (r *received) eventID() id.EventID { return r.ev.InternalMeta.EventID }

// wire is the JSON stored and served to other servers: the event as
// received (or its redacted copy) without unsigned, which no signature
// covers and whose contents were the sending server's to say.
func (r *received) wire() ([]byte, error) {
	if r.legacy != nil {
		c := *r.legacy
		c.Unsigned = nil
		return json.Marshal(&c)
	}
	c := *r.ev
	c.Unsigned = nil
	return json.Marshal(&c)
}

// maxSafeInt bounds integers in canonical JSON from room version 6.
const maxSafeInt = 1<<53 - 1

// checkFormat is check 1: the event is valid for the version of a room
// this server knows (server-server API "PDUs", the room version's event
// format, client-server API "Size limits").
func (s *Service) checkFormat(ctx context.Context, origin string, raw []byte) (*received, error) {
	drop := func(eid id.EventID, format string, args ...any) error {
		return &DroppedError{EventID: eid, Check: "format", Err: fmt.Errorf(format, args...)}
	}
	compact := jsontext.Value(bytes.Clone(raw))
	if err := compact.Compact(); err != nil {
		return nil, drop("", "not JSON: %v", err)
	}
	if len(compact) > events.MaxPDUBytes {
		return nil, drop("", "larger than %d bytes", events.MaxPDUBytes)
	}
	if compact.Kind() != '{' {
		return nil, drop("", "not a JSON object")
	}
	// The room names the version the event is checked against. A room's
	// create event (the one event of room v12 without a room_id) never
	// comes this way: the room exists here already.
	roomID := gjson.GetBytes(compact, "room_id")
	if roomID.Type != gjson.String || roomID.Str == "" || len(roomID.Str) > 255 {
		return nil, drop("", "no valid room_id")
	}
	rv, err := s.knownRoomVersion(ctx, id.RoomID(roomID.Str))
	if err != nil {
		return nil, err
	} else if rv == "" {
		return nil, drop("", "unknown room %s", roomID.Str)
	}
	return parseReceived(origin, rv, compact)
}

// parseReceived is the rest of check 1 once the room version is known:
// the event in the version's format, with the fields it requires.
func parseReceived(origin string, rv id.RoomVersion, compact jsontext.Value) (*received, error) {
	drop := func(eid id.EventID, format string, args ...any) error {
		return &DroppedError{EventID: eid, Check: "format", Err: fmt.Errorf(format, args...)}
	}
	rec := &received{origin: origin, rv: rv, roomID: id.RoomID(gjson.GetBytes(compact, "room_id").Str)}
	if rec.rv.EventIDFormat() == id.EventIDFormatCustom {
		eid := gjson.GetBytes(compact, "event_id")
		if eid.Type != gjson.String || !validEventID(eid.Str) {
			return nil, drop("", "no valid event_id (room version %s)", rec.rv)
		}
		var v1 pdu.RoomV1PDU
		if err := json.Unmarshal(compact, &v1); err != nil {
			return nil, drop(id.EventID(eid.Str), "%v", err)
		}
		ev, err := events.ParsePDU(compact, "")
		if err != nil {
			return nil, drop(id.EventID(eid.Str), "%v", err)
		}
		rec.legacy, rec.ev = &v1, ev
	} else {
		var ev pdu.PDU
		if err := json.Unmarshal(compact, &ev); err != nil {
			return nil, drop("", "%v", err)
		}
		eid, err := events.EventID(rec.rv, &ev)
		if err != nil {
			return nil, drop("", "event ID: %v", err)
		}
		ev.InternalMeta.EventID = eid
		rec.ev = &ev
	}
	if err := validFields(rec.rv, compact, rec.ev); err != nil {
		return nil, drop(rec.eventID(), "%v", err)
	}
	return rec, nil
}

// knownRoomVersion is the version of a room this server knows, "" for
// another room.
func (s *Service) knownRoomVersion(ctx context.Context, roomID id.RoomID) (id.RoomVersion, error) {
	if rv, ok := s.versions.get(roomID); ok {
		return rv, nil
	}
	r, err := s.store.GetRoom(ctx, roomID)
	if storageNotFound(err) {
		return "", nil
	} else if err != nil {
		return "", err
	}
	s.versions.put(roomID, id.RoomVersion(r.RoomVersion))
	return id.RoomVersion(r.RoomVersion), nil
}

func validEventID(eid string) bool {
	return len(eid) > 1 && len(eid) <= 255 && eid[0] == '$'
}

// validFields checks what the decoder cannot: keys the format requires,
// sizes, and the numbers canonical JSON allows.
func validFields(rv id.RoomVersion, raw []byte, ev *pdu.PDU) error {
	for _, k := range []string{"type", "sender", "origin_server_ts", "content", "depth", "hashes", "signatures",
		"auth_events", "prev_events"} {
		if !gjson.GetBytes(raw, k).Exists() {
			return fmt.Errorf("no %s", k)
		}
	}
	if !gjson.GetBytes(raw, "content").IsObject() {
		return errors.New("content is not an object")
	}
	switch {
	case ev.Type == "" || len(ev.Type) > 255:
		return errors.New("type is empty or longer than 255 bytes")
	case ev.StateKey != nil && len(*ev.StateKey) > 255:
		return errors.New("state_key is longer than 255 bytes")
	case !types.ValidText(ev.Type) || (ev.StateKey != nil && !types.ValidText(*ev.StateKey)):
		return errors.New("type or state_key holds NUL or invalid UTF-8")
	case len(ev.Sender) > 255:
		return errors.New("sender is longer than 255 bytes")
	case ev.Depth < 0:
		return errors.New("negative depth")
	case ev.Hashes == nil || len(ev.Hashes.SHA256) == 0:
		return errors.New("no sha256 content hash")
	case len(ev.PrevEvents) == 0 && ev.Type != "m.room.create":
		return errors.New("no prev_events")
	case len(ev.PrevEvents) > 20:
		return errors.New("more than 20 prev_events")
	case len(ev.AuthEvents) > 10:
		return errors.New("more than 10 auth_events")
	}
	if _, _, err := ev.Sender.ParseAndValidateRelaxed(); err != nil {
		return fmt.Errorf("sender: %w", err)
	}
	for _, eid := range append(append([]id.EventID{}, ev.PrevEvents...), ev.AuthEvents...) {
		if !validEventID(string(eid)) {
			return fmt.Errorf("invalid event ID %q among prev or auth events", eid)
		}
	}
	if rv.ForbidFloatsAndBigInts() {
		return canonicalNumbers(raw)
	}
	return nil
}

// canonicalNumbers checks that every number is an integer canonical JSON
// allows (room version 6 on): no fractions, exponents or values beyond 2^53-1.
func canonicalNumbers(raw []byte) error {
	dec := jsontext.NewDecoder(bytes.NewReader(raw))
	for {
		if dec.PeekKind() == '0' {
			v, err := dec.ReadValue()
			if err != nil {
				return err
			}
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || n > maxSafeInt || n < -maxSafeInt {
				return fmt.Errorf("number %s is not an integer canonical JSON allows", v)
			}
			continue
		}
		if _, err := dec.ReadToken(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// checkSignatures is check 2: the redacted event carries a valid
// signature of its sender's server (and, in rooms v1 and v2, of the server
// in its event ID) with a key this server knows and that had not expired
// when the event was sent (server-server API, "Validating hashes and
// signatures on received events"). Unknown and expired keys are skipped;
// a signature that does not verify fails the event. The signatures of
// servers that authorise restricted joins are checked by the auth rules.
func (s *Service) checkSignatures(ctx context.Context, rec *received) error {
	return s.checkSignaturesWith(rec, s.keyFunc(ctx))
}

// checkSignaturesWith is checkSignatures with the keys getKey gives.
func (s *Service) checkSignaturesWith(rec *received, getKey pdu.GetKeyFunc) error {
	ev := rec.ev
	servers := []string{ev.Sender.Homeserver()}
	if rec.legacy != nil {
		eid := string(rec.eventID())
		if i := strings.IndexByte(eid, ':'); i > 0 && eid[i+1:] != servers[0] {
			servers = append(servers, eid[i+1:])
		}
	}
	// A third-party invite is made by whichever server holds the invited
	// identity's signed token: the origin may sign for the sender's server.
	thirdParty := ev.Type == "m.room.member" && gjson.GetBytes(ev.Content, "membership").Str == "invite" &&
		gjson.GetBytes(ev.Content, "third_party_invite").Exists()
	for _, server := range servers {
		err := rec.verifyServer(server, getKey)
		if err != nil && thirdParty && server == servers[0] && rec.origin != "" && rec.origin != server {
			err = rec.verifyServer(rec.origin, getKey)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// verifyServer checks server's signatures on the event with the keys
// getKey knows and that were valid when it was sent, at least one of them.
func (r *received) verifyServer(server string, getKey pdu.GetKeyFunc) error {
	type answer struct {
		key        id.SigningKey
		validUntil time.Time
	}
	sigs := r.ev.Signatures[server]
	if r.legacy != nil {
		sigs = r.legacy.Signatures[server]
	}
	ts := time.UnixMilli(r.ev.OriginServerTS)
	known := map[id.KeyID]string{}
	keys := map[id.KeyID]answer{}
	var lastErr error
	for keyID, sig := range sigs {
		key, validUntil, err := getKey(server, keyID, ts)
		switch {
		case err != nil || key == "":
			lastErr = err // unknown: skipped
		case r.rv.EnforceSigningKeyValidity() && validUntil.Before(ts):
			lastErr = fmt.Errorf("key %s of %s expired before the event", keyID, server) // skipped
		default:
			known[keyID] = sig
			keys[keyID] = answer{key: key, validUntil: validUntil}
		}
	}
	if len(known) == 0 {
		if lastErr != nil {
			return fmt.Errorf("no signature of %s with a key this server knows: %w", server, lastErr)
		}
		return fmt.Errorf("no signature of %s", server)
	}
	// VerifySignature fails on the first signature it cannot check: give it only
	// those with usable keys, and the keys already found.
	cached := func(_ string, keyID id.KeyID, _ time.Time) (id.SigningKey, time.Time, error) {
		return keys[keyID].key, keys[keyID].validUntil, nil
	}
	only := map[string]map[id.KeyID]string{server: known}
	if r.legacy != nil {
		c := r.legacy.Clone()
		c.Signatures = only
		return events.VerifySignatureV1(r.rv, c, server, cached)
	}
	c := r.ev.Clone()
	c.Signatures = only
	return events.VerifySignature(r.rv, c, server, cached)
}

// checkHash is check 3: an event whose content hash does not match is
// taken to be a redacted copy, and its redaction is what goes on.
func (r *received) checkHash() error {
	if r.legacy != nil {
		if events.VerifyContentHashV1(r.legacy) {
			return nil
		}
		red := r.legacy.Clone().Redact(r.rv)
		raw, err := json.Marshal(red)
		if err != nil {
			return err
		}
		ev, err := events.ParsePDU(raw, "")
		if err != nil {
			return err
		}
		r.legacy, r.ev, r.redacted = red, ev, true
		return nil
	}
	if events.VerifyContentHash(r.ev) {
		return nil
	}
	r.ev, r.redacted = r.ev.Clone().Redact(r.rv), true // InternalMeta (the event ID) is kept
	return nil
}
