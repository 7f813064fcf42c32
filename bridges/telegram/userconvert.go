package telegram

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/go-telegram/bot/models"
	"github.com/gotd/td/telegram/downloader"
	"github.com/gotd/td/tg"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// maxUserDownload caps the files user mode bridges to Matrix.
const maxUserDownload = 100 << 20

// botMessage puts an MTProto message in the Bot API's shape, which the bot
// mode's conversion (convertPart) turns into Matrix content; its file, if
// any, is downloaded over MTProto.
func (c *UserClient) botMessage(m *tg.Message) (*models.Message, *media) {
	ents := tgEntities(m.Entities, c.botUser)
	msg := &models.Message{ID: m.ID, Date: m.Date, Chat: models.Chat{ID: botAPIChatID(m.PeerID)}}
	if m.Media == nil {
		msg.Text, msg.Entities = m.Message, ents
	} else {
		msg.Caption, msg.CaptionEntities = m.Message, ents
	}
	var file *media
	switch md := m.Media.(type) {
	case nil:
	case *tg.MessageMediaPhoto:
		photo, ok := md.Photo.(*tg.Photo)
		if !ok {
			break
		}
		size, w, h := largestPhotoSize(photo.Sizes)
		file = &media{name: "photo.jpg", mime: "image/jpeg", msgType: event.MsgImage, width: w, height: h}
		file.fetch = c.fetcher(&tg.InputPhotoFileLocation{ID: photo.ID, AccessHash: photo.AccessHash,
			FileReference: photo.FileReference, ThumbSize: size})
	case *tg.MessageMediaDocument:
		doc, ok := md.Document.(*tg.Document)
		if !ok {
			break
		}
		file = documentMedia(doc)
		file.fetch = c.fetcher(&tg.InputDocumentFileLocation{ID: doc.ID, AccessHash: doc.AccessHash,
			FileReference: doc.FileReference})
		if file.sticker {
			msg.Sticker = &models.Sticker{Emoji: stickerAlt(doc)}
		}
	case *tg.MessageMediaGeo:
		if g, ok := md.Geo.(*tg.GeoPoint); ok {
			msg.Location = &models.Location{Latitude: g.Lat, Longitude: g.Long}
		}
	case *tg.MessageMediaVenue:
		if g, ok := md.Geo.(*tg.GeoPoint); ok {
			msg.Venue = &models.Venue{Title: md.Title, Address: md.Address,
				Location: models.Location{Latitude: g.Lat, Longitude: g.Long}}
		}
	case *tg.MessageMediaContact:
		msg.Contact = &models.Contact{FirstName: md.FirstName, LastName: md.LastName, PhoneNumber: md.PhoneNumber}
	case *tg.MessageMediaPoll:
		p := &models.Poll{Question: md.Poll.Question, IsClosed: md.Poll.Closed, Type: "regular"}
		if md.Poll.Quiz {
			p.Type = "quiz"
		}
		for _, a := range md.Poll.Answers {
			p.Options = append(p.Options, models.PollOption{Text: a.Text})
		}
		msg.Poll = p
	case *tg.MessageMediaDice:
		msg.Dice = &models.Dice{Emoji: md.Emoticon, Value: md.Value}
	}
	if msg.Text == "" && file == nil && m.Media != nil && msg.Location == nil && msg.Venue == nil &&
		msg.Contact == nil && msg.Poll == nil && msg.Dice == nil && m.Message != "" {
		// Media the bridge does not show (a web page preview…): the text.
		msg.Text, msg.Entities = m.Message, ents
	}
	return msg, file
}

// largestPhotoSize is the largest size of a photo: its type (the thumb
// size to download) and dimensions.
func largestPhotoSize(sizes []tg.PhotoSizeClass) (typ string, w, h int) {
	for _, s := range sizes {
		switch s := s.(type) {
		case *tg.PhotoSize:
			if s.W*s.H >= w*h {
				typ, w, h = s.Type, s.W, s.H
			}
		case *tg.PhotoSizeProgressive:
			if s.W*s.H >= w*h {
				typ, w, h = s.Type, s.W, s.H
			}
		}
	}
	return typ, w, h
}

// documentMedia is what a document becomes on Matrix, from its attributes.
func documentMedia(doc *tg.Document) *media {
	m := &media{name: "file", mime: doc.MimeType, size: doc.Size, msgType: event.MsgFile}
	for _, a := range doc.Attributes {
		switch a := a.(type) {
		case *tg.DocumentAttributeFilename:
			m.name = a.FileName
		case *tg.DocumentAttributeAudio:
			m.msgType, m.seconds, m.voice = event.MsgAudio, a.Duration, a.Voice
			if a.Voice && m.name == "file" {
				m.name = "voice.ogg"
			}
		case *tg.DocumentAttributeVideo:
			m.msgType, m.seconds, m.width, m.height = event.MsgVideo, int(a.Duration), a.W, a.H
		case *tg.DocumentAttributeImageSize:
			m.width, m.height = a.W, a.H
		case *tg.DocumentAttributeSticker:
			if doc.MimeType == "image/webp" {
				m.sticker, m.msgType = true, event.MsgImage
				if m.name == "file" {
					m.name = "sticker.webp"
				}
			}
		}
	}
	return m
}

func stickerAlt(doc *tg.Document) string {
	for _, a := range doc.Attributes {
		if s, ok := a.(*tg.DocumentAttributeSticker); ok {
			return s.Alt
		}
	}
	return ""
}

