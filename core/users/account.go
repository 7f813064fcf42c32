package users

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// Account is a local user as the rest of core sees it.
type Account = storage.Account

// Device is a user's device as the rest of core sees it.
type Device = storage.Device

// GetAccount returns a local account.
func (s *Service) GetAccount(ctx context.Context, userID id.UserID) (*Account, error) {
	acc, err := s.store.GetAccount(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, types.NotFound("No such user")
	} else if err != nil {
		return nil, internal("get account", err)
	}
	return acc, nil
}

// ListAccounts returns every local account (the CLI's "user list").
func (s *Service) ListAccounts(ctx context.Context) ([]*Account, error) {
	return s.store.ListAccounts(ctx)
}

// CountAccounts is the number of local accounts.
func (s *Service) CountAccounts(ctx context.Context) (int64, error) {
	return s.store.CountAccounts(ctx)
}

// IsAdmin reports whether the user is a server admin.
func (s *Service) IsAdmin(ctx context.Context, userID id.UserID) (bool, error) {
	acc, err := s.store.GetAccount(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, internal("get account", err)
	}
	return acc.IsAdmin && !acc.Deactivated, nil
}

// ChangePassword sets a new password; with logoutDevices every other device
// of the caller is logged out.
func (s *Service) ChangePassword(ctx context.Context, p *types.Principal, newPassword string, logoutDevices bool) error {
	if newPassword == "" {
		return types.MissingParam("new_password is required")
	}
	if err := s.checkNewPassword(newPassword); err != nil {
		return err
	}
	hash, err := HashPassword(newPassword)
	if err != nil {
		return internal("hash password", err)
	}
	var deleted []id.DeviceID
	err = s.store.WithTx(ctx, func(ctx context.Context) error {
		if err := s.store.SetPasswordHash(ctx, p.UserID, hash); err != nil {
			return err
		}
		if logoutDevices {
			var err error
			if deleted, err = s.deviceIDs(ctx, p.UserID, p.DeviceID); err != nil {
				return err
			}
			return s.store.DeleteAllDevices(ctx, p.UserID, p.DeviceID)
		}
		return nil
	})
	if err != nil {
		return internal("change password", err)
	}
	if logoutDevices {
		s.tokensChanged(p.UserID)
	}
	s.opts.OnDevicesDeleted(ctx, p.UserID, deleted)
	return nil
}

// Deactivate deactivates an account: no password, no devices, no tokens;
// the user leaves every room (and refuses pending invites); with erase, the
// profile goes too. The user ID stays taken. HTTP, the admin API and the CLI
// all come here, so they behave alike.
func (s *Service) Deactivate(ctx context.Context, userID id.UserID, erase bool) error {
	if err := s.deactivateAccount(ctx, userID, erase); err != nil {
		return err
	}
	if s.opts.Rooms == nil {
		return nil
	}
	// The account is gone already; rooms that refuse the leave are logged.
	if err := s.opts.Rooms.LeaveAll(ctx, userID); err != nil {
		s.log.WarnContext(ctx, "leaving rooms after deactivation", "user", userID, "err", err)
	}
	return nil
}

func (s *Service) deactivateAccount(ctx context.Context, userID id.UserID, erase bool) error {
	var deleted []id.DeviceID
	err := s.store.WithTx(ctx, func(ctx context.Context) error {
		if err := s.store.DeactivateAccount(ctx, userID); err != nil {
			return err
		}
		var err error
		if deleted, err = s.deviceIDs(ctx, userID, ""); err != nil {
			return err
		}
		if err := s.store.DeleteAllDevices(ctx, userID, ""); err != nil {
			return err
		}
		if erase {
			return s.store.DeleteProfile(ctx, userID)
		}
		return nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return types.NotFound("No such user")
	} else if err != nil {
		return internal("deactivate", err)
	}
	s.tokensChanged(userID)
	s.opts.OnDevicesDeleted(ctx, userID, deleted)
	s.publishAccount(userID)
	return nil
}

// DeactivateByName deactivates a local user given a localpart or user ID (the CLI).
func (s *Service) DeactivateByName(ctx context.Context, name string) (id.UserID, error) {
	userID := s.ResolveUser(name)
	if userID == "" {
		return "", types.NotFound("No such user")
	}
	return userID, s.Deactivate(ctx, userID, false)
}

// ListDevices returns the user's devices.
func (s *Service) ListDevices(ctx context.Context, userID id.UserID) ([]*Device, error) {
	d, err := s.store.ListDevices(ctx, userID)
	if err != nil {
		return nil, internal("list devices", err)
	}
	return d, nil
}

// GetDevice returns one device of the user.
func (s *Service) GetDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID) (*Device, error) {
	d, err := s.store.GetDevice(ctx, userID, deviceID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, types.NotFound("No such device")
	} else if err != nil {
		return nil, internal("get device", err)
	}
	return d, nil
}

