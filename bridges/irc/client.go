package irc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/simplevent"
	"maunium.net/go/mautrix/bridgev2/status"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/irc/ircconn"
)

// Client is one login's IRC connection: it keeps the connection up
// (reconnecting with backoff, with the same nick), joins the login's
// channels on every connection and turns what the server says into
// bridgev2 remote events.
//
// Three goroutines per login: run (connect, read events, reconnect),
// dispatch (hands remote events to bridgev2 in order) and the joins of a
// fresh connection. The event loop never waits for bridgev2: a portal
// handling a Matrix message may wait for the event loop (a join), and
// bridgev2 handles a portal's events one at a time.
type Client struct {
	net     *Connector
	login   *bridgev2.UserLogin
	tracker *ircconn.Tracker
	events  *remoteQueue

	// mu guards the fields below (lock order: after Connector.mu).
	mu   sync.Mutex
	conn *ircconn.Conn
	// connUp is closed while conn is set, and replaced when it is lost:
	// Matrix events that come while the login reconnects wait on it.
	connUp   chan struct{}
	prepared *preparedConn
	cancel   context.CancelFunc
	done     chan struct{}
	// running is closed when the connection loop ends (disconnected,
	// logged out, or its credentials refused).
	running   chan struct{}
	badCreds  bool
	loggedOut bool
	// replays keeps each channel's last history replay (folded name).
	replays map[string][]*ircconn.Message
	// unreplayed: channels whose last replay its portal has not been
	// backfilled from yet (folded name).
	unreplayed map[string]bool
	// joinWait: callers waiting for a channel join to finish (folded).
	joinWait map[string][]chan error
}

// preparedConn is a connection the login flow registered, for the first
// Connect to use.
type preparedConn struct {
	conn *ircconn.Conn
}

var (
	_ bridgev2.NetworkAPI                    = (*Client)(nil)
	_ bridgev2.BackfillingNetworkAPI         = (*Client)(nil)
	_ bridgev2.EditHandlingNetworkAPI        = (*Client)(nil)
	_ bridgev2.RoomTopicHandlingNetworkAPI   = (*Client)(nil)
	_ bridgev2.MembershipHandlingNetworkAPI  = (*Client)(nil)
	_ bridgev2.PowerLevelHandlingNetworkAPI  = (*Client)(nil)
	_ bridgev2.IdentifierResolvingNetworkAPI = (*Client)(nil)
	_ bridgev2.NetworkAPIWithUserID          = (*Client)(nil)
	_ bridgev2.TypingHandlingNetworkAPI      = (*Client)(nil)
)

func newClient(n *Connector, login *bridgev2.UserLogin, prepared *preparedConn) *Client {
	return &Client{
		net:        n,
		login:      login,
		tracker:    ircconn.NewTracker(),
		events:     newRemoteQueue(),
		prepared:   prepared,
		replays:    map[string][]*ircconn.Message{},
		unreplayed: map[string]bool{},
		joinWait:   map[string][]chan error{},
		connUp:     make(chan struct{}),
	}
}

func (c *Client) meta() *LoginMetadata {
	m, _ := c.login.Metadata.(*LoginMetadata)
	if m == nil {
		m = &LoginMetadata{Nick: c.login.RemoteName}
		c.login.Metadata = m
	}
	return m
}

// wantedNick is the nick the login asks for on every connection.
func (c *Client) wantedNick() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.meta().Nick
}

func (c *Client) currentConn() *ircconn.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

// setConn records the login's connection (nil: lost). The caller holds
// c.mu.
func (c *Client) setConn(conn *ircconn.Conn) {
	switch {
	case conn != nil && c.conn == nil:
		close(c.connUp)
	case conn == nil && c.conn != nil:
		c.connUp = make(chan struct{})
	}
	c.conn = conn
}

// connWait bounds how long a Matrix event waits for its login's
// connection while the login (re)connects.
const connWait = 15 * time.Second

