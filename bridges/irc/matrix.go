package irc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/irc/ircconn"
)

// errNotConnected is what Matrix users hear while their connection is down.
var errNotConnected = bridgev2.WrapErrorInStatus(errors.New("not connected to IRC right now")).
	WithIsCertain(true).WithSendNotice(true)

// joinTimeout bounds how long a Matrix message waits for its login to join
// the channel.
const joinTimeout = 30 * time.Second

// target is where a portal's messages go on IRC: a channel (its name as
// the server spells it, when known) or a nick.
func (c *Client) target(ctx context.Context, portal *bridgev2.Portal) (name string, channel bool, err error) {
	_, ch, dm, ok := parsePortalID(portal.ID)
	switch {
	case !ok:
		return "", false, fmt.Errorf("irc: not an IRC portal: %s", portal.ID)
	case dm != "":
		nick := c.net.nicks.Nick(ctx, dm)
		if nick == "" {
			return "", false, fmt.Errorf("irc: no nick known for %s", dm)
		}
		return nick, false, nil
	}
	if tc, ok := c.tracker.Channel(ch); ok {
		return tc.Name, true, nil
	}
	if portal.Name != "" && strings.EqualFold(portal.Name, ch) {
		return portal.Name, true, nil
	}
	return ch, true, nil
}

// JoinChannel joins a channel (the join command, and a relay or a Matrix
// user's message in a channel the login left) and waits until its portal
// is synced: names, topic, modes and history have arrived.
func (c *Client) JoinChannel(ctx context.Context, channel, key string) error {
	conn := c.awaitConn(ctx)
	if conn == nil {
		return errNotConnected
	}
	if !conn.ISupport().IsChannel(channel) {
		return fmt.Errorf("%q is not a channel name", channel)
	}
	f := conn.Fold(channel)
	wait := make(chan error, 1)
	c.mu.Lock()
	c.joinWait[f] = append(c.joinWait[f], wait)
	c.mu.Unlock()
	if err := conn.Join(ctx, channel, key); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	select {
	case err := <-wait:
		return err
	case <-ctx.Done():
		return fmt.Errorf("joining %s: %w", channel, ctx.Err())
	}
}

// PartChannel leaves a channel.
func (c *Client) PartChannel(ctx context.Context, channel, reason string) error {
	conn := c.awaitConn(ctx)
	if conn == nil {
		return errNotConnected
	}
	return conn.Part(ctx, channel, reason)
}

// ensureJoined joins channel unless the connection is in it.
func (c *Client) ensureJoined(ctx context.Context, channel string) error {
	if ch, ok := c.tracker.Channel(channel); ok && ch.Joined && ch.Synced {
		return nil
	}
	key := ""
	c.mu.Lock()
	for _, e := range c.meta().Channels {
		if strings.EqualFold(e.Name, channel) {
			key = e.Key
		}
	}
	c.mu.Unlock()
	return c.JoinChannel(ctx, channel, key)
}

// nickOf is a Matrix user's nick on IRC: a ghost's, or a login's.
func (c *Client) nickOf(ctx context.Context, user id.UserID) string {
	if ghost, ok := c.net.br.Matrix.ParseGhostMXID(user); ok {
		return c.net.nicks.Nick(ctx, ghost)
	}
	if lc, ok := c.net.loginByUser(user); ok {
		if conn := lc.currentConn(); conn != nil {
			return conn.Nick()
		}
		return lc.wantedNick()
	}
	return ""
}

// outgoing is a Matrix message as IRC text, with the line's client tags.
func (c *Client) outgoing(ctx context.Context, conn *ircconn.Conn, content *event.MessageEventContent,
	replyTo *database.Message, orig *bridgev2.OrigSender) (text string, tags map[string]string) {
	if content.MsgType.IsMedia() {
		text = c.mediaText(ctx, content)
	} else {
		text = matrixToIRC(content, func(u id.UserID) string { return c.nickOf(ctx, u) })
	}
	if replyTo != nil {
		if nick := c.net.nicks.Nick(ctx, replyTo.SenderID); nick != "" && !strings.HasPrefix(text, nick) {
			text = nick + ": " + text
		}
		if isRealMsgID(replyTo.ID) && conn.HasCap("message-tags") {
			tags = map[string]string{"+draft/reply": string(replyTo.ID)}
		}
	}
	if orig != nil {
		name := orig.DisambiguatedName
		if name == "" {
			name = orig.UserID.Localpart()
		}
		text = relayLines(name, text, content.MsgType == event.MsgEmote)
	}
	return text, tags
}