// RenameDevice sets a device's display name.
func (s *Service) RenameDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID, name string) error {
	if len(name) > 1000 {
		return types.InvalidParam("display_name is too long")
	}
	err := s.store.SetDeviceDisplayName(ctx, userID, deviceID, name)
	if errors.Is(err, storage.ErrNotFound) {
		return types.NotFound("No such device")
	} else if err != nil {
		return internal("rename device", err)
	}
	return nil
}

// PutAppServiceDevice is PUT /devices/{deviceId} from an appservice
// (application service API, "Device management"): it creates the device of
// one of its users, without an access token, or renames an existing one
// when a name is given. It reports whether it created the device.
func (s *Service) PutAppServiceDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID, name *string) (bool, error) {
	if deviceID == "" {
		return false, types.InvalidParam("The device ID must not be empty")
	}
	if err := validateDeviceID(deviceID); err != nil {
		return false, err
	}
	d := &storage.Device{UserID: userID, DeviceID: deviceID, CreatedAt: s.nowMS()}
	if name != nil {
		if len(*name) > 1000 {
			return false, types.InvalidParam("display_name is too long")
		}
		d.DisplayName = *name
	}
	created, err := s.store.CreateDevice(ctx, d)
	if err != nil {
		return false, internal("create device", err)
	}
	if created || name == nil {
		return created, nil
	}
	return false, s.RenameDevice(ctx, userID, deviceID, *name)
}

// DeleteDevices deletes devices (and their tokens); unknown IDs are ignored.
func (s *Service) DeleteDevices(ctx context.Context, userID id.UserID, deviceIDs []id.DeviceID) error {
	if err := s.store.DeleteDevices(ctx, userID, deviceIDs); err != nil {
		return internal("delete devices", err)
	}
	s.tokensChanged(userID)
	s.opts.OnDevicesDeleted(ctx, userID, deviceIDs)
	return nil
}

// deviceIDs lists the IDs of the user's devices but except ("" for none).
func (s *Service) deviceIDs(ctx context.Context, userID id.UserID, except id.DeviceID) ([]id.DeviceID, error) {
	devs, err := s.store.ListDevices(ctx, userID)
	if err != nil {
		return nil, err
	}
	var out []id.DeviceID
	for _, d := range devs {
		if d.DeviceID != except {
			out = append(out, d.DeviceID)
		}
	}
	return out, nil
}

// maxProfileBytes bounds a whole profile (spec: 64 KiB, M_PROFILE_TOO_LARGE).
const maxProfileBytes = 65536

// maxAvatarURLBytes bounds avatar_url as Synapse does (MAX_AVATAR_URL_LEN).
const maxAvatarURLBytes = 1000

// GetProfile returns the profile of a user, local or (through
// Options.RemoteProfiles) of another server; M_NOT_FOUND if there is none.
func (s *Service) GetProfile(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, error) {
	if server := userID.Homeserver(); server != "" && server != s.opts.ServerName && s.opts.RemoteProfiles != nil {
		return s.opts.RemoteProfiles.RemoteProfile(ctx, userID)
	}
	if _, err := s.GetAccount(ctx, userID); err != nil {
		// An appservice may create users of its namespace when asked.
		if s.opts.QueryUser == nil || !s.opts.QueryUser(ctx, userID) {
			return nil, types.NotFound("Profile not found")
		}
		if _, err := s.GetAccount(ctx, userID); err != nil {
			return nil, types.NotFound("Profile not found")
		}
	}
	p, err := s.store.GetProfile(ctx, userID)
	if err != nil {
		return nil, internal("get profile", err)
	}
	return p, nil
}

