package telegram

import (
	"context"
	"fmt"
	"time"

	tgbot "github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
	"github.com/rs/zerolog"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/simplevent"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// handleUpdate bridges one update; it returns once bridgev2 has handled
// it, so that the offset saved after it covers only bridged updates.
func (c *Client) handleUpdate(ctx context.Context, upd *models.Update) {
	switch {
	case upd.Message != nil:
		c.handleMessage(ctx, upd.Message, false)
	case upd.ChannelPost != nil:
		c.handleMessage(ctx, upd.ChannelPost, false)
	case upd.EditedMessage != nil:
		c.handleMessage(ctx, upd.EditedMessage, true)
	case upd.EditedChannelPost != nil:
		c.handleMessage(ctx, upd.EditedChannelPost, true)
	case upd.MessageReaction != nil:
		c.handleReaction(ctx, upd.MessageReaction)
	case upd.MyChatMember != nil:
		c.remember(&upd.MyChatMember.Chat)
	default:
		zerolog.Ctx(ctx).Debug().Int64("update_id", upd.ID).Msg("update of a kind the bridge does not bridge")
	}
}

func (c *Client) portalKey(chatID int64) networkid.PortalKey {
	// A private chat is the bot's own portal (its ID is the user's,
	// whichever bot it is with); groups and channels are shared.
	return portalKeyOf(portalIDOf(chatID), chatID, c.login.ID)
}

// msgPortalKey is the portal of a message: its chat's, or in a forum its
// topic's.
func (c *Client) msgPortalKey(msg *models.Message) networkid.PortalKey {
	if !msg.Chat.IsForum {
		return c.portalKey(msg.Chat.ID)
	}
	thread := 0
	if msg.IsTopicMessage {
		thread = msg.MessageThreadID
	}
	return portalKeyOf(topicPortalIDOf(msg.Chat.ID, thread), msg.Chat.ID, c.login.ID)
}

// learnTopic keeps the names of a forum's topics, from the service
// messages that create and rename them (a topic's messages carry its
// creation message as the message they answer).
func (c *Client) learnTopic(msg *models.Message) {
	for _, m := range []*models.Message{msg, msg.ReplyToMessage} {
		if m == nil || !m.Chat.IsForum {
			continue
		}
		name := ""
		switch {
		case m.ForumTopicCreated != nil:
			name = m.ForumTopicCreated.Name
		case m.ForumTopicEdited != nil:
			name = m.ForumTopicEdited.Name
		}
		if name != "" && m.MessageThreadID != 0 {
			c.topics.set(topicPortalIDOf(m.Chat.ID, m.MessageThreadID), name)
		}
	}
}

func (c *Client) eventSender(msg *models.Message) bridgev2.EventSender {
	s := bridgev2.EventSender{Sender: senderOf(msg)}
	if msg.From != nil && msg.From.ID == c.meta().BotID && msg.SenderChat == nil {
		s.IsFromMe, s.SenderLogin = true, c.login.ID
	}
	return s
}

func (c *Client) handleMessage(ctx context.Context, msg *models.Message, edit bool) {
	users := []*models.User{msg.From, msg.LeftChatMember}
	for i := range msg.NewChatMembers {
		users = append(users, &msg.NewChatMembers[i])
	}
	if msg.ReplyToMessage != nil {
		users = append(users, msg.ReplyToMessage.From)
	}
	for _, ents := range [][]models.MessageEntity{msg.Entities, msg.CaptionEntities} {
		for _, e := range ents {
			users = append(users, e.User)
		}
	}
	c.remember(&msg.Chat, users...)
	c.learnTopic(msg)
	if msg.SenderChat != nil {
		c.remember(msg.SenderChat)
	}
	meta := simplevent.EventMeta{
		Type:          bridgev2.RemoteEventMessage,
		PortalKey:     c.msgPortalKey(msg),
		Sender:        c.eventSender(msg),
		Timestamp:     time.Unix(int64(msg.Date), 0),
		CreatePortal:  true,
		PreHandleFunc: func(ctx context.Context, _ *bridgev2.Portal) { c.syncGhost(ctx, msg) },
		LogContext: func(lc zerolog.Context) zerolog.Context {
			return lc.Int64("tg_chat_id", msg.Chat.ID).Int("tg_message_id", msg.ID)
		},
	}
	switch {
	case msg.MigrateToChatID != 0:
		// The group became a supergroup: its portal moves to the new ID.
		c.net.migratePortal(ctx, c.portalKey(msg.Chat.ID), c.portalKey(msg.MigrateToChatID))
		return
	case msg.MigrateFromChatID != 0:
		return // the supergroup's first message: the portal has moved
	}
	if change := c.serviceChange(msg); change != nil {
		meta.Type = bridgev2.RemoteEventChatInfoChange
		c.net.br.QueueRemoteEvent(c.login, &simplevent.ChatInfoChange{EventMeta: meta, ChatInfoChange: change})
		return
	}
	if edit {
		meta.Type = bridgev2.RemoteEventEdit
		meta.CreatePortal = false
		if msg.EditDate != 0 {
			meta.Timestamp = time.Unix(int64(msg.EditDate), 0)
		}
		c.net.br.QueueRemoteEvent(c.login, &simplevent.Message[*models.Message]{
			EventMeta: meta, Data: msg, ID: messageIDOf(msg.Chat.ID, msg.ID),
			TargetMessage:   messageIDOf(msg.Chat.ID, msg.ID),
			ConvertEditFunc: c.convertEdit,
		})
		return
	}
	c.net.br.QueueRemoteEvent(c.login, &simplevent.Message[*models.Message]{
		EventMeta: meta, Data: msg, ID: messageIDOf(msg.Chat.ID, msg.ID),
		ConvertMessageFunc: c.convertMessage,
	})
}

// serviceChange is a service message's change to the room (members
// joining or leaving, a new title), or nil for a message.
func (c *Client) serviceChange(msg *models.Message) *bridgev2.ChatInfoChange {
	switch {
	case len(msg.NewChatMembers) > 0:
		members := bridgev2.ChatMemberMap{}
		for i := range msg.NewChatMembers {
			u := &msg.NewChatMembers[i]
			members.Set(bridgev2.ChatMember{EventSender: c.userSender(u), Membership: event.MembershipJoin,
				UserInfo: c.userInfo(u)})
		}
		return &bridgev2.ChatInfoChange{MemberChanges: &bridgev2.ChatMemberList{MemberMap: members}}
	case msg.LeftChatMember != nil:
		u := msg.LeftChatMember
		members := bridgev2.ChatMemberMap{}
		members.Set(bridgev2.ChatMember{EventSender: c.userSender(u), Membership: event.MembershipLeave})
		return &bridgev2.ChatInfoChange{MemberChanges: &bridgev2.ChatMemberList{MemberMap: members}}
	case msg.NewChatTitle != "":
		title := msg.NewChatTitle
		return &bridgev2.ChatInfoChange{ChatInfo: &bridgev2.ChatInfo{Name: &title}}
	case msg.ForumTopicCreated != nil || msg.ForumTopicEdited != nil:
		name := c.topics.name(c.msgPortalKey(msg).ID, msg.MessageThreadID)
		return &bridgev2.ChatInfoChange{ChatInfo: &bridgev2.ChatInfo{Name: &name}}
	}
	return nil
}

func (c *Client) userSender(u *models.User) bridgev2.EventSender {
	s := bridgev2.EventSender{Sender: userIDOf(u.ID)}
	if u.ID == c.meta().BotID {
		s.IsFromMe, s.SenderLogin = true, c.login.ID
	}
	return s
}

func (c *Client) userInfo(u *models.User) *bridgev2.UserInfo {
	name := c.net.Config.ghostName(u)
	info := &bridgev2.UserInfo{Name: &name, IsBot: &u.IsBot}
	if u.Username != "" {
		info.Identifiers = []string{"telegram:" + u.Username}
	}
	return info
}

// syncGhost updates the name of a message's sender's ghost.
func (c *Client) syncGhost(ctx context.Context, msg *models.Message) {
	var info *bridgev2.UserInfo
	switch {
	case msg.SenderChat != nil:
		name := chatName(msg.SenderChat)
		info = &bridgev2.UserInfo{Name: &name}
	case msg.From != nil:
		info = c.userInfo(msg.From)
	default:
		return
	}
	if msg.SenderChat == nil && msg.From != nil {
		info.Avatar = c.avatar(ctx, msg.From.ID)
	}
	ghost, err := c.net.br.GetGhostByID(ctx, senderOf(msg))
	if err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("getting the sender's ghost")
		return
	}
	ghost.UpdateInfo(ctx, info)
}

