package telegram

import (
	"context"

	"github.com/gotd/td/tg"
	"github.com/rs/zerolog"

	"maunium.net/go/mautrix/bridgev2"
)

var (
	_ bridgev2.ReadReceiptHandlingNetworkAPI = (*UserClient)(nil)
	_ bridgev2.TypingHandlingNetworkAPI      = (*UserClient)(nil)
)

// HandleMatrixReadReceipt marks the chat read on Telegram up to the
// message the account's Matrix user read.
func (c *UserClient) HandleMatrixReadReceipt(ctx context.Context, msg *bridgev2.MatrixReadReceipt) error {
	if msg.ExactMessage == nil {
		return nil
	}
	chatID, msgID, err := parseMessageID(msg.ExactMessage.ID)
	if err != nil {
		return nil
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
		_, err = api.ChannelsReadHistory(ctx, &tg.ChannelsReadHistoryRequest{Channel: ch, MaxID: msgID})
		return err
	}
	peer, err := c.inputPeer(chatID)
	if err != nil {
		return err
	}
	_, err = api.MessagesReadHistory(ctx, &tg.MessagesReadHistoryRequest{Peer: peer, MaxID: msgID})
	return err
}

// HandleMatrixTyping tells the chat (or topic) the account is typing, or
// stopped.
func (c *UserClient) HandleMatrixTyping(ctx context.Context, msg *bridgev2.MatrixTyping) error {
	chatID, thread, _, err := chatIDOf(msg.Portal.ID)
	if err != nil {
		return nil
	}
	api, peer, err := c.clientFor(ctx, chatID)
	if err != nil {
		return err
	}
	req := &tg.MessagesSetTypingRequest{Peer: peer, Action: &tg.SendMessageCancelAction{}}
	if msg.IsTyping {
		req.Action = &tg.SendMessageTypingAction{}
	}
	if thread != 0 {
		req.SetTopMsgID(thread)
	}
	_, err = api.MessagesSetTyping(ctx, req)
	return err
}

// topicTitle asks Telegram for a forum topic's title (when no service
// message told it), or "".
func (c *UserClient) topicTitle(ctx context.Context, chatID int64, thread int) string {
	api, err := c.client(ctx)
	if err != nil || thread == 0 {
		return ""
	}
	ch, err := c.inputChannel(chatID)
	if err != nil {
		return ""
	}
	res, err := api.ChannelsGetForumTopicsByID(ctx, &tg.ChannelsGetForumTopicsByIDRequest{Channel: ch, Topics: []int{thread}})
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("channels.getForumTopicsByID")
		return ""
	}
	c.remember(res.Users, res.Chats)
	for _, t := range res.Topics {
		if t, ok := t.(*tg.ForumTopic); ok && t.ID == thread {
			c.setTopic(chatID, thread, t.Title)
			return t.Title
		}
	}
	return ""
}
