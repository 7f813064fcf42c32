package users

import (
	"context"
	"errors"
	"net/http"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// Identifier is the "identifier" object of /login and of m.login.password
// UIA stages. User is the legacy top-level "user" field.
type Identifier struct {
	Type    string `json:"type"`
	User    string `json:"user,omitempty"`
	Medium  string `json:"medium,omitempty"`
	Address string `json:"address,omitempty"`
	Country string `json:"country,omitempty"`
	Phone   string `json:"phone,omitempty"`
}

// LoginRequest is a parsed POST /login body.
type LoginRequest struct {
	Type       string
	Identifier *Identifier
	User       string // legacy
	Password   string
	Token      string
	Device     DeviceRequest
}

// ErrBadCredentials is the answer to a wrong user or password; the caller
// counts it against the account's failed-login limit.
var ErrBadCredentials = types.Forbidden("Invalid username or password")

// LoginUser names the local user a password login is for, or "" (for rate
// limiting failed attempts per account before checking anything).
func (s *Service) LoginUser(ident *Identifier, legacyUser string) (id.UserID, error) {
	switch {
	case ident == nil && legacyUser != "":
		return s.ResolveUser(legacyUser), nil
	case ident == nil:
		return "", types.BadJSON("identifier is required")
	case ident.Type == "m.id.user":
		if ident.User == "" {
			return "", types.BadJSON("identifier.user is required")
		}
		return s.ResolveUser(ident.User), nil
	case ident.Type == "m.id.thirdparty", ident.Type == "m.id.phone":
		// No third-party identifiers are bound to accounts on this server.
		return "", ErrBadCredentials
	default:
		return "", types.BadJSON("Unknown identifier type %q", ident.Type)
	}
}

// checkPassword verifies a user's password; every failure looks alike.
func (s *Service) checkPassword(ctx context.Context, userID id.UserID, password string) (*storage.Account, error) {
	if userID == "" {
		CheckPassword(dummyHash, password)
		return nil, ErrBadCredentials
	}
	acc, err := s.store.GetAccount(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		CheckPassword(dummyHash, password)
		return nil, ErrBadCredentials
	} else if err != nil {
		return nil, internal("get account", err)
	}
	if acc.Deactivated {
		return nil, types.NewError(http.StatusForbidden, types.CodeUserDeactivated, "This account has been deactivated")
	}
	if acc.PasswordHash == "" || !CheckPassword(acc.PasswordHash, password) {
		return nil, ErrBadCredentials
	}
	if err := s.refuseLocked(ctx, acc.UserID); err != nil {
		return nil, err
	}
	return acc, nil
}

// Login performs POST /login for m.login.password and m.login.token.
func (s *Service) Login(ctx context.Context, req *LoginRequest) (*Session, error) {
	var userID id.UserID
	switch req.Type {
	case "m.login.password":
		u, err := s.LoginUser(req.Identifier, req.User)
		if err != nil {
			return nil, err
		}
		acc, err := s.checkPassword(ctx, u, req.Password)
		if err != nil {
			return nil, err
		}
		userID = acc.UserID
	case "m.login.token":
		if req.Token == "" {
			return nil, types.BadJSON("token is required")
		}
		lt, err := s.store.ConsumeLoginToken(ctx, hashToken(req.Token))
		if errors.Is(err, storage.ErrNotFound) || (err == nil && s.nowMS() >= lt.ExpiresAt) {
			return nil, types.Forbidden("Invalid or expired login token")
		} else if err != nil {
			return nil, internal("consume login token", err)
		}
		acc, err := s.store.GetAccount(ctx, lt.UserID)
		if err != nil {
			return nil, internal("get account", err)
		}
		if acc.Deactivated {
			return nil, types.NewError(http.StatusForbidden, types.CodeUserDeactivated, "This account has been deactivated")
		}
		if err := s.refuseLocked(ctx, acc.UserID); err != nil {
			return nil, err
		}
		userID = acc.UserID
	case "":
		return nil, types.BadJSON("type is required")
	default:
		return nil, types.NewError(http.StatusBadRequest, types.CodeUnknown, "Unknown login type %q", req.Type)
	}
	return s.issueSession(ctx, userID, req.Device)
}

// CreateLoginToken makes a single-use m.login.token for the user (POST
// /_matrix/client/v1/login/get_token, and later SSO). It returns the token
// and its lifetime in milliseconds.
func (s *Service) CreateLoginToken(ctx context.Context, userID id.UserID) (string, int64, error) {
	tok := newSecret("trl_")
	life := s.opts.LoginTokenLifetime.Milliseconds()
	err := s.store.CreateLoginToken(ctx, &storage.LoginToken{TokenHash: hashToken(tok), UserID: userID,
		ExpiresAt: s.nowMS() + life})
	if err != nil {
		return "", 0, internal("create login token", err)
	}
	return tok, life, nil
}
