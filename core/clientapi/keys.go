package clientapi

import (
	"encoding/json"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/keys"
	tsync "github.com/tributary-hs/tributary/core/sync"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
)

func (a *API) registerKeys(g gin.IRouter, auth gin.HandlerFunc) {
	if a.keys == nil {
		return
	}
	g.POST("/keys/upload", auth, a.keysUpload)
	g.POST("/keys/query", auth, a.keysQuery)
	g.POST("/keys/claim", auth, a.keysClaim)
	g.GET("/keys/changes", auth, a.keysChanges)
	g.POST("/keys/device_signing/upload", auth, a.deviceSigningUpload)
	g.POST("/keys/signatures/upload", auth, a.signaturesUpload)

	g.POST("/room_keys/version", auth, a.createBackupVersion)
	g.GET("/room_keys/version", auth, a.getBackupVersion)
	g.GET("/room_keys/version/:version", auth, a.getBackupVersion)
	g.PUT("/room_keys/version/:version", auth, a.putBackupVersion)
	g.DELETE("/room_keys/version/:version", auth, a.deleteBackupVersion)
	for _, path := range []string{"/room_keys/keys", "/room_keys/keys/:roomId", "/room_keys/keys/:roomId/:sessionId"} {
		g.GET(path, auth, a.getBackupKeys)
		g.PUT(path, auth, a.putBackupKeys)
		g.DELETE(path, auth, a.deleteBackupKeys)
	}
}

// POST /_matrix/client/v3/keys/upload
func (a *API) keysUpload(c *gin.Context) {
	var req keys.UploadRequest
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	p := httpx.PrincipalOf(c)
	counts, err := a.keys.Upload(c.Request.Context(), p.UserID, p.DeviceID, &req)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"one_time_key_counts": counts})
}

// POST /_matrix/client/v3/keys/query
func (a *API) keysQuery(c *gin.Context) {
	var req struct {
		DeviceKeys map[id.UserID][]id.DeviceID `json:"device_keys"`
		Timeout    int64                       `json:"timeout"`
	}
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	if req.DeviceKeys == nil {
		httpx.Fail(c, types.MissingParam("device_keys is required"))
		return
	}
	resp, err := a.keys.Query(c.Request.Context(), httpx.PrincipalOf(c).UserID, req.DeviceKeys)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, resp)
}

// POST /_matrix/client/v3/keys/claim
func (a *API) keysClaim(c *gin.Context) {
	var req struct {
		OneTimeKeys map[id.UserID]map[id.DeviceID]string `json:"one_time_keys"`
		Timeout     int64                                `json:"timeout"`
	}
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	if req.OneTimeKeys == nil {
		httpx.Fail(c, types.MissingParam("one_time_keys is required"))
		return
	}
	otks, failures, err := a.keys.Claim(c.Request.Context(), req.OneTimeKeys)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"one_time_keys": otks, "failures": failures})
}

// GET /_matrix/client/v3/keys/changes
func (a *API) keysChanges(c *gin.Context) {
	fromTok, toTok := c.Query("from"), c.Query("to")
	if fromTok == "" || toTok == "" {
		httpx.Fail(c, types.MissingParam("from and to are required"))
		return
	}
	from, err := tsync.ParseToken(fromTok)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	to, err := tsync.ParseToken(toTok)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	changed, left, err := a.keys.DeviceListUpdates(c.Request.Context(), httpx.PrincipalOf(c).UserID, from, to)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"changed": nonNil(changed), "left": nonNil(left)})
}

// backupPath is the room and session of a /room_keys/keys path.
func backupPath(c *gin.Context) (roomID id.RoomID, sessionID string) {
	return id.RoomID(c.Param("roomId")), c.Param("sessionId")
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// POST /_matrix/client/v3/keys/device_signing/upload
func (a *API) deviceSigningUpload(c *gin.Context) {
	var req struct {
		keys.DeviceSigningRequest
		Auth json.RawMessage `json:"auth"`
	}
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	p := httpx.PrincipalOf(c)
	ctx := c.Request.Context()
	// Appservices replace their users' keys without UIA (application
	// service API, "Cross-signing", spec v1.17).
	needs := false
	if p.Kind != types.PrincipalAppService {
		var err error
		if needs, err = a.keys.NeedsUIA(ctx, p.UserID, &req.DeviceSigningRequest); err != nil {
			httpx.Fail(c, err)
			return
		}
	}
	var res *users.UIAResult
	var err error
	if needs {
		if res, err = a.users.CheckUIA(ctx, &users.UIARequest{Auth: req.Auth, UserID: p.UserID,
			Endpoint: "keys/device_signing/upload", Flows: users.PasswordFlows}); err != nil {
			httpx.Fail(c, err)
			return
		}
	}
	if err := a.keys.UploadDeviceSigning(ctx, p.UserID, &req.DeviceSigningRequest); err != nil {
		httpx.Fail(c, err)
		return
	}
	if res != nil {
		a.users.FinishUIA(ctx, res)
	}
	httpx.OK(c, httpx.Empty)
}

// POST /_matrix/client/v3/keys/signatures/upload
func (a *API) signaturesUpload(c *gin.Context) {
	var req map[id.UserID]map[string]json.RawMessage
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	failures, err := a.keys.UploadSignatures(c.Request.Context(), httpx.PrincipalOf(c).UserID, req)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"failures": failures})
}

type backupVersionBody struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Version   string          `json:"version"`
}

