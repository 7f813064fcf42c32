package telegram

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	tgbot "github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
	"github.com/rs/zerolog"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/status"
)

const (
	errBadToken    = status.BridgeStateErrorCode("tg-bad-token")
	errConflict    = status.BridgeStateErrorCode("tg-conflict")
	errUnreachable = status.BridgeStateErrorCode("tg-unreachable")
	errRateLimited = status.BridgeStateErrorCode("tg-rate-limited")
)

// allowedUpdates are the updates the bot asks for (message_reaction is
// only sent when asked for by name).
var allowedUpdates = []string{"message", "edited_message", "channel_post", "edited_channel_post",
	"message_reaction", "my_chat_member"}

// Client is a bot login: it long-polls getUpdates and bridges what comes,
// and sends what Matrix users say through the bot.
type Client struct {
	net   *Connector
	login *bridgev2.UserLogin
	bot   *tgbot.Bot

	loop   connLoop
	topics topicNames

	// mu guards the fields below.
	mu    sync.Mutex
	chats map[int64]models.Chat
	users map[int64]models.User
	// avatarChecked: when each user's profile photo was last looked up.
	avatarChecked map[int64]time.Time

	limits sendLimits
}

var _ bridgev2.NetworkAPI = (*Client)(nil)

func newClient(n *Connector, login *bridgev2.UserLogin) *Client {
	c := &Client{net: n, login: login, chats: map[int64]models.Chat{}, users: map[int64]models.User{},
		avatarChecked: map[int64]time.Time{}}
	c.bot, _ = n.newBot(c.meta().Token)
	return c
}

// newBot is a Bot API client on the configured API URL.
func (n *Connector) newBot(token string) (*tgbot.Bot, error) {
	hc := n.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	return tgbot.New(token, tgbot.WithSkipGetMe(), tgbot.WithServerURL(n.Config.APIURL),
		tgbot.WithHTTPClient(n.Config.PollTimeout, hc))
}

func (c *Client) meta() *LoginMetadata { return c.login.Metadata.(*LoginMetadata) }

// Connect starts the update loop; it returns at once.
func (c *Client) Connect(ctx context.Context) {
	if c.bot == nil {
		c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateBadCredentials, Error: errBadToken,
			Message: "the login has no bot token"})
		return
	}
	ctx, end, ok := c.loop.begin(ctx)
	if !ok {
		return
	}
	c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateConnecting})
	go func() {
		defer end()
		c.pollLoop(ctx)
	}()
}

func (c *Client) Disconnect() { c.loop.stop() }

func (c *Client) IsLoggedIn() bool { return c.bot != nil }

func (c *Client) LogoutRemote(ctx context.Context) {
	c.Disconnect()
	c.net.forget(c)
}

// apiResult is a Bot API answer.
type apiResult struct {
	OK          bool            `json:"ok"`
	Result      json.RawMessage `json:"result"`
	ErrorCode   int             `json:"error_code"`
	Description string          `json:"description"`
	Parameters  struct {
		RetryAfter int `json:"retry_after"`
	} `json:"parameters"`
}

// getUpdates is one long-poll. The bot library's own loop confirms updates
// (by asking for the next offset) before they are handled; this one asks
// for the next batch only once the last is bridged, and keeps the offset in
// the login, so that nothing is lost when the plugin stops.
func (c *Client) getUpdates(ctx context.Context, offset int64) ([]*models.Update, *apiResult, error) {
	body, _ := json.Marshal(map[string]any{"offset": offset, "timeout": int(c.net.Config.PollTimeout / time.Second),
		"allowed_updates": allowedUpdates})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		c.net.Config.APIURL+"/bot"+c.meta().Token+"/getUpdates", bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.net.HTTP.Do(req)
	if err != nil {
		return nil, nil, errors.New("getUpdates: " + redact(err.Error(), c.meta().Token))
	}
	defer resp.Body.Close()
	var res apiResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return nil, nil, fmt.Errorf("getUpdates: HTTP %d: %w", resp.StatusCode, err)
	}
	if !res.OK {
		return nil, &res, nil
	}
	var updates []*models.Update
	if err := json.Unmarshal(res.Result, &updates); err != nil {
		return nil, nil, fmt.Errorf("getUpdates: %w", err)
	}
	return updates, &res, nil
}

func (c *Client) pollLoop(ctx context.Context) {
	log := zerolog.Ctx(ctx).With().Str("action", "telegram poll").Logger()
	ctx = log.WithContext(ctx)
	wait := time.Duration(0)
	connected := false
	for ctx.Err() == nil {
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
		updates, res, err := c.getUpdates(ctx, c.meta().Offset)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Warn().Err(err).Msg("getUpdates failed")
			c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateTransientDisconnect,
				Error: errUnreachable, Message: err.Error()})
			connected = false
			wait = min(max(2*wait, time.Second), time.Minute)
			continue
		case !res.OK:
			connected = false
			switch res.ErrorCode {
			case http.StatusUnauthorized, http.StatusNotFound:
				c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateBadCredentials,
					Error: errBadToken, Message: "Telegram refused the bot token: " + res.Description})
				return
			case http.StatusTooManyRequests:
				wait = time.Duration(max(res.Parameters.RetryAfter, 1)) * time.Second
				c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateTransientDisconnect,
					Error: errRateLimited, Message: fmt.Sprintf("Telegram asked to wait %s", wait)})
			case http.StatusConflict:
				// Another getUpdates (or a webhook) for the same bot.
				c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateTransientDisconnect,
					Error: errConflict, Message: "another program receives this bot's updates: " + res.Description})
				wait = min(max(2*wait, time.Second), time.Minute)
			default:
				log.Warn().Int("code", res.ErrorCode).Str("description", res.Description).Msg("getUpdates refused")
				wait = min(max(2*wait, time.Second), time.Minute)
			}
			continue
		}
		wait = 0
		if !connected {
			connected = true
			c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateConnected})
		}
		for _, upd := range updates {
			c.handleUpdate(ctx, upd)
			c.meta().Offset = upd.ID + 1
		}
		if len(updates) > 0 {
			if err := c.login.Save(ctx); err != nil {
				log.Err(err).Msg("saving the update offset")
			}
		}
	}
}

func redact(s, token string) string {
	if token == "" {
		return s
	}
	return string(bytes.ReplaceAll([]byte(s), []byte(token), []byte("<token>")))
}

// remember keeps what an update says of its chat and users (the Bot API
// cannot be asked about a user).
func (c *Client) remember(chat *models.Chat, users ...*models.User) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if chat != nil {
		c.chats[chat.ID] = *chat
	}
	for _, u := range users {
		if u != nil {
			c.users[u.ID] = *u
		}
	}
}

func (c *Client) chat(id int64) (models.Chat, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.chats[id]
	return ch, ok
}

func (c *Client) user(id int64) (models.User, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, ok := c.users[id]
	return u, ok
}
