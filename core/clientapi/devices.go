package clientapi

import (
	"encoding/json"
	"net/http"

	"maunium.net/go/mautrix/id"

	"github.com/gin-gonic/gin"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
)

func (a *API) registerDevices(g gin.IRouter, auth gin.HandlerFunc) {
	g.GET("/devices", auth, a.listDevices)
	g.GET("/devices/:deviceId", auth, a.getDevice)
	g.PUT("/devices/:deviceId", auth, a.putDevice)
	g.DELETE("/devices/:deviceId", auth, a.deleteDevice)
	g.POST("/delete_devices", auth, a.deleteDevices)
}

func deviceJSON(d *users.Device) gin.H {
	out := gin.H{"device_id": d.DeviceID}
	if d.DisplayName != "" {
		out["display_name"] = d.DisplayName
	}
	if d.LastSeenTS > 0 {
		out["last_seen_ts"] = d.LastSeenTS
		out["last_seen_ip"] = d.LastSeenIP
	}
	return out
}

// GET /_matrix/client/v3/devices
func (a *API) listDevices(c *gin.Context) {
	devs, err := a.users.ListDevices(c.Request.Context(), httpx.PrincipalOf(c).UserID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]gin.H, len(devs))
	for i, d := range devs {
		out[i] = deviceJSON(d)
	}
	httpx.OK(c, gin.H{"devices": out})
}

// GET /_matrix/client/v3/devices/{deviceId}
func (a *API) getDevice(c *gin.Context) {
	d, err := a.users.GetDevice(c.Request.Context(), httpx.PrincipalOf(c).UserID, deviceParam(c))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, deviceJSON(d))
}

// PUT /_matrix/client/v3/devices/{deviceId}
func (a *API) putDevice(c *gin.Context) {
	var req struct {
		DisplayName *string `json:"display_name"`
	}
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	p := httpx.PrincipalOf(c)
	ctx := c.Request.Context()
	if p.Kind == types.PrincipalAppService {
		// Appservices create devices for their users this way (spec v1.17,
		// MSC4190): 201 when the device is new, 200 when it existed.
		created, err := a.users.PutAppServiceDevice(ctx, p.UserID, deviceParam(c), req.DisplayName)
		if err != nil {
			httpx.Fail(c, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		c.JSON(status, httpx.Empty)
		return
	}
	var err error
	if req.DisplayName != nil {
		err = a.users.RenameDevice(ctx, p.UserID, deviceParam(c), *req.DisplayName)
	} else {
		_, err = a.users.GetDevice(ctx, p.UserID, deviceParam(c))
	}
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// DELETE /_matrix/client/v3/devices/{deviceId}
func (a *API) deleteDevice(c *gin.Context) {
	var req struct {
		Auth json.RawMessage `json:"auth"`
	}
	if err := httpx.DecodeOptionalJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	p := httpx.PrincipalOf(c)
	ctx := c.Request.Context()
	dev := deviceParam(c)
	if p.Kind == types.PrincipalAppService {
		// No UIA for appservices, and a device that is gone already is
		// deleted (spec: "removed, or had been removed previously").
		a.deleteWithUIA(c, nil, "", []id.DeviceID{dev})
		return
	}
	if _, err := a.users.GetDevice(ctx, p.UserID, dev); err != nil {
		httpx.Fail(c, err)
		return
	}
	a.deleteWithUIA(c, req.Auth, "devices/"+string(dev), []id.DeviceID{dev})
}

// POST /_matrix/client/v3/delete_devices
func (a *API) deleteDevices(c *gin.Context) {
	var req struct {
		Devices []id.DeviceID   `json:"devices"`
		Auth    json.RawMessage `json:"auth"`
	}
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	if req.Devices == nil {
		httpx.Fail(c, types.MissingParam("devices is required"))
		return
	}
	a.deleteWithUIA(c, req.Auth, "delete_devices", req.Devices)
}

// deleteWithUIA confirms the user's password, then deletes the devices.
// Appservices are not asked (application service API, "Deleting devices").
func (a *API) deleteWithUIA(c *gin.Context, auth json.RawMessage, endpoint string, devices []id.DeviceID) {
	p := httpx.PrincipalOf(c)
	ctx := c.Request.Context()
	var res *users.UIAResult
	if p.Kind != types.PrincipalAppService {
		var err error
		if res, err = a.users.CheckUIA(ctx, &users.UIARequest{Auth: auth, UserID: p.UserID, Endpoint: endpoint,
			Flows: users.PasswordFlows}); err != nil {
			httpx.Fail(c, err)
			return
		}
	}
	if err := a.users.DeleteDevices(ctx, p.UserID, devices); err != nil {
		httpx.Fail(c, err)
		return
	}
	if res != nil {
		a.users.FinishUIA(ctx, res)
	}
	httpx.OK(c, httpx.Empty)
}
