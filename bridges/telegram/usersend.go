package telegram

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/gotd/td/telegram/uploader"
	"github.com/gotd/td/tg"
	"github.com/gotd/td/tgerr"
	"github.com/rs/zerolog"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/telegram/mtproto"
)

var (
	_ bridgev2.EditHandlingNetworkAPI      = (*UserClient)(nil)
	_ bridgev2.ReactionHandlingNetworkAPI  = (*UserClient)(nil)
	_ bridgev2.RedactionHandlingNetworkAPI = (*UserClient)(nil)
	_ bridgev2.BackfillingNetworkAPI       = (*UserClient)(nil)
)

func (c *UserClient) GetCapabilities(ctx context.Context, portal *bridgev2.Portal) *event.RoomFeatures {
	f := (&Client{}).GetCapabilities(ctx, portal)
	f.ReadReceipts, f.TypingNotifications = true, true
	for _, ff := range f.File {
		ff.MaxSize = 2000 << 20
	}
	return f
}

func randomID() int64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return int64(binary.LittleEndian.Uint64(b[:]))
}

// retrying runs call until Telegram takes it: a FLOOD_WAIT is waited out
// (doubling on repeats, never below what Telegram asked, up to
// network.max_retry_wait), however often, so nothing is lost and the
// portal's later events keep their order; meanwhile the login's bridge
// state, a notice in the room and the event's PENDING status say so, as in
// bot mode.
func (c *UserClient) retrying(ctx context.Context, portal *bridgev2.Portal, evt *event.Event, call func(context.Context) error) error {
	waited := false
	err := mtproto.Retry(ctx, c.net.Config.MaxRetryWait, 0, func(wait time.Duration, attempt int) {
		waited = true
		zerolog.Ctx(ctx).Warn().Dur("wait", wait).Int("attempt", attempt).
			Msg("Telegram answered FLOOD_WAIT; waiting before trying again")
		c.net.showLimited(ctx, &c.limits, c.setState, portal, evt,
			fmt.Sprintf("Telegram is limiting how fast this account may send: messages wait %s and are then sent in order",
				wait.Round(time.Second)))
	}, call)
	if waited {
		c.limits.over(c.setState)
	}
	if err != nil {
		if _, ok := tgerr.As(err); ok {
			return errTelegram(err)
		}
		return err
	}
	return nil
}

// sentID finds the ID of the message a send made, in its answer.
func (c *UserClient) sentID(res tg.UpdatesClass, random int64) (id, date int, ok bool) {
	switch u := res.(type) {
	case *tg.UpdateShortSentMessage:
		return u.ID, u.Date, true
	case *tg.Updates:
		c.remember(u.Users, u.Chats)
		for _, upd := range u.Updates {
			if m, ok := upd.(*tg.UpdateMessageID); ok && m.RandomID == random {
				id = m.ID
			}
		}
		for _, upd := range u.Updates {
			var mc tg.MessageClass
			switch upd := upd.(type) {
			case *tg.UpdateNewMessage:
				mc = upd.Message
			case *tg.UpdateNewChannelMessage:
				mc = upd.Message
			}
			if m, ok := mc.(*tg.Message); ok && (id == 0 || m.ID == id) {
				return m.ID, m.Date, true
			}
		}
		return id, int(time.Now().Unix()), id != 0
	}
	return 0, 0, false
}

