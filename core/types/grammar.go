package types

import (
	"strings"
	"unicode/utf8"

	"maunium.net/go/mautrix/id"
)

// The identifier grammars of the spec (appendices: "Common Identifier
// Format", "Server Name", "Room IDs", "Event IDs", "Room Aliases") and the
// event size limits (255 bytes for sender, room_id, type and state_key),
// checked where identifiers enter from clients. Each Check answers 400
// M_INVALID_PARAM with what was wrong.

// maxIDBytes is the length limit of every identifier, sigil and domain included.
const maxIDBytes = 255

// CheckServerName checks a server name: a DNS name, an IPv4 literal or a
// bracketed IPv6 literal, with an optional port.
func CheckServerName(name string) error {
	if !id.ValidateServerName(name) {
		return InvalidParam("Invalid server name %q", name)
	}
	if _, port, ok := strings.Cut(strings.TrimPrefix(name, "["), "]:"); ok && !validPort(port) {
		return InvalidParam("Invalid server name %q", name)
	} else if !strings.HasPrefix(name, "[") {
		if _, port, ok := strings.Cut(name, ":"); ok && !validPort(port) {
			return InvalidParam("Invalid server name %q", name)
		}
	}
	return nil
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	n := 0
	for _, c := range p {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n >= 1 && n <= 65535
}

// CheckUserID checks a user ID a client names (an invite's target, a
// filter's sender, a to-device recipient). Users of localServer must have
// the current grammar (this server creates no other); users of other
// servers may have the historical one, limited to what the spec calls
// compliant (U+0021 to U+007E): a non-compliant ID is not forwarded to
// clients outside events, so none is accepted from them either.
func CheckUserID(u id.UserID, localServer string) error {
	s := string(u)
	if len(s) > maxIDBytes || !strings.HasPrefix(s, "@") {
		return InvalidParam("Invalid user ID %q", s)
	}
	local, server, ok := strings.Cut(s[1:], ":")
	if !ok || local == "" || CheckServerName(server) != nil {
		return InvalidParam("Invalid user ID %q", s)
	}
	if server == localServer {
		if id.ValidateUserLocalpart(local) != nil {
			return InvalidParam("Invalid user ID %q", s)
		}
		return nil
	}
	for i := 0; i < len(local); i++ {
		if c := local[i]; c < 0x21 || c > 0x7e {
			return InvalidParam("Invalid user ID %q", s)
		}
	}
	return nil
}

// CheckRoomID checks a room ID: "!" and an opaque part (with a ":domain"
// in room versions before 12), printable ASCII, at most 255 bytes.
func CheckRoomID(r id.RoomID) error {
	if !opaqueWithSigil(string(r), '!') {
		return InvalidParam("Invalid room ID %q", string(r))
	}
	return nil
}

// CheckEventID checks an event ID as CheckRoomID checks room IDs.
func CheckEventID(e id.EventID) error {
	if !opaqueWithSigil(string(e), '$') {
		return InvalidParam("Invalid event ID %q", string(e))
	}
	return nil
}

func opaqueWithSigil(s string, sigil byte) bool {
	if len(s) < 2 || len(s) > maxIDBytes || s[0] != sigil {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// CheckRoomAlias checks a room alias: "#", a localpart of any code points
// but ":" and NUL, ":" and a server name, at most 255 bytes.
func CheckRoomAlias(a id.RoomAlias) error {
	s := string(a)
	if len(s) > maxIDBytes || !strings.HasPrefix(s, "#") || !utf8.ValidString(s) {
		return InvalidParam("Invalid room alias %q", s)
	}
	local, server, ok := strings.Cut(s[1:], ":")
	if !ok || local == "" || strings.ContainsRune(local, 0) || CheckServerName(server) != nil {
		return InvalidParam("Invalid room alias %q", s)
	}
	return nil
}

// CheckEventType checks an event type: 1 to 255 bytes of UTF-8 without
// control characters.
func CheckEventType(t string) error {
	if t == "" || len(t) > maxIDBytes || !utf8.ValidString(t) || hasControl(t) {
		return InvalidParam("Event types are 1 to 255 bytes of text without control characters")
	}
	return nil
}

// CheckStateKey checks a state key: at most 255 bytes of UTF-8 without
// NUL (any string the databases can hold).
func CheckStateKey(k string) error {
	if len(k) > maxIDBytes || !utf8.ValidString(k) || strings.ContainsRune(k, 0) {
		return InvalidParam("State keys are at most 255 bytes of text without NUL")
	}
	return nil
}

// hasControl reports C0 and C1 control characters and DEL.
func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
			return true
		}
	}
	return false
}
