package users

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// RemoteProfiles is what GetProfile needs from federation
// (federation/outbound implements it; cmd hands it over): a profile from
// the user's own server, types.NotFound when that server has none.
type RemoteProfiles interface {
	RemoteProfile(ctx context.Context, userID id.UserID) (map[string]json.RawMessage, error)
}

// Options configure the service; cmd/tributary fills them from the config.
type Options struct {
	ServerName          string
	RegistrationEnabled bool
	RequiresToken       bool
	SharedSecret        string
	PasswordMinLength   int
	AccessTokenLifetime time.Duration
	LoginTokenLifetime  time.Duration
	UIASessionLifetime  time.Duration
	Logger              *slog.Logger
	// FailedPasswords limits wrong passwords in UIA stages per account; nil: no limit.
	FailedPasswords Limiter
	// ExclusiveUser names the appservice that claims a user ID exclusively
	// ("" for none); others cannot register it (M_EXCLUSIVE).
	ExclusiveUser func(userID id.UserID) string
	// AppServiceOwns reports whether a user ID is in an appservice's namespace.
	AppServiceOwns func(asID string, userID id.UserID) bool
	// QueryUser asks appservices about an unknown user of their namespace;
	// true if one created it (nil: none).
	QueryUser func(ctx context.Context, userID id.UserID) bool
	// RemoteProfiles asks other servers for their users' profiles (nil:
	// other servers' users have none here).
	RemoteProfiles RemoteProfiles
	// OnDevicesDeleted is told of devices deleted (their end-to-end keys
	// go with them: core/keys), after the deletion is committed.
	OnDevicesDeleted func(ctx context.Context, userID id.UserID, deviceIDs []id.DeviceID)
	// Rooms makes deactivated users leave their rooms (nil: they stay).
	Rooms RoomLeaver
	// Notifier carries account data writes (the account data stream, which
	// wakes /sync) and account changes between processes (restrictions
	// cached in memory follow it); nil: nobody is told.
	Notifier stream.Notifier
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
}

// RoomLeaver is what accounts need of rooms (core/rooms.Service).
type RoomLeaver interface {
	// LeaveAll makes the user leave (or refuse) every room they are joined,
	// invited to or knocking on.
	LeaveAll(ctx context.Context, user id.UserID) error
}

// Limiter is a per-key rate limit (core/httpx.Limiter).
type Limiter interface {
	Allow(key string) (bool, int64)
	Check(key string) (bool, int64)
}

// Service implements the account operations.
type Service struct {
	store storage.Store
	opts  Options
	log   *slog.Logger

	nonces   sync.Map // shared-secret registration nonce → expiry (time.Time)
	lastSeen sync.Map // "user|device" → time.Time of the last stored update (pruned by housekeeping)
	// restrictions are the accounts' flags (see moderation.go), until a
	// published account change forgets them; restrictMu orders Restrict calls.
	restrictions stream.Cache[id.UserID, restrictions]
	restrictMu   sync.Mutex
	// tokens are the access tokens in use (see tokencache.go).
	tokens tokenCache

	stop chan struct{}
	done chan struct{}
}

