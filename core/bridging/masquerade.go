package bridging

import (
	"context"
	"net/http"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
)

// Masquerade is who an appservice acts as: its sender, or (user set, the
// ?user_id= of the appservice API) a registered user of its namespace; with
// deviceID (MSC3202's ?device_id=) on one of that user's devices. The
// principal carries the account's suspension and lock, so that acting as a
// restricted user is restricted as that user's own requests are.
func (s *Service) Masquerade(ctx context.Context, asID string, user id.UserID, deviceID id.DeviceID) (*types.Principal, error) {
	sender := s.ns.Sender(asID)
	if sender == "" {
		return nil, types.Forbidden("Unknown application service %q", asID)
	}
	if user == "" {
		user = sender
	} else if !s.ns.OwnsUser(asID, user) {
		return nil, types.Forbidden("Application service cannot masquerade as %s", user)
	}
	if _, err := s.accounts.GetAccount(ctx, user); err != nil {
		if notFound(err) {
			return nil, types.Forbidden("Application service has not registered %s", user)
		}
		return nil, err
	}
	p := &types.Principal{Kind: types.PrincipalAppService, UserID: user, AppServiceID: asID}
	if deviceID != "" {
		if _, err := s.accounts.GetDevice(ctx, user, deviceID); err != nil {
			if notFound(err) {
				// Application service API, "Identity assertion" (v1.17).
				return nil, types.NewError(http.StatusBadRequest, types.CodeUnknownDevice, "Unknown device %s of %s",
					deviceID, user)
			}
			return nil, err
		}
		p.DeviceID = deviceID
	}
	var err error
	if p.Suspended, p.Locked, err = s.accounts.Restrictions(ctx, user); err != nil {
		return nil, err
	}
	return p, nil
}

func notFound(err error) bool {
	me, ok := types.AsError(err)
	return ok && me.Code == types.CodeNotFound
}
