package telegram

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"

	tgbot "github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

var (
	_ bridgev2.EditHandlingNetworkAPI      = (*Client)(nil)
	_ bridgev2.ReactionHandlingNetworkAPI  = (*Client)(nil)
	_ bridgev2.RedactionHandlingNetworkAPI = (*Client)(nil)
)

func (c *Client) IsThisUser(_ context.Context, userID networkid.UserID) bool {
	return userID == userIDOf(c.meta().BotID)
}

func (c *Client) GetCapabilities(context.Context, *bridgev2.Portal) *event.RoomFeatures {
	return &event.RoomFeatures{
		Formatting: event.FormattingFeatureMap{
			event.FmtBold: event.CapLevelFullySupported, event.FmtItalic: event.CapLevelFullySupported,
			event.FmtUnderline: event.CapLevelFullySupported, event.FmtStrikethrough: event.CapLevelFullySupported,
			event.FmtInlineCode: event.CapLevelFullySupported, event.FmtCodeBlock: event.CapLevelFullySupported,
			event.FmtSpoiler: event.CapLevelFullySupported, event.FmtBlockquote: event.CapLevelFullySupported,
			event.FmtInlineLink: event.CapLevelFullySupported, event.FmtUserLink: event.CapLevelPartialSupport,
		},
		File:          fileFeatures(),
		MaxTextLength: 4096,
		// Relayed messages get the sender's name here (relayPrefix), so
		// that relay works without message formats in the bridge config.
		PerMessageProfileRelay: true,
		Reply:                  event.CapLevelFullySupported,
		Edit:                   event.CapLevelFullySupported,
		Delete:                 event.CapLevelFullySupported,
		Reaction:               event.CapLevelPartialSupport,
		ReactionCount:          1,
		LocationMessage:        event.CapLevelRejected,
		Poll:                   event.CapLevelRejected,
		Thread:                 event.CapLevelUnsupported,
		ReadReceipts:           false,
		TypingNotifications:    false,
	}
}

// fileFeatures: a bot may upload files up to 50 MB, with captions of up
// to 1024 characters.
func fileFeatures() event.FileFeatureMap {
	feat := func() *event.FileFeatures {
		return &event.FileFeatures{MimeTypes: map[string]event.CapabilitySupportLevel{"*/*": event.CapLevelFullySupported},
			Caption: event.CapLevelFullySupported, MaxCaptionLength: 1024, MaxSize: 50 << 20}
	}
	m := event.FileFeatureMap{}
	for _, t := range []event.CapabilityMsgType{event.MsgImage, event.MsgFile, event.MsgAudio, event.MsgVideo,
		event.CapMsgVoice, event.CapMsgGIF, event.CapMsgSticker} {
		m[t] = feat()
	}
	return m
}

// telegramName names a Matrix user in text sent to Telegram (a pill).
func (c *Client) telegramName(ctx context.Context) ghostNameFunc {
	return func(user id.UserID) string {
		if ghostID, ok := c.net.br.Matrix.ParseGhostMXID(user); ok {
			if ghost, err := c.net.br.GetExistingGhostByID(ctx, ghostID); err == nil && ghost != nil && ghost.Name != "" {
				return ghost.Name
			}
		}
		return user.Localpart()
	}
}

func (c *Client) HandleMatrixMessage(ctx context.Context, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	chatID, thread, _, err := chatIDOf(msg.Portal.ID)
	if err != nil {
		return nil, err
	}
	content := msg.Content
	var reply *models.ReplyParameters
	if msg.ReplyTo != nil {
		if _, replyID, err := parseMessageID(msg.ReplyTo.ID); err == nil {
			reply = &models.ReplyParameters{MessageID: replyID, AllowSendingWithoutReply: true}
		}
	}
	var sent *models.Message
	media := false
	switch {
	case content.MsgType.IsMedia() || msg.Event.Type == event.EventSticker:
		media = true
		sent, err = c.sendMedia(ctx, msg, chatID, thread, reply)
	default:
		text, ents := matrixToTelegram(content, c.telegramName(ctx))
		text, ents = relayPrefix(msg.OrigSender, content.MsgType == event.MsgEmote, text, ents)
		err = c.retrying(ctx, msg.Portal, msg.Event, func(ctx context.Context) (err error) {
			sent, err = c.bot.SendMessage(ctx, &tgbot.SendMessageParams{ChatID: chatID, MessageThreadID: thread, Text: text, Entities: ents,
				ReplyParameters: reply})
			return err
		})
	}
	if err != nil {
		return nil, err
	}
	return &bridgev2.MatrixMessageResponse{DB: &database.Message{
		ID:        messageIDOf(chatID, sent.ID),
		SenderID:  userIDOf(c.meta().BotID),
		Timestamp: time.Unix(int64(sent.Date), 0),
		Metadata:  &MessageMetadata{Media: media},
	}}, nil
}

