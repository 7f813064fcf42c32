package telegram

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/gotd/td/tg"
	"github.com/rs/zerolog"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/simplevent"
	"maunium.net/go/mautrix/event"
)

// handleUpdates bridges what MTProto pushes: each update in order, after
// the users and chats that come with them are remembered.
func (c *UserClient) handleUpdates(ctx context.Context, u tg.UpdatesClass) {
	switch u := u.(type) {
	case *tg.Updates:
		c.remember(u.Users, u.Chats)
		for _, upd := range u.Updates {
			c.handleUpdate(ctx, upd)
		}
	case *tg.UpdatesCombined:
		c.remember(u.Users, u.Chats)
		for _, upd := range u.Updates {
			c.handleUpdate(ctx, upd)
		}
	case *tg.UpdateShort:
		c.handleUpdate(ctx, u.Update)
	case *tg.UpdateShortMessage:
		// A private message, in short: the peer is the other user.
		m := &tg.Message{ID: u.ID, Out: u.Out, PeerID: &tg.PeerUser{UserID: u.UserID}, Date: u.Date,
			Message: u.Message, Entities: u.Entities, ReplyTo: u.ReplyTo, FwdFrom: u.FwdFrom}
		if u.Out {
			m.FromID = &tg.PeerUser{UserID: c.meta().UserID}
		} else {
			m.FromID = &tg.PeerUser{UserID: u.UserID}
		}
		c.handleMessage(ctx, m)
	case *tg.UpdateShortChatMessage:
		m := &tg.Message{ID: u.ID, Out: u.Out, PeerID: &tg.PeerChat{ChatID: u.ChatID},
			FromID: &tg.PeerUser{UserID: u.FromID}, Date: u.Date, Message: u.Message, Entities: u.Entities,
			ReplyTo: u.ReplyTo, FwdFrom: u.FwdFrom}
		c.handleMessage(ctx, m)
	case *tg.UpdatesTooLong:
		zerolog.Ctx(ctx).Warn().Msg("Telegram says updates were missed (updatesTooLong)")
	}
}

func (c *UserClient) handleUpdate(ctx context.Context, upd tg.UpdateClass) {
	switch u := upd.(type) {
	case *tg.UpdateNewMessage:
		c.handleMessageClass(ctx, u.Message)
	case *tg.UpdateNewChannelMessage:
		c.handleMessageClass(ctx, u.Message)
	case *tg.UpdateEditMessage:
		c.handleEdit(ctx, u.Message)
	case *tg.UpdateEditChannelMessage:
		c.handleEdit(ctx, u.Message)
	case *tg.UpdateDeleteMessages:
		// Outside channels, message IDs are the account's: the update
		// names no chat.
		for _, id := range u.Messages {
			if key, target, ok := c.findMessage(ctx, id); ok {
				c.queueDelete(key, target)
			}
		}
	case *tg.UpdateDeleteChannelMessages:
		chatID := -channelIDBase - u.ChannelID
		for _, id := range u.Messages {
			target := messageIDOf(chatID, id)
			c.queueDelete(c.knownPortal(ctx, chatID, target), target)
		}
	case *tg.UpdateMessageReactions:
		c.handleReactions(ctx, botAPIChatID(u.Peer), u.MsgID, u.TopMsgID, u.Reactions)
	case *tg.UpdateUserTyping:
		c.handleTyping(u.UserID, &tg.PeerUser{UserID: u.UserID}, 0, u.Action)
	case *tg.UpdateChatUserTyping:
		c.handleTyping(-u.ChatID, u.FromID, 0, u.Action)
	case *tg.UpdateChannelUserTyping:
		c.handleTyping(-channelIDBase-u.ChannelID, u.FromID, u.TopMsgID, u.Action)
	case *tg.UpdateReadHistoryInbox:
		// The account read the chat (on another device).
		chatID := botAPIChatID(u.Peer)
		c.queueReceipt(ctx, chatID, 0, u.MaxID, bridgev2.EventSender{IsFromMe: true,
			SenderLogin: c.login.ID, Sender: userIDOf(c.meta().UserID)})
	case *tg.UpdateReadChannelInbox:
		chatID := -channelIDBase - u.ChannelID
		c.queueReceipt(ctx, chatID, 0, u.MaxID, bridgev2.EventSender{IsFromMe: true,
			SenderLogin: c.login.ID, Sender: userIDOf(c.meta().UserID)})
	case *tg.UpdateReadHistoryOutbox:
		// Someone read what the account sent. Telegram says who only in
		// a private chat.
		if p, ok := u.Peer.(*tg.PeerUser); ok {
			c.queueReceipt(ctx, p.UserID, 0, u.MaxID, bridgev2.EventSender{Sender: userIDOf(p.UserID)})
		}
	default:
		zerolog.Ctx(ctx).Trace().Str("update", fmt.Sprintf("%T", upd)).Msg("update of a kind the bridge does not bridge")
	}
}