func (c *UserClient) HandleMatrixMessage(ctx context.Context, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	chatID, thread, _, err := chatIDOf(msg.Portal.ID)
	if err != nil {
		return nil, err
	}
	api, peer, err := c.clientFor(ctx, chatID)
	if err != nil {
		return nil, err
	}
	var reply tg.InputReplyToClass
	if msg.ReplyTo != nil || thread != 0 {
		r := &tg.InputReplyToMessage{ReplyToMsgID: thread}
		if thread != 0 {
			r.SetTopMsgID(thread)
		}
		if msg.ReplyTo != nil {
			if _, replyID, err := parseMessageID(msg.ReplyTo.ID); err == nil {
				r.ReplyToMsgID = replyID
			}
		}
		reply = r
	}
	content := msg.Content
	random := randomID()
	var res tg.UpdatesClass
	media := content.MsgType.IsMedia() || msg.Event.Type == event.EventSticker
	if media {
		res, err = c.sendMedia(ctx, api, msg, peer, reply, random)
	} else {
		text, ents := matrixToTelegram(content, c.telegramName(ctx))
		text, ents = relayPrefix(msg.OrigSender, content.MsgType == event.MsgEmote, text, ents)
		req := &tg.MessagesSendMessageRequest{Peer: peer, Message: text, RandomID: random,
			Entities: mtprotoEntities(ents, c.inputUser)}
		if reply != nil {
			req.SetReplyTo(reply)
		}
		err = c.retrying(ctx, msg.Portal, msg.Event, func(ctx context.Context) (err error) {
			res, err = api.MessagesSendMessage(ctx, req)
			return err
		})
	}
	if err != nil {
		return nil, err
	}
	id, date, ok := c.sentID(res, random)
	if !ok {
		return nil, fmt.Errorf("telegram: no message ID in the answer to sending (%T)", res)
	}
	mid := messageIDOf(chatID, id)
	c.markSent(mid)
	c.applyResult(ctx, res)
	return &bridgev2.MatrixMessageResponse{DB: &database.Message{
		ID: mid, SenderID: userIDOf(c.meta().UserID), Timestamp: time.Unix(int64(date), 0),
		Metadata: &MessageMetadata{Media: media},
	}}, nil
}

func (c *UserClient) telegramName(ctx context.Context) ghostNameFunc {
	if c.net.br != nil {
		return (&Client{net: c.net}).telegramName(ctx)
	}
	return func(user id.UserID) string { return user.Localpart() }
}

func (c *UserClient) sendMedia(ctx context.Context, api *tg.Client, msg *bridgev2.MatrixMessage, peer tg.InputPeerClass,
	reply tg.InputReplyToClass, random int64) (tg.UpdatesClass, error) {
	content := msg.Content
	f, err := c.net.outgoingFile(ctx, msg, c.telegramName(ctx))
	if err != nil {
		return nil, err
	}
	name, mime, text, ents := f.name, f.mime, f.text, f.ents
	if mime == "" {
		mime = "application/octet-stream"
	}
	var file tg.InputFileClass
	err = c.retrying(ctx, msg.Portal, msg.Event, func(ctx context.Context) (err error) {
		file, err = uploader.NewUploader(api).FromBytes(ctx, name, f.data)
		return err
	})
	if err != nil {
		return nil, err
	}
	var im tg.InputMediaClass
	switch {
	case content.MsgType == event.MsgImage && mime != "image/gif" && msg.Event.Type != event.EventSticker:
		im = &tg.InputMediaUploadedPhoto{File: file}
	default:
		attrs := []tg.DocumentAttributeClass{&tg.DocumentAttributeFilename{FileName: name}}
		switch {
		case content.MsgType == event.MsgAudio && content.MSC3245Voice != nil:
			dur := 0
			if content.MSC1767Audio != nil {
				dur = content.MSC1767Audio.Duration / 1000
			}
			attrs = append(attrs, &tg.DocumentAttributeAudio{Voice: true, Duration: dur})
		case msg.Event.Type == event.EventSticker:
			attrs = append(attrs, &tg.DocumentAttributeSticker{Alt: content.Body, Stickerset: &tg.InputStickerSetEmpty{}})
		}
		im = &tg.InputMediaUploadedDocument{File: file, MimeType: mime, Attributes: attrs}
	}
	req := &tg.MessagesSendMediaRequest{Peer: peer, Media: im, Message: text, RandomID: random,
		Entities: mtprotoEntities(ents, c.inputUser)}
	if reply != nil {
		req.SetReplyTo(reply)
	}
	var res tg.UpdatesClass
	err = c.retrying(ctx, msg.Portal, msg.Event, func(ctx context.Context) (err error) {
		res, err = api.MessagesSendMedia(ctx, req)
		return err
	})
	return res, err
}

