package telegram

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/go-telegram/bot/models"
	"github.com/gotd/td/telegram"
	"github.com/gotd/td/telegram/dcs"
	"github.com/gotd/td/telegram/updates"
	"github.com/gotd/td/tg"
	"github.com/rs/zerolog"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/status"
)

const (
	modeUser = "user"

	errLoggedOut = status.BridgeStateErrorCode("tg-logged-out")
)

// UserClient is a user-account login: an MTProto connection (gotd/td)
// whose session lives in the login's metadata, so that a restarted plugin
// carries on without logging in again.
type UserClient struct {
	net   *Connector
	login *bridgev2.UserLogin

	// queue hands a remote event to bridgev2 (tests catch them).
	queue func(bridgev2.RemoteEvent)
	// setState shows the login's bridge state (tests catch them).
	setState func(status.BridgeState)
	// intentFor is the Matrix side of a backfilled message's sender.
	intentFor func(context.Context, *bridgev2.Portal, bridgev2.EventSender) (bridgev2.MatrixAPI, bool)

	limits sendLimits
	loop   connLoop
	// saveMu orders the login's saves this client makes: each marshals
	// the metadata when its turn comes, so the last one written holds
	// every change made before it.
	saveMu sync.Mutex
	topics topicNames

	// mu guards the fields below.
	mu       sync.Mutex
	api      *tg.Client // nil until connected
	gaps     *updates.Manager
	ready    chan struct{}
	users    map[int64]*tg.User
	chats    map[int64]*tg.Chat
	channels map[int64]*tg.Channel
	// sent: message IDs this login sent from Matrix, whose echoes are
	// not bridged back.
	sent map[networkid.MessageID]bool
	// recent: the portals of the messages outside channels (whose IDs are
	// the account's) this process bridged.
	recent map[int]networkid.PortalKey
}

var _ bridgev2.NetworkAPI = (*UserClient)(nil)

func newUserClient(n *Connector, login *bridgev2.UserLogin) *UserClient {
	c := &UserClient{net: n, login: login, ready: make(chan struct{}),
		users: map[int64]*tg.User{}, chats: map[int64]*tg.Chat{}, channels: map[int64]*tg.Channel{},
		sent:   map[networkid.MessageID]bool{},
		recent: map[int]networkid.PortalKey{}}
	if meta, ok := login.Metadata.(*LoginMetadata); ok {
		meta.lock = &c.mu
	}
	c.queue = func(ev bridgev2.RemoteEvent) { n.br.QueueRemoteEvent(login, ev) }
	c.setState = func(s status.BridgeState) { login.BridgeState.Send(s) }
	c.intentFor = func(ctx context.Context, p *bridgev2.Portal, s bridgev2.EventSender) (bridgev2.MatrixAPI, bool) {
		return p.GetIntentFor(ctx, s, login, bridgev2.RemoteEventBackfill)
	}
	return c
}

// useAPI makes the client talk through api (a connection, or a test's
// fake) and marks it ready.
func (c *UserClient) useAPI(api tg.Invoker) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.api = tg.NewClient(api)
	select {
	case <-c.ready:
	default:
		close(c.ready)
	}
}