// fetcher downloads a file over MTProto.
func (c *UserClient) fetcher(loc tg.InputFileLocationClass) func(context.Context) ([]byte, error) {
	return func(ctx context.Context) ([]byte, error) {
		api, err := c.client(ctx)
		if err != nil {
			return nil, err
		}
		var buf limitedBuffer
		if _, err := downloader.NewDownloader().Download(api, loc).Stream(ctx, &buf); err != nil {
			return nil, fmt.Errorf("upload.getFile: %w", err)
		}
		return buf.Bytes(), nil
	}
}

// limitedBuffer refuses files larger than maxUserDownload.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > maxUserDownload {
		return 0, errors.New("the file is larger than the bridge takes")
	}
	return b.Buffer.Write(p)
}

func (c *UserClient) mention(u *models.User) (id.UserID, bool) {
	if c.net.br == nil {
		return id.UserID("@tg_" + strconv.FormatInt(u.ID, 10) + ":test"), true
	}
	return c.net.br.Matrix.FormatGhostMXID(userIDOf(u.ID)), true
}

// convertMessage turns an MTProto message into one Matrix event.
func (c *UserClient) convertMessage(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI,
	m *tg.Message) (*bridgev2.ConvertedMessage, error) {
	msg, file := c.botMessage(m)
	cm := &bridgev2.ConvertedMessage{Parts: []*bridgev2.ConvertedMessagePart{
		convertPart(ctx, intent, portal, msg, file, c.mention)}}
	if h, ok := m.ReplyTo.(*tg.MessageReplyHeader); ok && h.ReplyToMsgID != 0 && h.ReplyToPeerID == nil &&
		!(h.ForumTopic && h.ReplyToTopID == 0) { // not merely the topic's first message
		cm.ReplyTo = &networkid.MessageOptionalPartID{MessageID: messageIDOf(msg.Chat.ID, h.ReplyToMsgID)}
	}
	return cm, nil
}

func (c *UserClient) convertEdit(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI,
	existing []*database.Message, m *tg.Message) (*bridgev2.ConvertedEdit, error) {
	if len(existing) == 0 {
		return nil, errors.New("telegram: edit of an unknown message")
	}
	msg, file := c.botMessage(m)
	if file != nil {
		// The file stays; the caption is what changed.
		file = nil
		msg.Text, msg.Entities = msg.Caption, msg.CaptionEntities
	}
	part := convertPart(ctx, intent, portal, msg, file, c.mention)
	part.DBMetadata = existing[0].Metadata
	return &bridgev2.ConvertedEdit{ModifiedParts: []*bridgev2.ConvertedEditPart{part.ToEditPart(existing[0])}}, nil
}

// userAvatar is a user's profile photo as a ghost avatar.
func (c *UserClient) userAvatar(u *tg.User, photo *tg.UserProfilePhoto) *bridgev2.Avatar {
	return &bridgev2.Avatar{ID: networkid.AvatarID(strconv.FormatInt(photo.PhotoID, 10)),
		Get: c.fetcher(&tg.InputPeerPhotoFileLocation{Big: true,
			Peer: &tg.InputPeerUser{UserID: u.ID, AccessHash: u.AccessHash}, PhotoID: photo.PhotoID})}
}

func (c *UserClient) GetUserInfo(_ context.Context, ghost *bridgev2.Ghost) (*bridgev2.UserInfo, error) {
	if uid, ok := parseUserID(ghost.ID); ok {
		return c.userInfo(uid), nil
	}
	var chatID int64
	if _, err := fmt.Sscanf(string(ghost.ID), "chat%d", &chatID); err == nil {
		if name := c.chatTitle(chatID); name != "" {
			return &bridgev2.UserInfo{Name: &name}, nil
		}
	}
	return nil, nil
}

func (c *UserClient) chatTitle(chatID int64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch p := peerOfChatID(chatID).(type) {
	case *tg.PeerChat:
		if ch, ok := c.chats[p.ChatID]; ok {
			return ch.Title
		}
	case *tg.PeerChannel:
		if ch, ok := c.channels[p.ChannelID]; ok {
			return ch.Title
		}
	}
	return ""
}

func (c *UserClient) GetChatInfo(ctx context.Context, portal *bridgev2.Portal) (*bridgev2.ChatInfo, error) {
	chatID, thread, topic, err := chatIDOf(portal.ID)
	if err != nil {
		return nil, err
	}
	members := bridgev2.ChatMemberMap{}
	members.Set(bridgev2.ChatMember{EventSender: c.senderOfPeer(&tg.PeerUser{UserID: c.meta().UserID}),
		Membership: event.MembershipJoin})
	info := &bridgev2.ChatInfo{Members: &bridgev2.ChatMemberList{MemberMap: members}, CanBackfill: true}
	switch {
	case topic:
		if !c.topics.known(portal.ID) {
			c.topicTitle(ctx, chatID, thread)
		}
		name := c.topics.name(portal.ID, thread)
		parent := portalIDOf(chatID)
		info.Name, info.ParentID = &name, &parent
	case c.isForum(chatID):
		name := c.chatTitle(chatID)
		space := database.RoomTypeSpace
		info.Name, info.Type, info.CanBackfill = &name, &space, false
	case chatID > 0:
		dm := database.RoomTypeDM
		info.Type = &dm
		other := userIDOf(chatID)
		members.Set(bridgev2.ChatMember{EventSender: c.senderOfPeer(&tg.PeerUser{UserID: chatID}),
			Membership: event.MembershipJoin, UserInfo: c.userInfo(chatID)})
		info.Members.OtherUserID = other
	default:
		name := c.chatTitle(chatID)
		if name == "" {
			name = "Telegram chat " + strconv.FormatInt(chatID, 10)
		}
		info.Name = &name
		def := database.RoomTypeDefault
		info.Type = &def
	}
	return info, nil
}
