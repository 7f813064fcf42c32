package slack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/status"
	"maunium.net/go/mautrix/event"
)

// Client is one login's connection to Slack: the Web API with its token
// and a Socket Mode connection with its app token.
type Client struct {
	n     *Connector
	login *bridgev2.UserLogin
	meta  *LoginMetadata
	api   *slack.Client
	log   zerolog.Logger

	loggedIn atomic.Bool
	// revoked is set once Slack refused a token: the login stays down until
	// the user logs in again.
	revoked atomic.Bool

	mu     sync.Mutex // guards cancel, users and echoes
	cancel context.CancelFunc
	done   chan struct{}
	users  map[string]*slack.User
	// echoes are what the bridge did on Slack whose events come back:
	// "file:<id>" for uploaded files and "edit:<channel>:<ts>" for edits.
	// An event matching one is not bridged back, and the entry is used up.
	echoes map[string]int
	// noCustomize: Slack's X-OAuth-Scopes says the token lacks
	// chat:write.customize, without which Slack ignores a post's username
	// and icon_url.
	noCustomize atomic.Bool
}

var (
	_ bridgev2.NetworkAPI                    = (*Client)(nil)
	_ bridgev2.EditHandlingNetworkAPI        = (*Client)(nil)
	_ bridgev2.RedactionHandlingNetworkAPI   = (*Client)(nil)
	_ bridgev2.ReactionHandlingNetworkAPI    = (*Client)(nil)
	_ bridgev2.ReadReceiptHandlingNetworkAPI = (*Client)(nil)
	_ bridgev2.TypingHandlingNetworkAPI      = (*Client)(nil)
)

func newClient(n *Connector, login *bridgev2.UserLogin) *Client {
	meta, _ := login.Metadata.(*LoginMetadata)
	if meta == nil {
		meta = &LoginMetadata{}
	}
	c := &Client{n: n, login: login, meta: meta, log: login.Log.With().Str("component", "slack").Logger(),
		users: map[string]*slack.User{}, echoes: map[string]int{}}
	c.api = newAPI(n, meta.Token, meta.AppToken, slack.OptionHTTPClient(scopeWatcher{n.http, c.scopes}))
	return c
}

func newAPI(n *Connector, token, appToken string, more ...slack.Option) *slack.Client {
	opts := append([]slack.Option{slack.OptionAPIURL(n.Config.APIURL), slack.OptionHTTPClient(n.http)}, more...)
	if appToken != "" {
		opts = append(opts, slack.OptionAppLevelToken(appToken))
	}
	return slack.New(token, opts...)
}

// authErrors are Slack's answers that say a token no longer works.
var authErrors = map[string]string{
	"invalid_auth":     "Slack does not accept the token",
	"not_authed":       "Slack got no token",
	"token_revoked":    "the token was revoked",
	"token_expired":    "the token expired",
	"account_inactive": "the Slack account was deactivated",
	"app_uninstalled":  "the Slack app was uninstalled",
	"tokens_revoked":   "the app's tokens were revoked",
}

// authError returns Slack's error code when err says a token no longer
// works.
func authError(err error) (string, bool) {
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		_, ok := authErrors[se.Err]
		return se.Err, ok
	}
	if err != nil {
		if _, ok := authErrors[err.Error()]; ok {
			return err.Error(), true
		}
	}
	return "", false
}

// checkAuth puts the login in BAD_CREDENTIALS when err says its token no
// longer works; it returns err.
func (c *Client) checkAuth(err error) error {
	if code, ok := authError(err); ok {
		c.badCredentials(code)
	}
	return err
}

// badCredentials reports the login's token as dead (once): bridgev2 sends
// the state to the host and a notice to the user's management room.
func (c *Client) badCredentials(code string) {
	if c.revoked.Swap(true) {
		return
	}
	c.loggedIn.Store(false)
	c.log.Warn().Str("slack_error", code).Msg("Slack refused the login's token")
	c.login.BridgeState.Send(status.BridgeState{
		StateEvent: status.StateBadCredentials,
		Error:      status.BridgeStateErrorCode("slack-" + strings.ReplaceAll(code, "_", "-")),
		Message: fmt.Sprintf("Slack refused the login of %s: %s (%s). Log in again to keep bridging.",
			c.meta.TeamName, authErrors[code], code),
	})
	go c.stop()
}

