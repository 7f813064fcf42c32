package outbound

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/url"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
)

// Profiles asks other servers for their users' profiles
// (GET /_matrix/federation/v1/query/profile, signed).
type Profiles struct{ Client *federation.Client }

var _ users.RemoteProfiles = Profiles{}

// RemoteProfile implements users.RemoteProfiles.
func (p Profiles) RemoteProfile(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, error) {
	var resp map[string]json.RawMessage
	err := p.Client.Query(ctx, userID.Homeserver(), "profile", url.Values{"user_id": {userID.String()}}, &resp)
	if err != nil {
		// Unreachable or not found alike: the client API's answer is
		// "no profile information for this user" (404), as it was before
		// federation.
		if !errors.Is(err, mautrix.MNotFound) {
			slog.InfoContext(ctx, "remote profile lookup failed", "user", userID, "err", err)
		}
		return nil, types.NotFound("Profile not found")
	}
	if resp == nil {
		resp = map[string]json.RawMessage{}
	}
	return resp, nil
}