// POST /_matrix/client/v3/room_keys/version
func (a *API) createBackupVersion(c *gin.Context) {
	var req backupVersionBody
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	v, err := a.keys.CreateBackupVersion(c.Request.Context(), httpx.PrincipalOf(c).UserID, req.Algorithm, req.AuthData)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"version": v})
}

// GET /_matrix/client/v3/room_keys/version[/{version}]
func (a *API) getBackupVersion(c *gin.Context) {
	info, err := a.keys.BackupVersion(c.Request.Context(), httpx.PrincipalOf(c).UserID, c.Param("version"))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, info)
}

// PUT /_matrix/client/v3/room_keys/version/{version}
func (a *API) putBackupVersion(c *gin.Context) {
	var req backupVersionBody
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	if err := a.keys.UpdateBackupVersion(c.Request.Context(), httpx.PrincipalOf(c).UserID, c.Param("version"),
		req.Version, req.Algorithm, req.AuthData); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// DELETE /_matrix/client/v3/room_keys/version/{version}
func (a *API) deleteBackupVersion(c *gin.Context) {
	if err := a.keys.DeleteBackupVersion(c.Request.Context(), httpx.PrincipalOf(c).UserID, c.Param("version")); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, httpx.Empty)
}

// GET /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]
func (a *API) getBackupKeys(c *gin.Context) {
	roomID, sessionID := backupPath(c)
	rooms, err := a.keys.BackupKeys(c.Request.Context(), httpx.PrincipalOf(c).UserID, c.Query("version"), roomID, sessionID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	switch {
	case sessionID != "":
		httpx.OK(c, rooms[roomID].Sessions[sessionID])
	case roomID != "":
		r := rooms[roomID]
		if r == nil {
			r = &keys.BackupRoom{Sessions: map[string]*keys.BackupSession{}}
		}
		httpx.OK(c, r)
	default:
		httpx.OK(c, gin.H{"rooms": rooms})
	}
}

// PUT /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]
func (a *API) putBackupKeys(c *gin.Context) {
	roomID, sessionID := backupPath(c)
	var rooms map[id.RoomID]*keys.BackupRoom
	var err error
	switch {
	case sessionID != "":
		var sess keys.BackupSession
		err = httpx.DecodeJSON(c, &sess)
		rooms = map[id.RoomID]*keys.BackupRoom{roomID: {Sessions: map[string]*keys.BackupSession{sessionID: &sess}}}
	case roomID != "":
		var r keys.BackupRoom
		err = httpx.DecodeJSON(c, &r)
		if err == nil && r.Sessions == nil {
			err = types.MissingParam("sessions is required")
		}
		rooms = map[id.RoomID]*keys.BackupRoom{roomID: &r}
	default:
		var body struct {
			Rooms map[id.RoomID]*keys.BackupRoom `json:"rooms"`
		}
		err = httpx.DecodeJSON(c, &body)
		if err == nil && body.Rooms == nil {
			err = types.MissingParam("rooms is required")
		}
		rooms = body.Rooms
	}
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	counts, err := a.keys.PutBackupKeys(c.Request.Context(), httpx.PrincipalOf(c).UserID, c.Query("version"), rooms)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, counts)
}

// DELETE /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]
func (a *API) deleteBackupKeys(c *gin.Context) {
	roomID, sessionID := backupPath(c)
	counts, err := a.keys.DeleteBackupKeys(c.Request.Context(), httpx.PrincipalOf(c).UserID, c.Query("version"),
		roomID, sessionID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, counts)
}

// registerDehydrated adds MSC3814 dehydrated devices.
func (a *API) registerDehydrated(r gin.IRouter, auth gin.HandlerFunc) {
	if a.keys == nil {
		return
	}
	g := r.Group("/_matrix/client/unstable/org.matrix.msc3814.v1")
	g.PUT("/dehydrated_device", auth, a.putDehydratedDevice)
	g.GET("/dehydrated_device", auth, a.getDehydratedDevice)
	g.DELETE("/dehydrated_device", auth, a.deleteDehydratedDevice)
	g.POST("/dehydrated_device/:deviceId/events", auth, a.dehydratedEvents)
}

// PUT /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device
func (a *API) putDehydratedDevice(c *gin.Context) {
	var req keys.DehydratedDeviceRequest
	if err := httpx.DecodeJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	dev, err := a.keys.PutDehydratedDevice(c.Request.Context(), httpx.PrincipalOf(c).UserID, &req)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"device_id": dev})
}

// GET /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device
func (a *API) getDehydratedDevice(c *gin.Context) {
	d, err := a.keys.DehydratedDevice(c.Request.Context(), httpx.PrincipalOf(c).UserID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"device_id": d.DeviceID, "device_data": d.DeviceData})
}

// DELETE /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device
func (a *API) deleteDehydratedDevice(c *gin.Context) {
	dev, err := a.keys.DeleteDehydratedDevice(c.Request.Context(), httpx.PrincipalOf(c).UserID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"device_id": dev})
}

// POST /_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device/{deviceId}/events
func (a *API) dehydratedEvents(c *gin.Context) {
	var req struct {
		NextBatch string `json:"next_batch"`
	}
	if err := httpx.DecodeOptionalJSON(c, &req); err != nil {
		httpx.Fail(c, err)
		return
	}
	events, next, err := a.keys.DehydratedEvents(c.Request.Context(), httpx.PrincipalOf(c).UserID, deviceParam(c), req.NextBatch)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"events": events, "next_batch": next})
}