// mediaText is a file as a line: its caption or name and a link.
func (c *Client) mediaText(ctx context.Context, content *event.MessageEventContent) string {
	name := content.FileName
	caption := ""
	if name == "" {
		name = content.Body
	} else if content.Body != name {
		caption = content.Body
	}
	link := string(content.URL)
	if content.File != nil {
		link = string(content.File.URL)
	}
	if pm, ok := c.net.br.Matrix.(bridgev2.MatrixConnectorWithPublicMedia); ok {
		if addr, err := pm.GetPublicMediaAddressForEvent(ctx, content); err == nil && addr != "" {
			link = addr
		}
	}
	text := name + ": " + link
	if caption != "" {
		text = caption + "\n" + text
	}
	return text
}

// send sends text as msgType to target and returns the first line's echo
// (with echo-message and labeled-response), else nil.
func send(ctx context.Context, conn *ircconn.Conn, target, text string, msgType event.MessageType, relayed bool, tags map[string]string) (*ircconn.Message, error) {
	var echoes []*ircconn.Message
	var err error
	switch {
	case msgType == event.MsgEmote && !relayed:
		echoes, err = conn.Action(ctx, target, text, tags)
	case msgType == event.MsgNotice:
		echoes, err = conn.Notice(ctx, target, text, tags)
	default:
		echoes, err = conn.Privmsg(ctx, target, text, tags)
	}
	if err != nil {
		return nil, err
	}
	if len(echoes) == 0 {
		return nil, nil
	}
	return echoes[0], nil
}

func (c *Client) HandleMatrixMessage(ctx context.Context, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	conn := c.awaitConn(ctx)
	if conn == nil {
		return nil, errNotConnected
	}
	target, isChannel, err := c.target(ctx, msg.Portal)
	if err != nil {
		return nil, err
	}
	if isChannel {
		if err := c.ensureJoined(ctx, target); err != nil {
			return nil, err
		}
		c.catchUp(ctx, msg.Portal, target)
	}
	text, tags := c.outgoing(ctx, conn, msg.Content, msg.ReplyTo, msg.OrigSender)
	if strings.TrimSpace(ircconn.StripFormatting(text)) == "" {
		return nil, errors.New("empty message")
	}
	echo, err := send(ctx, conn, target, text, msg.Content.MsgType, msg.OrigSender != nil, tags)
	if err != nil {
		return nil, err
	}
	dbm := &database.Message{
		ID:        networkid.MessageID("mx/" + string(msg.Event.ID)),
		SenderID:  c.net.nicks.GhostID(ctx, conn.Nick()),
		Timestamp: time.UnixMilli(msg.Event.Timestamp),
	}
	if echo != nil {
		// The ID other connections see the line with, so that none of
		// them bridges it back as new.
		dbm.ID = messageID(echo)
		if t := echo.Time(); !t.IsZero() {
			dbm.Timestamp = t
		}
	}
	return &bridgev2.MatrixMessageResponse{DB: dbm}, nil
}

// HandleMatrixTyping tells the channel or DM that the user is typing, with
// the IRCv3 +typing client tag on a TAGMSG (servers with message-tags;
// elsewhere IRC has no typing notifications).
func (c *Client) HandleMatrixTyping(ctx context.Context, msg *bridgev2.MatrixTyping) error {
	conn := c.currentConn()
	if conn == nil || !conn.HasCap("message-tags") || msg.Type != bridgev2.TypingTypeText {
		return nil
	}
	target, _, err := c.target(ctx, msg.Portal)
	if err != nil {
		return err
	}
	state := "done"
	if msg.IsTyping {
		state = "active"
	}
	m := ircconn.NewMessage("TAGMSG", target)
	m.SetTag("+typing", state)
	return conn.Send(ctx, m)
}

