// Package routes holds what appservices add to the client-server API:
// as_token authentication with masquerading (this file), ping, third-party
// lookups, batch send, and telling the delivery queues that an appservice
// is back (reachable.go). The rules are core/bridging's; these are the HTTP
// edges. It imports core services, core/httpx, core/stream and
// appservice/registry.
package routes

import (
	"context"
	"net/http"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/appservice/registry"
	"github.com/tributary-hs/tributary/core/bridging"
	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
)

// Authenticator accepts appservice tokens besides users' access tokens.
type Authenticator struct {
	Registry *registry.Registry
	Users    *users.Service
	// Bridging decides whom an appservice may act as.
	Bridging *bridging.Service
	// reach hears that appservices are up (nil: nobody listens).
	reach *reachability
}

// NewAuthenticator builds the authenticator; through n (nil: none) it
// tells the appservice delivery queues that an appservice they failed to
// reach is making requests again.
func NewAuthenticator(reg *registry.Registry, us *users.Service, b *bridging.Service, n stream.Notifier) *Authenticator {
	a := &Authenticator{Registry: reg, Users: us, Bridging: b}
	if n != nil {
		a.reach = newReachability(n)
	}
	return a
}

var (
	_ httpx.Authenticator        = (*Authenticator)(nil)
	_ httpx.RequestAuthenticator = (*Authenticator)(nil)
	_ bridging.Namespaces        = (*registry.Registry)(nil)
)

// Authenticate handles users' access tokens (no request at hand to masquerade).
func (a *Authenticator) Authenticate(ctx context.Context, token, ip string) (*types.Principal, error) {
	if as := a.Registry.ByASToken(token); as != nil {
		a.reach.heardFrom(as.Reg.ID)
		return &types.Principal{Kind: types.PrincipalAppService, UserID: as.Sender, AppServiceID: as.Reg.ID}, nil
	}
	return a.Users.Authenticate(ctx, token, ip)
}

// AuthenticateRequest resolves an as_token to the appservice acting as its
// sender or, with ?user_id=, as a registered user of its namespace; with
// ?device_id= (MSC3202) as one of that user's devices (bridging.Masquerade).
func (a *Authenticator) AuthenticateRequest(r *http.Request, token, ip string) (*types.Principal, error) {
	as := a.Registry.ByASToken(token)
	if as == nil {
		return a.Users.Authenticate(r.Context(), token, ip)
	}
	a.reach.heardFrom(as.Reg.ID)
	q := r.URL.Query()
	device := id.DeviceID(q.Get("device_id"))
	if device == "" {
		device = id.DeviceID(q.Get("org.matrix.msc3202.device_id"))
	}
	return a.Bridging.Masquerade(r.Context(), as.Reg.ID, id.UserID(q.Get("user_id")), device)
}

// Owns reports whether a user ID is in the namespace of the appservice asID.
func Owns(reg *registry.Registry) func(asID string, userID id.UserID) bool {
	return reg.OwnsUser
}

// ReservedAlias reports whether an appservice claims an alias exclusively
// and user is not one of its own (its sender or a user of its namespace):
// only the appservice may create such an alias.
func ReservedAlias(reg *registry.Registry) func(alias id.RoomAlias, user id.UserID) bool {
	return func(alias id.RoomAlias, user id.UserID) bool {
		as := reg.ExclusiveAlias(alias.String())
		return as != nil && !as.OwnsUser(user)
	}
}

// Exclusive names the appservice that claims a user exclusively.
func Exclusive(reg *registry.Registry) func(userID id.UserID) string {
	return func(userID id.UserID) string {
		if as := reg.ExclusiveUser(userID); as != nil {
			return as.Reg.ID
		}
		return ""
	}
}