// awaitConn is the login's connection for a Matrix event: the current
// one, or, while the login is connecting or reconnecting (a dropped
// connection, a plugin restarted — whose host then delivers again what
// the old process had not acknowledged), the next one, waited for up to
// connWait. Nil when the login is not running or the wait ends.
func (c *Client) awaitConn(ctx context.Context) *ircconn.Conn {
	c.mu.Lock()
	conn, up, stopped := c.conn, c.connUp, c.running
	live := c.cancel != nil && !c.badCreds && !c.loggedOut
	c.mu.Unlock()
	if conn != nil || !live {
		return conn
	}
	t := time.NewTimer(connWait)
	defer t.Stop()
	select {
	case <-up:
		return c.currentConn()
	case <-stopped: // disconnected, logged out, or its credentials refused
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

// hasNick reports whether the login's connection has nick now.
func (c *Client) hasNick(nick string) bool {
	conn := c.currentConn()
	return conn != nil && conn.ISupport().CaseMapping().Equal(conn.Nick(), nick)
}

// dial connects and registers with the login's nick and credentials.
func (n *Connector) dial(ctx context.Context, user id.UserID, meta *LoginMetadata) (*ircconn.Conn, error) {
	cfg := ircconn.Config{
		Addr:         n.Config.Server,
		Password:     n.Config.ServerPassword,
		Nick:         meta.Nick,
		User:         n.Config.ident(user),
		RealName:     n.Config.realName(user),
		PingInterval: n.Config.PingInterval,
		PingTimeout:  n.Config.PingTimeout,
		Flood:        ircconn.FloodControl{Burst: n.Config.FloodBurst, Interval: n.Config.FloodInterval},
	}
	if n.Config.TLS {
		host, _, _ := net.SplitHostPort(n.Config.Server)
		cfg.TLS = &tls.Config{ServerName: host, InsecureSkipVerify: n.Config.TLSSkipVerify} //nolint:gosec // the operator's choice
	}
	if meta.Password != "" {
		cfg.SASL = &ircconn.SASLPlain{User: meta.Account, Password: meta.Password}
		cfg.RequireSASL = true
	}
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return ircconn.Dial(dctx, cfg)
}

// Connect starts the connection loop; it returns at once (bridgev2 wants
// errors as bridge states).
func (c *Client) Connect(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil || c.badCreds || c.loggedOut {
		return
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ctx = c.login.Log.WithContext(ctx)
	c.cancel, c.done = cancel, make(chan struct{})
	if c.prepared != nil {
		// The login flow's connection is usable at once (a join right
		// after logging in).
		c.setConn(c.prepared.conn)
	}
	runDone, queueDone := make(chan struct{}), make(chan struct{})
	c.running = runDone
	go c.events.run(ctx, c.login, queueDone)
	go c.run(ctx, runDone)
	go func(done chan struct{}) {
		<-runDone
		<-queueDone
		close(done)
	}(c.done)
}

// Disconnect quits the server, stops reconnecting and returns once the
// connection loop and the event queue have stopped (a Connect after it
// starts afresh; events not yet handed to bridgev2 stay queued for it).
func (c *Client) Disconnect() {
	c.mu.Lock()
	cancel, done := c.cancel, c.done
	c.cancel, c.done = nil, nil
	prepared := c.prepared
	c.prepared = nil
	c.mu.Unlock()
	if prepared != nil {
		prepared.conn.Close()
	}
	if cancel == nil {
		return
	}
	cancel()
	<-done
}

func (c *Client) IsLoggedIn() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.badCreds && !c.loggedOut
}

func (c *Client) LogoutRemote(context.Context) {
	c.mu.Lock()
	c.loggedOut = true
	c.mu.Unlock()
	c.Disconnect()
	c.net.forget(c)
}

func (c *Client) GetUserID() networkid.UserID {
	return c.net.nicks.GhostID(context.Background(), c.wantedNick())
}

func (c *Client) IsThisUser(ctx context.Context, userID networkid.UserID) bool {
	if conn := c.currentConn(); conn != nil && c.net.nicks.GhostID(ctx, conn.Nick()) == userID {
		return true
	}
	return c.net.nicks.GhostID(ctx, c.wantedNick()) == userID
}

func (c *Client) sendState(evt status.BridgeStateEvent, code status.BridgeStateErrorCode, msg string) {
	c.login.BridgeState.Send(status.BridgeState{StateEvent: evt, Error: code, Message: msg})
}

// run connects, serves the connection and reconnects until ctx ends.
func (c *Client) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	defer c.net.release("", c.login.ID)
	log := zerolog.Ctx(ctx)
	backoff := c.net.Config.ReconnectMin
	for {
		conn, err := c.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, ircconn.ErrSASLFailed) {
				log.Warn().Err(err).Msg("SASL login refused: not reconnecting")
				c.mu.Lock()
				c.badCreds = true
				c.mu.Unlock()
				c.sendState(status.StateBadCredentials, errSASLBad, err.Error())
				return
			}
			log.Warn().Err(err).Dur("retry_in", backoff).Msg("Connecting to IRC failed")
			c.sendState(status.StateTransientDisconnect, "irc-connect-failed", err.Error())
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, c.net.Config.ReconnectMax)
			continue
		}
		backoff = c.net.Config.ReconnectMin
		c.mu.Lock()
		c.setConn(conn)
		c.mu.Unlock()
		log.Info().Str("nick", conn.Nick()).Msg("Connected to IRC")
		c.sendState(status.StateConnected, "", "")
		err = c.serve(ctx, conn)
		c.mu.Lock()
		c.setConn(nil)
		c.mu.Unlock()
		c.net.release("", c.login.ID)
		if ctx.Err() != nil {
			return
		}
		log.Warn().Err(err).Msg("Disconnected from IRC, reconnecting")
		c.sendState(status.StateTransientDisconnect, "irc-disconnected", fmt.Sprint(err))
		if !sleepCtx(ctx, backoff) {
			return
		}
	}
}

// sleepCtx waits d (the reconnect backoff), or less when ctx ends; it
// reports whether ctx is still alive.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *Client) connect(ctx context.Context) (*ircconn.Conn, error) {
	c.mu.Lock()
	prepared := c.prepared
	c.prepared = nil
	meta := *c.meta()
	c.mu.Unlock()
	if prepared != nil {
		return prepared.conn, nil
	}
	return c.net.dial(ctx, c.login.UserMXID, &meta)
}

