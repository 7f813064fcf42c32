package telegram

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/go-telegram/bot/models"

	"maunium.net/go/mautrix/bridgev2/networkid"
)

// IDs, all opaque to bridgev2:
//
//	login   "bot<bot user id>", "user<user id>" for a user account
//	portal  "<chat id>" as the Bot API numbers chats (negative for groups,
//	        supergroups and channels; user mode uses the same IDs);
//	        a forum's topic "<chat id>/<thread id>" (0: the General topic),
//	        its chat's portal being the topics' space. A private chat's
//	        portal has the login as receiver (the chat ID is the other
//	        user's); the portals of groups, supergroups and channels have
//	        none: they are shared by every login in them, bot or user
//	        account, so a chat is one room whichever mode bridges it
//	ghost   "<user id>", or "chat<chat id>" for messages sent as a chat
//	message "<chat id>:<message id>" (message IDs are per chat)

func loginIDOf(botID int64) networkid.UserLoginID {
	return networkid.UserLoginID("bot" + strconv.FormatInt(botID, 10))
}

func portalIDOf(chatID int64) networkid.PortalID {
	return networkid.PortalID(strconv.FormatInt(chatID, 10))
}

// portalKeyOf is the portal of a chat (or of a topic in it) for a login:
// shared unless the chat is a private one.
func portalKeyOf(id networkid.PortalID, chatID int64, login networkid.UserLoginID) networkid.PortalKey {
	if chatID > 0 {
		return networkid.PortalKey{ID: id, Receiver: login}
	}
	return networkid.PortalKey{ID: id}
}

func topicPortalIDOf(chatID int64, thread int) networkid.PortalID {
	return networkid.PortalID(strconv.FormatInt(chatID, 10) + "/" + strconv.Itoa(thread))
}

// chatIDOf is a portal's chat, and its topic's thread ID (0 for a chat or
// the General topic; topic tells which).
func chatIDOf(p networkid.PortalID) (chatID int64, thread int, topic bool, err error) {
	chat, th, topic := strings.Cut(string(p), "/")
	if chatID, err = strconv.ParseInt(chat, 10, 64); err == nil && topic {
		thread, err = strconv.Atoi(th)
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("telegram: not a Telegram portal: %q", p)
	}
	return chatID, thread, topic, nil
}

func userIDOf(userID int64) networkid.UserID {
	return networkid.UserID(strconv.FormatInt(userID, 10))
}

func chatGhostIDOf(chatID int64) networkid.UserID {
	return networkid.UserID("chat" + strconv.FormatInt(chatID, 10))
}

// parseUserID is a ghost's Telegram user ID; ok is false for chat ghosts.
func parseUserID(u networkid.UserID) (int64, bool) {
	id, err := strconv.ParseInt(string(u), 10, 64)
	return id, err == nil
}

func messageIDOf(chatID int64, msgID int) networkid.MessageID {
	return networkid.MessageID(strconv.FormatInt(chatID, 10) + ":" + strconv.Itoa(msgID))
}

func parseMessageID(m networkid.MessageID) (chatID int64, msgID int, err error) {
	chat, msg, ok := strings.Cut(string(m), ":")
	if ok {
		if chatID, err = strconv.ParseInt(chat, 10, 64); err == nil {
			if msgID, err = strconv.Atoi(msg); err == nil {
				return chatID, msgID, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("telegram: not a Telegram message ID: %q", m)
}

// senderOf is the ghost a message is from: its sender chat (a channel
// post, an anonymous admin) or its user.
func senderOf(msg *models.Message) networkid.UserID {
	if msg.SenderChat != nil {
		return chatGhostIDOf(msg.SenderChat.ID)
	}
	if msg.From != nil {
		return userIDOf(msg.From.ID)
	}
	return chatGhostIDOf(msg.Chat.ID)
}

// userName is a Telegram user's display name: first and last name, else
// the @username.
func userName(u *models.User) string {
	name := strings.TrimSpace(u.FirstName + " " + u.LastName)
	if name == "" && u.Username != "" {
		name = "@" + u.Username
	}
	if name == "" {
		name = strconv.FormatInt(u.ID, 10)
	}
	return name
}

// chatName is a chat's title, or a private chat's user's name.
func chatName(c *models.Chat) string {
	if c.Title != "" {
		return c.Title
	}
	name := strings.TrimSpace(c.FirstName + " " + c.LastName)
	if name == "" && c.Username != "" {
		name = "@" + c.Username
	}
	return name
}
