package users

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// RegisterRequest is a parsed POST /register body.
type RegisterRequest struct {
	Kind         string // "user" or "guest"
	Username     string
	Password     string
	InhibitLogin bool
	Auth         json.RawMessage
	Device       DeviceRequest
}

// RegisterFlows are the UIA flows /register offers, or nil when
// registration is closed.
func (s *Service) RegisterFlows() [][]string {
	switch {
	case !s.opts.RegistrationEnabled:
		return nil
	case s.opts.RequiresToken:
		return [][]string{{StageRegistrationToken}}
	default:
		return [][]string{{StageDummy}}
	}
}

// Register performs POST /register. A nil session with a nil error means
// inhibit_login was set: the account exists and UserID says which.
func (s *Service) Register(ctx context.Context, req *RegisterRequest) (userID id.UserID, sess *Session, err error) {
	if req.Kind == "guest" {
		return "", nil, types.NewError(http.StatusForbidden, types.CodeGuestAccessForbidden, "Guest access is disabled")
	}
	if req.Kind != "" && req.Kind != "user" {
		return "", nil, types.InvalidParam("kind must be user or guest")
	}
	flows := s.RegisterFlows()
	if flows == nil {
		return "", nil, types.Forbidden("Registration is disabled")
	}
	// Check the username before authentication so the client learns early.
	local := ""
	if req.Username != "" {
		if local, err = s.checkAvailable(ctx, req.Username); err != nil {
			return "", nil, err
		}
	}
	if req.Password != "" {
		if err := s.checkNewPassword(req.Password); err != nil {
			return "", nil, err
		}
	}
	res, err := s.CheckUIA(ctx, &UIARequest{Auth: req.Auth, Endpoint: "register", Flows: flows})
	if err != nil {
		return "", nil, err
	}
	if req.Password == "" {
		return "", nil, types.MissingParam("password is required")
	}
	if local == "" {
		local = randomString(12, "abcdefghijklmnopqrstuvwxyz0123456789")
	}
	userID, sess, err = s.createAccount(ctx, local, req.Password, false, "", !req.InhibitLogin, req.Device, res.RegistrationToken)
	if err != nil {
		return "", nil, err
	}
	s.FinishUIA(ctx, res)
	return userID, sess, nil
}

// createAccount makes the account, its default display name and, if login,
// a device with tokens, all in one transaction. regToken, when set, is
// counted as used in the same transaction.
func (s *Service) createAccount(ctx context.Context, local, password string, admin bool, userType string,
	login bool, dr DeviceRequest, regToken string) (id.UserID, *Session, error) {
	hash := ""
	if password != "" {
		var err error
		if hash, err = HashPassword(password); err != nil {
			return "", nil, internal("hash password", err)
		}
	}
	userID := s.UserID(local)
	var sess *Session
	err := s.store.WithTx(ctx, func(ctx context.Context) error {
		if regToken != "" {
			if err := s.store.UseRegistrationToken(ctx, regToken, s.nowMS()); errors.Is(err, storage.ErrNotFound) {
				return types.NewError(http.StatusUnauthorized, types.CodeUnauthorized, "Registration token is no longer valid")
			} else if err != nil {
				return err
			}
		}
		err := s.store.CreateAccount(ctx, &storage.Account{UserID: userID, Localpart: local, PasswordHash: hash,
			IsAdmin: admin, UserType: userType, CreatedAt: s.nowMS()})
		if errors.Is(err, storage.ErrConflict) {
			return types.NewError(http.StatusBadRequest, types.CodeUserInUse, "User ID already taken")
		} else if err != nil {
			return err
		}
		name, _ := json.Marshal(local)
		if err := s.store.SetProfileField(ctx, userID, "displayname", name); err != nil {
			return err
		}
		if login {
			sess, err = s.issueSession(ctx, userID, dr)
		}
		return err
	})
	if err != nil {
		if _, ok := types.AsError(err); ok {
			return "", nil, err
		}
		return "", nil, internal("create account", err)
	}
	return userID, sess, nil
}

// checkAvailable validates a wanted username and checks that it is free
// and not claimed exclusively by an appservice.
func (s *Service) checkAvailable(ctx context.Context, username string) (string, error) {
	local, err := s.checkFree(ctx, username)
	if err != nil {
		return "", err
	}
	if s.opts.ExclusiveUser(s.UserID(local)) != "" {
		return "", types.NewError(http.StatusBadRequest, types.CodeExclusive, "This user ID is reserved by an application service")
	}
	return local, nil
}

