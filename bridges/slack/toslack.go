package slack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/slack/slackfmt"
)

// channelOf is the Slack channel of a portal of this login's workspace.
func (c *Client) channelOf(portal *bridgev2.Portal) (string, error) {
	team, channel := parsePortalID(portal.ID)
	if team != c.meta.TeamID || channel == "" {
		return "", fmt.Errorf("%w: portal %s is not a conversation of %s", bridgev2.ErrUnsupportedMessageType, portal.ID, c.meta.TeamID)
	}
	return channel, nil
}

// slackUserOf is the Slack user a Matrix user is: a ghost's, or a logged
// in user's own.
func (c *Client) slackUserOf(ctx context.Context, u id.UserID) string {
	if ghost, ok := c.n.br.Matrix.ParseGhostMXID(u); ok {
		team, user := parseUserID(ghost)
		if team == c.meta.TeamID {
			return user
		}
		return ""
	}
	if user, err := c.n.br.GetExistingUserByMXID(ctx, u); err == nil && user != nil {
		for _, l := range user.GetUserLogins() {
			if m, ok := l.Metadata.(*LoginMetadata); ok && m.TeamID == c.meta.TeamID && m.Mode == modeUser {
				return m.UserID
			}
		}
	}
	return ""
}

// mrkdwn is the Slack text of a Matrix message.
func (c *Client) mrkdwn(ctx context.Context, content *event.MessageEventContent) string {
	var text string
	if content.Format == event.FormatHTML && content.FormattedBody != "" {
		text = slackfmt.ToMrkdwn(ctx, content.FormattedBody, func(u id.UserID) string { return c.slackUserOf(ctx, u) })
	} else {
		text = slackfmt.Escape(content.Body)
	}
	if content.MsgType == event.MsgEmote {
		text = "_" + text + "_"
	}
	return text
}

// threadTS is the ts of the thread a Matrix message goes to.
func threadTS(root *database.Message) string {
	if root == nil {
		return ""
	}
	if _, _, ts, err := parseMessageID(root.ID); err == nil {
		return ts
	}
	return ""
}

// importedThreadTS is the Slack ts of a thread root bridgev2 has no record
// of: a message `tributary import slack` wrote. The host names it by its
// event ID alias, the deterministic ID of (room, "TEAM-CHANNEL-TS", "");
// the import gave the event the ts's millisecond as its time, so the ts is
// one of that millisecond's thousand microseconds, found by hashing each.
func (c *Client) importedThreadTS(ctx context.Context, portal *bridgev2.Portal, channel string, content *event.MessageEventContent) string {
	rel := content.RelatesTo
	if rel == nil || rel.Type != event.RelThread || rel.EventID == "" {
		return ""
	}
	evt, err := c.n.br.Bot.GetEvent(ctx, portal.MXID, rel.EventID)
	if err != nil || evt.Timestamp <= 0 {
		return ""
	}
	sec, ms := evt.Timestamp/1000, evt.Timestamp%1000
	for us := range int64(1000) {
		ts := fmt.Sprintf("%d.%06d", sec, ms*1000+us)
		if c.n.br.Matrix.GenerateDeterministicEventID(portal.MXID, portal.PortalKey, messageID(c.meta.TeamID, channel, ts), "") == rel.EventID {
			return ts
		}
	}
	return ""
}

func (c *Client) HandleMatrixMessage(ctx context.Context, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	channel, err := c.channelOf(msg.Portal)
	if err != nil {
		return nil, err
	}
	content := msg.Content
	thread := threadTS(msg.ThreadRoot)
	if thread == "" {
		thread = c.importedThreadTS(ctx, msg.Portal, channel, content)
	}
	switch content.MsgType {
	case event.MsgText, event.MsgNotice, event.MsgEmote:
		text, opts := c.postOptions(c.poster(ctx, msg.Portal, msg.Event.Sender, msg.OrigSender), c.mrkdwn(ctx, content))
		opts = append(opts, slack.MsgOptionText(text, false))
		if thread != "" {
			opts = append(opts, slack.MsgOptionTS(thread))
		}
		_, ts, err := c.api.PostMessageContext(ctx, channel, opts...)
		if err != nil {
			return nil, c.checkAuth(err)
		}
		return &bridgev2.MatrixMessageResponse{DB: &database.Message{ID: messageID(c.meta.TeamID, channel, ts),
			SenderID: userID(c.meta.TeamID, c.meta.UserID), Timestamp: tsTime(ts)}}, nil
	case event.MsgImage, event.MsgFile, event.MsgVideo, event.MsgAudio:
		return c.sendFile(ctx, msg, channel, thread)
	}
	return nil, fmt.Errorf("%w: %s", bridgev2.ErrUnsupportedMessageType, content.MsgType)
}

