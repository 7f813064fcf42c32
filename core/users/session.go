package users

import (
	"context"
	"errors"
	"net/http"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// Session is what login, registration and refresh hand back to the client.
type Session struct {
	UserID       id.UserID
	DeviceID     id.DeviceID
	AccessToken  string
	RefreshToken string
	ExpiresInMS  int64
}

// DeviceRequest says which device a login or registration is for.
type DeviceRequest struct {
	DeviceID    id.DeviceID // empty: a new device
	DisplayName string
	IP          string
	// WantRefresh: the client supports refresh tokens, so its access token expires.
	WantRefresh bool
}

func validateDeviceID(device id.DeviceID) error {
	if len(device) > 255 {
		return types.InvalidParam("device_id is longer than 255 bytes")
	}
	for _, r := range string(device) {
		if r < 0x21 || r > 0x7e {
			return types.InvalidParam("device_id must be printable ASCII without spaces")
		}
	}
	return nil
}

// issueSession creates or reuses the device and gives it fresh tokens. Reusing
// a device ID invalidates the tokens it had (spec: "Relationship between
// access tokens and devices").
func (s *Service) issueSession(ctx context.Context, userID id.UserID, dr DeviceRequest) (*Session, error) {
	if err := validateDeviceID(dr.DeviceID); err != nil {
		return nil, err
	}
	if len(dr.DisplayName) > 1000 {
		return nil, types.InvalidParam("initial_device_display_name is too long")
	}
	deviceID := dr.DeviceID
	if deviceID == "" {
		deviceID = newDeviceID()
	}
	now := s.nowMS()
	sess := &Session{UserID: userID, DeviceID: deviceID, AccessToken: newSecret("tra_")}
	err := s.store.WithTx(ctx, func(ctx context.Context) error {
		if err := s.store.DeleteDeviceTokens(ctx, userID, deviceID); err != nil {
			return err
		}
		if err := s.store.UpsertDevice(ctx, &storage.Device{UserID: userID, DeviceID: deviceID,
			DisplayName: dr.DisplayName, LastSeenIP: dr.IP, LastSeenTS: now, CreatedAt: now}); err != nil {
			return err
		}
		return s.createTokens(ctx, sess, dr.WantRefresh, "")
	})
	if err != nil {
		return nil, internal("issue session", err)
	}
	if dr.DeviceID != "" {
		s.tokensChanged(userID) // the device's earlier tokens are gone
	}
	return sess, nil
}

// createTokens stores sess.AccessToken and, if refresh is wanted, a refresh
// token and an expiry. prevRefresh is the refresh token being exchanged.
func (s *Service) createTokens(ctx context.Context, sess *Session, refresh bool, prevRefresh string) error {
	now := s.nowMS()
	at := &storage.AccessToken{TokenHash: hashToken(sess.AccessToken), UserID: sess.UserID, DeviceID: sess.DeviceID,
		PrevRefreshHash: prevRefresh, CreatedAt: now}
	if refresh {
		sess.RefreshToken = newSecret("trr_")
		sess.ExpiresInMS = s.opts.AccessTokenLifetime.Milliseconds()
		at.ExpiresAt = now + sess.ExpiresInMS
		at.RefreshHash = hashToken(sess.RefreshToken)
		if err := s.store.CreateRefreshToken(ctx, &storage.RefreshToken{TokenHash: at.RefreshHash,
			UserID: sess.UserID, DeviceID: sess.DeviceID, PrevHash: prevRefresh, CreatedAt: now}); err != nil {
			return err
		}
	}
	return s.store.CreateAccessToken(ctx, at)
}

var (
	errUnknownToken = types.NewError(http.StatusUnauthorized, types.CodeUnknownToken, "Unrecognised access token").
			With("soft_logout", false)
	errExpiredToken = types.NewError(http.StatusUnauthorized, types.CodeUnknownToken, "Access token has expired").
			With("soft_logout", true)
)

// Authenticate looks up an access token.
func (s *Service) Authenticate(ctx context.Context, token, ip string) (*types.Principal, error) {
	h := hashToken(token)
	at, gen, cached := s.tokens.get(h)
	if !cached {
		var err error
		at, err = s.store.GetAccessToken(ctx, h)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, errUnknownToken
		} else if err != nil {
			return nil, internal("get access token", err)
		}
		if at.PrevRefreshHash == "" { // else its first use changes it: read it again
			s.tokens.put(gen, at)
		}
	}
	if at.ExpiresAt > 0 && s.nowMS() >= at.ExpiresAt {
		return nil, errExpiredToken
	}
	if at.PrevRefreshHash != "" {
		// First use of a refreshed token: the refresh token it replaced is done.
		err := s.store.WithTx(ctx, func(ctx context.Context) error {
			if err := s.store.DeleteRefreshToken(ctx, at.PrevRefreshHash); err != nil {
				return err
			}
			return s.store.ClearPrevRefresh(ctx, h)
		})
		if err != nil {
			return nil, internal("revoke previous refresh token", err)
		}
	}
	s.touchDevice(ctx, at.UserID, at.DeviceID, ip)
	r, err := s.restrictionsOf(ctx, at.UserID)
	if err != nil {
		return nil, err
	}
	return &types.Principal{Kind: types.PrincipalUser, UserID: at.UserID, DeviceID: at.DeviceID,
		TokenHash: h, Suspended: r.suspended, Locked: r.locked, ShadowBanned: r.shadowBanned, RateLimit: r.rate}, nil
}

