package users

import (
	"context"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
)

// What a server admin does to other accounts (the admin API: core/admin).
// The caller has been checked to be an admin; these skip the checks that
// hold a user to their own account, never the rules of the data.

// AdminCreateUser creates an account with the given localpart (or user ID
// of this server), password ("" for none) and flags.
func (s *Service) AdminCreateUser(ctx context.Context, userID id.UserID, password string, admin bool, userType string) error {
	if userID.Homeserver() != s.opts.ServerName {
		return types.InvalidParam("This endpoint can only be used with local users")
	}
	local, err := s.checkFree(ctx, userID.Localpart())
	if err != nil {
		return err
	}
	if password != "" {
		if err := s.checkNewPassword(password); err != nil {
			return err
		}
	}
	switch userType {
	case "", "bot", "support":
	default:
		return types.InvalidParam("Invalid user type")
	}
	_, _, err = s.createAccount(ctx, local, password, admin, userType, false, DeviceRequest{}, "")
	return err
}

// AdminSetAdmin grants or revokes the server admin flag.
func (s *Service) AdminSetAdmin(ctx context.Context, userID id.UserID, admin bool) error {
	if _, err := s.GetAccount(ctx, userID); err != nil {
		return err
	}
	if err := s.store.SetAdmin(ctx, userID, admin); err != nil {
		return internal("set admin", err)
	}
	s.publishAccount(userID)
	return nil
}

// AdminSetPassword sets a user's password; with logoutDevices every device
// of theirs is logged out.
func (s *Service) AdminSetPassword(ctx context.Context, userID id.UserID, password string, logoutDevices bool) error {
	acc, err := s.GetAccount(ctx, userID)
	if err != nil {
		return err
	}
	if acc.Deactivated {
		return types.InvalidParam("The user is deactivated")
	}
	return s.ChangePassword(ctx, &types.Principal{Kind: types.PrincipalUser, UserID: userID}, password, logoutDevices)
}

// AdminSetProfileField sets (non-nil) or deletes (nil) a field of a user's
// profile, whatever the user's own restrictions.
func (s *Service) AdminSetProfileField(ctx context.Context, userID id.UserID, key string, value any) error {
	return s.setProfileField(ctx, userID, key, value)
}

// AdminLogin gives a server admin a session as the user: a new device
// named for it, so that the user sees it among their devices and can
// log it out.
func (s *Service) AdminLogin(ctx context.Context, admin, userID id.UserID) (*Session, error) {
	acc, err := s.GetAccount(ctx, userID)
	if err != nil {
		return nil, err
	}
	if acc.Deactivated {
		return nil, types.InvalidParam("The user is deactivated")
	}
	if admin == userID {
		return nil, types.InvalidParam("Cannot use admin API to login as self")
	}
	return s.issueSession(ctx, userID, DeviceRequest{DisplayName: "Admin login by " + admin.String()})
}
