package users

import (
	"context"
	"errors"
	"regexp"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// RegistrationToken is an admin-managed token for m.login.registration_token.
type RegistrationToken = storage.RegistrationToken

// regTokenRE is the token grammar of the spec ([A-Za-z0-9._~-], at most 64).
var regTokenRE = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,64}$`)

func (s *Service) tokenUsable(t *RegistrationToken) bool {
	if t.UsesAllowed != nil && t.Completed+t.Pending >= *t.UsesAllowed {
		return false
	}
	return t.ExpiryTime == nil || *t.ExpiryTime > s.nowMS()
}

// RegistrationTokenValid reports whether a token can still be used to register.
func (s *Service) RegistrationTokenValid(ctx context.Context, token string) (bool, error) {
	if !regTokenRE.MatchString(token) {
		return false, nil
	}
	t, err := s.store.GetRegistrationToken(ctx, token)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, internal("get registration token", err)
	}
	return s.tokenUsable(t), nil
}

// RequiresToken reports whether registration asks for a registration token.
func (s *Service) RequiresToken() bool { return s.opts.RegistrationEnabled && s.opts.RequiresToken }

// NewRegistrationToken creates a token; an empty token is generated with length characters.
func (s *Service) NewRegistrationToken(ctx context.Context, token string, length int, usesAllowed, expiry *int64) (*RegistrationToken, error) {
	if token == "" {
		if length == 0 {
			length = 16
		}
		if length < 1 || length > 64 {
			return nil, types.InvalidParam("length must be between 1 and 64")
		}
		token = randomString(length, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-")
	} else if !regTokenRE.MatchString(token) {
		return nil, types.InvalidParam("token must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_', '~' and '-'")
	}
	if err := s.checkTokenLimits(usesAllowed, expiry); err != nil {
		return nil, err
	}
	t := &RegistrationToken{Token: token, UsesAllowed: usesAllowed, ExpiryTime: expiry}
	err := s.store.CreateRegistrationToken(ctx, t)
	if errors.Is(err, storage.ErrConflict) {
		return nil, types.InvalidParam("Token already exists")
	} else if err != nil {
		return nil, internal("create registration token", err)
	}
	return t, nil
}

func (s *Service) checkTokenLimits(usesAllowed, expiry *int64) error {
	if usesAllowed != nil && *usesAllowed < 0 {
		return types.InvalidParam("uses_allowed must be a non-negative integer or null")
	}
	if expiry != nil && *expiry < s.nowMS() {
		return types.InvalidParam("expiry_time must not be in the past")
	}
	return nil
}

// ListRegistrationTokens lists tokens; valid filters them when not nil.
func (s *Service) ListRegistrationTokens(ctx context.Context, valid *bool) ([]*RegistrationToken, error) {
	all, err := s.store.ListRegistrationTokens(ctx)
	if err != nil {
		return nil, internal("list registration tokens", err)
	}
	out := []*RegistrationToken{}
	for _, t := range all {
		if valid == nil || s.tokenUsable(t) == *valid {
			out = append(out, t)
		}
	}
	return out, nil
}

// GetRegistrationToken returns one token.
func (s *Service) GetRegistrationToken(ctx context.Context, token string) (*RegistrationToken, error) {
	t, err := s.store.GetRegistrationToken(ctx, token)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, types.NotFound("No such registration token")
	} else if err != nil {
		return nil, internal("get registration token", err)
	}
	return t, nil
}

// UpdateRegistrationToken changes the limits of a token; set* say which fields were given.
func (s *Service) UpdateRegistrationToken(ctx context.Context, token string, setUses bool, uses *int64, setExpiry bool, expiry *int64) (*RegistrationToken, error) {
	t, err := s.GetRegistrationToken(ctx, token)
	if err != nil {
		return nil, err
	}
	if setUses {
		t.UsesAllowed = uses
	}
	if setExpiry {
		t.ExpiryTime = expiry
	}
	if err := s.checkTokenLimits(uses, expiry); err != nil {
		return nil, err
	}
	if err := s.store.UpdateRegistrationToken(ctx, t); err != nil {
		return nil, internal("update registration token", err)
	}
	return t, nil
}

// DeleteRegistrationToken deletes a token.
func (s *Service) DeleteRegistrationToken(ctx context.Context, token string) error {
	err := s.store.DeleteRegistrationToken(ctx, token)
	if errors.Is(err, storage.ErrNotFound) {
		return types.NotFound("No such registration token")
	} else if err != nil {
		return internal("delete registration token", err)
	}
	return nil
}
