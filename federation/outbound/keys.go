package outbound

import (
	"context"
	"encoding/json"
	"net/http"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/keys"
)

// Keys asks other servers for their users' end-to-end keys
// (POST /_matrix/federation/v1/user/keys/query and /user/keys/claim;
// mautrix's client has no call for either).
type Keys struct{ Client *federation.Client }

var _ keys.RemoteKeys = Keys{}

// QueryKeys implements keys.RemoteKeys.
func (k Keys) QueryKeys(ctx context.Context, server string, want map[id.UserID][]id.DeviceID) (*keys.RemoteKeysAnswer, error) {
	body := map[id.UserID][]id.DeviceID{}
	for u, ds := range want {
		if ds == nil {
			ds = []id.DeviceID{}
		}
		body[u] = ds
	}
	var ans keys.RemoteKeysAnswer
	_, _, err := k.Client.MakeFullRequest(ctx, federation.RequestParams{ServerName: server, Method: http.MethodPost,
		Path: federation.URLPath{"v1", "user", "keys", "query"}, Authenticate: true,
		RequestJSON: map[string]any{"device_keys": body}, ResponseJSON: &ans})
	if err != nil {
		return nil, remoteError(server, err)
	}
	return &ans, nil
}

// ClaimKeys implements keys.RemoteKeys.
func (k Keys) ClaimKeys(ctx context.Context, server string, want map[id.UserID]map[id.DeviceID]string) (
	map[id.UserID]map[id.DeviceID]map[string]json.RawMessage, error) {
	var ans struct {
		OneTimeKeys map[id.UserID]map[id.DeviceID]map[string]json.RawMessage `json:"one_time_keys"`
	}
	_, _, err := k.Client.MakeFullRequest(ctx, federation.RequestParams{ServerName: server, Method: http.MethodPost,
		Path: federation.URLPath{"v1", "user", "keys", "claim"}, Authenticate: true,
		RequestJSON: map[string]any{"one_time_keys": want}, ResponseJSON: &ans})
	if err != nil {
		return nil, remoteError(server, err)
	}
	return ans.OneTimeKeys, nil
}

// UserDevices implements keys.RemoteKeys.
func (k Keys) UserDevices(ctx context.Context, server string, user id.UserID) (*keys.RemoteUserDevices, error) {
	var ans keys.RemoteUserDevices
	_, _, err := k.Client.MakeFullRequest(ctx, federation.RequestParams{ServerName: server, Method: http.MethodGet,
		Path: federation.URLPath{"v1", "user", "devices", user}, Authenticate: true, ResponseJSON: &ans})
	if err != nil {
		return nil, remoteError(server, err)
	}
	return &ans, nil
}
