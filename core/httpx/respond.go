package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/canonicaljson"
	"github.com/tributary-hs/tributary/core/types"
)

// Fail answers with err as a Matrix error. Errors that are not *types.Error
// are logged and become a 500 M_UNKNOWN that does not show their text.
func Fail(c *gin.Context, err error) {
	refuseBody(c)
	me, ok := types.AsError(err)
	var tooBig *http.MaxBytesError
	if !ok && errors.As(err, &tooBig) {
		// A body without Content-Length (chunked) meets the limit while
		// it is read, wherever that is.
		me, ok = types.TooLarge("Request body is larger than %d bytes", tooBig.Limit), true
	}
	if !ok {
		slog.ErrorContext(c.Request.Context(), "request failed", "method", c.Request.Method,
			"route", c.FullPath(), "err", err)
		me = types.NewError(http.StatusInternalServerError, types.CodeUnknown, "Internal server error")
	}
	for k, v := range me.Header {
		c.Header(k, v)
	}
	c.Set(errcodeKey, me.Code)
	c.Header("Content-Type", jsonContentType)
	c.AbortWithStatusJSON(me.Status, me.Body())
}

// jsonContentType is the Content-Type of JSON answers: without gin's
// "; charset=utf-8", as Synapse answers (JSON is UTF-8 by definition, RFC
// 8259), which clients and test suites compare byte for byte. gin keeps a
// Content-Type already set.
const jsonContentType = "application/json"

// errcodeKey is where Fail leaves the errcode for the request log.
const errcodeKey = "tributary.errcode"

// OK answers 200 with a JSON body.
func OK(c *gin.Context, body any) {
	c.Header("Content-Type", jsonContentType)
	c.JSON(http.StatusOK, body)
}

// OKJSON answers 200 with a body already encoded (as OK would encode it).
func OKJSON(c *gin.Context, raw []byte) {
	c.Data(http.StatusOK, jsonContentType, raw)
}

// Empty is the {} body of endpoints that return nothing.
var Empty = struct{}{}

// DecodeJSON reads the request body into v: M_NOT_JSON if it is not JSON
// in UTF-8 (or not an object), M_BAD_JSON if it breaks Matrix's rules for
// JSON (canonicaljson.Validate: lone surrogates, duplicate keys, integers
// beyond ±(2^53-1), nesting deeper than 100) or does not fit v, M_TOO_LARGE
// past the limit.
func DecodeJSON(c *gin.Context, v any) error {
	body, err := ReadBody(c)
	if err != nil {
		return err
	}
	return Unmarshal(body, v)
}

// DecodeEventJSON is DecodeJSON for bodies that become event content
// (createRoom, batch sends): canonical JSON, which events are hashed and
// signed in, has no fractions or exponents either.
func DecodeEventJSON(c *gin.Context, v any) error {
	body, err := ReadEventBody(c)
	if err != nil {
		return err
	}
	return Unmarshal(body, v)
}

// DecodeOptionalJSON is DecodeJSON where an empty body means {}.
func DecodeOptionalJSON(c *gin.Context, v any) error {
	if c.Request.ContentLength == 0 {
		return nil
	}
	return DecodeJSON(c, v)
}

// ReadBody reads the whole request body within the body limit and checks
// it with canonicaljson.Validate, before anything decodes or keeps it.
func ReadBody(c *gin.Context) ([]byte, error) {
	return readChecked(c, canonicaljson.Validate)
}

// ReadEventBody is ReadBody for event content: canonicaljson.ValidateCanonical.
func ReadEventBody(c *gin.Context) ([]byte, error) {
	return readChecked(c, canonicaljson.ValidateCanonical)
}

func readChecked(c *gin.Context, check func([]byte) error) ([]byte, error) {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, types.TooLarge("Request body is larger than %d bytes", mbe.Limit)
		}
		if me, ok := types.AsError(err); ok {
			return nil, me // the body did not arrive in time (BodyDeadline)
		}
		return nil, types.NotJSON("Could not read the request body")
	}
	return body, CheckJSON(body, check)
}

// CheckJSON applies check (canonicaljson.Validate or ValidateCanonical) to
// a JSON text and turns what it finds into the spec's errcodes: text that is
// not JSON in UTF-8 is M_NOT_JSON, JSON that breaks a rule is M_BAD_JSON
// (as Synapse answers integers out of range and floats in events).
func CheckJSON(body []byte, check func([]byte) error) error {
	err := check(body)
	if err == nil {
		return nil
	}
	var je *canonicaljson.Error
	if errors.As(err, &je) && je.Kind == canonicaljson.Invalid {
		return types.BadJSON("Invalid JSON: %s", je.Error())
	}
	return types.NotJSON("Content not JSON.")
}

// Unmarshal decodes a JSON object that ReadBody returned (or part of one)
// into v with the spec's errcodes.
func Unmarshal(body []byte, v any) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return types.NotJSON("Content not JSON.")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return types.BadJSON("Field %q has the wrong type", te.Field)
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return types.NotJSON("Content not JSON.")
		}
		return types.BadJSON("Request body does not match the expected shape")
	}
	return nil
}
