// Package types holds what every layer of Tributary shares: Matrix error codes,
// the error value that carries them to the HTTP edge, sentinel errors, and the
// Principal a request is authenticated as. It imports nothing of this module
// and, of mautrix, only id.
package types

import (
	"errors"
	"fmt"
	"net/http"
)

// Matrix error codes used by Tributary (client-server API, "Standard error response").
const (
	CodeForbidden            = "M_FORBIDDEN"
	CodeUnknownToken         = "M_UNKNOWN_TOKEN"
	CodeMissingToken         = "M_MISSING_TOKEN"
	CodeUserLocked           = "M_USER_LOCKED"
	CodeUserSuspended        = "M_USER_SUSPENDED"
	CodeBadJSON              = "M_BAD_JSON"
	CodeNotJSON              = "M_NOT_JSON"
	CodeNotFound             = "M_NOT_FOUND"
	CodeLimitExceeded        = "M_LIMIT_EXCEEDED"
	CodeUnrecognized         = "M_UNRECOGNIZED"
	CodeUnknown              = "M_UNKNOWN"
	CodeUnauthorized         = "M_UNAUTHORIZED"
	CodeUserDeactivated      = "M_USER_DEACTIVATED"
	CodeUserInUse            = "M_USER_IN_USE"
	CodeInvalidUsername      = "M_INVALID_USERNAME"
	CodeMissingParam         = "M_MISSING_PARAM"
	CodeInvalidParam         = "M_INVALID_PARAM"
	CodeTooLarge             = "M_TOO_LARGE"
	CodeExclusive            = "M_EXCLUSIVE"
	CodeWeakPassword         = "M_WEAK_PASSWORD"
	CodeGuestAccessForbidden = "M_GUEST_ACCESS_FORBIDDEN"
	CodeUnknownDevice        = "M_UNKNOWN_DEVICE"
)

// Error is a Matrix error: an HTTP status, an errcode and a human-readable
// message, plus optional extra top-level fields (retry_after_ms, soft_logout,
// the flows of a user-interactive auth response…). Handlers and services
// return it; core/httpx renders it as {"errcode","error",…}.
type Error struct {
	Status  int
	Code    string
	Message string
	// Extra fields merged into the JSON body. Keys must not be "errcode" or "error".
	Extra map[string]any
	// Header values to set on the response (for example Retry-After).
	Header map[string]string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (%d): %s", e.Code, e.Status, e.Message) }

// Body is the JSON object sent to the client.
func (e *Error) Body() map[string]any {
	body := make(map[string]any, len(e.Extra)+2)
	for k, v := range e.Extra {
		body[k] = v
	}
	if e.Code != "" {
		body["errcode"] = e.Code
		body["error"] = e.Message
	}
	return body
}

// With returns a copy of e with an extra body field set.
func (e *Error) With(key string, value any) *Error {
	c := *e
	c.Extra = make(map[string]any, len(e.Extra)+1)
	for k, v := range e.Extra {
		c.Extra[k] = v
	}
	c.Extra[key] = value
	return &c
}

// NewError builds an Error with a formatted message.
func NewError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func Forbidden(format string, args ...any) *Error {
	return NewError(http.StatusForbidden, CodeForbidden, format, args...)
}
func BadJSON(format string, args ...any) *Error {
	return NewError(http.StatusBadRequest, CodeBadJSON, format, args...)
}
func NotJSON(format string, args ...any) *Error {
	return NewError(http.StatusBadRequest, CodeNotJSON, format, args...)
}
func InvalidParam(format string, args ...any) *Error {
	return NewError(http.StatusBadRequest, CodeInvalidParam, format, args...)
}
func MissingParam(format string, args ...any) *Error {
	return NewError(http.StatusBadRequest, CodeMissingParam, format, args...)
}
func NotFound(format string, args ...any) *Error {
	return NewError(http.StatusNotFound, CodeNotFound, format, args...)
}
func Unrecognized(status int, format string, args ...any) *Error {
	return NewError(status, CodeUnrecognized, format, args...)
}
func TooLarge(format string, args ...any) *Error {
	return NewError(http.StatusRequestEntityTooLarge, CodeTooLarge, format, args...)
}

// LimitExceeded is the 429 answer of a rate limiter.
func LimitExceeded(retryAfterMS int64) *Error {
	secs := (retryAfterMS + 999) / 1000
	return &Error{
		Status: http.StatusTooManyRequests, Code: CodeLimitExceeded, Message: "Too many requests",
		Extra:  map[string]any{"retry_after_ms": retryAfterMS},
		Header: map[string]string{"Retry-After": fmt.Sprint(secs)},
	}
}

// AsError returns the Matrix error inside err, if there is one.
func AsError(err error) (*Error, bool) {
	var me *Error
	if errors.As(err, &me) {
		return me, true
	}
	return nil, false
}

// Sentinel errors shared between storage and services.
var (
	// ErrNotFound: the row asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a row with the same unique key already exists.
	ErrConflict = errors.New("already exists")
)
