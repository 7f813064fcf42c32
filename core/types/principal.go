package types

import (
	"net/http"

	"maunium.net/go/mautrix/id"
)

// PrincipalKind says what authenticated a request.
type PrincipalKind int

// A zero PrincipalKind is no kind at all: whoever builds a Principal says
// which one it is.
const (
	// PrincipalUser: a user's access token (UserID, DeviceID, TokenHash).
	PrincipalUser PrincipalKind = iota + 1
	// PrincipalAppService: an appservice's as_token; UserID is its sender
	// or the user it masquerades as, DeviceID the device it names, if any.
	PrincipalAppService
	// PrincipalServer: another homeserver, by its X-Matrix signature
	// (ServerName).
	PrincipalServer
)

func (k PrincipalKind) String() string {
	switch k {
	case PrincipalUser:
		return "user"
	case PrincipalAppService:
		return "appservice"
	case PrincipalServer:
		return "server"
	}
	return "unknown"
}

// Principal is the authenticated caller of a request. core/httpx stores it
// on the request; services take it to decide what the caller may do.
type Principal struct {
	Kind      PrincipalKind
	UserID    id.UserID
	DeviceID  id.DeviceID
	TokenHash string
	// AppServiceID names the appservice whose as_token authenticated the
	// request (Kind PrincipalAppService).
	AppServiceID string
	// ServerName is the origin of a federation request (Kind PrincipalServer).
	ServerName string
	// Suspended accounts may do little (see clientapi); locked ones nothing
	// but log out (core/httpx refuses the rest).
	Suspended, Locked bool
	// ShadowBanned accounts' sends seem to succeed but reach nobody.
	ShadowBanned bool
	// RateLimit, when set, replaces the server's message rate limit for
	// the account (an admin's override).
	RateLimit *RateLimit
}

// RateLimit is a token bucket's rate and size; a zero RateLimit is no
// limit at all.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// ErrLocked is the answer to everything but logging out on a locked account.
var ErrLocked = &Error{Status: http.StatusUnauthorized, Code: CodeUserLocked,
	Message: "This account has been locked", Extra: map[string]any{"soft_logout": true}}

// ErrSuspended is the answer to what a suspended account may not do.
var ErrSuspended = &Error{Status: http.StatusForbidden, Code: CodeUserSuspended,
	Message: "This account has been suspended"}
