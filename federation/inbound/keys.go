package inbound

// The end-to-end encryption endpoints of the federation API: other servers
// ask for the device lists and keys of this server's users, and claim
// their one-time keys, so that their users can encrypt for ours.

import (
	"context"
	"encoding/json"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/keys"
	"github.com/tributary-hs/tributary/core/types"
)

// Keys answers other servers about local users' keys (core/keys.Service
// implements it).
type Keys interface {
	Query(ctx context.Context, caller id.UserID, want map[id.UserID][]id.DeviceID) (*keys.QueryResponse, error)
	Claim(ctx context.Context, want map[id.UserID]map[id.DeviceID]string) (map[id.UserID]map[id.DeviceID]map[string]json.RawMessage, map[string]any, error)
	UserDevices(ctx context.Context, user id.UserID) (int64, []keys.RemoteDevice, json.RawMessage, json.RawMessage, error)
	// RemoteDeviceListUpdate and RemoteSigningKeyUpdate take the origin's
	// m.device_list_update and m.signing_key_update EDUs.
	RemoteDeviceListUpdate(ctx context.Context, origin string, u *keys.DeviceListUpdate) error
	RemoteSigningKeyUpdate(ctx context.Context, origin string, user id.UserID, master, selfSigning json.RawMessage) error
}

var _ Keys = (*keys.Service)(nil)

// ownUsers fails unless every user is this server's.
func (a *API) ownUsers(c *gin.Context, users []id.UserID) bool {
	for _, u := range users {
		if _, hs, err := u.Parse(); err != nil || hs != a.opts.ServerName {
			httpx.Fail(c, types.InvalidParam("%s is not a user of this server", u))
			return false
		}
	}
	return true
}

// POST /_matrix/federation/v1/user/keys/query
func (a *API) userKeysQuery(c *gin.Context) {
	var req struct {
		DeviceKeys map[id.UserID][]id.DeviceID `json:"device_keys"`
	}
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	users := make([]id.UserID, 0, len(req.DeviceKeys))
	for u := range req.DeviceKeys {
		users = append(users, u)
	}
	if !a.ownUsers(c, users) {
		return
	}
	resp, err := a.opts.Keys.Query(c.Request.Context(), "", req.DeviceKeys)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"device_keys": resp.DeviceKeys, "master_keys": resp.MasterKeys,
		"self_signing_keys": resp.SelfSigningKeys})
}

// POST /_matrix/federation/v1/user/keys/claim
func (a *API) userKeysClaim(c *gin.Context) {
	var req struct {
		OneTimeKeys map[id.UserID]map[id.DeviceID]string `json:"one_time_keys"`
	}
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	users := make([]id.UserID, 0, len(req.OneTimeKeys))
	for u := range req.OneTimeKeys {
		users = append(users, u)
	}
	if !a.ownUsers(c, users) {
		return
	}
	otks, _, err := a.opts.Keys.Claim(c.Request.Context(), req.OneTimeKeys)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"one_time_keys": otks})
}

// GET /_matrix/federation/v1/user/devices/{userId}
func (a *API) userDevices(c *gin.Context) {
	user := id.UserID(c.Param("userID"))
	if !a.ownUsers(c, []id.UserID{user}) {
		return
	}
	streamID, devices, master, selfSigning, err := a.opts.Keys.UserDevices(c.Request.Context(), user)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := gin.H{"user_id": user, "stream_id": streamID, "devices": devices}
	if master != nil {
		out["master_key"] = master
	}
	if selfSigning != nil {
		out["self_signing_key"] = selfSigning
	}
	httpx.OK(c, out)
}
