package httpx

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/types"
)

// Fail answers with err as a Matrix error. Errors that are not *types.Error
// are logged and become a 500 M_UNKNOWN that does not show their text.
func Fail(c *gin.Context, err error) {
	refuseBody(c)
	me, ok := types.AsError(err)
	if !ok {
		slog.ErrorContext(c.Request.Context(), "request failed", "method", c.Request.Method,
			"route", c.FullPath(), "err", err)
		me = types.NewError(http.StatusInternalServerError, types.CodeUnknown, "Internal server error")
	}
	for k, v := range me.Header {
		c.Header(k, v)
	}
	c.AbortWithStatusJSON(me.Status, me.Body())
}

// OK answers 200 with a JSON body.
func OK(c *gin.Context, body any) { c.JSON(http.StatusOK, body) }

// Empty is the {} body of endpoints that return nothing.
var Empty = struct{}{}

// DecodeJSON reads the request body into v: M_NOT_JSON if it is not JSON (or
// not an object), M_BAD_JSON if it does not fit v, M_TOO_LARGE past the limit.
func DecodeJSON(c *gin.Context, v any) error {
	body, err := ReadBody(c)
	if err != nil {
		return err
	}
	return Unmarshal(body, v)
}

// ReadBody reads the whole request body within the body limit.
func ReadBody(c *gin.Context) ([]byte, error) {
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
	return body, nil
}

// DecodeOptionalJSON is DecodeJSON where an empty body means {}.
func DecodeOptionalJSON(c *gin.Context, v any) error {
	if c.Request.ContentLength == 0 {
		return nil
	}
	return DecodeJSON(c, v)
}

// Unmarshal decodes a JSON object into v with the spec's errcodes.
func Unmarshal(body []byte, v any) error {
	trimmed := strings.TrimLeft(string(body), " \t\r\n")
	if !json.Valid(body) || !strings.HasPrefix(trimmed, "{") {
		return types.NotJSON("Content not JSON.")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return types.BadJSON("Field %q has the wrong type", te.Field)
		}
		return types.BadJSON("Request body does not match the expected shape")
	}
	return nil
}