// session is what the event loop knows of one connection.
type session struct {
	conn *ircconn.Conn
	// syncing: channels joined whose names, topic, history replay and
	// modes are still arriving (folded name). The reply to the MODE query
	// that follows every JOIN ends it: the server answers commands in
	// order, and InspIRCd sends the history replay while joining.
	syncing   map[string]*channelSync
	motdEnded bool
}

type channelSync struct {
	replay []*ircconn.Message
}

// serve handles a connection's events until it ends or ctx does.
func (c *Client) serve(ctx context.Context, conn *ircconn.Conn) error {
	s := &session{conn: conn, syncing: map[string]*channelSync{}}
	regain := time.NewTicker(c.net.Config.RegainInterval)
	defer regain.Stop()
	for {
		select {
		case <-ctx.Done():
			qctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_ = conn.Quit(qctx, "Disconnected from Matrix")
			cancel()
			c.failJoins(errors.New("disconnected"))
			return ctx.Err()
		case ev, ok := <-conn.Events():
			if !ok {
				conn.Close()
				c.failJoins(conn.Err())
				return conn.Err()
			}
			c.handleEvent(ctx, s, ev)
		case <-regain.C:
			c.regainNick(ctx, conn)
		}
	}
}

// MONITOR replies (IRCv3 monitor).
const rplMonOffline = "731"

// watchWantedNick asks the server to say when the wanted nick is free,
// when the connection had to register with another and the server has
// MONITOR; without it the regain ticker asks for the nick now and then.
func (c *Client) watchWantedNick(ctx context.Context, conn *ircconn.Conn) {
	want := c.wantedNick()
	if want == "" || conn.ISupport().CaseMapping().Equal(conn.Nick(), want) {
		return
	}
	if _, ok := conn.ISupport().Get("MONITOR"); ok {
		_ = conn.Send(ctx, ircconn.NewMessage("MONITOR", "+", want))
	}
}

// regainNick asks for the wanted nick when the connection has another.
func (c *Client) regainNick(ctx context.Context, conn *ircconn.Conn) {
	want := c.wantedNick()
	if want != "" && !conn.ISupport().CaseMapping().Equal(conn.Nick(), want) {
		_ = conn.SetNick(ctx, want)
	}
}

func (c *Client) failJoins(err error) {
	if err == nil {
		err = ircconn.ErrClosed
	}
	c.mu.Lock()
	waiters := c.joinWait
	c.joinWait = map[string][]chan error{}
	c.mu.Unlock()
	for _, ws := range waiters {
		for _, w := range ws {
			w <- err
		}
	}
}

func (c *Client) wakeJoin(folded string, err error) {
	c.mu.Lock()
	ws := c.joinWait[folded]
	delete(c.joinWait, folded)
	c.mu.Unlock()
	for _, w := range ws {
		w <- err
	}
}

// joinAll joins the login's channels on a new connection.
func (c *Client) joinAll(ctx context.Context, conn *ircconn.Conn) {
	c.mu.Lock()
	chans := slices.Clone(c.meta().Channels)
	c.mu.Unlock()
	seen := map[string]bool{}
	for _, ch := range chans {
		seen[conn.Fold(ch.Name)] = true
		if err := conn.Join(ctx, ch.Name, ch.Key); err != nil {
			return
		}
	}
	// Channels the tracker knows that the metadata does not (a server
	// that joined us somewhere).
	for _, name := range c.tracker.Channels() {
		if !seen[conn.Fold(name)] {
			if ch, ok := c.tracker.Channel(name); ok && !ch.Joined {
				if err := conn.Join(ctx, name, ch.Modes['k']); err != nil {
					return
				}
			}
		}
	}
}

// addChannel records a channel in the login's metadata.
func (c *Client) addChannel(ctx context.Context, conn *ircconn.Conn, name, key string) {
	c.mu.Lock()
	meta := c.meta()
	for i, ch := range meta.Channels {
		if conn.Fold(ch.Name) == conn.Fold(name) {
			if key == "" || ch.Key == key {
				c.mu.Unlock()
				return
			}
			meta.Channels[i].Key = key
			c.mu.Unlock()
			c.saveLogin(ctx)
			return
		}
	}
	meta.Channels = append(meta.Channels, ChannelEntry{Name: name, Key: key})
	c.mu.Unlock()
	c.saveLogin(ctx)
}

func (c *Client) removeChannel(ctx context.Context, conn *ircconn.Conn, name string) {
	c.mu.Lock()
	meta := c.meta()
	n := len(meta.Channels)
	meta.Channels = slices.DeleteFunc(meta.Channels, func(ch ChannelEntry) bool {
		return conn.Fold(ch.Name) == conn.Fold(name)
	})
	changed := n != len(meta.Channels)
	c.mu.Unlock()
	if changed {
		c.saveLogin(ctx)
	}
}

func (c *Client) saveLogin(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.login.Save(ctx); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("Failed to save the login's channels")
	}
}