// Connect checks the token and opens the Socket Mode connection; it
// returns at once, the connection runs until Disconnect.
func (c *Client) Connect(ctx context.Context) {
	if c.meta.Token == "" {
		c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateBadCredentials,
			Error: "slack-no-token", Message: "The login has no Slack token: log in again."})
		return
	}
	c.revoked.Store(false)
	c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateConnecting})
	auth, err := c.api.AuthTestContext(ctx)
	if err != nil {
		if _, ok := authError(err); ok {
			_ = c.checkAuth(err)
			return
		}
		c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateTransientDisconnect,
			Error: "slack-unreachable", Message: err.Error()})
	} else if auth.UserID != c.meta.UserID || auth.TeamID != c.meta.TeamID {
		c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateBadCredentials, Error: "slack-other-user",
			Message: fmt.Sprintf("The token is now of %s in %s, not the login's user: log in again.", auth.UserID, auth.TeamID)})
		return
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	c.mu.Lock()
	c.cancel, c.done = cancel, done
	c.mu.Unlock()
	go c.run(runCtx, done)
}

// run keeps the Socket Mode connection up: socketmode reconnects by
// itself after a dropped connection; run starts it again after the errors
// it gives up on, except a refused token.
func (c *Client) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	backoff := c.n.Config.ReconnectMin
	for ctx.Err() == nil {
		sm := socketmode.New(c.api)
		events := make(chan struct{})
		go func() {
			defer close(events)
			c.readEvents(ctx, sm)
		}()
		err := sm.RunContext(ctx)
		<-events
		if ctx.Err() != nil {
			return
		}
		if _, ok := authError(err); ok {
			_ = c.checkAuth(err)
			return
		}
		c.loggedIn.Store(false)
		c.log.Warn().Err(err).Dur("backoff", backoff).Msg("Socket Mode stopped; connecting again")
		c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateTransientDisconnect,
			Error: "slack-socket-mode", Message: fmt.Sprint(err)})
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, c.n.Config.ReconnectMax)
	}
}

// readEvents handles what the Socket Mode client reports until its
// connection ends.
func (c *Client) readEvents(ctx context.Context, sm *socketmode.Client) {
	for {
		var evt socketmode.Event
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sm.Events:
			if !ok {
				return
			}
			evt = e
		}
		switch evt.Type {
		case socketmode.EventTypeConnected:
			c.loggedIn.Store(true)
			c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateConnected})
		case socketmode.EventTypeInvalidAuth:
			c.badCredentials("invalid_auth")
		case socketmode.EventTypeConnectionError:
			if ce, ok := evt.Data.(*slack.ConnectionErrorEvent); ok {
				c.log.Warn().Err(ce.ErrorObj).Msg("Socket Mode connection failed")
			}
		case socketmode.EventTypeEventsAPI:
			ea, ok := evt.Data.(slackevents.EventsAPIEvent)
			if ok {
				c.handleEventsAPI(ctx, ea)
			}
			// Acknowledged once handled: an event the plugin dies
			// handling comes again, and bridgev2 drops what it has.
			if evt.Request != nil {
				if err := sm.Ack(*evt.Request); err != nil {
					c.log.Warn().Err(err).Msg("Failed to acknowledge a Socket Mode event")
				}
			}
		case socketmode.EventTypeSlashCommand, socketmode.EventTypeInteractive:
			if evt.Request != nil {
				_ = sm.Ack(*evt.Request)
			}
		case socketmode.EventTypeErrorBadMessage:
			if bm, ok := evt.Data.(*socketmode.ErrorBadMessage); ok {
				c.log.Warn().Err(bm.Cause).Msg("Unreadable Socket Mode message")
			}
		}
	}
}

