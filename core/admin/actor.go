package admin

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/httpx"
	"github.com/tributary-hs/tributary/core/types"
)

// OperatorLocalpart is the system user under which the server's operator
// acts from a shell (`tributary admin …`): the operator has no account of
// their own, but a room's blocker and a quarantine name a user. It is made
// (without a password, so no one logs in as it) on the operator's first
// action, which also keeps anyone else from registering the name.
const OperatorLocalpart = "tributary-operator"

// Actor is who performs an admin action: an admin user (the HTTP API) or
// the operator at a shell (the CLI, through the control socket or on a
// stopped server's data).
type Actor struct {
	// UserID is the admin (for the operator, set by the first action).
	UserID id.UserID
	// Operator marks the CLI.
	Operator bool
}

// Operator is the server's operator at a shell.
func Operator() Actor { return Actor{Operator: true} }

// actorOf is the admin of an HTTP request.
func actorOf(c *gin.Context) Actor { return Actor{UserID: httpx.PrincipalOf(c).UserID} }

// resolve gives the operator their system user.
func (a *API) resolve(ctx context.Context, act Actor) (Actor, error) {
	if !act.Operator || act.UserID != "" {
		return act, nil
	}
	u, err := a.users.EnsureSystemUser(ctx, OperatorLocalpart)
	if err != nil {
		return act, err
	}
	act.UserID = u
	return act, nil
}

// auditAs logs an admin action: who did what to whom, and whether from a
// shell.
func (a *API) auditAs(ctx context.Context, act Actor, action string, args ...any) {
	head := []any{"action", action, "admin", act.UserID}
	if act.Operator {
		head = append(head, "via", "cli")
	}
	a.opts.Logger.InfoContext(ctx, "admin action", append(head, args...)...)
}

// unrecognized is the answer for a part of the admin API this process
// was built without.
func unrecognized() error {
	return types.NewError(http.StatusNotFound, types.CodeUnrecognized, "Unrecognized request")
}

// checkRoomID accepts a room ID (v12 room IDs have no server part).
func checkRoomID(r id.RoomID) error {
	if len(r) < 2 || r[0] != '!' {
		return types.InvalidParam("Invalid room ID")
	}
	return nil
}

// checkLocalUser accepts a valid user ID of this server.
func (a *API) checkLocalUser(u id.UserID) error {
	if _, _, err := u.ParseAndValidateRelaxed(); err != nil {
		return types.InvalidParam("Invalid user ID")
	}
	if u.Homeserver() != a.users.ServerName() {
		return types.InvalidParam("Can only look up local users")
	}
	return nil
}

// errorText is an error as a task's status reports it: a Matrix error's
// message without its code.
func errorText(err error) string {
	if me, ok := types.AsError(err); ok && me.Message != "" {
		return me.Message
	}
	return err.Error()
}