// handleEvent turns one event of the connection into remote events.
func (c *Client) handleEvent(ctx context.Context, s *session, ev ircconn.Event) {
	if ev.Batch != nil {
		if ev.Batch.Type == "chathistory" && len(ev.Batch.Params) > 0 {
			// A history replay on join (InspIRCd's chanhistory): kept for
			// the backfill of the channel's portal.
			if cs := s.syncing[s.conn.Fold(ev.Batch.Params[0])]; cs != nil {
				cs.replay = append(cs.replay, ev.Batch.Messages()...)
			}
			return
		}
		for _, it := range ev.Batch.Items {
			c.handleEvent(ctx, s, it)
		}
		return
	}
	m := ev.Message
	conn := s.conn
	cm := conn.ISupport().CaseMapping()
	selfNick := c.tracker.Nick()
	src := m.Prefix()
	self := selfNick != "" && cm.Equal(src.Name, selfNick)
	// What the tracker knew before this line, for lines that change it.
	var before map[string]ircconn.Channel
	switch m.Command {
	case "QUIT", "NICK":
		before = c.channelsWith(src.Name)
	case "MODE":
		if ch, ok := c.tracker.Channel(m.Param(0)); ok {
			before = map[string]ircconn.Channel{conn.Fold(ch.Name): ch}
		}
	}
	c.tracker.Handle(m)
	ts := m.Time()
	if ts.IsZero() {
		ts = time.Now()
	}

	switch m.Command {
	case ircconn.RPL_ISUPPORT:
		c.net.nicks.setCaseMapping(conn.ISupport().CaseMapping())
	case ircconn.RPL_ENDOFMOTD, ircconn.ERR_NOMOTD:
		if !s.motdEnded {
			s.motdEnded = true
			go c.joinAll(ctx, conn)
			c.watchWantedNick(ctx, conn)
		}
	case rplMonOffline:
		// The wanted nick is free (MONITOR).
		for _, nick := range strings.Split(m.Param(1), ",") {
			if cm.Equal(ircconn.ParsePrefix(nick).Name, c.wantedNick()) {
				c.regainNick(ctx, conn)
			}
		}
	case "JOIN":
		channel := m.Param(0)
		if self {
			s.syncing[conn.Fold(channel)] = &channelSync{}
			return
		}
		key := channelPortalKey(c.net.Config.NetworkID, conn.Fold(channel))
		if c.isOwnLogin(src.Name) || !c.net.claim(key.ID, c.login.ID) {
			return
		}
		mk, member := c.member(ctx, src.Name, event.MembershipJoin, "")
		c.queueMembers(key, c.sender(ctx, src.Name, false), ts, nil, map[networkid.UserID]bridgev2.ChatMember{mk: member})
	case ircconn.RPL_CHANNELMODEIS:
		f := conn.Fold(m.Param(1))
		if cs := s.syncing[f]; cs != nil {
			delete(s.syncing, f)
			c.finishJoin(ctx, conn, m.Param(1), cs)
		}
	case ircconn.ERR_NOSUCHCHANNEL, "405", ircconn.ERR_CHANNELISFULL, ircconn.ERR_INVITEONLYCHAN,
		ircconn.ERR_BANNEDFROMCHAN, ircconn.ERR_BADCHANNELKEY, "477", "479", "489":
		channel := m.Param(1)
		c.wakeJoin(conn.Fold(channel), fmt.Errorf("cannot join %s: %s", channel, m.Trailing()))
	case "PART", "KICK":
		c.onLeave(ctx, conn, m, self, ts)
	case "QUIT":
		if cm.Equal(src.Name, c.wantedNick()) {
			c.regainNick(ctx, conn)
		}
		if c.isOwnLogin(src.Name) {
			return
		}
		for f := range before {
			key := channelPortalKey(c.net.Config.NetworkID, f)
			if !c.net.claim(key.ID, c.login.ID) {
				continue
			}
			mk, member := c.member(ctx, src.Name, event.MembershipLeave, "")
			member.MemberEventExtra = map[string]any{"reason": quitReason(m.Trailing())}
			c.queueMembers(key, c.sender(ctx, src.Name, false), ts, nil, map[networkid.UserID]bridgev2.ChatMember{mk: member})
		}
	case "NICK":
		if self {
			return
		}
		if cm.Equal(src.Name, c.wantedNick()) {
			c.regainNick(ctx, conn)
		}
		if c.isOwnLogin(m.Param(0)) {
			return
		}
		ghost, changed := c.net.nicks.Rename(ctx, src.Name, m.Param(0))
		if changed {
			c.renameGhost(ctx, ghost, m.Param(0))
		}
	case "TOPIC":
		channel := m.Param(0)
		key := channelPortalKey(c.net.Config.NetworkID, conn.Fold(channel))
		if !c.net.claim(key.ID, c.login.ID) {
			return
		}
		topic := m.Param(1)
		c.events.push(&simplevent.ChatInfoChange{
			EventMeta: simplevent.EventMeta{Type: bridgev2.RemoteEventChatInfoChange, PortalKey: key,
				Sender: c.sender(ctx, src.Name, false), Timestamp: ts},
			ChatInfoChange: &bridgev2.ChatInfoChange{ChatInfo: &bridgev2.ChatInfo{Topic: &topic}},
		})
	case "MODE":
		if !conn.ISupport().IsChannel(m.Param(0)) {
			return
		}
		c.onModeChange(ctx, conn, m, before, ts)
	case "PRIVMSG", "NOTICE":
		c.onText(ctx, conn, m, self, ts)
	case "TAGMSG":
		c.onTagmsg(ctx, conn, m, self, ts)
	}
}