// avatarRecheck is how often a user's profile photo is looked up again.
const avatarRecheck = 6 * time.Hour

// avatar is a user's current profile photo (getUserProfilePhotos), looked
// up at most every avatarRecheck; nil when not looked up (or it failed),
// so that the ghost keeps what it has.
func (c *Client) avatar(ctx context.Context, userID int64) *bridgev2.Avatar {
	c.mu.Lock()
	last, ok := c.avatarChecked[userID]
	if ok && time.Since(last) < avatarRecheck {
		c.mu.Unlock()
		return nil
	}
	c.avatarChecked[userID] = time.Now()
	c.mu.Unlock()
	photos, err := c.bot.GetUserProfilePhotos(ctx, &tgbot.GetUserProfilePhotosParams{UserID: userID, Limit: 1})
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Int64("tg_user_id", userID).Msg("getUserProfilePhotos")
		return nil
	}
	if len(photos.Photos) == 0 || len(photos.Photos[0]) == 0 {
		return &bridgev2.Avatar{ID: "", Remove: true}
	}
	sizes := photos.Photos[0]
	p := sizes[len(sizes)-1] // the largest size
	return &bridgev2.Avatar{ID: networkid.AvatarID(p.FileUniqueID),
		Get: func(ctx context.Context) ([]byte, error) { return c.download(ctx, p.FileID) }}
}

