package users

import (
	"context"
	"errors"
	"net/http"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// openIDLifetime is how long an OpenID token proves who its user is.
const openIDLifetime = time.Hour

// OpenIDToken is the answer of POST /user/{userId}/openid/request_token.
type OpenIDToken struct {
	AccessToken      string `json:"access_token"`
	TokenType        string `json:"token_type"`
	MatrixServerName string `json:"matrix_server_name"`
	ExpiresIn        int64  `json:"expires_in"`
}

// RequestOpenIDToken makes a token the caller can give a third party, which
// learns the caller's user ID from this server's federation API
// (/_matrix/federation/v1/openid/userinfo) and nothing else.
func (s *Service) RequestOpenIDToken(ctx context.Context, caller, user id.UserID) (*OpenIDToken, error) {
	if caller != user {
		return nil, types.Forbidden("You can only request OpenID tokens for yourself")
	}
	token := newSecret("oid_")
	if err := s.store.PutOpenIDToken(ctx, hashToken(token), user, s.nowMS()+openIDLifetime.Milliseconds()); err != nil {
		return nil, internal("store openid token", err)
	}
	return &OpenIDToken{AccessToken: token, TokenType: "Bearer", MatrixServerName: s.opts.ServerName,
		ExpiresIn: int64(openIDLifetime.Seconds())}, nil
}

// OpenIDUser is the user an OpenID token stands for.
func (s *Service) OpenIDUser(ctx context.Context, token string) (id.UserID, error) {
	if token == "" {
		return "", types.NewError(http.StatusUnauthorized, types.CodeMissingToken, "access_token is required")
	}
	user, err := s.store.OpenIDTokenUser(ctx, hashToken(token), s.nowMS())
	if errors.Is(err, storage.ErrNotFound) {
		return "", types.NewError(http.StatusUnauthorized, types.CodeUnknownToken, "Unknown or expired OpenID token")
	} else if err != nil {
		return "", internal("openid token", err)
	}
	return user, nil
}