func quitReason(msg string) string {
	if msg == "" {
		return "Quit"
	}
	return "Quit: " + msg
}

// isOwnLogin reports whether nick is the connection of one of the bridge's
// logins: what it says came from Matrix and is not bridged back, and its
// membership is its login's business.
func (c *Client) isOwnLogin(nick string) bool {
	_, ok := c.net.loginByNick(nick)
	return ok
}

// channelsWith returns the tracked channels nick is in, by folded name.
func (c *Client) channelsWith(nick string) map[string]ircconn.Channel {
	out := map[string]ircconn.Channel{}
	for _, name := range c.tracker.Channels() {
		ch, ok := c.tracker.Channel(name)
		if !ok {
			continue
		}
		for _, mem := range ch.Members {
			if c.net.nicks.fold(mem.Nick) == c.net.nicks.fold(nick) {
				out[c.net.nicks.fold(ch.Name)] = ch
				break
			}
		}
	}
	return out
}

// sender is who did something: one of the bridge's logins (as itself, or
// through its double puppet) or the ghost of an IRC user. withGhost gives
// a login its nick's ghost too, for messages sent without a double puppet.
func (c *Client) sender(ctx context.Context, nick string, withGhost bool) bridgev2.EventSender {
	if lc, ok := c.net.loginByNick(nick); ok {
		s := bridgev2.EventSender{IsFromMe: lc == c, SenderLogin: lc.login.ID}
		if withGhost {
			s.Sender = c.net.nicks.GhostID(ctx, nick)
		}
		return s
	}
	return bridgev2.EventSender{Sender: c.net.nicks.GhostID(ctx, nick)}
}

// member is a channel member for a member list: a login's Matrix user, or
// an IRC user's ghost. modes, when not "-", sets the power level.
func (c *Client) member(ctx context.Context, nick string, membership event.Membership, modes string) (networkid.UserID, bridgev2.ChatMember) {
	var key networkid.UserID
	var m bridgev2.ChatMember
	if lc, ok := c.net.loginByNick(nick); ok {
		// No Sender: bridgev2 would bring the nick's ghost in besides
		// the user. The map key only has to be unique.
		key = networkid.UserID("login:" + string(lc.login.ID))
		m = bridgev2.ChatMember{EventSender: bridgev2.EventSender{IsFromMe: lc == c, SenderLogin: lc.login.ID},
			Membership: membership}
	} else {
		key = c.net.nicks.GhostID(ctx, nick)
		m = bridgev2.ChatMember{EventSender: bridgev2.EventSender{Sender: key}, Membership: membership}
		if membership == event.MembershipJoin {
			name := nick
			m.UserInfo = &bridgev2.UserInfo{Name: &name, Identifiers: []string{"irc:" + nick}}
		}
	}
	if membership == event.MembershipLeave {
		// Only someone the room has as joined leaves: a QUIT or PART of a
		// user the room never saw is not a leave event of a new ghost.
		m.PrevMembership = event.MembershipJoin
	}
	if modes != "-" {
		level := memberLevel(modes)
		m.PowerLevel = &level
	}
	return key, m
}

// queueMembers queues a member list change.
func (c *Client) queueMembers(key networkid.PortalKey, sender bridgev2.EventSender, ts time.Time,
	levels *bridgev2.PowerLevelOverrides, members map[networkid.UserID]bridgev2.ChatMember) {
	c.events.push(&simplevent.ChatInfoChange{
		EventMeta: simplevent.EventMeta{Type: bridgev2.RemoteEventChatInfoChange, PortalKey: key, Sender: sender,
			Timestamp: ts},
		ChatInfoChange: &bridgev2.ChatInfoChange{MemberChanges: &bridgev2.ChatMemberList{
			MemberMap: members, PowerLevels: levels}},
	})
}

// levelOverrides are the room power levels a channel's modes ask for.
func levelOverrides(modes map[byte]string) *bridgev2.PowerLevelOverrides {
	ed, topic := channelLevels(modes)
	return &bridgev2.PowerLevelOverrides{EventsDefault: &ed, Events: map[event.Type]int{event.StateTopic: topic}}
}

// chatInfo is a channel's room as the tracker knows it: name, topic, the
// whole member list with power levels.
func (c *Client) chatInfo(ctx context.Context, ch ircconn.Channel) *bridgev2.ChatInfo {
	members := &bridgev2.ChatMemberList{IsFull: true, MemberMap: bridgev2.ChatMemberMap{},
		PowerLevels: levelOverrides(ch.Modes), TotalMemberCount: len(ch.Members)}
	for _, mem := range ch.Members {
		k, m := c.member(ctx, mem.Nick, event.MembershipJoin, mem.Modes)
		members.MemberMap[k] = m
	}
	name, topic := ch.Name, ch.Topic
	return &bridgev2.ChatInfo{
		Name:        &name,
		Topic:       &topic,
		Members:     members,
		Type:        ptrTo(database.RoomTypeDefault),
		CanBackfill: true,
	}
}

func ptrTo[T any](v T) *T { return &v }