// checkFree validates a wanted username and checks that no account has it.
func (s *Service) checkFree(ctx context.Context, username string) (string, error) {
	local, err := s.ValidateLocalpart(username)
	if err != nil {
		return "", err
	}
	_, err = s.store.GetAccount(ctx, s.UserID(local))
	switch {
	case err == nil:
		return "", types.NewError(http.StatusBadRequest, types.CodeUserInUse, "User ID already taken")
	case !errors.Is(err, storage.ErrNotFound):
		return "", internal("get account", err)
	}
	return local, nil
}

// Available answers GET /register/available.
func (s *Service) Available(ctx context.Context, username string) error {
	if username == "" {
		return types.MissingParam("username is required")
	}
	_, err := s.checkAvailable(ctx, username)
	return err
}

// CreateUser makes an account directly (the CLI's "user add").
func (s *Service) CreateUser(ctx context.Context, username, password string, admin bool) (id.UserID, error) {
	local, err := s.checkAvailable(ctx, username)
	if err != nil {
		return "", err
	}
	if err := s.checkNewPassword(password); err != nil {
		return "", err
	}
	userID, _, err := s.createAccount(ctx, local, password, admin, "", false, DeviceRequest{}, "")
	return userID, err
}

// SharedSecretEnabled reports whether /_synapse/admin/v1/register is on.
func (s *Service) SharedSecretEnabled() bool { return s.opts.SharedSecret != "" }

// NewNonce starts a shared-secret registration; the nonce is good for one
// minute and one use.
func (s *Service) NewNonce() string {
	n := randomString(32, "abcdef0123456789")
	s.nonces.Store(n, s.opts.Now().Add(time.Minute))
	return n
}

// SharedSecretRequest is the body of POST /_synapse/admin/v1/register.
type SharedSecretRequest struct {
	Nonce       string `json:"nonce"`
	Username    string `json:"username"`
	DisplayName string `json:"displayname"`
	Password    string `json:"password"`
	Admin       bool   `json:"admin"`
	UserType    string `json:"user_type"`
	MAC         string `json:"mac"`
}

// RegisterWithSharedSecret checks the HMAC-SHA1 of the request (Synapse's
// scheme: nonce, username, password, "admin"/"notadmin" and the optional
// user type, NUL-separated) and creates the user with a logged-in device.
func (s *Service) RegisterWithSharedSecret(ctx context.Context, req *SharedSecretRequest, ip string) (*Session, error) {
	if !s.SharedSecretEnabled() {
		return nil, types.NewError(http.StatusBadRequest, types.CodeUnknown, "Shared secret registration is not enabled")
	}
	exp, ok := s.nonces.LoadAndDelete(req.Nonce)
	if req.Nonce == "" || !ok || s.opts.Now().After(exp.(time.Time)) {
		return nil, types.BadJSON("Unrecognised nonce")
	}
	switch req.UserType {
	case "", "bot", "support":
	default:
		return nil, types.InvalidParam("Invalid user type")
	}
	mac := hmac.New(sha1.New, []byte(s.opts.SharedSecret))
	mac.Write([]byte(req.Nonce + "\x00" + req.Username + "\x00" + req.Password + "\x00"))
	if req.Admin {
		mac.Write([]byte("admin"))
	} else {
		mac.Write([]byte("notadmin"))
	}
	if req.UserType != "" {
		mac.Write([]byte("\x00" + req.UserType))
	}
	got, err := hex.DecodeString(req.MAC)
	if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
		return nil, types.Forbidden("HMAC incorrect")
	}
	local, err := s.checkAvailable(ctx, req.Username)
	if err != nil {
		return nil, err
	}
	if err := s.checkNewPassword(req.Password); err != nil {
		return nil, err
	}
	userID, sess, err := s.createAccount(ctx, local, req.Password, req.Admin, req.UserType, true, DeviceRequest{IP: ip}, "")
	if err != nil {
		return nil, err
	}
	if req.DisplayName != "" {
		if err := s.SetProfileField(ctx, userID, userID, "displayname", req.DisplayName); err != nil {
			return nil, err
		}
	}
	return sess, nil
}

