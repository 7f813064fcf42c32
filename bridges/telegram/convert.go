package telegram

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"strings"

	tgbot "github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
	"github.com/rs/zerolog"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
)

// maxDownload is the Bot API's own limit on files a bot may download.
const maxDownload = 20 << 20

// media is what a Telegram message's file becomes on Matrix.
type media struct {
	fileID string
	// fetch downloads the file.
	fetch   func(context.Context) ([]byte, error)
	name    string
	mime    string
	size    int64
	msgType event.MessageType
	sticker bool
	voice   bool
	width   int
	height  int
	seconds int
}

// mediaOf is a message's file, or nil.
func mediaOf(msg *models.Message) *media {
	switch {
	case len(msg.Photo) > 0:
		p := msg.Photo[len(msg.Photo)-1] // the largest size
		return &media{fileID: p.FileID, name: "photo.jpg", mime: "image/jpeg", size: int64(p.FileSize),
			msgType: event.MsgImage, width: p.Width, height: p.Height}
	case msg.Sticker != nil:
		s := msg.Sticker
		m := &media{fileID: s.FileID, name: "sticker.webp", mime: "image/webp", size: int64(s.FileSize),
			msgType: event.MsgImage, sticker: true, width: s.Width, height: s.Height}
		switch {
		case s.IsAnimated:
			m.name, m.mime, m.msgType, m.sticker = "sticker.tgs", "application/x-tgsticker", event.MsgFile, false
		case s.IsVideo:
			m.name, m.mime, m.msgType, m.sticker = "sticker.webm", "video/webm", event.MsgVideo, false
		}
		return m
	case msg.Voice != nil:
		v := msg.Voice
		return &media{fileID: v.FileID, name: "voice.ogg", mime: orDefault(v.MimeType, "audio/ogg"),
			size: v.FileSize, msgType: event.MsgAudio, voice: true, seconds: v.Duration}
	case msg.Audio != nil:
		a := msg.Audio
		return &media{fileID: a.FileID, name: orDefault(a.FileName, "audio"), mime: a.MimeType, size: a.FileSize,
			msgType: event.MsgAudio, seconds: a.Duration}
	case msg.Video != nil:
		v := msg.Video
		return &media{fileID: v.FileID, name: orDefault(v.FileName, "video.mp4"), mime: orDefault(v.MimeType, "video/mp4"),
			size: v.FileSize, msgType: event.MsgVideo, width: v.Width, height: v.Height, seconds: v.Duration}
	case msg.Animation != nil:
		a := msg.Animation
		return &media{fileID: a.FileID, name: orDefault(a.FileName, "animation.mp4"), mime: orDefault(a.MimeType, "video/mp4"),
			size: a.FileSize, msgType: event.MsgVideo, width: a.Width, height: a.Height, seconds: a.Duration}
	case msg.VideoNote != nil:
		v := msg.VideoNote
		return &media{fileID: v.FileID, name: "video_note.mp4", mime: "video/mp4", size: int64(v.FileSize),
			msgType: event.MsgVideo, width: v.Length, height: v.Length, seconds: v.Duration}
	case msg.Document != nil:
		d := msg.Document
		return &media{fileID: d.FileID, name: orDefault(d.FileName, "file"), mime: d.MimeType, size: d.FileSize,
			msgType: event.MsgFile}
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// download fetches a file of the bot's through getFile.
func (c *Client) download(ctx context.Context, fileID string) ([]byte, error) {
	f, err := c.bot.GetFile(ctx, &tgbot.GetFileParams{FileID: fileID})
	if err != nil {
		return nil, fmt.Errorf("getFile: %w", err)
	}
	if f.FileSize > maxDownload {
		return nil, fmt.Errorf("the file is %d bytes, more than a bot may download", f.FileSize)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.bot.FileDownloadLink(f), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.net.HTTP.Do(req)
	if err != nil {
		return nil, errors.New(redact(err.Error(), c.meta().Token))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("downloading the file: HTTP %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxDownload+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxDownload {
		return nil, errors.New("the file is larger than a bot may download")
	}
	return data, nil
}

// convertMessage turns a Telegram message into one Matrix event.
func (c *Client) convertMessage(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI,
	msg *models.Message) (*bridgev2.ConvertedMessage, error) {
	part := c.convertPart(ctx, portal, intent, msg)
	cm := &bridgev2.ConvertedMessage{Parts: []*bridgev2.ConvertedMessagePart{part}}
	if r := msg.ReplyToMessage; r != nil && r.Chat.ID == msg.Chat.ID &&
		!(msg.IsTopicMessage && r.ID == msg.MessageThreadID) { // not the topic's first message
		cm.ReplyTo = &networkid.MessageOptionalPartID{MessageID: messageIDOf(msg.Chat.ID, r.ID)}
	}
	return cm, nil
}

func (c *Client) convertEdit(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI,
	existing []*database.Message, msg *models.Message) (*bridgev2.ConvertedEdit, error) {
	if len(existing) == 0 {
		return nil, errors.New("telegram: edit of an unknown message")
	}
	part := c.convertPart(ctx, portal, intent, msg)
	return &bridgev2.ConvertedEdit{ModifiedParts: []*bridgev2.ConvertedEditPart{part.ToEditPart(existing[0])}}, nil
}

func (c *Client) convertPart(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI,
	msg *models.Message) *bridgev2.ConvertedMessagePart {
	m := mediaOf(msg)
	if m != nil {
		m.fetch = func(ctx context.Context) ([]byte, error) { return c.download(ctx, m.fileID) }
	}
	return convertPart(ctx, intent, portal, msg, m, c.mention)
}

// convertPart turns a message (in the Bot API's shape, which user mode
// makes of MTProto's too) with its file m (or nil) into a Matrix event.
func convertPart(ctx context.Context, intent bridgev2.MatrixAPI, portal *bridgev2.Portal, msg *models.Message,
	m *media, mention mentionFunc) *bridgev2.ConvertedMessagePart {
	if m != nil {
		content, err := convertMedia(ctx, portal, intent, msg, m, mention)
		if err != nil {
			zerolog.Ctx(ctx).Err(err).Str("file_name", m.name).Msg("bridging a Telegram file")
			content = &event.MessageEventContent{MsgType: event.MsgNotice,
				Body: fmt.Sprintf("%s (the bridge could not fetch the file: %v)", m.name, err)}
			if msg.Caption != "" {
				content.Body = msg.Caption + "\n\n" + content.Body
			}
		}
		typ := event.EventMessage
		if m.sticker && err == nil {
			typ = event.EventSticker
		}
		return &bridgev2.ConvertedMessagePart{Type: typ, Content: content, DBMetadata: &MessageMetadata{Media: true}}
	}
	var content *event.MessageEventContent
	switch {
	case msg.Text != "":
		content = textContent(msg.Text, msg.Entities, mention)
	case msg.Poll != nil:
		content = pollContent(msg.Poll)
	case msg.Venue != nil:
		content = &event.MessageEventContent{MsgType: event.MsgText,
			Body: fmt.Sprintf("📍 %s, %s (%f, %f)", msg.Venue.Title, msg.Venue.Address, msg.Venue.Location.Latitude, msg.Venue.Location.Longitude)}
	case msg.Location != nil:
		content = &event.MessageEventContent{MsgType: event.MsgLocation,
			Body:   fmt.Sprintf("📍 %f, %f", msg.Location.Latitude, msg.Location.Longitude),
			GeoURI: fmt.Sprintf("geo:%f,%f", msg.Location.Latitude, msg.Location.Longitude)}
	case msg.Contact != nil:
		content = &event.MessageEventContent{MsgType: event.MsgText,
			Body: fmt.Sprintf("👤 %s %s: %s", msg.Contact.FirstName, msg.Contact.LastName, msg.Contact.PhoneNumber)}
	case msg.Dice != nil:
		content = &event.MessageEventContent{MsgType: event.MsgText, Body: fmt.Sprintf("%s %d", msg.Dice.Emoji, msg.Dice.Value)}
	default:
		content = &event.MessageEventContent{MsgType: event.MsgNotice, Body: "(a kind of Telegram message the bridge does not show)"}
	}
	return &bridgev2.ConvertedMessagePart{Type: event.EventMessage, Content: content, DBMetadata: &MessageMetadata{}}
}

func convertMedia(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI,
	msg *models.Message, m *media, mention mentionFunc) (*event.MessageEventContent, error) {
	data, err := m.fetch(ctx)
	if err != nil {
		return nil, err
	}
	if m.mime == "" {
		m.mime = http.DetectContentType(data)
	}
	url, file, err := intent.UploadMedia(ctx, portal.MXID, data, m.name, m.mime)
	if err != nil {
		return nil, fmt.Errorf("uploading to Matrix: %w", err)
	}
	content := &event.MessageEventContent{MsgType: m.msgType, Body: m.name, URL: url, File: file,
		Info: &event.FileInfo{MimeType: m.mime, Size: len(data), Width: m.width, Height: m.height,
			Duration: m.seconds * 1000}}
	if m.sticker {
		content.MsgType = ""
		if msg.Sticker.Emoji != "" {
			content.Body = msg.Sticker.Emoji
		}
	}
	if m.voice {
		content.MSC3245Voice = &event.MSC3245Voice{}
		content.MSC1767Audio = &event.MSC1767Audio{Duration: m.seconds * 1000}
	}
	if msg.Caption != "" {
		caption := textContent(msg.Caption, msg.CaptionEntities, mention)
		content.FileName = m.name
		content.Body, content.Format, content.FormattedBody = caption.Body, caption.Format, caption.FormattedBody
	}
	return content, nil
}

// pollContent shows a poll as text (Matrix polls are not bridged).
func pollContent(p *models.Poll) *event.MessageEventContent {
	var body, formatted strings.Builder
	kind := "Poll"
	if p.Type == "quiz" {
		kind = "Quiz"
	}
	fmt.Fprintf(&body, "📊 %s: %s", kind, p.Question)
	fmt.Fprintf(&formatted, "📊 %s: <strong>%s</strong><ol>", kind, html.EscapeString(p.Question))
	for i, o := range p.Options {
		fmt.Fprintf(&body, "\n%d. %s", i+1, o.Text)
		formatted.WriteString("<li>" + html.EscapeString(o.Text) + "</li>")
	}
	formatted.WriteString("</ol>")
	if p.IsClosed {
		body.WriteString("\n(closed)")
		formatted.WriteString("(closed)")
	}
	return &event.MessageEventContent{MsgType: event.MsgText, Body: body.String(), Format: event.FormatHTML,
		FormattedBody: formatted.String()}
}