// sendFile uploads a Matrix file to the conversation (files.upload v2).
// Slack answers with the file, not the message that shares it, so the
// message is recorded under the file's ID and its echo (with or without a
// comment) is not bridged back.
func (c *Client) sendFile(ctx context.Context, msg *bridgev2.MatrixMessage, channel, thread string) (*bridgev2.MatrixMessageResponse, error) {
	content := msg.Content
	url := content.URL
	if content.File != nil {
		url = content.File.URL
	}
	data, err := c.n.br.Bot.DownloadMedia(ctx, url, content.File)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", bridgev2.ErrMediaDownloadFailed, err)
	}
	name := content.GetFileName()
	if name == "" {
		name = "file"
	}
	caption := ""
	if content.FileName != "" && content.Body != content.FileName {
		caption = c.mrkdwn(ctx, content)
	}
	if p := c.poster(ctx, msg.Portal, msg.Event.Sender, msg.OrigSender); p != nil {
		// files.completeUploadExternal takes no username or icon_url: a
		// file the bot posts for a Matrix user is shared by the bot, its
		// comment naming the sender.
		caption = relayPrefix(p, caption)
	}
	params := slack.UploadFileParameters{Reader: bytes.NewReader(data), FileSize: len(data), Filename: name,
		Title: name, Channel: channel, ThreadTimestamp: thread, InitialComment: caption}
	f, err := c.api.UploadFileContext(ctx, params)
	if err != nil {
		return nil, c.checkAuth(err)
	}
	c.expectEcho("file:" + f.ID)
	return &bridgev2.MatrixMessageResponse{DB: &database.Message{
		ID:       messageID(c.meta.TeamID, channel, "file-"+f.ID),
		SenderID: userID(c.meta.TeamID, c.meta.UserID), Timestamp: time.Now()}}, nil
}

func (c *Client) HandleMatrixEdit(ctx context.Context, msg *bridgev2.MatrixEdit) error {
	channel, err := c.channelOf(msg.Portal)
	if err != nil {
		return err
	}
	_, _, ts, err := parseMessageID(msg.EditTarget.ID)
	if err != nil || strings.HasPrefix(ts, "file-") {
		return fmt.Errorf("%w: that message cannot be edited on Slack", bridgev2.ErrUnsupportedMessageType)
	}
	text := c.mrkdwn(ctx, msg.Content)
	if p := c.poster(ctx, msg.Portal, msg.Event.Sender, msg.OrigSender); p != nil && c.namesInText() {
		// The post says whose it is in its text, and goes on saying so
		// (chat.update keeps a post's username).
		text = relayPrefix(p, text)
	}
	c.expectEcho("edit:" + channel + ":" + ts)
	if _, _, _, err := c.api.UpdateMessageContext(ctx, channel, ts, slack.MsgOptionText(text, false)); err != nil {
		c.isEcho("edit:" + channel + ":" + ts)
		return refusedChange(c.checkAuth(err))
	}
	return nil
}

// refusedChange: Slack refusing to change a message shows. A bot may edit
// and delete only its own messages (cant_update_message,
// cant_delete_message), a user their own (and others' as an admin,
// within the workspace's edit window: edit_window_closed): an edit of a
// message the login may not change is not bridged, and the user is told
// (a notice and a failed message status) rather than left believing it
// was.
func refusedChange(err error) error {
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) {
		return err
	}
	var why string
	switch se.Err {
	case "cant_update_message", "cant_delete_message":
		why = "Slack lets only a message's author change it, and this one is someone else's"
	case "edit_window_closed":
		why = "the workspace's time for editing this message is over"
	case "message_not_found":
		why = "Slack has no such message (deleted, or never bridged there)"
	default:
		return err
	}
	return bridgev2.WrapErrorInStatus(err).WithStatus(event.MessageStatusFail).
		WithErrorReason(event.MessageStatusUnsupported).WithIsCertain(true).WithSendNotice(true).
		WithMessage(why + " (" + se.Err + ")")
}