func (c *UserClient) handleMessageClass(ctx context.Context, m tg.MessageClass) {
	switch m := m.(type) {
	case *tg.Message:
		c.handleMessage(ctx, m)
	case *tg.MessageService:
		c.handleService(ctx, m)
	}
}

// threadOf is the forum topic a message is in (0: General, or no forum).
func threadOf(reply tg.MessageReplyHeaderClass) int {
	h, ok := reply.(*tg.MessageReplyHeader)
	if !ok || !h.ForumTopic {
		return 0
	}
	if h.ReplyToTopID != 0 {
		return h.ReplyToTopID
	}
	return h.ReplyToMsgID
}

// msgPortalKey is a message's portal: its chat's, or in a forum its
// topic's (as in bot mode).
func (c *UserClient) msgPortalKey(chatID int64, reply tg.MessageReplyHeaderClass) networkid.PortalKey {
	if !c.isForum(chatID) {
		return c.portalKey(chatID)
	}
	return portalKeyOf(topicPortalIDOf(chatID, threadOf(reply)), chatID, c.login.ID)
}

// senderOfPeer is the ghost of a message's sender: a user, or a chat that
// posts as itself (a channel, an anonymous admin).
func (c *UserClient) senderOfPeer(from tg.PeerClass) bridgev2.EventSender {
	switch p := from.(type) {
	case *tg.PeerUser:
		s := bridgev2.EventSender{Sender: userIDOf(p.UserID)}
		if p.UserID == c.meta().UserID {
			s.IsFromMe, s.SenderLogin = true, c.login.ID
		}
		return s
	case nil:
		return bridgev2.EventSender{}
	default:
		return bridgev2.EventSender{Sender: chatGhostIDOf(botAPIChatID(p))}
	}
}

// messageSender: FromID, else (a private chat's message from the other
// user, a channel post) the peer itself; an outgoing message is the
// account's.
func (c *UserClient) messageSender(out bool, from, peer tg.PeerClass) bridgev2.EventSender {
	if out {
		return c.senderOfPeer(&tg.PeerUser{UserID: c.meta().UserID})
	}
	if from == nil {
		from = peer
	}
	return c.senderOfPeer(from)
}

func (c *UserClient) handleMessage(ctx context.Context, m *tg.Message) {
	chatID := botAPIChatID(m.PeerID)
	id := messageIDOf(chatID, m.ID)
	if c.wasSent(id) {
		return
	}
	key := c.msgPortalKey(chatID, m.ReplyTo)
	c.keepPeer(ctx, chatID)
	if !isChannelChat(chatID) {
		c.mu.Lock()
		if len(c.recent) > 10000 {
			clear(c.recent)
		}
		c.recent[m.ID] = key
		c.mu.Unlock()
	}
	c.queue(&simplevent.Message[*tg.Message]{
		EventMeta: simplevent.EventMeta{
			Type:          bridgev2.RemoteEventMessage,
			PortalKey:     key,
			Sender:        c.messageSender(m.Out, m.FromID, m.PeerID),
			Timestamp:     time.Unix(int64(m.Date), 0),
			CreatePortal:  true,
			PreHandleFunc: func(ctx context.Context, _ *bridgev2.Portal) { c.syncSender(ctx, m.FromID) },
			LogContext: func(lc zerolog.Context) zerolog.Context {
				return lc.Int64("tg_chat_id", chatID).Int("tg_message_id", m.ID)
			},
		},
		Data: m, ID: id,
		ConvertMessageFunc: c.convertMessage,
	})
}