// client waits for the connection.
func (c *UserClient) client(ctx context.Context) (*tg.Client, error) {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("telegram: not connected: %w", ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.api, nil
}

// clientFor waits for the connection and names the chat for it.
func (c *UserClient) clientFor(ctx context.Context, chatID int64) (*tg.Client, tg.InputPeerClass, error) {
	api, err := c.client(ctx)
	if err != nil {
		return nil, nil, err
	}
	peer, err := c.inputPeer(chatID)
	if err != nil {
		return nil, nil, err
	}
	return api, peer, nil
}

// save saves the login (never with mu held: marshalling takes it).
func (c *UserClient) save(ctx context.Context) error {
	c.saveMu.Lock()
	defer c.saveMu.Unlock()
	return c.login.Save(ctx)
}

func (c *UserClient) meta() *LoginMetadata { return c.login.Metadata.(*LoginMetadata) }

// metaSession keeps gotd's session (auth key, DC, salt) in the login's
// metadata.
type metaSession struct{ c *UserClient }

func (s metaSession) LoadSession(context.Context) ([]byte, error) {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if len(s.c.meta().Session) == 0 {
		return nil, sessionNotFound
	}
	return s.c.meta().Session, nil
}

func (s metaSession) StoreSession(ctx context.Context, data []byte) error {
	s.c.mu.Lock()
	s.c.meta().Session = append([]byte(nil), data...)
	s.c.mu.Unlock()
	return s.c.save(ctx)
}

// telegramOptions are the gotd options for the configured Telegram (or a
// test server).
func (n *Connector) telegramOptions() (telegram.Options, error) {
	var o telegram.Options
	if n.Config.DCAddress == "" {
		return o, nil
	}
	host, port, err := net.SplitHostPort(n.Config.DCAddress)
	if err != nil {
		return o, fmt.Errorf("telegram: network.dc_address: %w", err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return o, fmt.Errorf("telegram: network.dc_address: %w", err)
	}
	block, _ := pem.Decode([]byte(n.Config.PublicKey))
	if block == nil {
		return o, errors.New("telegram: network.public_key is not a PEM key")
	}
	key, err := x509.ParsePKCS1PublicKey(block.Bytes)
	if err != nil {
		return o, fmt.Errorf("telegram: network.public_key: %w", err)
	}
	dc := max(n.Config.DCID, 1)
	o.DC = dc
	o.DCList = dcs.List{Options: []tg.DCOption{{ID: dc, IPAddress: host, Port: p}}}
	o.PublicKeys = []telegram.PublicKey{{RSA: key}}
	o.Resolver = dcs.Plain(dcs.PlainOptions{})
	return o, nil
}

// Connect starts the MTProto connection; it returns at once.
func (c *UserClient) Connect(ctx context.Context) {
	if len(c.meta().Session) == 0 {
		c.setState(status.BridgeState{StateEvent: status.StateBadCredentials, Error: errLoggedOut,
			Message: "the login has no Telegram session"})
		return
	}
	opts, err := c.net.telegramOptions()
	if err != nil {
		c.setState(status.BridgeState{StateEvent: status.StateUnknownError, Message: err.Error()})
		return
	}
	ctx, end, ok := c.loop.begin(ctx)
	if !ok {
		return
	}
	log := zerolog.Ctx(ctx).With().Str("action", "telegram mtproto").Logger()
	ctx = log.WithContext(ctx)
	opts.SessionStorage = metaSession{c}
	// gotd's update manager orders updates by pts, fills gaps, and on
	// start asks for what was missed since the state kept in the login.
	newGaps := func() *updates.Manager {
		return updates.New(updates.Config{
			Handler: telegram.UpdateHandlerFunc(func(ctx context.Context, u tg.UpdatesClass) error {
				c.handleUpdates(log.WithContext(ctx), u)
				return nil
			}),
			Storage: metaState{c}, AccessHasher: metaState{c},
		})
	}
	gaps := newGaps()
	opts.UpdateHandler = gaps
	tgc := telegram.NewClient(c.net.Config.APIID, c.net.Config.APIHash, opts)
	c.setState(status.BridgeState{StateEvent: status.StateConnecting})
	go func() {
		defer end()
		wait := time.Second
		for ctx.Err() == nil {
			err := tgc.Run(ctx, func(ctx context.Context) error {
				self, err := tgc.Self(ctx)
				if err != nil {
					return err
				}
				return gaps.Run(ctx, tgc.API(), self.ID, updates.AuthOptions{OnStart: func(ctx context.Context) {
					c.mu.Lock()
					c.gaps = gaps
					c.mu.Unlock()
					c.useAPI(tgc)
					c.setState(status.BridgeState{StateEvent: status.StateConnected})
					c.loadDialogs(ctx)
				}})
			})
			if ctx.Err() != nil {
				return
			}
			if auth, ok := asAuthError(err); ok {
				c.setState(status.BridgeState{StateEvent: status.StateBadCredentials, Error: errLoggedOut,
					Message: "Telegram ended the session: " + auth})
				return
			}
			log.Warn().Err(err).Msg("MTProto connection ended")
			c.setState(status.BridgeState{StateEvent: status.StateTransientDisconnect, Error: errUnreachable,
				Message: err.Error()})
			gaps = newGaps()
			opts.UpdateHandler = gaps
			tgc = telegram.NewClient(c.net.Config.APIID, c.net.Config.APIHash, opts)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, time.Minute)
		}
	}()
}

// loadDialogs learns the chats (and their access hashes) of the account's
// most recent dialogs, so that Matrix messages to them can be sent.
func (c *UserClient) loadDialogs(ctx context.Context) {
	api, err := c.client(ctx)
	if err != nil {
		return
	}
	res, err := api.MessagesGetDialogs(ctx, &tg.MessagesGetDialogsRequest{OffsetPeer: &tg.InputPeerEmpty{}, Limit: 100})
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("messages.getDialogs")
		return
	}
	if d, ok := res.AsModified(); ok {
		c.remember(d.GetUsers(), d.GetChats())
	}
}

func (c *UserClient) Disconnect() { c.loop.stop() }

func (c *UserClient) IsLoggedIn() bool { return len(c.meta().Session) > 0 }

func (c *UserClient) LogoutRemote(ctx context.Context) {
	running := c.loop.running()
	if api, err := c.client(ctx); err == nil && running {
		if _, err := api.AuthLogOut(ctx); err != nil {
			zerolog.Ctx(ctx).Warn().Err(err).Msg("auth.logOut")
		}
	}
	c.Disconnect()
}