// relayPrefix puts a relayed Matrix user's name, in bold, before the text
// ("name: text", "* name text" for an emote, the name alone for an empty
// caption); an emote of a login's own user gets "* ".
func relayPrefix(orig *bridgev2.OrigSender, emote bool, text string, ents []models.MessageEntity) (string, []models.MessageEntity) {
	if orig == nil {
		if emote {
			return "* " + text, shiftEntities(ents, 2)
		}
		return text, ents
	}
	name := orig.DisambiguatedName
	if name == "" {
		name = orig.UserID.Localpart()
	}
	before, after := "", ": "
	switch {
	case emote:
		before, after = "* ", " "
	case text == "":
		after = ""
	}
	bold := models.MessageEntity{Type: models.MessageEntityTypeBold, Offset: utf16Len(before), Length: utf16Len(name)}
	prefix := before + name + after
	return prefix + text, append([]models.MessageEntity{bold}, shiftEntities(ents, utf16Len(prefix))...)
}

func utf16Len(s string) int { return len(utf16.Encode([]rune(s))) }

// shiftEntities moves entities right by n UTF-16 units (for a prefix).
func shiftEntities(ents []models.MessageEntity, n int) []models.MessageEntity {
	for i := range ents {
		ents[i].Offset += n
	}
	return ents
}

// caption is a Matrix media message's caption as Telegram text: the body
// when the message has a file name besides it.
func caption(content *event.MessageEventContent, name ghostNameFunc) (string, []models.MessageEntity) {
	if content.FileName == "" || content.FileName == content.Body {
		return "", nil
	}
	return matrixToTelegram(content, name)
}

func (c *Client) sendMedia(ctx context.Context, msg *bridgev2.MatrixMessage, chatID int64, thread int,
	reply *models.ReplyParameters) (*models.Message, error) {
	content := msg.Content
	f, err := c.net.outgoingFile(ctx, msg, c.telegramName(ctx))
	if err != nil {
		return nil, err
	}
	mime, text, ents := f.mime, f.text, f.ents
	file := func() models.InputFile {
		return &models.InputFileUpload{Filename: f.name, Data: bytes.NewReader(f.data)}
	}
	var sent *models.Message
	err = c.retrying(ctx, msg.Portal, msg.Event, func(ctx context.Context) (err error) {
		switch {
		case msg.Event.Type == event.EventSticker && mime == "image/webp":
			sent, err = c.bot.SendSticker(ctx, &tgbot.SendStickerParams{ChatID: chatID, MessageThreadID: thread, Sticker: file(),
				ReplyParameters: reply})
		case content.MsgType == event.MsgImage || msg.Event.Type == event.EventSticker:
			if mime == "image/gif" {
				sent, err = c.bot.SendAnimation(ctx, &tgbot.SendAnimationParams{ChatID: chatID, MessageThreadID: thread, Animation: file(),
					Caption: text, CaptionEntities: ents, ReplyParameters: reply})
			} else {
				sent, err = c.bot.SendPhoto(ctx, &tgbot.SendPhotoParams{ChatID: chatID, MessageThreadID: thread, Photo: file(),
					Caption: text, CaptionEntities: ents, ReplyParameters: reply})
			}
		case content.MsgType == event.MsgAudio && content.MSC3245Voice != nil:
			dur := 0
			if content.MSC1767Audio != nil {
				dur = content.MSC1767Audio.Duration / 1000
			}
			sent, err = c.bot.SendVoice(ctx, &tgbot.SendVoiceParams{ChatID: chatID, MessageThreadID: thread, Voice: file(), Duration: dur,
				Caption: text, CaptionEntities: ents, ReplyParameters: reply})
		case content.MsgType == event.MsgAudio:
			sent, err = c.bot.SendAudio(ctx, &tgbot.SendAudioParams{ChatID: chatID, MessageThreadID: thread, Audio: file(),
				Caption: text, CaptionEntities: ents, ReplyParameters: reply})
		case content.MsgType == event.MsgVideo:
			sent, err = c.bot.SendVideo(ctx, &tgbot.SendVideoParams{ChatID: chatID, MessageThreadID: thread, Video: file(),
				Caption: text, CaptionEntities: ents, ReplyParameters: reply})
		default:
			sent, err = c.bot.SendDocument(ctx, &tgbot.SendDocumentParams{ChatID: chatID, MessageThreadID: thread, Document: file(),
				Caption: text, CaptionEntities: ents, ReplyParameters: reply})
		}
		return err
	})
	return sent, err
}