func (c *UserClient) handleEdit(ctx context.Context, mc tg.MessageClass) {
	m, ok := mc.(*tg.Message)
	if !ok {
		return
	}
	chatID := botAPIChatID(m.PeerID)
	ts := time.Unix(int64(m.Date), 0)
	if m.EditDate != 0 {
		ts = time.Unix(int64(m.EditDate), 0)
	}
	id := messageIDOf(chatID, m.ID)
	c.queue(&simplevent.Message[*tg.Message]{
		EventMeta: simplevent.EventMeta{
			Type:      bridgev2.RemoteEventEdit,
			PortalKey: c.msgPortalKey(chatID, m.ReplyTo),
			Sender:    c.messageSender(m.Out, m.FromID, m.PeerID),
			Timestamp: ts,
		},
		Data: m, ID: id, TargetMessage: id,
		ConvertEditFunc: c.convertEdit,
	})
}

// handleService bridges a service message's change to the room: members
// joining or leaving, a new title, a forum topic made or renamed, a group
// moving to a supergroup.
func (c *UserClient) handleService(ctx context.Context, m *tg.MessageService) {
	chatID := botAPIChatID(m.PeerID)
	meta := simplevent.EventMeta{
		Type:      bridgev2.RemoteEventChatInfoChange,
		PortalKey: c.msgPortalKey(chatID, m.ReplyTo),
		Sender:    c.messageSender(m.Out, m.FromID, m.PeerID),
		Timestamp: time.Unix(int64(m.Date), 0),
	}
	members := func(ids []int64, membership event.Membership) *bridgev2.ChatInfoChange {
		mm := bridgev2.ChatMemberMap{}
		for _, id := range ids {
			mm.Set(bridgev2.ChatMember{EventSender: c.senderOfPeer(&tg.PeerUser{UserID: id}),
				Membership: membership, UserInfo: c.userInfo(id)})
		}
		return &bridgev2.ChatInfoChange{MemberChanges: &bridgev2.ChatMemberList{MemberMap: mm}}
	}
	var change *bridgev2.ChatInfoChange
	switch a := m.Action.(type) {
	case *tg.MessageActionChatAddUser:
		change = members(a.Users, event.MembershipJoin)
	case *tg.MessageActionChatJoinedByLink:
		change = members([]int64{fromUserID(m.FromID)}, event.MembershipJoin)
	case *tg.MessageActionChatJoinedByRequest:
		change = members([]int64{fromUserID(m.FromID)}, event.MembershipJoin)
	case *tg.MessageActionChatDeleteUser:
		change = members([]int64{a.UserID}, event.MembershipLeave)
	case *tg.MessageActionChatEditTitle:
		title := a.Title
		change = &bridgev2.ChatInfoChange{ChatInfo: &bridgev2.ChatInfo{Name: &title}}
	case *tg.MessageActionTopicCreate:
		c.setTopic(chatID, m.ID, a.Title)
		meta.PortalKey = portalKeyOf(topicPortalIDOf(chatID, m.ID), chatID, c.login.ID)
		meta.CreatePortal = true
		title := a.Title
		change = &bridgev2.ChatInfoChange{ChatInfo: &bridgev2.ChatInfo{Name: &title}}
	case *tg.MessageActionTopicEdit:
		if a.Title == "" {
			return
		}
		thread := threadOf(m.ReplyTo)
		c.setTopic(chatID, thread, a.Title)
		title := a.Title
		change = &bridgev2.ChatInfoChange{ChatInfo: &bridgev2.ChatInfo{Name: &title}}
	case *tg.MessageActionChatMigrateTo:
		c.migrate(ctx, chatID, -channelIDBase-a.ChannelID)
		return
	default:
		return
	}
	c.queue(&simplevent.ChatInfoChange{EventMeta: meta, ChatInfoChange: change})
}

