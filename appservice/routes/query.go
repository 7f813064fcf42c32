package routes

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/appservice/registry"
)

// Querier asks appservices about users and aliases of their namespaces
// that do not exist yet (GET /_matrix/app/v1/users/{userId} and
// /_matrix/app/v1/rooms/{roomAlias}); an appservice that answers 200 has
// created them.
type Querier struct {
	Registry *registry.Registry
	Client   *http.Client
}

// NewQuerier builds a querier with a short timeout.
func NewQuerier(reg *registry.Registry) *Querier {
	return &Querier{Registry: reg, Client: &http.Client{Timeout: 10 * time.Second}}
}

// QueryUser asks the appservices owning a user; true if one created it.
func (q *Querier) QueryUser(ctx context.Context, userID id.UserID) bool {
	for _, as := range q.Registry.All() {
		if as.Reg.URL != "" && as.OwnsUser(userID) && q.get(ctx, as, "users", string(userID)) {
			return true
		}
	}
	return false
}

// QueryAlias asks the appservices owning an alias; true if one created it.
func (q *Querier) QueryAlias(ctx context.Context, alias id.RoomAlias) bool {
	for _, as := range q.Registry.All() {
		if as.Reg.URL != "" && as.OwnsAlias(alias.String()) && q.get(ctx, as, "rooms", alias.String()) {
			return true
		}
	}
	return false
}

func (q *Querier) get(ctx context.Context, as *registry.AppService, kind, subject string) bool {
	u := strings.TrimSuffix(as.Reg.URL, "/") + "/_matrix/app/v1/" + kind + "/" + url.PathEscape(subject)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+as.Reg.ServerToken)
	resp, err := q.Client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}