// lastSeenInterval is how often a device's last_seen is written at most.
const lastSeenInterval = 5 * time.Minute

// touchDevice records last_seen at most every lastSeenInterval per device,
// so that requests do not each cost a write.
func (s *Service) touchDevice(ctx context.Context, userID id.UserID, deviceID id.DeviceID, ip string) {
	key := string(userID) + "|" + string(deviceID)
	now := s.opts.Now()
	if last, ok := s.lastSeen.Load(key); ok && now.Sub(last.(time.Time)) < lastSeenInterval {
		return
	}
	s.lastSeen.Store(key, now)
	if err := s.store.SetDeviceLastSeen(ctx, userID, deviceID, ip, now.UnixMilli()); err != nil {
		s.log.Warn("recording device last seen", "err", err)
	}
}

// Refresh exchanges a refresh token for new tokens (POST /refresh). The old
// access token stops working now; the old refresh token keeps working until
// the new access or refresh token is first used.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (*Session, error) {
	h := hashToken(refreshToken)
	var sess *Session
	err := s.store.WithTx(ctx, func(ctx context.Context) error {
		rt, err := s.store.GetRefreshToken(ctx, h)
		if err != nil {
			return err
		}
		if rt.PrevHash != "" {
			if err := s.store.DeleteRefreshToken(ctx, rt.PrevHash); err != nil {
				return err
			}
		}
		if err := s.store.DeleteAccessTokensByRefresh(ctx, h); err != nil {
			return err
		}
		// A retry with the same refresh token means the client never got (or
		// lost) the tokens of the earlier exchange: they must not live on.
		if err := s.store.DeleteRefreshSuccessors(ctx, h); err != nil {
			return err
		}
		sess = &Session{UserID: rt.UserID, DeviceID: rt.DeviceID, AccessToken: newSecret("tra_")}
		return s.createTokens(ctx, sess, true, h)
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errUnknownToken
	} else if err != nil {
		return nil, internal("refresh", err)
	}
	s.tokensChanged(sess.UserID) // the exchanged access token stops working
	return sess, nil
}

// Logout deletes the caller's device and its tokens.
func (s *Service) Logout(ctx context.Context, p *types.Principal) error {
	if err := s.store.DeleteDevices(ctx, p.UserID, []id.DeviceID{p.DeviceID}); err != nil {
		return internal("logout", err)
	}
	s.tokensChanged(p.UserID)
	s.opts.OnDevicesDeleted(ctx, p.UserID, []id.DeviceID{p.DeviceID})
	return nil
}

// LogoutAll deletes every device of the caller.
func (s *Service) LogoutAll(ctx context.Context, p *types.Principal) error {
	deleted, err := s.deviceIDs(ctx, p.UserID, "")
	if err != nil {
		return internal("logout all", err)
	}
	if err := s.store.DeleteAllDevices(ctx, p.UserID, ""); err != nil {
		return internal("logout all", err)
	}
	s.tokensChanged(p.UserID)
	s.opts.OnDevicesDeleted(ctx, p.UserID, deleted)
	return nil
}