func fromUserID(p tg.PeerClass) int64 {
	if u, ok := p.(*tg.PeerUser); ok {
		return u.UserID
	}
	return 0
}

func (c *UserClient) setTopic(chatID int64, thread int, name string) {
	c.topics.set(topicPortalIDOf(chatID, thread), name)
}

func (c *UserClient) queueDelete(key networkid.PortalKey, target networkid.MessageID) {
	c.queue(&simplevent.MessageRemove{
		EventMeta:     simplevent.EventMeta{Type: bridgev2.RemoteEventMessageRemove, PortalKey: key},
		TargetMessage: target,
	})
}

// findMessage finds the chat of a message by its ID alone (MTProto's
// deletions outside channels name none): one this process bridged, else
// the bridged message of this login whose ID ends in it.
func (c *UserClient) findMessage(ctx context.Context, msgID int) (networkid.PortalKey, networkid.MessageID, bool) {
	// A message this process queued: its portal, whether or not bridgev2
	// has saved it yet (the deletion queues behind it).
	c.mu.Lock()
	key, ok := c.recent[msgID]
	c.mu.Unlock()
	if ok {
		chatID, _, _, err := chatIDOf(key.ID)
		return key, messageIDOf(chatID, msgID), err == nil
	}
	if c.net.br == nil {
		return networkid.PortalKey{}, "", false
	}
	// Only in the portals this login is in: another login's (a bot's)
	// messages in a basic group are numbered apart.
	rows, err := c.net.br.DB.Query(ctx, `SELECT m.id, m.room_id, m.room_receiver FROM message m
		JOIN user_portal up ON up.bridge_id=m.bridge_id AND up.portal_id=m.room_id AND up.portal_receiver=m.room_receiver
		WHERE m.bridge_id=$1 AND up.login_id=$2 AND m.id LIKE $3`,
		c.net.br.ID, c.login.ID, "%:"+strconv.Itoa(msgID))
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("finding a deleted message")
		return networkid.PortalKey{}, "", false
	}
	defer rows.Close()
	for rows.Next() {
		var id, room, receiver string
		if rows.Scan(&id, &room, &receiver) != nil {
			break
		}
		if chatID, _, err := parseMessageID(networkid.MessageID(id)); err == nil && !isChannelChat(chatID) {
			return networkid.PortalKey{ID: networkid.PortalID(room), Receiver: networkid.UserLoginID(receiver)},
				networkid.MessageID(id), true
		}
	}
	return networkid.PortalKey{}, "", false
}

// knownPortal is the portal a bridged message is in (a forum's messages
// are in their topic's), else the chat's.
func (c *UserClient) knownPortal(ctx context.Context, chatID int64, target networkid.MessageID) networkid.PortalKey {
	if c.isForum(chatID) && c.net.br != nil {
		if m, err := c.net.br.DB.Message.GetFirstPartByID(ctx, c.login.ID, target); err == nil && m != nil {
			return m.Room
		}
	}
	return c.portalKey(chatID)
}

