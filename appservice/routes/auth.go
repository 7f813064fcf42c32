// Package routes holds what appservices add to the client-server API:
// as_token authentication with masquerading (this file), and later ping,
// third-party lookups and batch send. It imports core services, core/httpx
// and appservice/registry.
package routes

import (
	"context"
	"net/http"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/appservice/registry"
	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
)

// Authenticator accepts appservice tokens besides users' access tokens.
type Authenticator struct {
	Registry *registry.Registry
	Users    *users.Service
}

var (
	_ httpx.Authenticator        = (*Authenticator)(nil)
	_ httpx.RequestAuthenticator = (*Authenticator)(nil)
)

// Authenticate handles users' access tokens (no request at hand to masquerade).
func (a *Authenticator) Authenticate(ctx context.Context, token, ip string) (*users.Principal, error) {
	if as := a.Registry.ByASToken(token); as != nil {
		return &users.Principal{UserID: string(as.Sender), AppServiceID: as.Reg.ID}, nil
	}
	return a.Users.Authenticate(ctx, token, ip)
}

// AuthenticateRequest resolves an as_token to the appservice acting as its
// sender or, with ?user_id=, as a registered user of its namespace; with
// ?device_id= (MSC3202) as one of that user's devices.
func (a *Authenticator) AuthenticateRequest(r *http.Request, token, ip string) (*users.Principal, error) {
	as := a.Registry.ByASToken(token)
	if as == nil {
		return a.Users.Authenticate(r.Context(), token, ip)
	}
	q := r.URL.Query()
	user := as.Sender
	if u := q.Get("user_id"); u != "" {
		user = id.UserID(u)
		if !as.OwnsUser(user) {
			return nil, types.Forbidden("Application service cannot masquerade as %s", user)
		}
	}
	if _, err := a.Users.GetAccount(r.Context(), string(user)); err != nil {
		if me, ok := types.AsError(err); ok && me.Code == types.CodeNotFound {
			return nil, types.Forbidden("Application service has not registered %s", user)
		}
		return nil, err
	}
	p := &users.Principal{UserID: string(user), AppServiceID: as.Reg.ID}
	device := q.Get("device_id")
	if device == "" {
		device = q.Get("org.matrix.msc3202.device_id")
	}
	if device != "" {
		if _, err := a.Users.GetDevice(r.Context(), string(user), device); err != nil {
			return nil, types.Forbidden("Unknown device %s of %s", device, user)
		}
		p.DeviceID = device
	}
	return p, nil
}

// Owns reports whether a user ID is in the namespace of the appservice asID.
func Owns(reg *registry.Registry) func(asID, userID string) bool {
	return func(asID, userID string) bool {
		as := reg.ByID(asID)
		return as != nil && as.OwnsUser(id.UserID(userID))
	}
}

// Exclusive names the appservice that claims a user exclusively.
func Exclusive(reg *registry.Registry) func(userID string) string {
	return func(userID string) string {
		if as := reg.ExclusiveUser(id.UserID(userID)); as != nil {
			return as.Reg.ID
		}
		return ""
	}
}