func (c *Client) GetUserInfo(_ context.Context, ghost *bridgev2.Ghost) (*bridgev2.UserInfo, error) {
	if uid, ok := parseUserID(ghost.ID); ok {
		if u, ok := c.user(uid); ok {
			return c.userInfo(&u), nil
		}
		return nil, nil // the Bot API cannot be asked about a user
	}
	var chatID int64
	if _, err := fmt.Sscanf(string(ghost.ID), "chat%d", &chatID); err == nil {
		if ch, ok := c.chat(chatID); ok {
			name := chatName(&ch)
			return &bridgev2.UserInfo{Name: &name}, nil
		}
	}
	return nil, nil
}

func (c *Client) GetChatInfo(ctx context.Context, portal *bridgev2.Portal) (*bridgev2.ChatInfo, error) {
	chatID, thread, topic, err := chatIDOf(portal.ID)
	if err != nil {
		return nil, err
	}
	chat, ok := c.chat(chatID)
	if !ok {
		full, err := c.bot.GetChat(ctx, &tgbot.GetChatParams{ChatID: chatID})
		if err != nil {
			return nil, fmt.Errorf("telegram: getChat %d: %w", chatID, err)
		}
		chat = models.Chat{ID: full.ID, Type: full.Type, Title: full.Title, Username: full.Username,
			FirstName: full.FirstName, LastName: full.LastName, IsForum: full.IsForum}
		c.remember(&chat)
	}
	members := bridgev2.ChatMemberMap{}
	members.Set(bridgev2.ChatMember{EventSender: bridgev2.EventSender{IsFromMe: true, SenderLogin: c.login.ID,
		Sender: userIDOf(c.meta().BotID)}, Membership: event.MembershipJoin})
	info := &bridgev2.ChatInfo{Members: &bridgev2.ChatMemberList{MemberMap: members}}
	switch {
	case topic:
		name := c.topics.name(portal.ID, thread)
		parent := portalIDOf(chatID)
		info.Name, info.ParentID = &name, &parent
	case chat.IsForum:
		name := chatName(&chat)
		space := database.RoomTypeSpace
		info.Name, info.Type = &name, &space
		return info, nil // a space: nothing to relay
	case chat.Type == models.ChatTypePrivate:
		dm := database.RoomTypeDM
		info.Type = &dm
		other := userIDOf(chat.ID)
		members.Set(bridgev2.ChatMember{EventSender: bridgev2.EventSender{Sender: other}, Membership: event.MembershipJoin})
		info.Members.OtherUserID = other
	default:
		name := chatName(&chat)
		info.Name = &name
		def := database.RoomTypeDefault
		info.Type = &def
	}
	if c.net.Config.Relay {
		info.ExtraUpdates = c.relayUpdater
	}
	return info, nil
}