// handleReactions syncs a message's reactions from the list Telegram
// sends: the recent reactions name who reacted (all of them in small
// chats).
func (c *UserClient) handleReactions(ctx context.Context, chatID int64, msgID, topMsgID int, r tg.MessageReactions) {
	target := messageIDOf(chatID, msgID)
	key := c.portalKey(chatID)
	if c.isForum(chatID) {
		key = portalKeyOf(topicPortalIDOf(chatID, topMsgID), chatID, c.login.ID)
	}
	data := &bridgev2.ReactionSyncData{Users: map[networkid.UserID]*bridgev2.ReactionSyncUser{}}
	total := 0
	for _, rc := range r.Results {
		total += rc.Count
	}
	for _, pr := range r.RecentReactions {
		emoji, ok := pr.Reaction.(*tg.ReactionEmoji)
		if !ok {
			continue
		}
		s := c.senderOfPeer(pr.PeerID)
		u := data.Users[s.Sender]
		if u == nil {
			u = &bridgev2.ReactionSyncUser{HasAllReactions: true}
			data.Users[s.Sender] = u
		}
		u.Reactions = append(u.Reactions, &bridgev2.BackfillReaction{Sender: s,
			Timestamp: time.Unix(int64(pr.Date), 0), EmojiID: networkid.EmojiID(emoji.Emoticon), Emoji: emoji.Emoticon})
	}
	// When the recent list holds every reaction, users missing from it
	// have none.
	data.HasAllUsers = len(r.RecentReactions) == total
	c.queue(&simplevent.ReactionSync{
		EventMeta:     simplevent.EventMeta{Type: bridgev2.RemoteEventReactionSync, PortalKey: key},
		TargetMessage: target, Reactions: data,
	})
}

func (c *UserClient) handleTyping(chatID int64, from tg.PeerClass, thread int, action tg.SendMessageActionClass) {
	var timeout time.Duration
	switch action.(type) {
	case *tg.SendMessageTypingAction:
		timeout = 6 * time.Second
	case *tg.SendMessageCancelAction:
	default:
		return
	}
	key := c.portalKey(chatID)
	if c.isForum(chatID) {
		key = portalKeyOf(topicPortalIDOf(chatID, thread), chatID, c.login.ID)
	}
	c.queue(&simplevent.Typing{
		EventMeta: simplevent.EventMeta{Type: bridgev2.RemoteEventTyping, PortalKey: key, Sender: c.senderOfPeer(from)},
		Timeout:   timeout, Type: bridgev2.TypingTypeText,
	})
}

func (c *UserClient) queueReceipt(_ context.Context, chatID int64, thread, maxID int, sender bridgev2.EventSender) {
	key := c.portalKey(chatID)
	if c.isForum(chatID) {
		key = portalKeyOf(topicPortalIDOf(chatID, thread), chatID, c.login.ID)
	}
	c.queue(&simplevent.Receipt{
		EventMeta:  simplevent.EventMeta{Type: bridgev2.RemoteEventReadReceipt, PortalKey: key, Sender: sender},
		LastTarget: messageIDOf(chatID, maxID),
	})
}

func (c *UserClient) wasSent(id networkid.MessageID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent[id]
}

func (c *UserClient) markSent(id networkid.MessageID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.sent) > 1000 {
		clear(c.sent)
	}
	c.sent[id] = true
}

// syncSender updates the name of a message's sender's ghost.
func (c *UserClient) syncSender(ctx context.Context, from tg.PeerClass) {
	p, ok := from.(*tg.PeerUser)
	if !ok || c.net.br == nil {
		return
	}
	info := c.userInfo(p.UserID)
	if info == nil {
		return
	}
	ghost, err := c.net.br.GetGhostByID(ctx, userIDOf(p.UserID))
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("getting the sender's ghost")
		return
	}
	ghost.UpdateInfo(ctx, info)
}

// userInfo is a known user's ghost info (nil when unknown).
func (c *UserClient) userInfo(id int64) *bridgev2.UserInfo {
	u := c.botUser(id)
	if u == nil {
		return nil
	}
	name := c.net.Config.ghostName(u)
	info := &bridgev2.UserInfo{Name: &name, IsBot: &u.IsBot}
	if u.Username != "" {
		info.Identifiers = []string{"telegram:" + u.Username}
	}
	if tu := c.user(id); tu != nil {
		if photo, ok := tu.Photo.(*tg.UserProfilePhoto); ok {
			info.Avatar = c.userAvatar(tu, photo)
		}
	}
	return info
}
