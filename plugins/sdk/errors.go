package sdk

import (
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"maunium.net/go/mautrix"
)

// hostError turns an error of a MatrixHost call into what bridgev2 expects
// of its Matrix side: the host answers Matrix errors as "M_CODE: message"
// in a gRPC status, which become mautrix.RespError (so that
// errors.Is(err, mautrix.MNotFound) holds as with an HTTP homeserver).
// Transport errors (the host restarting) are left as they are.
func hostError(op string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	code, msg, found := strings.Cut(st.Message(), ": ")
	if !found || !strings.HasPrefix(code, "M_") {
		return fmt.Errorf("%s: %w", op, err)
	}
	re := mautrix.RespError{ErrCode: code, Err: msg, StatusCode: httpStatus(st.Code())}
	return fmt.Errorf("%s: %w", op, re)
}

func httpStatus(c codes.Code) int {
	switch c {
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists:
		return http.StatusConflict
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}