// SetProfileField sets (value non-nil) or deletes (nil) one field of the
// caller's own profile. displayname and avatar_url must be strings.
func (s *Service) SetProfileField(ctx context.Context, caller, userID id.UserID, key string, value any) error {
	if caller != userID {
		return types.Forbidden("You cannot change the profile of another user")
	}
	// Account moderation holds every caller alike (HTTP, the plugin host).
	if r, err := s.restrictionsOf(ctx, caller); err != nil {
		return err
	} else if r.locked {
		return types.ErrLocked
	} else if r.suspended {
		return types.ErrSuspended
	}
	return s.setProfileField(ctx, userID, key, value)
}

// setProfileField checks and stores one profile field (the caller's right
// to change it checked already).
func (s *Service) setProfileField(ctx context.Context, userID id.UserID, key string, value any) error {
	if key == "" || len(key) > 255 {
		return types.InvalidParam("Profile field names are 1 to 255 bytes")
	}
	var raw json.RawMessage
	if value != nil {
		switch key {
		case "displayname", "avatar_url":
			str, ok := value.(string)
			if !ok {
				return types.BadJSON("%s must be a string", key)
			}
			if key == "displayname" && len(str) > 256 {
				return types.InvalidParam("displayname is longer than 256 bytes")
			}
			// Any string is an avatar URL, as Synapse takes it: the spec
			// does not say it must be mxc://, and bridges set others.
			// Synapse's length limit keeps member events small.
			if key == "avatar_url" && len(str) > maxAvatarURLBytes {
				return types.InvalidParam("avatar_url is longer than %d bytes", maxAvatarURLBytes)
			}
		}
		var err error
		if raw, err = json.Marshal(value); err != nil {
			return types.BadJSON("invalid value")
		}
	}
	if _, err := s.GetAccount(ctx, userID); err != nil {
		return err
	}
	return s.store.WithTx(ctx, func(ctx context.Context) error {
		prof, err := s.store.GetProfile(ctx, userID)
		if err != nil {
			return internal("get profile", err)
		}
		size := len(key) + len(raw)
		for k, v := range prof {
			if k != key {
				size += len(k) + len(v)
			}
		}
		if size > maxProfileBytes {
			return types.NewError(http.StatusBadRequest, "M_PROFILE_TOO_LARGE", "Profile would exceed 64 KiB")
		}
		if err := s.store.SetProfileField(ctx, userID, key, raw); err != nil {
			return internal("set profile", err)
		}
		return nil
	})
}

// accountDataWritten publishes an account data write on the account data
// stream (which wakes the user's /sync).
func (s *Service) accountDataWritten(userID id.UserID, pos int64) {
	if s.opts.Notifier != nil {
		s.opts.Notifier.Publish(stream.Change{Stream: stream.AccountData, Pos: pos, Users: []id.UserID{userID}})
	}
}

// SetAccountData stores account data for the caller, globally (roomID "") or for a room.
func (s *Service) SetAccountData(ctx context.Context, caller, userID id.UserID, roomID id.RoomID, dataType string, content json.RawMessage) error {
	if caller != userID {
		return types.Forbidden("You cannot set account data for another user")
	}
	if err := checkAccountDataKey(roomID, dataType); err != nil {
		return err
	}
	if dataType == "m.fully_read" || dataType == "m.push_rules" {
		return types.NewError(http.StatusMethodNotAllowed, types.CodeBadJSON, "%s cannot be set through this API", dataType)
	}
	if len(content) == 0 || content[0] != '{' {
		return types.BadJSON("Account data content must be a JSON object")
	}
	pos, err := s.store.PutAccountData(ctx, userID, roomID, dataType, content)
	if err != nil {
		return internal("put account data", err)
	}
	s.accountDataWritten(userID, pos)
	return nil
}