// RegisterAppServiceUser registers a user of an appservice's namespace
// (m.login.application_service): no password, no UIA, rate limits do not apply.
func (s *Service) RegisterAppServiceUser(ctx context.Context, asID, username string, inhibitLogin bool, dr DeviceRequest) (id.UserID, *Session, error) {
	if username == "" {
		return "", nil, types.MissingParam("username is required")
	}
	local, err := s.checkFree(ctx, username)
	if err != nil {
		return "", nil, err
	}
	if !s.opts.AppServiceOwns(asID, s.UserID(local)) {
		return "", nil, types.NewError(http.StatusBadRequest, types.CodeExclusive,
			"This user ID is not in the application service's namespace")
	}
	userID := s.UserID(local)
	var sess *Session
	err = s.store.WithTx(ctx, func(ctx context.Context) error {
		if err := s.store.CreateAccount(ctx, &storage.Account{UserID: userID, Localpart: local, AppServiceID: asID,
			CreatedAt: s.nowMS()}); err != nil {
			if errors.Is(err, storage.ErrConflict) {
				return types.NewError(http.StatusBadRequest, types.CodeUserInUse, "User ID already taken")
			}
			return err
		}
		name, _ := json.Marshal(local)
		if err := s.store.SetProfileField(ctx, userID, "displayname", name); err != nil {
			return err
		}
		if !inhibitLogin {
			sess, err = s.issueSession(ctx, userID, dr)
		}
		return err
	})
	if err != nil {
		if _, ok := types.AsError(err); ok {
			return "", nil, err
		}
		return "", nil, internal("register appservice user", err)
	}
	return userID, sess, nil
}

// EnsureAppServiceSender creates an appservice's sender user if it does not exist.
func (s *Service) EnsureAppServiceSender(ctx context.Context, asID string, userID id.UserID) error {
	if _, err := s.store.GetAccount(ctx, userID); err == nil {
		return nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	local := userID.Localpart()
	err := s.store.CreateAccount(ctx, &storage.Account{UserID: userID, Localpart: local, AppServiceID: asID,
		CreatedAt: s.nowMS()})
	if errors.Is(err, storage.ErrConflict) {
		return nil
	}
	return err
}

// LoginAppService logs in a user of an appservice's namespace (m.login.application_service).
func (s *Service) LoginAppService(ctx context.Context, asID string, userID id.UserID, dr DeviceRequest) (*Session, error) {
	if userID == "" || !s.opts.AppServiceOwns(asID, userID) {
		return nil, types.Forbidden("The user is not in the application service's namespace")
	}
	acc, err := s.store.GetAccount(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, types.Forbidden("No such user")
	} else if err != nil {
		return nil, internal("get account", err)
	}
	if acc.Deactivated {
		return nil, types.NewError(http.StatusForbidden, types.CodeUserDeactivated, "This account has been deactivated")
	}
	return s.issueSession(ctx, userID, dr)
}

// AppServiceOwns reports whether a user ID is in an appservice's namespace.
func (s *Service) AppServiceOwns(asID string, userID id.UserID) bool {
	return s.opts.AppServiceOwns(asID, userID)
}

// systemUserType marks accounts the server made for itself.
const systemUserType = "org.tributary.system"

// EnsureSystemUser returns the local user of a server-side sender (the
// server notices user), creating it without a password on first use: no
// one logs in as it.
func (s *Service) EnsureSystemUser(ctx context.Context, localpart string) (id.UserID, error) {
	userID := s.UserID(localpart)
	acc, err := s.store.GetAccount(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		_, _, err = s.createAccount(ctx, localpart, "", false, systemUserType, false, DeviceRequest{}, "")
		if me, ok := types.AsError(err); !ok || me.Code != types.CodeUserInUse {
			return userID, err
		}
		acc, err = s.store.GetAccount(ctx, userID) // made meanwhile
	}
	if err != nil {
		return "", internal("get account", err)
	}
	if acc.UserType != systemUserType {
		// Never speak for a person who registered the name first.
		return "", types.NewError(http.StatusConflict, types.CodeUserInUse,
			"The server's system user %s is taken by an ordinary account: configure another localpart", userID)
	}
	return userID, nil
}

// SetSystemAccountData stores account data for a user on the server's own
// behalf (server notices tag the notices room of their user).
func (s *Service) SetSystemAccountData(ctx context.Context, userID id.UserID, roomID id.RoomID, dataType string,
	content json.RawMessage) error {
	pos, err := s.store.PutAccountData(ctx, userID, roomID, dataType, content)
	if err != nil {
		return internal("put account data", err)
	}
	s.accountDataWritten(userID, pos)
	return nil
}