func (c *Client) HandleMatrixEdit(ctx context.Context, msg *bridgev2.MatrixEdit) error {
	chatID, msgID, err := parseMessageID(msg.EditTarget.ID)
	if err != nil {
		return err
	}
	meta, _ := msg.EditTarget.Metadata.(*MessageMetadata)
	content := msg.Content
	text, ents := matrixToTelegram(content, c.telegramName(ctx))
	text, ents = relayPrefix(msg.OrigSender, content.MsgType == event.MsgEmote, text, ents)
	return c.retrying(ctx, msg.Portal, msg.Event, func(ctx context.Context) (err error) {
		if meta != nil && meta.Media {
			_, err = c.bot.EditMessageCaption(ctx, &tgbot.EditMessageCaptionParams{ChatID: chatID, MessageID: msgID,
				Caption: text, CaptionEntities: ents})
		} else {
			_, err = c.bot.EditMessageText(ctx, &tgbot.EditMessageTextParams{ChatID: chatID, MessageID: msgID,
				Text: text, Entities: ents})
		}
		if err != nil && strings.Contains(err.Error(), "message is not modified") {
			return nil
		}
		return err
	})
}

func (c *Client) PreHandleMatrixReaction(_ context.Context, msg *bridgev2.MatrixReaction) (bridgev2.MatrixReactionPreResponse, error) {
	emoji := variationless(msg.Content.RelatesTo.Key)
	return bridgev2.MatrixReactionPreResponse{SenderID: userIDOf(c.meta().BotID), EmojiID: networkid.EmojiID(emoji),
		Emoji: emoji, MaxReactions: 1}, nil
}

// variationless drops emoji variation selectors: Telegram's reaction list
// spells ❤ without U+FE0F.
func variationless(s string) string { return strings.ReplaceAll(s, "\ufe0f", "") }

func (c *Client) HandleMatrixReaction(ctx context.Context, msg *bridgev2.MatrixReaction) (*database.Reaction, error) {
	chatID, msgID, err := parseMessageID(msg.TargetMessage.ID)
	if err != nil {
		return nil, err
	}
	emoji := variationless(msg.Content.RelatesTo.Key)
	err = c.retrying(ctx, msg.Portal, msg.Event, func(ctx context.Context) error {
		_, err := c.bot.SetMessageReaction(ctx, &tgbot.SetMessageReactionParams{ChatID: chatID, MessageID: msgID,
			Reaction: []models.ReactionType{{Type: models.ReactionTypeTypeEmoji,
				ReactionTypeEmoji: &models.ReactionTypeEmoji{Emoji: emoji}}}})
		return err
	})
	if err != nil {
		return nil, err
	}
	return &database.Reaction{}, nil
}

func (c *Client) HandleMatrixReactionRemove(ctx context.Context, msg *bridgev2.MatrixReactionRemove) error {
	chatID, msgID, err := parseMessageID(msg.TargetReaction.MessageID)
	if err != nil {
		return err
	}
	return c.retrying(ctx, msg.Portal, msg.Event, func(ctx context.Context) error {
		_, err := c.bot.SetMessageReaction(ctx, &tgbot.SetMessageReactionParams{ChatID: chatID, MessageID: msgID,
			Reaction: []models.ReactionType{}})
		return err
	})
}

func (c *Client) HandleMatrixMessageRemove(ctx context.Context, msg *bridgev2.MatrixMessageRemove) error {
	chatID, msgID, err := parseMessageID(msg.TargetMessage.ID)
	if err != nil {
		return err
	}
	return c.retrying(ctx, msg.Portal, msg.Event, func(ctx context.Context) error {
		_, err := c.bot.DeleteMessage(ctx, &tgbot.DeleteMessageParams{ChatID: chatID, MessageID: msgID})
		return err
	})
}

// errTelegram wraps what Telegram refused, for the sender's notice.
func errTelegram(err error) error {
	var tooMany *tgbot.TooManyRequestsError
	if errors.As(err, &tooMany) {
		return err
	}
	return bridgev2.WrapErrorInStatus(fmt.Errorf("refused by Telegram: %w", err)).WithIsCertain(true).
		WithSendNotice(true).WithErrorAsMessage()
}