// finishJoin runs once a joined channel's names, topic, history and modes
// have arrived: the portal is created, or resynced (members, topic, power
// levels) after a reconnect, and backfilled from the replay.
func (c *Client) finishJoin(ctx context.Context, conn *ircconn.Conn, channel string, cs *channelSync) {
	ch, ok := c.tracker.Channel(channel)
	if !ok {
		return
	}
	f := conn.Fold(ch.Name)
	c.addChannel(ctx, conn, ch.Name, ch.Modes['k'])
	key := channelPortalKey(c.net.Config.NetworkID, f)
	c.net.claim(key.ID, c.login.ID)
	c.mu.Lock()
	c.replays[f] = cs.replay
	c.unreplayed[f] = len(cs.replay) > 0
	c.mu.Unlock()
	var latest time.Time
	for _, m := range cs.replay {
		if t := m.Time(); t.After(latest) {
			latest = t
		}
	}
	c.events.push(&simplevent.ChatResync{
		EventMeta: simplevent.EventMeta{Type: bridgev2.RemoteEventChatResync, PortalKey: key, CreatePortal: true,
			Timestamp: time.Now()},
		ChatInfo:            c.chatInfo(ctx, ch),
		LatestMessageTS:     latest,
		BundledBackfillData: slices.Clone(cs.replay),
	})
	c.wakeJoin(f, nil)
}

// onLeave handles PART and KICK.
func (c *Client) onLeave(ctx context.Context, conn *ircconn.Conn, m *ircconn.Message, self bool, ts time.Time) {
	channel, who, reason := m.Param(0), m.Prefix().Name, ""
	if m.Command == "KICK" {
		who = m.Param(1)
		reason = m.Param(2)
		if reason == "" || reason == m.Prefix().Name {
			reason = "Kicked"
		}
	} else if len(m.Params) > 1 {
		reason = m.Param(1)
	}
	key := channelPortalKey(c.net.Config.NetworkID, conn.Fold(channel))
	cm := conn.ISupport().CaseMapping()
	selfTarget := self && m.Command == "PART" || m.Command == "KICK" && cm.Equal(who, conn.Nick())
	if selfTarget {
		// The login left the channel: its user leaves the room.
		c.removeChannel(ctx, conn, channel)
		c.net.release(key.ID, c.login.ID)
		c.mu.Lock()
		delete(c.replays, conn.Fold(channel))
		c.mu.Unlock()
		mk, member := c.member(ctx, who, event.MembershipLeave, "-")
		member.EventSender = bridgev2.EventSender{IsFromMe: true, SenderLogin: c.login.ID}
		if reason != "" {
			member.MemberEventExtra = map[string]any{"reason": reason}
		}
		c.queueMembers(key, c.sender(ctx, m.Prefix().Name, false), ts, nil,
			map[networkid.UserID]bridgev2.ChatMember{mk: member})
		return
	}
	if c.isOwnLogin(who) || !c.net.claim(key.ID, c.login.ID) {
		return
	}
	mk, member := c.member(ctx, who, event.MembershipLeave, "-")
	if reason != "" {
		member.MemberEventExtra = map[string]any{"reason": reason}
	}
	c.queueMembers(key, c.sender(ctx, m.Prefix().Name, false), ts, nil, map[networkid.UserID]bridgev2.ChatMember{mk: member})
}

// onModeChange turns changes of prefix modes and of +m/+t into power
// level changes.
func (c *Client) onModeChange(ctx context.Context, conn *ircconn.Conn, m *ircconn.Message, before map[string]ircconn.Channel, ts time.Time) {
	f := conn.Fold(m.Param(0))
	key := channelPortalKey(c.net.Config.NetworkID, f)
	if !c.net.claim(key.ID, c.login.ID) {
		return
	}
	after, ok := c.tracker.Channel(m.Param(0))
	if !ok {
		return
	}
	old := before[f]
	changed := map[networkid.UserID]bridgev2.ChatMember{}
	for k, mem := range after.Members {
		if memberLevel(old.Members[k].Modes) != memberLevel(mem.Modes) {
			mk, member := c.member(ctx, mem.Nick, event.MembershipJoin, mem.Modes)
			member.UserInfo = nil
			changed[mk] = member
		}
	}
	var levels *bridgev2.PowerLevelOverrides
	oe, ot := channelLevels(old.Modes)
	ne, nt := channelLevels(after.Modes)
	if oe != ne || ot != nt {
		levels = levelOverrides(after.Modes)
	}
	if len(changed) == 0 && levels == nil {
		return
	}
	c.queueMembers(key, c.sender(ctx, m.Prefix().Name, false), ts, levels, changed)
}

// renameGhost shows a NICK change: the ghost keeps its Matrix ID and takes
// the new nick as display name.
func (c *Client) renameGhost(ctx context.Context, ghostID networkid.UserID, nick string) {
	ghost, err := c.net.br.GetExistingGhostByID(ctx, ghostID)
	if err != nil || ghost == nil {
		return // never seen on Matrix: nothing to update
	}
	// Off the event loop: setting a display name is a Matrix request.
	c.events.pushFunc(func(ctx context.Context) {
		ghost.UpdateInfo(ctx, &bridgev2.UserInfo{Name: &nick, Identifiers: []string{"irc:" + nick}})
	})
}