// New builds the service; Start runs its housekeeping.
func New(store storage.Store, opts Options) (*Service, error) {
	if store == nil {
		return nil, errors.New("users: nil store")
	}
	if opts.ServerName == "" {
		return nil, errors.New("users: empty server name")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ExclusiveUser == nil {
		opts.ExclusiveUser = func(id.UserID) string { return "" }
	}
	if opts.AppServiceOwns == nil {
		opts.AppServiceOwns = func(string, id.UserID) bool { return false }
	}
	if opts.OnDevicesDeleted == nil {
		opts.OnDevicesDeleted = func(context.Context, id.UserID, []id.DeviceID) {}
	}
	s := &Service{store: store, opts: opts, log: opts.Logger}
	if opts.Notifier != nil {
		opts.Notifier.Observe(s.accountsChanged)
	}
	return s, nil
}

// Start removes expired tokens and UIA sessions now and every ten minutes.
func (s *Service) Start(ctx context.Context) {
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(10 * time.Minute)
		defer t.Stop()
		for {
			s.housekeeping(ctx)
			select {
			case <-t.C:
			case <-s.stop:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
}

// Stop ends the housekeeping started by Start.
func (s *Service) Stop() {
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop = nil
	}
}

func (s *Service) housekeeping(ctx context.Context) {
	now := s.nowMS()
	if err := s.store.DeleteExpiredTokens(ctx, now); err != nil {
		s.log.Warn("deleting expired tokens", "err", err)
	}
	if err := s.store.DeleteUIASessionsBefore(ctx, now-s.opts.UIASessionLifetime.Milliseconds()); err != nil {
		s.log.Warn("deleting old UIA sessions", "err", err)
	}
	s.tokens.sweep()
	s.nonces.Range(func(k, v any) bool {
		if s.opts.Now().After(v.(time.Time)) {
			s.nonces.Delete(k)
		}
		return true
	})
	// A device's last-seen time matters for lastSeenInterval after it was
	// stored: the map holds only the devices used that recently.
	s.lastSeen.Range(func(k, v any) bool {
		if s.opts.Now().Sub(v.(time.Time)) >= lastSeenInterval {
			s.lastSeen.Delete(k)
		}
		return true
	})
}

// ServerName is the domain of local user IDs.
func (s *Service) ServerName() string { return s.opts.ServerName }

func (s *Service) nowMS() int64 { return s.opts.Now().UnixMilli() }

// randomString returns n random characters from alphabet.
func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// newSecret returns a token with 256 random bits and a recognisable prefix.
func newSecret(prefix string) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// hashToken is how tokens are stored: a database leak gives no usable token.
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func newDeviceID() id.DeviceID { return id.DeviceID(randomString(10, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")) }

// localpartRE is the user ID grammar (spec appendices, "User Identifiers").
var localpartRE = regexp.MustCompile(`^[a-z0-9._=\-/+]+$`)

// UserID makes the full user ID of a local localpart.
func (s *Service) UserID(localpart string) id.UserID {
	return id.NewUserID(localpart, s.opts.ServerName)
}

// ValidateLocalpart lowercases a requested username and checks it.
func (s *Service) ValidateLocalpart(username string) (string, error) {
	local := strings.ToLower(strings.TrimPrefix(username, "@"))
	if i := strings.IndexByte(local, ':'); i >= 0 {
		if local[i+1:] != strings.ToLower(s.opts.ServerName) {
			return "", types.NewError(http.StatusBadRequest, types.CodeInvalidUsername, "User ID is not on this server")
		}
		local = local[:i]
	}
	if local == "" || !localpartRE.MatchString(local) {
		return "", types.NewError(http.StatusBadRequest, types.CodeInvalidUsername,
			"User ID may contain only a-z, 0-9, '.', '_', '=', '-', '/' and '+'")
	}
	if len(s.UserID(local)) > 255 {
		return "", types.NewError(http.StatusBadRequest, types.CodeInvalidUsername, "User ID is longer than 255 characters")
	}
	return local, nil
}

// ResolveUser turns a login identifier (localpart or full user ID) into a
// local user ID, or "" if it cannot name a local user.
func (s *Service) ResolveUser(user string) id.UserID {
	local, err := s.ValidateLocalpart(user)
	if err != nil {
		return ""
	}
	return s.UserID(local)
}

func (s *Service) checkNewPassword(pw string) error {
	if len(pw) > 512 {
		return types.BadJSON("Password is longer than 512 bytes")
	}
	if len([]rune(pw)) < s.opts.PasswordMinLength {
		return types.NewError(http.StatusBadRequest, types.CodeWeakPassword,
			"Password must be at least %d characters", s.opts.PasswordMinLength)
	}
	return nil
}

// internal wraps an unexpected storage error; the edge turns it into a 500
// without showing it to the client.
func internal(what string, err error) error { return fmt.Errorf("%s: %w", what, err) }