// HandleMatrixEdit sends the edited text as a correction, "* new text":
// IRC has no edits, and IRC users read corrections that way.
func (c *Client) HandleMatrixEdit(ctx context.Context, msg *bridgev2.MatrixEdit) error {
	conn := c.awaitConn(ctx)
	if conn == nil {
		return errNotConnected
	}
	target, isChannel, err := c.target(ctx, msg.Portal)
	if err != nil {
		return err
	}
	if isChannel {
		if err := c.ensureJoined(ctx, target); err != nil {
			return err
		}
		c.catchUp(ctx, msg.Portal, target)
	}
	text, _ := c.outgoing(ctx, conn, msg.Content, nil, msg.OrigSender)
	if msg.OrigSender == nil {
		text = "* " + text
	}
	_, err = send(ctx, conn, target, text, event.MsgText, true, nil)
	return err
}

// HandleMatrixRoomTopic sets the channel's topic.
func (c *Client) HandleMatrixRoomTopic(ctx context.Context, msg *bridgev2.MatrixRoomTopic) (bool, error) {
	conn := c.awaitConn(ctx)
	if conn == nil {
		return false, errNotConnected
	}
	target, isChannel, err := c.target(ctx, msg.Portal)
	if err != nil || !isChannel {
		return false, err
	}
	topic := strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(msg.Content.Topic)
	if err := c.request(ctx, conn, ircconn.NewMessage("TOPIC", target, topic)); err != nil {
		return false, err
	}
	msg.Portal.Topic, msg.Portal.TopicSet = msg.Content.Topic, true
	return true, nil
}

// request sends a command and, with labeled-response, returns the error
// numeric the server answered with.
func (c *Client) request(ctx context.Context, conn *ircconn.Conn, m *ircconn.Message) error {
	resp, err := conn.Request(ctx, m)
	if errors.Is(err, ircconn.ErrNotSupported) {
		return conn.Send(ctx, m)
	}
	if err != nil {
		return err
	}
	for _, r := range resp.Messages() {
		if r.IsNumeric() && r.Command >= "400" && r.Command < "600" || r.Command == "FAIL" {
			return &refusedError{command: m.Command, reply: r.Command, text: r.Trailing()}
		}
	}
	return nil
}

// refusedError is an IRC server's error reply to a command.
type refusedError struct {
	command, reply, text string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("the IRC server refused %s: %s", e.command, e.text)
}

// refusedWith reports whether err is the server's reply numeric to a
// command.
func refusedWith(err error, numeric string) bool {
	var re *refusedError
	return errors.As(err, &re) && re.reply == numeric
}

