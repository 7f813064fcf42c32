package telegram

import (
	"strconv"

	"github.com/go-telegram/bot/models"
	"github.com/gotd/td/tg"

	"maunium.net/go/mautrix/bridgev2/networkid"
)

// MTProto names a basic group by its chat ID and a channel or supergroup
// by its channel ID, each counted from 1. The Bot API, whose IDs the
// portals carry so that a chat has the same portal ID in either mode, makes
// a basic group's ID negative and puts a channel's below -10^12.
const channelIDBase = 1_000_000_000_000

func userLoginIDOf(userID int64) networkid.UserLoginID {
	return networkid.UserLoginID("user" + strconv.FormatInt(userID, 10))
}

// botAPIChatID is a peer's chat ID as the Bot API spells it.
func botAPIChatID(p tg.PeerClass) int64 {
	switch p := p.(type) {
	case *tg.PeerUser:
		return p.UserID
	case *tg.PeerChat:
		return -p.ChatID
	case *tg.PeerChannel:
		return -channelIDBase - p.ChannelID
	}
	return 0
}

// peerOfChatID is the reverse of botAPIChatID.
func peerOfChatID(chatID int64) tg.PeerClass {
	switch {
	case chatID > 0:
		return &tg.PeerUser{UserID: chatID}
	case chatID > -channelIDBase:
		return &tg.PeerChat{ChatID: -chatID}
	default:
		return &tg.PeerChannel{ChannelID: -channelIDBase - chatID}
	}
}

// isChannelChat: the chat is a channel or supergroup (message IDs counted
// per chat; deletions name the channel).
func isChannelChat(chatID int64) bool { return chatID <= -channelIDBase }

// tgEntities turns MTProto entities into the Bot API's, which format.go
// renders; a mention of a user by ID keeps the user's ID (and name, when
// known) for the mention function.
func tgEntities(ents []tg.MessageEntityClass, user func(int64) *models.User) []models.MessageEntity {
	out := make([]models.MessageEntity, 0, len(ents))
	for _, e := range ents {
		m := models.MessageEntity{Offset: e.GetOffset(), Length: e.GetLength()}
		switch e := e.(type) {
		case *tg.MessageEntityBold:
			m.Type = models.MessageEntityTypeBold
		case *tg.MessageEntityItalic:
			m.Type = models.MessageEntityTypeItalic
		case *tg.MessageEntityUnderline:
			m.Type = models.MessageEntityTypeUnderline
		case *tg.MessageEntityStrike:
			m.Type = models.MessageEntityTypeStrikethrough
		case *tg.MessageEntitySpoiler:
			m.Type = models.MessageEntityTypeSpoiler
		case *tg.MessageEntityCode:
			m.Type = models.MessageEntityTypeCode
		case *tg.MessageEntityPre:
			m.Type, m.Language = models.MessageEntityTypePre, e.Language
		case *tg.MessageEntityBlockquote:
			m.Type = models.MessageEntityTypeBlockquote
		case *tg.MessageEntityTextURL:
			m.Type, m.URL = models.MessageEntityTypeTextLink, e.URL
		case *tg.MessageEntityURL:
			m.Type = models.MessageEntityTypeURL
		case *tg.MessageEntityEmail:
			m.Type = models.MessageEntityTypeEmail
		case *tg.MessageEntityMentionName:
			m.Type = models.MessageEntityTypeTextMention
			if m.User = user(e.UserID); m.User == nil {
				m.User = &models.User{ID: e.UserID}
			}
		default:
			continue
		}
		out = append(out, m)
	}
	return out
}

// mtprotoEntities turns the Bot API's entities (what format.go makes of
// Matrix HTML) into MTProto's; a mention of a user needs the user's access
// hash (inputUser), else it is left as plain text.
func mtprotoEntities(ents []models.MessageEntity, inputUser func(int64) tg.InputUserClass) []tg.MessageEntityClass {
	out := make([]tg.MessageEntityClass, 0, len(ents))
	for _, e := range ents {
		o, l := e.Offset, e.Length
		var m tg.MessageEntityClass
		switch e.Type {
		case models.MessageEntityTypeBold:
			m = &tg.MessageEntityBold{Offset: o, Length: l}
		case models.MessageEntityTypeItalic:
			m = &tg.MessageEntityItalic{Offset: o, Length: l}
		case models.MessageEntityTypeUnderline:
			m = &tg.MessageEntityUnderline{Offset: o, Length: l}
		case models.MessageEntityTypeStrikethrough:
			m = &tg.MessageEntityStrike{Offset: o, Length: l}
		case models.MessageEntityTypeSpoiler:
			m = &tg.MessageEntitySpoiler{Offset: o, Length: l}
		case models.MessageEntityTypeCode:
			m = &tg.MessageEntityCode{Offset: o, Length: l}
		case models.MessageEntityTypePre:
			m = &tg.MessageEntityPre{Offset: o, Length: l, Language: e.Language}
		case models.MessageEntityTypeBlockquote, models.MessageEntityTypeExpandableBlockquote:
			m = &tg.MessageEntityBlockquote{Offset: o, Length: l}
		case models.MessageEntityTypeTextLink:
			m = &tg.MessageEntityTextURL{Offset: o, Length: l, URL: e.URL}
		case models.MessageEntityTypeURL:
			m = &tg.MessageEntityURL{Offset: o, Length: l}
		case models.MessageEntityTypeEmail:
			m = &tg.MessageEntityEmail{Offset: o, Length: l}
		case models.MessageEntityTypeTextMention:
			if e.User == nil {
				continue
			}
			u := inputUser(e.User.ID)
			if u == nil {
				continue
			}
			m = &tg.InputMessageEntityMentionName{Offset: o, Length: l, UserID: u}
		default:
			continue
		}
		out = append(out, m)
	}
	return out
}
