package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/core/users"
)

// The user endpoints of Synapse's admin API, with its request and response
// shapes (docs: "User Admin API").

// UserInfo is an account as the admin API shows it.
type UserInfo struct {
	Name         id.UserID `json:"name"`
	DisplayName  *string   `json:"displayname"`
	AvatarURL    *string   `json:"avatar_url"`
	ThreePIDs    []any     `json:"threepids"`
	ExternalIDs  []any     `json:"external_ids"`
	IsGuest      bool      `json:"is_guest"`
	Admin        bool      `json:"admin"`
	Deactivated  bool      `json:"deactivated"`
	Erased       bool      `json:"erased"`
	ShadowBanned bool      `json:"shadow_banned"`
	Locked       bool      `json:"locked"`
	Suspended    bool      `json:"suspended"`
	Approved     bool      `json:"approved"`
	// CreationTS is in seconds for one user (as Synapse) and milliseconds
	// in the list (as Synapse): set by the caller.
	CreationTS   int64   `json:"creation_ts"`
	AppServiceID *string `json:"appservice_id"`
	UserType     *string `json:"user_type"`
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// describe is the admin API's view of an account (creation_ts in ms).
func (a *API) describe(ctx context.Context, acc *users.Account) (*UserInfo, error) {
	name, avatar, err := a.users.Profile(ctx, acc.UserID)
	if err != nil {
		return nil, err
	}
	suspended, locked, err := a.users.Restrictions(ctx, acc.UserID)
	if err != nil {
		return nil, err
	}
	shadowBanned, err := a.users.ShadowBanned(ctx, acc.UserID)
	if err != nil {
		return nil, err
	}
	return &UserInfo{Name: acc.UserID, DisplayName: nonEmpty(name), AvatarURL: nonEmpty(avatar), ThreePIDs: []any{}, ShadowBanned: shadowBanned,
		ExternalIDs: []any{}, Admin: acc.IsAdmin, Deactivated: acc.Deactivated, Erased: acc.Deactivated && name == "" && avatar == "",
		Locked: locked, Suspended: suspended, Approved: true, CreationTS: acc.CreatedAt,
		AppServiceID: nonEmpty(acc.AppServiceID), UserType: nonEmpty(acc.UserType)}, nil
}

// localUser is the {userId} path parameter, which must name a user of this
// server.
func (a *API) localUser(c *gin.Context) (id.UserID, bool) {
	u := id.UserID(c.Param("userId"))
	if err := a.checkLocalUser(u); err != nil {
		httpx.Fail(c, err)
		return "", false
	}
	return u, true
}

// queryBool reads a boolean query parameter ("true"/"false"), def when absent.
func queryBool(c *gin.Context, key string, def bool) (bool, bool) {
	v, ok := c.GetQuery(key)
	if !ok {
		return def, true
	}
	switch v {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	httpx.Fail(c, types.InvalidParam("Query parameter %q must be true or false", key))
	return false, false
}

// queryInt reads a non-negative integer query parameter.
func queryInt(c *gin.Context, key string, def int) (int, bool) {
	v, ok := c.GetQuery(key)
	if !ok {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		httpx.Fail(c, types.InvalidParam("Query parameter %q must be a non-negative integer", key))
		return 0, false
	}
	return n, true
}

// GET /_synapse/admin/v2/users (and v3): paged, filtered, ordered.
func (a *API) listUsers(c *gin.Context) {
	q := UserQuery{OrderBy: c.DefaultQuery("order_by", "name"), Dir: c.DefaultQuery("dir", "f"),
		UserID: c.Query("user_id"), Name: c.Query("name")}
	var ok bool
	if q.From, ok = queryInt(c, "from", 0); !ok {
		return
	}
	if q.Limit, ok = queryInt(c, "limit", 100); !ok {
		return
	}
	if _, ok = queryBool(c, "guests", true); !ok { // this server has no guest accounts
		return
	}
	if q.Deactivated, ok = queryBool(c, "deactivated", false); !ok {
		return
	}
	if _, given := c.GetQuery("admins"); given {
		admins, ok := queryBool(c, "admins", false)
		if !ok {
			return
		}
		q.Admins = &admins
	}
	page, err := a.ListUsers(c.Request.Context(), q)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, page)
}

// UserQuery selects and orders the users ListUsers lists.
type UserQuery struct {
	From, Limit int
	// UserID and Name are substrings (any case) of the user ID, and of the
	// user ID or display name.
	UserID, Name string
	// Deactivated lists deactivated users too.
	Deactivated bool
	// Admins, when set, lists only admins (true) or only non-admins.
	Admins *bool
	// OrderBy is one of Synapse's order_by values ("" = name); Dir "f" or "b".
	OrderBy, Dir string
}

// UserPage is one page of users, as GET /_synapse/admin/v2/users answers.
type UserPage struct {
	Users     []*UserInfo `json:"users"`
	Total     int         `json:"total"`
	NextToken string      `json:"next_token,omitempty"`
}

// ListUsers lists this server's accounts (the HTTP API and the CLI).
func (a *API) ListUsers(ctx context.Context, q UserQuery) (*UserPage, error) {
	orderBy := cmp.Or(q.OrderBy, "name")
	switch orderBy {
	case "name", "admin", "deactivated", "creation_ts", "displayname", "avatar_url", "user_type", "is_guest", "shadow_banned", "locked":
	default:
		return nil, types.InvalidParam("Unknown value for order_by: %s", orderBy)
	}
	dir := cmp.Or(q.Dir, "f")
	if dir != "f" && dir != "b" {
		return nil, types.InvalidParam("Unknown direction: %s", dir)
	}
	if q.From < 0 || q.Limit < 0 {
		return nil, types.InvalidParam("from and limit must be non-negative")
	}
	userFilter := strings.ToLower(q.UserID)
	nameFilter := strings.ToLower(q.Name)
	accounts, err := a.users.ListAccounts(ctx)
	if err != nil {
		return nil, err
	}
	var list []*UserInfo
	for _, acc := range accounts {
		if (acc.Deactivated && !q.Deactivated) || (q.Admins != nil && acc.IsAdmin != *q.Admins) {
			continue
		}
		if userFilter != "" && !strings.Contains(strings.ToLower(acc.UserID.String()), userFilter) {
			continue
		}
		u, err := a.describe(ctx, acc)
		if err != nil {
			return nil, err
		}
		if nameFilter != "" && !strings.Contains(strings.ToLower(acc.UserID.String()), nameFilter) &&
			(u.DisplayName == nil || !strings.Contains(strings.ToLower(*u.DisplayName), nameFilter)) {
			continue
		}
		list = append(list, u)
	}
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	b2i := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	slices.SortStableFunc(list, func(x, y *UserInfo) int {
		var r int
		switch orderBy {
		case "admin":
			r = cmp.Compare(b2i(x.Admin), b2i(y.Admin))
		case "deactivated":
			r = cmp.Compare(b2i(x.Deactivated), b2i(y.Deactivated))
		case "creation_ts":
			r = cmp.Compare(x.CreationTS, y.CreationTS)
		case "displayname":
			r = cmp.Compare(str(x.DisplayName), str(y.DisplayName))
		case "avatar_url":
			r = cmp.Compare(str(x.AvatarURL), str(y.AvatarURL))
		case "user_type":
			r = cmp.Compare(str(x.UserType), str(y.UserType))
		case "locked":
			r = cmp.Compare(b2i(x.Locked), b2i(y.Locked))
		}
		r = cmp.Or(r, cmp.Compare(x.Name, y.Name))
		if dir == "b" {
			r = -r
		}
		return r
	})
	total := len(list)
	end := total
	if q.Limit < total-q.From { // no overflow with a huge limit
		end = q.From + q.Limit
	}
	page := &UserPage{Users: list[min(q.From, total):max(end, min(q.From, total))], Total: total}
	if page.Users == nil {
		page.Users = []*UserInfo{}
	}
	if end < total {
		page.NextToken = strconv.Itoa(end)
	}
	return page, nil
}

// GET /_synapse/admin/v2/users/{userId}
func (a *API) getUser(c *gin.Context) {
	userID, ok := a.localUser(c)
	if !ok {
		return
	}
	acc, err := a.users.GetAccount(c.Request.Context(), userID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	u, err := a.describe(c.Request.Context(), acc)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	u.CreationTS /= 1000 // seconds here, as Synapse
	httpx.OK(c, u)
}

// putUserBody is PUT /_synapse/admin/v2/users/{userId}'s body.
type putUserBody struct {
	Password      *string          `json:"password"`
	LogoutDevices *bool            `json:"logout_devices"`
	DisplayName   *string          `json:"displayname"`
	AvatarURL     *string          `json:"avatar_url"`
	Admin         *bool            `json:"admin"`
	Deactivated   *bool            `json:"deactivated"`
	Locked        *bool            `json:"locked"`
	UserType      *string          `json:"user_type"`
	ThreePIDs     *json.RawMessage `json:"threepids"`    // accepted, ignored: no third-party IDs here
	ExternalIDs   *json.RawMessage `json:"external_ids"` // accepted, ignored: no SSO mappings to edit
}

// PUT /_synapse/admin/v2/users/{userId}: create (201) or modify (200).
func (a *API) putUser(c *gin.Context) {
	ctx := c.Request.Context()
	userID, ok := a.localUser(c)
	if !ok {
		return
	}
	var body putUserBody
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	caller := httpx.PrincipalOf(c).UserID
	status := http.StatusOK
	acc, err := a.users.GetAccount(ctx, userID)
	if me, ok := types.AsError(err); err != nil && (!ok || me.Code != types.CodeNotFound) {
		httpx.Fail(c, err)
		return
	} else if err != nil {
		// A new account.
		password, userType := "", ""
		if body.Password != nil {
			password = *body.Password
		}
		if body.UserType != nil {
			userType = *body.UserType
		}
		if err := a.users.AdminCreateUser(ctx, userID, password, body.Admin != nil && *body.Admin, userType); err != nil {
			httpx.Fail(c, err)
			return
		}
		a.audit(c, "create user", "user", userID)
		status = http.StatusCreated
		body.Password, body.Admin, body.UserType = nil, nil, nil
		if acc, err = a.users.GetAccount(ctx, userID); err != nil {
			httpx.Fail(c, err)
			return
		}
	} else if body.UserType != nil && *body.UserType != acc.UserType {
		httpx.Fail(c, types.InvalidParam("Changing the user type of an existing account is not supported"))
		return
	}
	if body.Deactivated != nil && !*body.Deactivated && acc.Deactivated {
		httpx.Fail(c, types.InvalidParam("Reactivating a deactivated account is not supported"))
		return
	}
	if body.Password != nil {
		logout := body.LogoutDevices == nil || *body.LogoutDevices
		if err := a.users.AdminSetPassword(ctx, userID, *body.Password, logout); err != nil {
			httpx.Fail(c, err)
			return
		}
		a.audit(c, "set password", "user", userID)
	}
	profileChanged := false
	for key, v := range map[string]*string{"displayname": body.DisplayName, "avatar_url": body.AvatarURL} {
		if v == nil {
			continue
		}
		var value any = *v
		if *v == "" {
			value = nil
		}
		if err := a.users.AdminSetProfileField(ctx, userID, key, value); err != nil {
			httpx.Fail(c, err)
			return
		}
		profileChanged = true
	}
	if profileChanged && a.rooms != nil {
		// A room that refuses the new member event keeps the old one.
		_ = a.rooms.ProfileChanged(ctx, userID)
	}
	if body.Admin != nil && *body.Admin != acc.IsAdmin {
		if userID == caller && !*body.Admin {
			httpx.Fail(c, types.InvalidParam("You may not demote yourself."))
			return
		}
		if err := a.users.AdminSetAdmin(ctx, userID, *body.Admin); err != nil {
			httpx.Fail(c, err)
			return
		}
		a.audit(c, "set admin", "user", userID, "admin", *body.Admin)
	}
	if body.Locked != nil {
		if err := a.users.Restrict(ctx, caller, userID, users.Lock, *body.Locked); err != nil {
			httpx.Fail(c, err)
			return
		}
		a.audit(c, "lock", "user", userID, "locked", *body.Locked)
	}
	if body.Deactivated != nil && *body.Deactivated && !acc.Deactivated {
		if err := a.users.Deactivate(ctx, userID, false); err != nil {
			httpx.Fail(c, err)
			return
		}
		a.audit(c, "deactivate", "user", userID)
	}
	acc, err = a.users.GetAccount(ctx, userID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	u, err := a.describe(ctx, acc)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	u.CreationTS /= 1000
	c.JSON(status, u)
}

// POST /_synapse/admin/v1/deactivate/{userId}
func (a *API) deactivate(c *gin.Context) {
	userID, ok := a.localUser(c)
	if !ok {
		return
	}
	var body struct {
		Erase bool `json:"erase"`
	}
	if err := httpx.DecodeOptionalJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if err := a.users.Deactivate(c.Request.Context(), userID, body.Erase); err != nil {
		httpx.Fail(c, err)
		return
	}
	a.audit(c, "deactivate", "user", userID, "erase", body.Erase)
	httpx.OK(c, gin.H{"id_server_unbind_result": "success"})
}

// POST /_synapse/admin/v1/reset_password/{userId}
func (a *API) resetPassword(c *gin.Context) {
	userID, ok := a.localUser(c)
	if !ok {
		return
	}
	var body struct {
		NewPassword   *string `json:"new_password"`
		LogoutDevices *bool   `json:"logout_devices"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.NewPassword == nil {
		httpx.Fail(c, types.MissingParam("Missing param new_password"))
		return
	}
	logout := body.LogoutDevices == nil || *body.LogoutDevices
	if err := a.users.AdminSetPassword(c.Request.Context(), userID, *body.NewPassword, logout); err != nil {
		httpx.Fail(c, err)
		return
	}
	a.audit(c, "reset password", "user", userID)
	httpx.OK(c, httpx.Empty)
}

// GET /_synapse/admin/v1/users/{userId}/admin
func (a *API) getAdmin(c *gin.Context) {
	userID, ok := a.localUser(c)
	if !ok {
		return
	}
	acc, err := a.users.GetAccount(c.Request.Context(), userID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"admin": acc.IsAdmin})
}

// PUT /_synapse/admin/v1/users/{userId}/admin
func (a *API) putAdmin(c *gin.Context) {
	userID, ok := a.localUser(c)
	if !ok {
		return
	}
	var body struct {
		Admin *bool `json:"admin"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.Admin == nil {
		httpx.Fail(c, types.MissingParam("Missing param admin"))
		return
	}
	if userID == httpx.PrincipalOf(c).UserID && !*body.Admin {
		httpx.Fail(c, types.InvalidParam("You may not demote yourself."))
		return
	}
	if err := a.users.AdminSetAdmin(c.Request.Context(), userID, *body.Admin); err != nil {
		httpx.Fail(c, err)
		return
	}
	a.audit(c, "set admin", "user", userID, "admin", *body.Admin)
	httpx.OK(c, httpx.Empty)
}

// GET /_synapse/admin/v1/whois/{userId}
func (a *API) whois(c *gin.Context) {
	userID, ok := a.localUser(c)
	if !ok {
		return
	}
	devices, err := a.users.ListDevices(c.Request.Context(), userID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := map[string]any{}
	for _, d := range devices {
		conns := []gin.H{}
		if d.LastSeenTS > 0 {
			conns = append(conns, gin.H{"ip": d.LastSeenIP, "last_seen": d.LastSeenTS, "user_agent": ""})
		}
		out[string(d.DeviceID)] = gin.H{"sessions": []gin.H{{"connections": conns}}}
	}
	httpx.OK(c, gin.H{"user_id": userID, "devices": out})
}

// deviceJSON is a device as the admin API shows it.
func deviceJSON(d *users.Device) gin.H {
	return gin.H{"device_id": d.DeviceID, "display_name": nonEmpty(d.DisplayName), "last_seen_ip": nonEmpty(d.LastSeenIP),
		"last_seen_ts": d.LastSeenTS, "last_seen_user_agent": nil, "user_id": d.UserID}
}

// GET /_synapse/admin/v2/users/{userId}/devices
func (a *API) listDevices(c *gin.Context) {
	userID, ok := a.localUser(c)
	if !ok {
		return
	}
	if _, err := a.users.GetAccount(c.Request.Context(), userID); err != nil {
		httpx.Fail(c, err)
		return
	}
	devices, err := a.users.ListDevices(c.Request.Context(), userID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	out := make([]gin.H, 0, len(devices))
	for _, d := range devices {
		out = append(out, deviceJSON(d))
	}
	httpx.OK(c, gin.H{"devices": out, "total": len(out)})
}

// GET /_synapse/admin/v2/users/{userId}/devices/{deviceId}
func (a *API) getDevice(c *gin.Context) {
	userID, ok := a.localUser(c)
	if !ok {
		return
	}
	d, err := a.users.GetDevice(c.Request.Context(), userID, id.DeviceID(c.Param("deviceId")))
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, deviceJSON(d))
}

// PUT /_synapse/admin/v2/users/{userId}/devices/{deviceId}
func (a *API) putDevice(c *gin.Context) {
	userID, ok := a.localUser(c)
	if !ok {
		return
	}
	var body struct {
		DisplayName *string `json:"display_name"`
	}
	if err := httpx.DecodeOptionalJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.DisplayName != nil {
		if err := a.users.RenameDevice(c.Request.Context(), userID, id.DeviceID(c.Param("deviceId")), *body.DisplayName); err != nil {
			httpx.Fail(c, err)
			return
		}
	}
	httpx.OK(c, httpx.Empty)
}

// DELETE /_synapse/admin/v2/users/{userId}/devices/{deviceId}
func (a *API) deleteDevice(c *gin.Context) {
	userID, ok := a.localUser(c)
	if !ok {
		return
	}
	deviceID := id.DeviceID(c.Param("deviceId"))
	if err := a.users.DeleteDevices(c.Request.Context(), userID, []id.DeviceID{deviceID}); err != nil {
		httpx.Fail(c, err)
		return
	}
	a.audit(c, "delete device", "user", userID, "device", deviceID)
	httpx.OK(c, httpx.Empty)
}

// POST /_synapse/admin/v2/users/{userId}/delete_devices
func (a *API) deleteDevices(c *gin.Context) {
	userID, ok := a.localUser(c)
	if !ok {
		return
	}
	var body struct {
		Devices []id.DeviceID `json:"devices"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.Devices == nil {
		httpx.Fail(c, types.MissingParam("Missing param devices"))
		return
	}
	if err := a.users.DeleteDevices(c.Request.Context(), userID, body.Devices); err != nil {
		httpx.Fail(c, err)
		return
	}
	a.audit(c, "delete devices", "user", userID, "count", len(body.Devices))
	httpx.OK(c, httpx.Empty)
}

// GET /_synapse/admin/v1/users/{userId}/joined_rooms
func (a *API) joinedRooms(c *gin.Context) {
	userID, ok := a.localUser(c)
	if !ok {
		return
	}
	if a.rooms == nil {
		httpx.Fail(c, types.NewError(http.StatusNotFound, types.CodeUnrecognized, "Unrecognized request"))
		return
	}
	ids, err := a.rooms.JoinedRooms(c.Request.Context(), userID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	if ids == nil {
		ids = []id.RoomID{}
	}
	httpx.OK(c, gin.H{"joined_rooms": ids, "total": len(ids)})
}

// POST /_synapse/admin/v1/users/{userId}/login
func (a *API) loginAs(c *gin.Context) {
	userID, ok := a.localUser(c)
	if !ok {
		return
	}
	var body struct {
		ValidUntilMS *int64 `json:"valid_until_ms"`
	}
	if err := httpx.DecodeOptionalJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.ValidUntilMS != nil {
		httpx.Fail(c, types.InvalidParam("valid_until_ms is not supported: the session lasts until it is logged out"))
		return
	}
	sess, err := a.users.AdminLogin(c.Request.Context(), httpx.PrincipalOf(c).UserID, userID)
	if err != nil {
		httpx.Fail(c, err)
		return
	}
	a.audit(c, "login as user", "user", userID, "device", sess.DeviceID)
	httpx.OK(c, gin.H{"access_token": sess.AccessToken})
}

// GET /_synapse/admin/v1/username_available?username=
func (a *API) usernameAvailable(c *gin.Context) {
	if err := a.users.Available(c.Request.Context(), c.Query("username")); err != nil {
		httpx.Fail(c, err)
		return
	}
	httpx.OK(c, gin.H{"available": true})
}

// PUT /_synapse/admin/v1/suspend/{userId} {"suspend": bool}
func (a *API) suspend(c *gin.Context) {
	userID, ok := a.localUser(c)
	if !ok {
		return
	}
	var body struct {
		Suspend *bool `json:"suspend"`
	}
	if err := httpx.DecodeJSON(c, &body); err != nil {
		httpx.Fail(c, err)
		return
	}
	if body.Suspend == nil {
		httpx.Fail(c, types.MissingParam("Missing param suspend"))
		return
	}
	if err := a.users.Restrict(c.Request.Context(), httpx.PrincipalOf(c).UserID, userID, users.Suspension, *body.Suspend); err != nil {
		httpx.Fail(c, err)
		return
	}
	a.audit(c, "suspend", "user", userID, "suspended", *body.Suspend)
	httpx.OK(c, gin.H{"user_" + userID.String() + "_suspended": *body.Suspend})
}

// GET /_synapse/admin/v1/server_version
func (a *API) serverVersion(c *gin.Context) {
	httpx.OK(c, gin.H{"server_version": a.opts.Version})
}