func (c *UserClient) IsThisUser(_ context.Context, userID networkid.UserID) bool {
	return userID == userIDOf(c.meta().UserID)
}

// remember keeps the users and chats an answer or update carries (their
// names and access hashes).
func (c *UserClient) remember(users []tg.UserClass, chats []tg.ChatClass) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range users {
		if u, ok := u.(*tg.User); ok {
			if old, ok := c.users[u.ID]; ok && u.Min {
				// A min user has no usable access hash: keep the one known.
				u.AccessHash = old.AccessHash
			}
			c.users[u.ID] = u
		}
	}
	for _, ch := range chats {
		switch ch := ch.(type) {
		case *tg.Chat:
			c.chats[ch.ID] = ch
		case *tg.Channel:
			if old, ok := c.channels[ch.ID]; ok && ch.Min {
				ch.AccessHash = old.AccessHash
			}
			c.channels[ch.ID] = ch
		}
	}
}

func (c *UserClient) user(id int64) *tg.User {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.users[id]
}

// botUser is a user as the Bot API's type, for format.go's mentions.
func (c *UserClient) botUser(id int64) *models.User {
	u := c.user(id)
	if u == nil {
		return nil
	}
	return &models.User{ID: u.ID, FirstName: u.FirstName, LastName: u.LastName, Username: u.Username, IsBot: u.Bot}
}

// inputPeer is how MTProto names a chat in a request.
func (c *UserClient) inputPeer(chatID int64) (tg.InputPeerClass, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch p := peerOfChatID(chatID).(type) {
	case *tg.PeerUser:
		if p.UserID == c.meta().UserID {
			return &tg.InputPeerSelf{}, nil
		}
		if u, ok := c.users[p.UserID]; ok {
			return &tg.InputPeerUser{UserID: u.ID, AccessHash: u.AccessHash}, nil
		}
		if hash, ok := c.meta().Peers[chatID]; ok {
			return &tg.InputPeerUser{UserID: p.UserID, AccessHash: hash}, nil
		}
	case *tg.PeerChat:
		return &tg.InputPeerChat{ChatID: p.ChatID}, nil
	case *tg.PeerChannel:
		if ch, ok := c.channels[p.ChannelID]; ok {
			return &tg.InputPeerChannel{ChannelID: ch.ID, AccessHash: ch.AccessHash}, nil
		}
		if hash, ok := c.meta().Peers[chatID]; ok {
			return &tg.InputPeerChannel{ChannelID: p.ChannelID, AccessHash: hash}, nil
		}
	}
	return nil, fmt.Errorf("telegram: chat %d is not known to this login yet", chatID)
}

// keepPeer keeps a private chat's user's or a channel's access hash in the
// login (see LoginMetadata.Peers).
func (c *UserClient) keepPeer(ctx context.Context, chatID int64) {
	c.mu.Lock()
	var hash int64
	switch p := peerOfChatID(chatID).(type) {
	case *tg.PeerUser:
		if u, ok := c.users[p.UserID]; ok && !u.Min && p.UserID != c.meta().UserID {
			hash = u.AccessHash
		}
	case *tg.PeerChannel:
		if ch, ok := c.channels[p.ChannelID]; ok && !ch.Min {
			hash = ch.AccessHash
		}
	}
	meta := c.meta()
	if hash == 0 || meta.Peers[chatID] == hash {
		c.mu.Unlock()
		return
	}
	if meta.Peers == nil {
		meta.Peers = map[int64]int64{}
	}
	meta.Peers[chatID] = hash
	c.mu.Unlock()
	if c.net.br != nil {
		if err := c.save(ctx); err != nil {
			zerolog.Ctx(ctx).Err(err).Msg("saving a chat's access hash")
		}
	}
}

func (c *UserClient) inputUser(id int64) tg.InputUserClass {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u, ok := c.users[id]; ok {
		return &tg.InputUser{UserID: u.ID, AccessHash: u.AccessHash}
	}
	return nil
}

func (c *UserClient) inputChannel(chatID int64) (*tg.InputChannel, error) {
	p, err := c.inputPeer(chatID)
	if err != nil {
		return nil, err
	}
	ch, ok := p.(*tg.InputPeerChannel)
	if !ok {
		return nil, fmt.Errorf("telegram: chat %d is not a channel", chatID)
	}
	return &tg.InputChannel{ChannelID: ch.ChannelID, AccessHash: ch.AccessHash}, nil
}

// portalKey is a chat's portal, as in bot mode: the chat's Bot API ID,
// the login as receiver.
func (c *UserClient) portalKey(chatID int64) networkid.PortalKey {
	return portalKeyOf(portalIDOf(chatID), chatID, c.login.ID)
}

// isForum: the chat is a supergroup with topics.
func (c *UserClient) isForum(chatID int64) bool {
	if !isChannelChat(chatID) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.channels[-channelIDBase-chatID]
	return ok && ch.Forum
}