// relayUpdater makes the bot the relay of a portal that has none, so that
// Matrix users without a login talk through it.
func (c *Client) relayUpdater(ctx context.Context, portal *bridgev2.Portal) bool {
	if portal.Relay != nil || !c.net.br.Config.Relay.Enabled {
		return false
	}
	if err := portal.SetRelay(ctx, c.login); err != nil {
		zerolog.Ctx(ctx).Err(err).Msg("setting the bot as the portal's relay")
	}
	return false
}

func (c *Client) handleReaction(ctx context.Context, r *models.MessageReactionUpdated) {
	c.remember(&r.Chat, r.User)
	var sender bridgev2.EventSender
	switch {
	case r.User != nil:
		sender = c.userSender(r.User)
	case r.ActorChat != nil:
		c.remember(r.ActorChat)
		sender = bridgev2.EventSender{Sender: chatGhostIDOf(r.ActorChat.ID)}
	default:
		return
	}
	emojis := func(rs []models.ReactionType) map[string]bool {
		m := map[string]bool{}
		for _, rt := range rs {
			if rt.ReactionTypeEmoji != nil {
				m[rt.ReactionTypeEmoji.Emoji] = true
			}
		}
		return m
	}
	before, after := emojis(r.OldReaction), emojis(r.NewReaction)
	target := messageIDOf(r.Chat.ID, r.MessageID)
	// The update names no topic: the message's portal does.
	key := c.portalKey(r.Chat.ID)
	if r.Chat.IsForum {
		if m, err := c.net.br.DB.Message.GetFirstPartByID(ctx, c.login.ID, target); err == nil && m != nil {
			key = m.Room
		}
	}
	meta := simplevent.EventMeta{PortalKey: key, Sender: sender, Timestamp: time.Unix(int64(r.Date), 0)}
	if r.User != nil {
		u := *r.User
		meta.PreHandleFunc = func(ctx context.Context, _ *bridgev2.Portal) {
			if ghost, err := c.net.br.GetGhostByID(ctx, userIDOf(u.ID)); err == nil {
				ghost.UpdateInfo(ctx, c.userInfo(&u))
			}
		}
	}
	for e := range after {
		if !before[e] {
			m := meta
			m.Type = bridgev2.RemoteEventReaction
			c.net.br.QueueRemoteEvent(c.login, &simplevent.Reaction{EventMeta: m, TargetMessage: target,
				EmojiID: networkid.EmojiID(e), Emoji: e})
		}
	}
	for e := range before {
		if !after[e] {
			m := meta
			m.Type = bridgev2.RemoteEventReactionRemove
			c.net.br.QueueRemoteEvent(c.login, &simplevent.Reaction{EventMeta: m, TargetMessage: target,
				EmojiID: networkid.EmojiID(e)})
		}
	}
}

// mention maps a Telegram user to their ghost.
func (c *Client) mention(u *models.User) (id.UserID, bool) {
	return c.net.br.Matrix.FormatGhostMXID(userIDOf(u.ID)), true
}

// migratePortal moves a group's portal to the supergroup it became
// (migrate_to_chat_id; MTProto's messageActionChatMigrateTo): the portal
// takes the new ID and keeps its room, so the chat stays one room.
func (n *Connector) migratePortal(ctx context.Context, from, to networkid.PortalKey) {
	if n.br == nil {
		return
	}
	log := zerolog.Ctx(ctx).With().Str("from", string(from.ID)).Str("to", string(to.ID)).Logger()
	res, _, err := n.br.ReIDPortal(ctx, from, to)
	if err != nil {
		log.Err(err).Msg("moving the portal of a group that became a supergroup")
		return
	}
	log.Info().Stringer("result", res).Msg("a group became a supergroup: its portal moved")
}
