package users

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// UIA stage types.
const (
	StageDummy             = "m.login.dummy"
	StagePassword          = "m.login.password"
	StageRegistrationToken = "m.login.registration_token"
)

// AuthDict is the "auth" object of a request protected by user-interactive
// authentication.
type AuthDict struct {
	Type       string      `json:"type"`
	Session    string      `json:"session"`
	Identifier *Identifier `json:"identifier"`
	User       string      `json:"user"`
	Password   string      `json:"password"`
	Token      string      `json:"token"`
}

// UIARequest describes one attempt at a protected operation.
type UIARequest struct {
	// Auth is the request's "auth" field as sent (nil when absent).
	Auth json.RawMessage
	// UserID is the authenticated caller, or "" when registering.
	UserID id.UserID
	// Endpoint names the operation; a session cannot move between operations.
	Endpoint string
	Flows    [][]string
	Params   map[string]any
}

// uiaData is what a session remembers between requests.
type uiaData struct {
	Completed         []string `json:"completed"`
	RegistrationToken string   `json:"registration_token,omitempty"`
}

// UIAResult is a completed authentication; Finish it once the operation is done.
type UIAResult struct {
	SessionID         string
	RegistrationToken string
}

// errOtherUser: a UIA stage authenticated someone other than the requester.
var errOtherUser = errors.New("UIA stage for another user")

// uiaError is the 401 answer listing the flows, with an errcode when a stage failed.
func uiaError(req *UIARequest, session string, data *uiaData, cause *types.Error) *types.Error {
	flows := make([]map[string]any, len(req.Flows))
	for i, f := range req.Flows {
		flows[i] = map[string]any{"stages": f}
	}
	params := req.Params
	if params == nil {
		params = map[string]any{}
	}
	completed := data.Completed
	if completed == nil {
		completed = []string{}
	}
	e := &types.Error{Status: http.StatusUnauthorized, Extra: map[string]any{
		"flows": flows, "params": params, "session": session, "completed": completed,
	}}
	if cause != nil {
		e.Code, e.Message = cause.Code, cause.Message
	}
	return e
}

// CheckUIA runs one step of user-interactive authentication. It returns a
// result when a flow is complete, else a *types.Error to send (401 with the
// flows, or another status for a malformed request).
func (s *Service) CheckUIA(ctx context.Context, req *UIARequest) (*UIAResult, error) {
	var auth AuthDict
	if len(req.Auth) > 0 && string(req.Auth) != "null" {
		if err := json.Unmarshal(req.Auth, &auth); err != nil {
			return nil, types.BadJSON("auth must be an object")
		}
	}
	var sess *storage.UIASession
	var data uiaData
	if auth.Session != "" {
		var err error
		sess, err = s.store.GetUIASession(ctx, auth.Session)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && s.nowMS()-sess.CreatedAt > s.opts.UIASessionLifetime.Milliseconds()) {
			return nil, types.NewError(http.StatusBadRequest, types.CodeUnknown, "Unknown or expired UIA session")
		} else if err != nil {
			return nil, internal("get UIA session", err)
		}
		if sess.UserID != req.UserID || sess.Endpoint != req.Endpoint {
			return nil, types.Forbidden("The UIA session was started for another request")
		}
		if err := json.Unmarshal(sess.Data, &data); err != nil {
			return nil, internal("decode UIA session", err)
		}
	} else {
		sess = &storage.UIASession{SessionID: randomString(24, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
			UserID: req.UserID, Endpoint: req.Endpoint, Data: json.RawMessage(`{}`), CreatedAt: s.nowMS()}
		if err := s.store.CreateUIASession(ctx, sess); err != nil {
			return nil, internal("create UIA session", err)
		}
	}
	if auth.Type != "" {
		if !slices.ContainsFunc(req.Flows, func(f []string) bool { return slices.Contains(f, auth.Type) }) {
			return nil, uiaError(req, sess.SessionID, &data,
				types.NewError(http.StatusBadRequest, types.CodeUnrecognized, "Stage %s is not offered", auth.Type))
		}
		if err := s.runStage(ctx, req, &auth, &data); err != nil {
			if errors.Is(err, errOtherUser) {
				// Not a step of UIA to retry but a refusal, as Synapse
				// answers it: a stolen token and the thief's own password
				// must not pass for the token's owner.
				return nil, types.Forbidden("You can only authenticate as yourself")
			}
			var me *types.Error
			if errors.As(err, &me) && me.Status == http.StatusTooManyRequests {
				return nil, me
			}
			if errors.As(err, &me) && me.Status != http.StatusInternalServerError {
				return nil, uiaError(req, sess.SessionID, &data, me)
			}
			return nil, err
		}
		if !slices.Contains(data.Completed, auth.Type) {
			data.Completed = append(data.Completed, auth.Type)
		}
		raw, _ := json.Marshal(&data)
		if err := s.store.UpdateUIASession(ctx, sess.SessionID, raw); err != nil {
			return nil, internal("update UIA session", err)
		}
	}
	for _, flow := range req.Flows {
		if !slices.ContainsFunc(flow, func(st string) bool { return !slices.Contains(data.Completed, st) }) {
			return &UIAResult{SessionID: sess.SessionID, RegistrationToken: data.RegistrationToken}, nil
		}
	}
	return nil, uiaError(req, sess.SessionID, &data, nil)
}

func (s *Service) runStage(ctx context.Context, req *UIARequest, auth *AuthDict, data *uiaData) error {
	switch auth.Type {
	case StageDummy:
		return nil
	case StagePassword:
		u, err := s.LoginUser(auth.Identifier, auth.User)
		if err != nil {
			return err
		}
		if req.UserID != "" && u != req.UserID {
			return errOtherUser
		}
		lim := s.opts.FailedPasswords
		if lim != nil && u != "" {
			if ok, wait := lim.Check(string(u)); !ok {
				return types.LimitExceeded(wait)
			}
		}
		_, err = s.checkPassword(ctx, u, auth.Password)
		if errors.Is(err, ErrBadCredentials) && lim != nil && u != "" {
			lim.Allow(string(u))
		}
		return err
	case StageRegistrationToken:
		if auth.Token == "" {
			return types.MissingParam("token is required")
		}
		ok, err := s.RegistrationTokenValid(ctx, auth.Token)
		if err != nil {
			return err
		}
		if !ok {
			return types.NewError(http.StatusUnauthorized, types.CodeUnauthorized, "Invalid registration token")
		}
		data.RegistrationToken = auth.Token
		return nil
	default:
		return types.NewError(http.StatusBadRequest, types.CodeUnrecognized, "Unknown stage %s", auth.Type)
	}
}

// FinishUIA ends a session after its operation succeeded.
func (s *Service) FinishUIA(ctx context.Context, r *UIAResult) {
	if err := s.store.DeleteUIASession(ctx, r.SessionID); err != nil {
		s.log.Warn("deleting UIA session", "err", err)
	}
}

// PasswordFlows are the flows of operations that ask the user to confirm
// their password (password change, deactivation, device deletion).
var PasswordFlows = [][]string{{StagePassword}}