// DeleteAccountData deletes account data (MSC3391): it is stored as an
// empty object, which sync delivers so that other devices drop it too, and
// reads answer 404 from then on, as for data never set.
func (s *Service) DeleteAccountData(ctx context.Context, caller, userID id.UserID, roomID id.RoomID, dataType string) error {
	return s.SetAccountData(ctx, caller, userID, roomID, dataType, json.RawMessage(`{}`))
}

// GetAccountData returns the caller's account data of one type.
func (s *Service) GetAccountData(ctx context.Context, caller, userID id.UserID, roomID id.RoomID, dataType string) (json.RawMessage, error) {
	if caller != userID {
		return nil, types.Forbidden("You cannot read account data of another user")
	}
	if err := checkAccountDataKey(roomID, dataType); err != nil {
		return nil, err
	}
	e, err := s.store.GetAccountData(ctx, userID, roomID, dataType)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && string(e.Content) == "{}") {
		// An empty object is deleted data (MSC3391).
		return nil, types.NotFound("Account data not found")
	} else if err != nil {
		return nil, internal("get account data", err)
	}
	return e.Content, nil
}

func checkAccountDataKey(roomID id.RoomID, dataType string) error {
	if dataType == "" || len(dataType) > 255 {
		return types.InvalidParam("Account data types are 1 to 255 bytes")
	}
	if roomID != "" && (!strings.HasPrefix(string(roomID), "!") || len(roomID) > 255) {
		return types.InvalidParam("Invalid room ID")
	}
	return nil
}

// Profile returns a local user's display name and avatar URL for membership
// events ("" when unset or when the user does not exist).
func (s *Service) Profile(ctx context.Context, user id.UserID) (string, string, error) {
	return ProfileReader{s.store}.Profile(ctx, user)
}

// ProfileReader reads display names and avatars for membership events
// straight from storage, so the room service needs no account service.
type ProfileReader struct {
	Store interface {
		GetProfile(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, error)
		GetProfileFields(ctx context.Context, field string, userIDs []id.UserID) (map[id.UserID]json.RawMessage, error)
	}
}

// Profile returns a local user's display name and avatar URL ("" when
// unset or when the user does not exist).
func (r ProfileReader) Profile(ctx context.Context, user id.UserID) (string, string, error) {
	prof, err := r.Store.GetProfile(ctx, user)
	if err != nil {
		return "", "", internal("get profile", err)
	}
	var name, avatar string
	_ = json.Unmarshal(prof["displayname"], &name)
	_ = json.Unmarshal(prof["avatar_url"], &avatar)
	return name, avatar, nil
}

// Profiles returns the display names and avatar URLs of many local users
// (a user is missing from a map when the field is unset), in two queries.
func (r ProfileReader) Profiles(ctx context.Context, users []id.UserID) (names, avatars map[id.UserID]string, err error) {
	read := func(field string) (map[id.UserID]string, error) {
		raw, err := r.Store.GetProfileFields(ctx, field, users)
		if err != nil {
			return nil, internal("get profiles", err)
		}
		out := make(map[id.UserID]string, len(raw))
		for u, v := range raw {
			var str string
			if json.Unmarshal(v, &str) == nil && str != "" {
				out[u] = str
			}
		}
		return out, nil
	}
	if names, err = read("displayname"); err != nil {
		return nil, nil, err
	}
	if avatars, err = read("avatar_url"); err != nil {
		return nil, nil, err
	}
	return names, avatars, nil
}

// SetFullyRead stores the m.fully_read marker of a room (read markers and
// receipts of type m.fully_read), which clients may not set as plain
// account data.
func (s *Service) SetFullyRead(ctx context.Context, userID id.UserID, roomID id.RoomID, eventID id.EventID) error {
	content, _ := json.Marshal(map[string]id.EventID{"event_id": eventID})
	pos, err := s.store.PutAccountData(ctx, userID, roomID, "m.fully_read", content)
	if err != nil {
		return internal("put fully read marker", err)
	}
	s.accountDataWritten(userID, pos)
	return nil
}