// onText handles PRIVMSG and NOTICE.
func (c *Client) onText(ctx context.Context, conn *ircconn.Conn, m *ircconn.Message, self bool, ts time.Time) {
	src := m.Prefix()
	target, text := m.Param(0), m.Trailing()
	if src.Name == "" || src.IsServer() || self || len(m.Params) < 2 {
		return
	}
	if cmd, _, ok := ircconn.ParseCTCP(text); ok && cmd == "VERSION" && m.Command == "PRIVMSG" {
		_ = conn.Send(ctx, ircconn.NewMessage("NOTICE", src.Name, ircconn.CTCP("VERSION", "Tributary IRC bridge")))
		return
	}
	if ircToMatrix(m.Command, text) == nil {
		return
	}
	key, isDM, ok := c.textPortal(ctx, conn, src, target)
	if !ok {
		return
	}
	c.events.push(&simplevent.Message[*ircconn.Message]{
		EventMeta: simplevent.EventMeta{Type: bridgev2.RemoteEventMessage, PortalKey: key,
			Sender: c.sender(ctx, src.Name, true), CreatePortal: isDM, Timestamp: ts},
		ID:                 messageID(m),
		Data:               m,
		ConvertMessageFunc: c.convertMessage,
	})
}

// textPortal is the portal of what src sends to target (a channel, or the
// login's nick: a DM); not ok when it is not this login's to bridge.
func (c *Client) textPortal(ctx context.Context, conn *ircconn.Conn, src ircconn.Prefix, target string) (key networkid.PortalKey, isDM, ok bool) {
	switch {
	case conn.ISupport().IsChannel(target):
		if c.isOwnLogin(src.Name) {
			return key, false, false // sent from Matrix through another login
		}
		key = channelPortalKey(c.net.Config.NetworkID, conn.Fold(target))
		return key, false, c.net.claim(key.ID, c.login.ID)
	case conn.ISupport().CaseMapping().Equal(target, conn.Nick()):
		if src.User == "" && src.Host == "" {
			return key, false, false // from the server itself
		}
		return dmPortalKey(c.net.Config.NetworkID, c.net.nicks.GhostID(ctx, src.Name), c.login.ID), true, true
	}
	return key, false, false
}

// typingTimeout is how long an IRCv3 "+typing=active" lasts unless
// renewed (the typing client tag's specification: 6 seconds).
const typingTimeout = 6 * time.Second

// onTagmsg handles TAGMSG: typing notifications (the +typing client tag)
// become the ghost's typing in the portal.
func (c *Client) onTagmsg(ctx context.Context, conn *ircconn.Conn, m *ircconn.Message, self bool, ts time.Time) {
	state, ok := m.Tag("+typing")
	if !ok {
		state, ok = m.Tag("+draft/typing")
	}
	src := m.Prefix()
	if !ok || self || src.Name == "" || src.IsServer() || len(m.Params) < 1 {
		return
	}
	key, _, ok := c.textPortal(ctx, conn, src, m.Param(0))
	if !ok {
		return
	}
	timeout := time.Duration(0) // paused, done
	if state == "active" {
		timeout = typingTimeout
	}
	c.events.push(&simplevent.Typing{EventMeta: simplevent.EventMeta{Type: bridgev2.RemoteEventTyping, PortalKey: key,
		Sender: c.sender(ctx, src.Name, true), Timestamp: ts}, Timeout: timeout, Type: bridgev2.TypingTypeText})
}

// convertMessage is an IRC line's Matrix message.
func (c *Client) convertMessage(ctx context.Context, _ *bridgev2.Portal, _ bridgev2.MatrixAPI, m *ircconn.Message) (*bridgev2.ConvertedMessage, error) {
	content := ircToMatrix(m.Command, m.Trailing())
	if content == nil {
		return nil, errors.New("not a message")
	}
	mentionNicks(content, c.loginNicks(), c.net.nicks.fold)
	cm := &bridgev2.ConvertedMessage{Parts: []*bridgev2.ConvertedMessagePart{{Type: event.EventMessage, Content: content}}}
	if reply, ok := m.Tag("+draft/reply"); ok && reply != "" {
		cm.ReplyTo = &networkid.MessageOptionalPartID{MessageID: networkid.MessageID(reply)}
	}
	return cm, nil
}

// loginNicks maps the folded nicks of the bridge's connections to their
// Matrix users.
func (c *Client) loginNicks() map[string]id.UserID {
	c.net.mu.Lock()
	clients := make([]*Client, 0, len(c.net.clients))
	for _, lc := range c.net.clients {
		clients = append(clients, lc)
	}
	c.net.mu.Unlock()
	out := map[string]id.UserID{}
	for _, lc := range clients {
		if conn := lc.currentConn(); conn != nil {
			out[c.net.nicks.fold(conn.Nick())] = lc.login.UserMXID
		}
	}
	return out
}