func (c *UserClient) HandleMatrixEdit(ctx context.Context, msg *bridgev2.MatrixEdit) error {
	chatID, msgID, err := parseMessageID(msg.EditTarget.ID)
	if err != nil {
		return err
	}
	api, peer, err := c.clientFor(ctx, chatID)
	if err != nil {
		return err
	}
	text, ents := matrixToTelegram(msg.Content, c.telegramName(ctx))
	text, ents = relayPrefix(msg.OrigSender, msg.Content.MsgType == event.MsgEmote, text, ents)
	req := &tg.MessagesEditMessageRequest{Peer: peer, ID: msgID}
	req.SetMessage(text)
	req.SetEntities(mtprotoEntities(ents, c.inputUser))
	return c.retrying(ctx, msg.Portal, msg.Event, func(ctx context.Context) error {
		_, err := api.MessagesEditMessage(ctx, req)
		if tgerr.Is(err, "MESSAGE_NOT_MODIFIED") {
			return nil
		}
		return err
	})
}

func (c *UserClient) PreHandleMatrixReaction(_ context.Context, msg *bridgev2.MatrixReaction) (bridgev2.MatrixReactionPreResponse, error) {
	emoji := variationless(msg.Content.RelatesTo.Key)
	return bridgev2.MatrixReactionPreResponse{SenderID: userIDOf(c.meta().UserID), EmojiID: networkid.EmojiID(emoji),
		Emoji: emoji, MaxReactions: 1}, nil
}

func (c *UserClient) sendReaction(ctx context.Context, portal *bridgev2.Portal, evt *event.Event,
	target networkid.MessageID, emoji string) error {
	chatID, msgID, err := parseMessageID(target)
	if err != nil {
		return err
	}
	api, peer, err := c.clientFor(ctx, chatID)
	if err != nil {
		return err
	}
	req := &tg.MessagesSendReactionRequest{Peer: peer, MsgID: msgID}
	if emoji != "" {
		req.SetReaction([]tg.ReactionClass{&tg.ReactionEmoji{Emoticon: emoji}})
	}
	return c.retrying(ctx, portal, evt, func(ctx context.Context) error {
		_, err := api.MessagesSendReaction(ctx, req)
		return err
	})
}

func (c *UserClient) HandleMatrixReaction(ctx context.Context, msg *bridgev2.MatrixReaction) (*database.Reaction, error) {
	if err := c.sendReaction(ctx, msg.Portal, msg.Event, msg.TargetMessage.ID,
		variationless(msg.Content.RelatesTo.Key)); err != nil {
		return nil, err
	}
	return &database.Reaction{}, nil
}

func (c *UserClient) HandleMatrixReactionRemove(ctx context.Context, msg *bridgev2.MatrixReactionRemove) error {
	return c.sendReaction(ctx, msg.Portal, msg.Event, msg.TargetReaction.MessageID, "")
}

func (c *UserClient) HandleMatrixMessageRemove(ctx context.Context, msg *bridgev2.MatrixMessageRemove) error {
	chatID, msgID, err := parseMessageID(msg.TargetMessage.ID)
	if err != nil {
		return err
	}
	api, err := c.client(ctx)
	if err != nil {
		return err
	}
	if isChannelChat(chatID) {
		ch, err := c.inputChannel(chatID)
		if err != nil {
			return err
		}
		return c.retrying(ctx, msg.Portal, msg.Event, func(ctx context.Context) error {
			_, err := api.ChannelsDeleteMessages(ctx, &tg.ChannelsDeleteMessagesRequest{Channel: ch, ID: []int{msgID}})
			return err
		})
	}
	return c.retrying(ctx, msg.Portal, msg.Event, func(ctx context.Context) error {
		_, err := api.MessagesDeleteMessages(ctx, &tg.MessagesDeleteMessagesRequest{Revoke: true, ID: []int{msgID}})
		return err
	})
}