// HandleMatrixMembership: a kick or ban of a ghost kicks (and bans) the IRC
// user, an invite invites, the user leaving the room parts the channel.
func (c *Client) HandleMatrixMembership(ctx context.Context, msg *bridgev2.MatrixMembershipChange) (*bridgev2.MatrixMembershipResult, error) {
	conn := c.awaitConn(ctx)
	if conn == nil {
		return nil, errNotConnected
	}
	target, isChannel, err := c.target(ctx, msg.Portal)
	if err != nil || !isChannel {
		return nil, err
	}
	if msg.Type != bridgev2.Leave {
		// Kicks, bans and invites are the channel's business: the login
		// must be in it (just reconnected, it may be joining again).
		if err := c.ensureJoined(ctx, target); err != nil {
			return nil, err
		}
	}
	var nick string
	switch t := msg.Target.(type) {
	case *bridgev2.Ghost:
		nick = c.net.nicks.Nick(ctx, t.ID)
	case *bridgev2.UserLogin:
		if lc, ok := t.Client.(*Client); ok {
			if conn := lc.currentConn(); conn != nil {
				nick = conn.Nick()
			}
		}
	}
	reason := msg.Content.Reason
	switch msg.Type {
	case bridgev2.Leave:
		if lc, ok := msg.Target.(*bridgev2.UserLogin); ok && lc.ID == c.login.ID {
			return nil, conn.Part(ctx, target, reason)
		}
	case bridgev2.Kick, bridgev2.BanJoined:
		if nick == "" {
			return nil, nil // a Matrix user the channel does not know
		}
		if msg.Type == bridgev2.BanJoined {
			if err := c.request(ctx, conn, ircconn.NewMessage("MODE", target, "+b", nick+"!*@*")); err != nil {
				return nil, err
			}
		}
		m := ircconn.NewMessage("KICK", target, nick)
		if reason != "" {
			m.Params = append(m.Params, reason)
		}
		err := c.request(ctx, conn, m)
		if refusedWith(err, ircconn.ERR_USERNOTINCHANNEL) {
			// Not in the channel: gone already, as the kick wants (a kick
			// delivered again after a restart).
			err = nil
		}
		return nil, err
	case bridgev2.Invite:
		if nick == "" {
			return nil, nil // a Matrix user: the invite is Matrix's business
		}
		return nil, c.request(ctx, conn, ircconn.NewMessage("INVITE", nick, target))
	case bridgev2.Unban:
		if nick != "" {
			return nil, c.request(ctx, conn, ircconn.NewMessage("MODE", target, "-b", nick+"!*@*"))
		}
	}
	return nil, nil
}

// HandleMatrixPowerLevels gives or takes +o and +v for changed user levels.
func (c *Client) HandleMatrixPowerLevels(ctx context.Context, msg *bridgev2.MatrixPowerLevelChange) (bool, error) {
	conn := c.awaitConn(ctx)
	if conn == nil {
		return false, errNotConnected
	}
	target, isChannel, err := c.target(ctx, msg.Portal)
	if err != nil || !isChannel {
		return false, err
	}
	ch, _ := c.tracker.Channel(target)
	for _, change := range msg.Users {
		var nick string
		switch t := change.Target.(type) {
		case *bridgev2.Ghost:
			nick = c.net.nicks.Nick(ctx, t.ID)
		case *bridgev2.UserLogin:
			if lc, ok := t.Client.(*Client); ok {
				if lconn := lc.currentConn(); lconn != nil {
					nick = lconn.Nick()
				}
			}
		}
		if nick == "" {
			continue
		}
		have := ch.Members[conn.Fold(nick)].Modes
		want := modesForLevel(change.NewLevel)
		var modes []string
		for _, mode := range "ov" {
			has, wants := strings.ContainsRune(have, mode), strings.ContainsRune(want, mode)
			switch {
			case wants && !has:
				modes = append(modes, "+"+string(mode))
			case has && !wants:
				modes = append(modes, "-"+string(mode))
			}
		}
		for _, mode := range modes {
			if err := c.request(ctx, conn, ircconn.NewMessage("MODE", target, mode, nick)); err != nil {
				return false, err
			}
		}
	}
	return true, nil
}

// ResolveIdentifier starts a private conversation with a nick.
func (c *Client) ResolveIdentifier(ctx context.Context, identifier string, createChat bool) (*bridgev2.ResolveIdentifierResponse, error) {
	nick := strings.TrimPrefix(strings.TrimSpace(identifier), "irc:")
	if !ValidNick(nick) {
		return nil, bridgev2.WrapRespErr(fmt.Errorf("%q is not a valid nick", nick), mautrix.MInvalidParam)
	}
	ghostID := c.net.nicks.GhostID(ctx, nick)
	ghost, err := c.net.br.GetGhostByID(ctx, ghostID)
	if err != nil {
		return nil, err
	}
	resp := &bridgev2.ResolveIdentifierResponse{Ghost: ghost, UserID: ghostID,
		UserInfo: &bridgev2.UserInfo{Name: &nick, Identifiers: []string{"irc:" + nick}}}
	if createChat {
		resp.Chat = &bridgev2.CreateChatResponse{PortalKey: dmPortalKey(c.net.Config.NetworkID, ghostID, c.login.ID)}
	}
	return resp, nil
}