func (c *Client) HandleMatrixMessageRemove(ctx context.Context, msg *bridgev2.MatrixMessageRemove) error {
	channel, err := c.channelOf(msg.Portal)
	if err != nil {
		return err
	}
	_, _, ts, err := parseMessageID(msg.TargetMessage.ID)
	if err != nil {
		return err
	}
	if fileID, ok := strings.CutPrefix(ts, "file-"); ok {
		return c.checkAuth(c.api.DeleteFileContext(ctx, fileID))
	}
	if _, _, err := c.api.DeleteMessageContext(ctx, channel, ts); err != nil {
		var se slack.SlackErrorResponse
		if errors.As(err, &se) && se.Err == "message_not_found" {
			return nil
		}
		return refusedChange(c.checkAuth(err))
	}
	return nil
}

func (c *Client) PreHandleMatrixReaction(_ context.Context, msg *bridgev2.MatrixReaction) (bridgev2.MatrixReactionPreResponse, error) {
	key := msg.Content.RelatesTo.Key
	name, ok := slackfmt.EmojiName(key)
	if !ok && strings.HasPrefix(key, "mxc://") {
		// A custom emoji: one the bridge uploaded, or named by its
		// shortcode (as clients with custom emoji send them).
		if name, ok = c.customEmojiName(id.ContentURIString(key)); !ok {
			sc, _ := msg.Event.Content.Raw[shortcodeKey].(string)
			name, ok = slackfmt.EmojiName(sc)
		}
		if ok {
			return bridgev2.MatrixReactionPreResponse{SenderID: userID(c.meta.TeamID, c.meta.UserID),
				EmojiID: networkid.EmojiID(name), Emoji: key}, nil
		}
	}
	if !ok {
		return bridgev2.MatrixReactionPreResponse{}, fmt.Errorf("%w: Slack has no emoji %q", bridgev2.ErrUnsupportedMessageType, msg.Content.RelatesTo.Key)
	}
	key, _ = slackfmt.ReactionKey(name)
	return bridgev2.MatrixReactionPreResponse{SenderID: userID(c.meta.TeamID, c.meta.UserID),
		EmojiID: networkid.EmojiID(name), Emoji: key}, nil
}

func (c *Client) HandleMatrixReaction(ctx context.Context, msg *bridgev2.MatrixReaction) (*database.Reaction, error) {
	channel, err := c.channelOf(msg.Portal)
	if err != nil {
		return nil, err
	}
	_, _, ts, err := parseMessageID(msg.TargetMessage.ID)
	if err != nil {
		return nil, err
	}
	err = c.api.AddReactionContext(ctx, string(msg.PreHandleResp.EmojiID), slack.NewRefToMessage(channel, ts))
	var se slack.SlackErrorResponse
	if err != nil && !(errors.As(err, &se) && se.Err == "already_reacted") {
		return nil, c.checkAuth(err)
	}
	return &database.Reaction{}, nil
}

func (c *Client) HandleMatrixReactionRemove(ctx context.Context, msg *bridgev2.MatrixReactionRemove) error {
	channel, err := c.channelOf(msg.Portal)
	if err != nil {
		return err
	}
	_, _, ts, err := parseMessageID(msg.TargetReaction.MessageID)
	if err != nil {
		return err
	}
	err = c.api.RemoveReactionContext(ctx, string(msg.TargetReaction.EmojiID), slack.NewRefToMessage(channel, ts))
	var se slack.SlackErrorResponse
	if err != nil && !(errors.As(err, &se) && se.Err == "no_reaction") {
		return c.checkAuth(err)
	}
	return nil
}

// HandleMatrixReadReceipt moves the user's read marker on Slack
// (conversations.mark, which only a user token may call).
func (c *Client) HandleMatrixReadReceipt(ctx context.Context, msg *bridgev2.MatrixReadReceipt) error {
	if c.meta.Mode != modeUser || msg.ExactMessage == nil {
		return nil
	}
	channel, err := c.channelOf(msg.Portal)
	if err != nil {
		return nil
	}
	_, _, ts, err := parseMessageID(msg.ExactMessage.ID)
	if err != nil || strings.HasPrefix(ts, "file-") {
		return nil
	}
	return c.checkAuth(c.api.MarkConversationContext(ctx, channel, ts))
}

// HandleMatrixTyping does nothing: Slack's Web API has no typing call
// (only the retired RTM API had one).
func (c *Client) HandleMatrixTyping(context.Context, *bridgev2.MatrixTyping) error { return nil }