// FetchMessages is bridgev2's backfill: a page of the chat's history
// (messages.getHistory), oldest first, with the original senders and
// times.
func (c *UserClient) FetchMessages(ctx context.Context, params bridgev2.FetchMessagesParams) (*bridgev2.FetchMessagesResponse, error) {
	chatID, thread, topic, err := chatIDOf(params.Portal.ID)
	if err != nil {
		return nil, err
	}
	api, peer, err := c.clientFor(ctx, chatID)
	if err != nil {
		return nil, err
	}
	limit := min(max(params.Count, 1), 100)
	req := &tg.MessagesGetHistoryRequest{Peer: peer, Limit: limit}
	switch {
	case params.Forward:
		// Newer than the newest bridged message.
		if params.AnchorMessage != nil {
			if _, id, err := parseMessageID(params.AnchorMessage.ID); err == nil {
				req.MinID = id
			}
		}
	case params.Cursor != "":
		req.OffsetID, _ = strconv.Atoi(string(params.Cursor))
	case params.AnchorMessage != nil:
		if _, id, err := parseMessageID(params.AnchorMessage.ID); err == nil {
			req.OffsetID = id
		}
	}
	var res tg.MessagesMessagesClass
	err = c.retrying(ctx, nil, nil, func(ctx context.Context) (err error) {
		res, err = api.MessagesGetHistory(ctx, req)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("telegram: messages.getHistory: %w", err)
	}
	page, ok := res.AsModified()
	if !ok {
		return &bridgev2.FetchMessagesResponse{Forward: params.Forward}, nil
	}
	c.remember(page.GetUsers(), page.GetChats())
	msgs := page.GetMessages()
	resp := &bridgev2.FetchMessagesResponse{Forward: params.Forward, HasMore: !params.Forward && len(msgs) >= limit}
	oldest := 0
	joined := map[networkid.UserID]bool{}
	// Telegram answers newest first.
	for _, mc := range slices.Backward(msgs) {
		m, ok := mc.(*tg.Message)
		if !ok {
			continue
		}
		if oldest == 0 || m.ID < oldest {
			oldest = m.ID
		}
		if topic && threadOf(m.ReplyTo) != thread {
			continue
		}
		sender := c.messageSender(m.Out, m.FromID, m.PeerID)
		intent, ok := c.intentFor(ctx, params.Portal, sender)
		if !ok {
			continue
		}
		// A batch's senders must be in the room: Telegram's chats are
		// not listed member by member up front.
		if mx := params.Portal.MXID; mx != "" && intent != nil && !joined[sender.Sender] {
			joined[sender.Sender] = true
			if err := intent.EnsureJoined(ctx, mx); err != nil {
				return nil, fmt.Errorf("telegram: joining %s to the room for backfill: %w", sender.Sender, err)
			}
		}
		c.syncSender(ctx, m.FromID)
		cm, err := c.convertMessage(ctx, params.Portal, intent, m)
		if err != nil {
			return nil, err
		}
		resp.Messages = append(resp.Messages, &bridgev2.BackfillMessage{ConvertedMessage: cm, Sender: sender,
			ID: messageIDOf(chatID, m.ID), Timestamp: time.Unix(int64(m.Date), 0), StreamOrder: int64(m.ID)})
	}
	if oldest != 0 {
		resp.Cursor = networkid.PaginationCursor(strconv.Itoa(oldest))
	}
	return resp, nil
}

// migrate moves a group that became a supergroup: its portal takes the
// supergroup's ID, so the room stays.
func (c *UserClient) migrate(ctx context.Context, from, to int64) {
	c.net.migratePortal(ctx, c.portalKey(from), c.portalKey(to))
}

// applyResult hands a call's updates to the update manager, which moves
// the pts on (else it would see a gap and ask for the difference); the
// echo of what was just sent is not bridged back (markSent).
func (c *UserClient) applyResult(ctx context.Context, res tg.UpdatesClass) {
	c.mu.Lock()
	gaps := c.gaps
	c.mu.Unlock()
	if gaps == nil || res == nil {
		return
	}
	if err := gaps.Handle(ctx, res); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("handing a call's updates to the update manager")
	}
}
