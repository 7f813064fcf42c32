package telegram

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gotd/td/session"
	"github.com/gotd/td/telegram"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"

	"github.com/tributary-hs/tributary/bridges/telegram/mtproto"
)

const flowPhone = "phone"

// loginTimeout ends the connection of a phone login left unfinished.
const loginTimeout = 30 * time.Minute

var sessionNotFound = session.ErrNotFound

// asAuthError tells whether err means the session is over (logged out
// elsewhere, revoked, the account gone).
func asAuthError(err error) (string, bool) {
	for _, typ := range []string{"AUTH_KEY_UNREGISTERED", "AUTH_KEY_INVALID", "SESSION_REVOKED", "SESSION_EXPIRED",
		"USER_DEACTIVATED", "USER_DEACTIVATED_BAN"} {
		if tgerr.Is(err, typ) {
			return typ, true
		}
	}
	return "", false
}

// phoneLogin logs a user account in (phone, code, two-step password) over
// a connection of its own, whose session becomes the login's.
type phoneLogin struct {
	*mtproto.Login
	net  *Connector
	user *bridgev2.User

	store  *session.StorageMemory
	cancel context.CancelFunc
	once   sync.Once
}

func (n *Connector) newPhoneLogin(ctx context.Context, user *bridgev2.User) (*phoneLogin, error) {
	opts, err := n.telegramOptions()
	if err != nil {
		return nil, err
	}
	lp := &phoneLogin{net: n, user: user, store: &session.StorageMemory{}}
	opts.SessionStorage = lp.store
	opts.NoUpdates = true
	tgc := telegram.NewClient(n.Config.APIID, n.Config.APIHash, opts)
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	lp.cancel = cancel
	ready, failed := make(chan struct{}), make(chan error, 1)
	go func() {
		failed <- tgc.Run(runCtx, func(ctx context.Context) error {
			close(ready)
			<-ctx.Done()
			return nil
		})
	}()
	select {
	case <-ready:
	case err := <-failed:
		cancel()
		return nil, fmt.Errorf("telegram: connecting: %w", err)
	case <-time.After(time.Minute):
		cancel()
		return nil, errors.New("telegram: connecting took too long")
	}
	lp.Login = mtproto.NewLogin(tgc, rand.Reader, n.Config.APIID, n.Config.APIHash, lp.finish)
	// A login left unfinished does not keep its connection for ever.
	time.AfterFunc(loginTimeout, lp.Cancel)
	return lp, nil
}

func (lp *phoneLogin) Cancel() { lp.once.Do(lp.cancel) }

// finish makes the login, with the session the connection made.
func (lp *phoneLogin) finish(ctx context.Context, me *tg.User) (*bridgev2.LoginStep, error) {
	data, err := lp.store.Bytes(nil)
	if err != nil {
		return nil, fmt.Errorf("telegram: the session: %w", err)
	}
	lp.Cancel()
	name := strings.TrimSpace(me.FirstName + " " + me.LastName)
	if me.Username != "" {
		name = "@" + me.Username
	}
	login, err := lp.user.NewLogin(ctx, &database.UserLogin{
		ID:         userLoginIDOf(me.ID),
		RemoteName: name,
		Metadata:   &LoginMetadata{Mode: modeUser, UserID: me.ID, Phone: me.Phone, Session: data},
	}, &bridgev2.NewLoginParams{DeleteOnConflict: true})
	if err != nil {
		return nil, fmt.Errorf("telegram: saving the login: %w", err)
	}
	if uc, ok := login.Client.(*UserClient); ok {
		uc.remember([]tg.UserClass{me}, nil)
	}
	go login.Client.Connect(login.Log.WithContext(lp.net.br.BackgroundCtx))
	return &bridgev2.LoginStep{
		Type:           bridgev2.LoginStepTypeComplete,
		StepID:         stepDone,
		Instructions:   "Logged in as " + name,
		CompleteParams: &bridgev2.LoginCompleteParams{UserLoginID: login.ID, UserLogin: login},
	}, nil
}