// GetChatInfo is a portal's room as the connection knows it.
func (c *Client) GetChatInfo(ctx context.Context, portal *bridgev2.Portal) (*bridgev2.ChatInfo, error) {
	_, channel, dm, ok := parsePortalID(portal.ID)
	if !ok {
		return nil, fmt.Errorf("irc: not an IRC portal: %s", portal.ID)
	}
	if dm != "" {
		members := &bridgev2.ChatMemberList{IsFull: true, OtherUserID: dm, MemberMap: bridgev2.ChatMemberMap{}}
		members.MemberMap["login:"+networkid.UserID(c.login.ID)] = bridgev2.ChatMember{
			EventSender: bridgev2.EventSender{IsFromMe: true, SenderLogin: c.login.ID}, Membership: event.MembershipJoin}
		members.MemberMap[dm] = bridgev2.ChatMember{EventSender: bridgev2.EventSender{Sender: dm}, Membership: event.MembershipJoin}
		return &bridgev2.ChatInfo{Members: members, Type: ptrTo(database.RoomTypeDM), CanBackfill: true}, nil
	}
	if ch, ok := c.tracker.Channel(channel); ok && ch.Synced {
		return c.chatInfo(ctx, ch), nil
	}
	return &bridgev2.ChatInfo{Name: &channel, Type: ptrTo(database.RoomTypeDefault), CanBackfill: true}, nil
}

// GetUserInfo is a ghost's profile: its current nick.
func (c *Client) GetUserInfo(ctx context.Context, ghost *bridgev2.Ghost) (*bridgev2.UserInfo, error) {
	nick := c.net.nicks.Nick(ctx, ghost.ID)
	if nick == "" {
		nick = string(ghost.ID)
	}
	return &bridgev2.UserInfo{Name: &nick, Identifiers: []string{"irc:" + nick}}, nil
}

// GetCapabilities: what an IRC channel can carry. Formatting is mIRC's;
// edits go as corrections, files as links; relayed users are named in the
// text by the connector (PerMessageProfileRelay), as "<name> text".
func (c *Client) GetCapabilities(context.Context, *bridgev2.Portal) *event.RoomFeatures {
	return roomFeatures
}

var roomFeatures = &event.RoomFeatures{
	ID: "org.tributary.irc.channel.v1",
	Formatting: event.FormattingFeatureMap{
		event.FmtBold: event.CapLevelFullySupported, event.FmtItalic: event.CapLevelFullySupported,
		event.FmtUnderline: event.CapLevelFullySupported, event.FmtStrikethrough: event.CapLevelFullySupported,
		event.FmtInlineCode: event.CapLevelFullySupported, event.FmtCodeBlock: event.CapLevelPartialSupport,
		event.FmtTextForegroundColor: event.CapLevelPartialSupport, event.FmtTextBackgroundColor: event.CapLevelPartialSupport,
		event.FmtInlineLink: event.CapLevelPartialSupport, event.FmtUserLink: event.CapLevelPartialSupport,
		event.FmtBlockquote: event.CapLevelPartialSupport, event.FmtUnorderedList: event.CapLevelPartialSupport,
		event.FmtOrderedList: event.CapLevelPartialSupport,
	},
	File: event.FileFeatureMap{
		event.MsgImage: {Caption: event.CapLevelPartialSupport},
		event.MsgFile:  {Caption: event.CapLevelPartialSupport},
		event.MsgAudio: {Caption: event.CapLevelPartialSupport},
		event.MsgVideo: {Caption: event.CapLevelPartialSupport},
	},
	Reply:                  event.CapLevelPartialSupport,
	Edit:                   event.CapLevelPartialSupport,
	Delete:                 event.CapLevelRejected,
	Reaction:               event.CapLevelRejected,
	PerMessageProfileRelay: true,
}

// remoteQueue hands remote events to bridgev2 in order, on a goroutine of
// its own, so that the IRC event loop never waits for a portal.
type remoteQueue struct {
	mu    sync.Mutex
	items []func(ctx context.Context, login *bridgev2.UserLogin)
	wake  chan struct{}
}

func newRemoteQueue() *remoteQueue { return &remoteQueue{wake: make(chan struct{}, 1)} }

func (q *remoteQueue) push(evt bridgev2.RemoteEvent) {
	q.add(func(_ context.Context, login *bridgev2.UserLogin) { login.QueueRemoteEvent(evt) })
}

// pushFunc queues work that talks to Matrix, in order with the events.
func (q *remoteQueue) pushFunc(f func(ctx context.Context)) {
	q.add(func(ctx context.Context, _ *bridgev2.UserLogin) { f(ctx) })
}

func (q *remoteQueue) add(item func(ctx context.Context, login *bridgev2.UserLogin)) {
	q.mu.Lock()
	q.items = append(q.items, item)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// run delivers queued events, one at a time, until ctx ends, and then
// closes done. What it has not delivered stays queued for the next run
// (a Connect after a Disconnect).
func (q *remoteQueue) run(ctx context.Context, login *bridgev2.UserLogin, done chan<- struct{}) {
	defer close(done)
	for ctx.Err() == nil {
		q.mu.Lock()
		var item func(context.Context, *bridgev2.UserLogin)
		if len(q.items) > 0 {
			item = q.items[0]
			q.items[0] = nil
			q.items = q.items[1:]
		}
		q.mu.Unlock()
		if item != nil {
			item(ctx, login)
			continue
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
		}
	}
}