func (c *Client) stop() {
	c.mu.Lock()
	cancel, done := c.cancel, c.done
	c.cancel, c.done = nil, nil
	c.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func (c *Client) Disconnect() {
	c.stop()
	c.loggedIn.Store(false)
}

func (c *Client) IsLoggedIn() bool { return c.loggedIn.Load() }

// LogoutRemote revokes the user token (a bot token belongs to the app's
// installation and stays).
func (c *Client) LogoutRemote(ctx context.Context) {
	c.stop()
	if c.meta.Mode == modeUser {
		if _, err := c.api.SendAuthRevokeContext(ctx, c.meta.Token); err != nil {
			c.log.Warn().Err(err).Msg("Failed to revoke the Slack token")
		}
	}
	c.n.forget(c)
}

func (c *Client) IsThisUser(_ context.Context, u networkid.UserID) bool {
	return u == userID(c.meta.TeamID, c.meta.UserID)
}

// user returns a Slack user, from the cache or users.info.
func (c *Client) user(ctx context.Context, id string) (*slack.User, error) {
	c.mu.Lock()
	u := c.users[id]
	c.mu.Unlock()
	if u != nil {
		return u, nil
	}
	u, err := c.api.GetUserInfoContext(ctx, id)
	if err != nil {
		return nil, c.checkAuth(err)
	}
	c.mu.Lock()
	c.users[id] = u
	c.mu.Unlock()
	return u, nil
}

// displayName is the name a Slack user shows.
func displayName(u *slack.User) string {
	for _, n := range []string{u.Profile.DisplayName, u.Profile.RealName, u.RealName, u.Name} {
		if n = strings.TrimSpace(n); n != "" {
			return n
		}
	}
	return u.ID
}

// expectEcho records something the bridge did on Slack whose event is not
// to be bridged back.
func (c *Client) expectEcho(key string) {
	c.mu.Lock()
	c.echoes[key]++
	c.mu.Unlock()
}

// isEcho uses up an expected echo.
func (c *Client) isEcho(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.echoes[key] == 0 {
		return false
	}
	c.echoes[key]--
	if c.echoes[key] == 0 {
		delete(c.echoes, key)
	}
	return true
}

func (c *Client) GetCapabilities(context.Context, *bridgev2.Portal) *event.RoomFeatures {
	return &event.RoomFeatures{
		ID:                  "org.tributary.slack.capabilities.2026_12",
		Formatting:          event.FormattingFeatureMap{event.FmtBold: event.CapLevelFullySupported, event.FmtItalic: event.CapLevelFullySupported, event.FmtStrikethrough: event.CapLevelFullySupported, event.FmtInlineCode: event.CapLevelFullySupported, event.FmtCodeBlock: event.CapLevelFullySupported, event.FmtBlockquote: event.CapLevelFullySupported, event.FmtInlineLink: event.CapLevelFullySupported, event.FmtUserLink: event.CapLevelFullySupported},
		File:                event.FileFeatureMap{event.MsgImage: fileFeature(), event.MsgFile: fileFeature(), event.MsgVideo: fileFeature(), event.MsgAudio: fileFeature()},
		MaxTextLength:       40000,
		Thread:              event.CapLevelFullySupported,
		Edit:                event.CapLevelFullySupported,
		Delete:              event.CapLevelFullySupported,
		Reaction:            event.CapLevelFullySupported,
		ReactionCount:       0,
		ReadReceipts:        true,
		TypingNotifications: false,
		// A relayed Matrix user's name and avatar go as the bot post's
		// username and icon_url (relay.go), not in bridgev2's text formats.
		PerMessageProfileRelay: true,
	}
}

func fileFeature() *event.FileFeatures {
	return &event.FileFeatures{MimeTypes: map[string]event.CapabilitySupportLevel{"*/*": event.CapLevelFullySupported},
		Caption: event.CapLevelFullySupported, MaxSize: 1 << 30}
}
