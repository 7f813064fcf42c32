package discord

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/simplevent"
	"maunium.net/go/mautrix/bridgev2/status"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/discord/discordfmt"
	"github.com/tributary-hs/tributary/plugins/sdk"
)

// Client is one bot login's connection to Discord.
type Client struct {
	net   *Connector
	login *bridgev2.UserLogin

	mu sync.Mutex // guards the fields below
	s  *discordgo.Session
	me *discordgo.User
	// webhooks: the bridge's webhook of each channel; ownHooks their IDs
	// (messages they post are the bridge's own).
	webhooks map[string]*discordgo.Webhook
	ownHooks map[string]bool
	// users: the Discord users seen, for ghosts' profiles.
	users map[string]*discordgo.User
	// reconnecting is set while a dropped gateway is being reopened;
	// retryWait is how long the next attempt waits (0 after READY).
	reconnecting bool
	retryWait    time.Duration
	// emojiImages: the image uploaded for each custom emoji ID seen in a
	// reaction; emojiByKey: the custom emoji ("name:id") of the Matrix
	// reaction keys they were shown as (the image, or ":name:").
	emojiImages map[string]id.ContentURIString
	emojiByKey  map[string]networkid.EmojiID
	// threadRoots: the message each thread starts at, by thread ID;
	// threadsOf: the thread of each root (threads.go).
	threadRoots map[string]string
	threadsOf   map[string]string

	// stateHook, when set (tests), gets the login's bridge states.
	stateHook func(status.BridgeState)
}

var (
	_ bridgev2.NetworkAPI                  = (*Client)(nil)
	_ bridgev2.EditHandlingNetworkAPI      = (*Client)(nil)
	_ bridgev2.ReactionHandlingNetworkAPI  = (*Client)(nil)
	_ bridgev2.TypingHandlingNetworkAPI    = (*Client)(nil)
	_ bridgev2.RedactionHandlingNetworkAPI = (*Client)(nil)
)

func (c *Client) token() string {
	if m, ok := c.login.Metadata.(*LoginMetadata); ok {
		return m.Token
	}
	return ""
}

// puppet reports the optional user-token mode: the login is the user's
// own Discord account, which sends their Matrix messages itself.
func (c *Client) puppet() bool {
	m, ok := c.login.Metadata.(*LoginMetadata)
	return ok && m.User
}

// refusedToken tells the user Discord refused the login's token.
func (c *Client) refusedToken() {
	what := "the bot token"
	if c.puppet() {
		what = "your account's token"
	}
	c.sendState(status.StateBadCredentials, errBadCreds,
		"Discord refused "+what+" (revoked or reset?): log in again with a new one")
}

func (c *Client) sendState(evt status.BridgeStateEvent, code status.BridgeStateErrorCode, msg string) {
	st := status.BridgeState{StateEvent: evt, Error: code, Message: msg}
	if c.stateHook != nil {
		c.stateHook(st)
		return
	}
	c.login.BridgeState.Send(st)
}

// Connect checks the token and opens the gateway. A token Discord refuses
// is BAD_CREDENTIALS (bridgev2 tells the user), not a silent failure.
func (c *Client) Connect(ctx context.Context) {
	s, err := c.net.session(c.token(), c.puppet())
	if err != nil {
		c.sendState(status.StateUnknownError, errConnFails, err.Error())
		return
	}
	me, err := whoAmI(s)
	if errors.Is(err, errBadToken) {
		c.refusedToken()
		return
	} else if err != nil {
		c.sendState(status.StateTransientDisconnect, errConnFails, err.Error())
		return
	}
	s.AddHandler(c.onMessageCreate)
	s.AddHandler(c.onMessageUpdate)
	s.AddHandler(c.onReactionAdd)
	s.AddHandler(c.onReactionRemove)
	s.AddHandler(c.onTyping)
	s.AddHandler(c.onMessageDelete)
	s.AddHandler(c.onMessageDeleteBulk)
	s.AddHandler(c.onMemberUpdate)
	s.AddHandler(c.onRoleCreate)
	s.AddHandler(c.onRoleUpdate)
	s.AddHandler(c.onRoleDelete)
	s.AddHandler(func(_ *discordgo.Session, _ *discordgo.Ready) {
		c.mu.Lock()
		c.retryWait = 0
		c.mu.Unlock()
		c.sendState(status.StateConnected, "", "")
	})
	s.AddHandler(func(s *discordgo.Session, _ *discordgo.Disconnect) { go c.reconnect(s) })
	c.mu.Lock()
	c.s, c.me = s, me
	c.users[me.ID] = me
	c.mu.Unlock()
	if err := s.Open(); err != nil {
		c.sendState(status.StateTransientDisconnect, errConnFails, err.Error())
		go c.reconnect(s)
	}
}

// reconnect reopens a dropped gateway. discordgo's own reconnecting is off
// (Connector.session): it would retry a revoked token in silence forever,
// and turning it off once running races its listener. So the token is
// checked first: one Discord refuses ends the session as BAD_CREDENTIALS;
// otherwise the gateway is opened again (resuming): at once after a
// session that was READY, then with a doubling wait.
func (c *Client) reconnect(s *discordgo.Session) {
	c.mu.Lock()
	if c.s != s || c.reconnecting {
		c.mu.Unlock()
		return
	}
	c.reconnecting = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.reconnecting = false
		c.mu.Unlock()
	}()
	for {
		// The wait grows until the gateway says READY again, so a gateway
		// that takes the connection and closes it (disallowed intents) is
		// not hammered either.
		c.mu.Lock()
		wait := c.retryWait
		c.retryWait = min(max(2*wait, time.Second), 5*time.Minute)
		c.mu.Unlock()
		time.Sleep(wait) // backing off from Discord, not synchronising
		if c.session() != s {
			return // disconnected on purpose meanwhile
		}
		_, err := whoAmI(s)
		if errors.Is(err, errBadToken) {
			c.mu.Lock()
			current := c.s == s
			if current {
				c.s = nil
			}
			c.mu.Unlock()
			if current {
				c.refusedToken()
			}
			return
		}
		if err == nil {
			if err = s.Open(); err == nil || errors.Is(err, discordgo.ErrWSAlreadyOpen) {
				return
			}
		}
		c.sendState(status.StateTransientDisconnect, errConnFails, err.Error())
	}
}

func (c *Client) Disconnect() {
	c.mu.Lock()
	s := c.s
	c.s = nil
	c.mu.Unlock()
	if s != nil {
		_ = s.Close()
	}
}

func (c *Client) session() *discordgo.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s
}

func (c *Client) IsLoggedIn() bool { return c.session() != nil }

func (c *Client) LogoutRemote(context.Context) { c.Disconnect() }

func (c *Client) IsThisUser(_ context.Context, userID networkid.UserID) bool {
	return string(userID) == string(c.login.ID)
}

// channelKey is the portal of a channel, and the thread a message there is
// in (nil if none): a thread's messages go to its channel's room.
func (c *Client) channelKey(s *discordgo.Session, channelID string) (networkid.PortalKey, *discordgo.Channel) {
	if ch, err := s.State.Channel(channelID); err == nil && ch.IsThread() && ch.ParentID != "" {
		return networkid.PortalKey{ID: networkid.PortalID(ch.ParentID)}, ch
	}
	return networkid.PortalKey{ID: networkid.PortalID(channelID)}, nil
}

// own reports whether a message is the bridge's (its bot or webhooks).
// In user-token mode the account's messages are not: those written on
// Discord are bridged as the user's; the echoes of those the bridge sent
// bridgev2 knows by their IDs.
func (c *Client) own(m *discordgo.Message) bool {
	puppet := c.puppet()
	c.mu.Lock()
	defer c.mu.Unlock()
	return (!puppet && m.Author != nil && c.me != nil && m.Author.ID == c.me.ID) || (m.WebhookID != "" && c.ownHooks[m.WebhookID])
}

func (c *Client) remember(u *discordgo.User) {
	if u == nil {
		return
	}
	c.mu.Lock()
	c.users[u.ID] = u
	c.mu.Unlock()
}

func (c *Client) sender(u *discordgo.User) bridgev2.EventSender {
	c.remember(u)
	if c.IsThisUser(context.Background(), networkid.UserID(u.ID)) {
		return bridgev2.EventSender{IsFromMe: true, SenderLogin: c.login.ID, Sender: networkid.UserID(u.ID)}
	}
	return bridgev2.EventSender{Sender: networkid.UserID(u.ID)}
}

func (c *Client) onMessageCreate(s *discordgo.Session, m *discordgo.MessageCreate) {
	if m.Author == nil || c.own(m.Message) || m.Type == discordgo.MessageTypeThreadStarterMessage {
		// A thread's pointer at the message it started from has nothing
		// to show (the import skips it too).
		return
	}
	key, thread := c.channelKey(s, m.ChannelID)
	msg := m.Message
	if ref := msg.MessageReference; msg.Type == discordgo.MessageTypeThreadCreated && ref != nil && ref.ChannelID != "" {
		// A thread started at no message starts at this notice.
		c.rememberThread(ref.ChannelID, msg.ID)
	}
	sdk.QueueRemoteEvent(c.login, &simplevent.Message[*discordgo.Message]{
		EventMeta: simplevent.EventMeta{Type: bridgev2.RemoteEventMessage, PortalKey: key, Sender: c.sender(m.Author),
			CreatePortal: true, Timestamp: m.Timestamp},
		ID:   networkid.MessageID(m.ID),
		Data: msg,
		ConvertMessageFunc: func(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, m *discordgo.Message) (*bridgev2.ConvertedMessage, error) {
			cm, err := c.convert(ctx, portal, intent, m)
			if cm == nil {
				return cm, err
			}
			// bridgev2 relates to messages it has a record of; the SDK
			// makes the thread root and the message replied to one if an
			// import wrote them. A forum post's first message is its
			// thread's root.
			if thread != nil && thread.ID != m.ID {
				root := c.threadRoot(ctx, s, portal, thread)
				cm.ThreadRoot = &root
			}
			if cm.ReplyTo != nil {
				c.knowImported(ctx, portal, cm.ReplyTo.MessageID)
			}
			return cm, err
		},
	})
}

// knowImported makes bridgev2 know a message `tributary import discord`
// wrote (sdk.ImportedMessage), so that it relates to it.
func (c *Client) knowImported(ctx context.Context, portal *bridgev2.Portal, msgID networkid.MessageID) {
	if _, err := sdk.ImportedMessage(ctx, portal, msgID); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("message_id", string(msgID)).Msg("Failed to look a message up among imported ones")
	}
}

func (c *Client) onMessageUpdate(s *discordgo.Session, m *discordgo.MessageUpdate) {
	if m.Author == nil || c.own(m.Message) || m.EditedTimestamp == nil {
		return
	}
	key, _ := c.channelKey(s, m.ChannelID)
	sender := c.sender(m.Author)
	sdk.QueueRemoteEvent(c.login, &simplevent.Message[*discordgo.Message]{
		EventMeta: simplevent.EventMeta{Type: bridgev2.RemoteEventEdit, PortalKey: key, Sender: sender,
			Timestamp: *m.EditedTimestamp},
		ID:            networkid.MessageID(m.ID),
		TargetMessage: networkid.MessageID(m.ID),
		Data:          m.Message,
		ConvertEditFunc: func(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, existing []*database.Message, m *discordgo.Message) (*bridgev2.ConvertedEdit, error) {
			// The text is the message's first part (a message of files
			// only has none, and its first file is edited to the text).
			content := c.text(m)
			return &bridgev2.ConvertedEdit{ModifiedParts: []*bridgev2.ConvertedEditPart{{Part: existing[0],
				Type: event.EventMessage, Content: content}}}, nil
		},
	})
}

// onMessageDelete redacts a message deleted on Discord. Discord does not
// say who deleted it, so the bridge's bot redacts.
func (c *Client) onMessageDelete(s *discordgo.Session, m *discordgo.MessageDelete) {
	c.removed(s, m.ChannelID, m.ID)
}

func (c *Client) onMessageDeleteBulk(s *discordgo.Session, m *discordgo.MessageDeleteBulk) {
	for _, id := range m.Messages {
		c.removed(s, m.ChannelID, id)
	}
}

func (c *Client) removed(s *discordgo.Session, channelID, messageID string) {
	key, _ := c.channelKey(s, channelID)
	target := networkid.MessageID(messageID)
	sdk.QueueRemoteEvent(c.login, &simplevent.MessageRemove{
		EventMeta:     simplevent.EventMeta{Type: bridgev2.RemoteEventMessageRemove, PortalKey: key, Timestamp: time.Now()},
		TargetMessage: target,
	})
}

// emojiKey is a reaction's Discord emoji as the API names it ("name:id"
// for a custom emoji) and as Matrix shows it.
func emojiKey(e discordgo.Emoji) (networkid.EmojiID, string) {
	if e.ID != "" {
		return networkid.EmojiID(e.Name + ":" + e.ID), ":" + e.Name + ":"
	}
	return networkid.EmojiID(e.Name), e.Name
}

func (c *Client) onReactionAdd(s *discordgo.Session, r *discordgo.MessageReactionAdd) {
	c.reaction(s, r.MessageReaction, bridgev2.RemoteEventReaction, r.Member)
}

func (c *Client) onReactionRemove(s *discordgo.Session, r *discordgo.MessageReactionRemove) {
	c.reaction(s, r.MessageReaction, bridgev2.RemoteEventReactionRemove, nil)
}

func (c *Client) reaction(s *discordgo.Session, r *discordgo.MessageReaction, typ bridgev2.RemoteEventType, member *discordgo.Member) {
	c.mu.Lock()
	mine := c.me != nil && r.UserID == c.me.ID
	c.mu.Unlock()
	if mine {
		return
	}
	if member != nil {
		c.remember(member.User)
	}
	key, _ := c.channelKey(s, r.ChannelID)
	emojiID, emoji := emojiKey(r.Emoji)
	var extra map[string]any
	if r.Emoji.ID != "" {
		c.knowEmoji(emoji, emojiID)
		if typ == bridgev2.RemoteEventReaction {
			if mxc := c.emojiImage(context.Background(), r.Emoji); mxc != "" {
				extra = map[string]any{"com.beeper.reaction.shortcode": emoji}
				emoji = string(mxc)
			}
		}
	}
	sdk.QueueRemoteEvent(c.login, &simplevent.Reaction{
		EventMeta: simplevent.EventMeta{Type: typ, PortalKey: key, Sender: bridgev2.EventSender{Sender: networkid.UserID(r.UserID)},
			Timestamp: time.Now()},
		TargetMessage: networkid.MessageID(r.MessageID),
		EmojiID:       emojiID,
		Emoji:         emoji,
		ExtraContent:  extra,
	})
}

// knowEmoji records the custom emoji a Matrix reaction key stands for.
func (c *Client) knowEmoji(key string, emojiID networkid.EmojiID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.emojiByKey == nil {
		c.emojiByKey = map[string]networkid.EmojiID{}
	}
	c.emojiByKey[key] = emojiID
}

// emojiImage is a custom emoji's image in the media repository, uploaded
// once, as the importer shows custom emoji reactions; "" if it cannot be
// had (the reaction is then ":name:").
func (c *Client) emojiImage(ctx context.Context, e discordgo.Emoji) id.ContentURIString {
	c.mu.Lock()
	mxc, ok := c.emojiImages[e.ID]
	c.mu.Unlock()
	if ok {
		return mxc
	}
	url, mime, ext := "https://cdn.discordapp.com/emojis/"+e.ID+".png", "image/png", ".png"
	if e.Animated {
		url, mime, ext = "https://cdn.discordapp.com/emojis/"+e.ID+".gif", "image/gif", ".gif"
	}
	data, err := c.download(ctx, url)
	if err != nil {
		return ""
	}
	mxc, _, err = c.net.br.Bot.UploadMedia(ctx, "", data, e.Name+ext, mime)
	if err != nil {
		return ""
	}
	emojiID, _ := emojiKey(e)
	c.knowEmoji(string(mxc), emojiID)
	c.mu.Lock()
	if c.emojiImages == nil {
		c.emojiImages = map[string]id.ContentURIString{}
	}
	c.emojiImages[e.ID] = mxc
	c.mu.Unlock()
	return mxc
}

func (c *Client) onTyping(s *discordgo.Session, t *discordgo.TypingStart) {
	c.mu.Lock()
	mine := c.me != nil && t.UserID == c.me.ID
	c.mu.Unlock()
	if mine {
		return
	}
	key, _ := c.channelKey(s, t.ChannelID)
	sdk.QueueRemoteEvent(c.login, &simplevent.Typing{
		EventMeta: simplevent.EventMeta{Type: bridgev2.RemoteEventTyping, PortalKey: key,
			Sender: bridgev2.EventSender{Sender: networkid.UserID(t.UserID)}, Timestamp: time.Unix(int64(t.Timestamp), 0)},
		Timeout: 10 * time.Second,
	})
}

// text is a message's text as Matrix content: Discord's markdown as HTML,
// mentions of users, channels and roles by name, custom emoji as inline
// images, then its embeds as quotes (as `tributary import discord` shows
// them, custom emoji there being :names:).
func (c *Client) text(m *discordgo.Message) *event.MessageEventContent {
	text := m.Content
	for _, u := range m.Mentions {
		c.remember(u)
		name := u.GlobalName
		if name == "" {
			name = u.Username
		}
		text = strings.NewReplacer("<@"+u.ID+">", "@"+name, "<@!"+u.ID+">", "@"+name).Replace(text)
	}
	text, emoji := c.markup(context.Background(), m.GuildID, text)
	content := format.RenderMarkdown(text, true, false)
	withEmoji(&content, emoji)
	content.MsgType = event.MsgText
	content.Mentions = &event.Mentions{}
	if embeds := embedsOf(m); len(embeds) > 0 {
		body, htm := content.Body, content.FormattedBody
		if content.Format != event.FormatHTML {
			htm = ""
		}
		body, htm, n := discordfmt.QuoteEmbeds(body, htm, embeds, markdown)
		if n > 0 {
			content.Body, content.Format, content.FormattedBody = body, event.FormatHTML, htm
		}
	}
	return &content
}

// markdown is Discord markdown as a body and HTML, for embeds.
func markdown(text string) (string, string) {
	c := format.RenderMarkdown(text, true, false)
	if c.Format != event.FormatHTML {
		return c.Body, ""
	}
	return c.Body, c.FormattedBody
}

// embedsOf is what of a message's embeds Matrix shows.
func embedsOf(m *discordgo.Message) []discordfmt.Embed {
	var out []discordfmt.Embed
	for _, e := range m.Embeds {
		if e == nil {
			continue
		}
		de := discordfmt.Embed{Title: e.Title, URL: e.URL, Description: e.Description}
		if e.Author != nil {
			de.Author = e.Author.Name
		}
		if e.Footer != nil {
			de.Footer = e.Footer.Text
		}
		for _, f := range e.Fields {
			if f != nil {
				de.Fields = append(de.Fields, discordfmt.Field{Name: f.Name, Value: f.Value})
			}
		}
		out = append(out, de)
	}
	return out
}

// convert is a Discord message's Matrix events: its text, then its files.
func (c *Client) convert(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, m *discordgo.Message) (*bridgev2.ConvertedMessage, error) {
	cm := &bridgev2.ConvertedMessage{}
	if m.Type == discordgo.MessageTypeThreadCreated {
		// As `tributary import discord` shows it; the thread's messages
		// are rooted here.
		cm.Parts = []*bridgev2.ConvertedMessagePart{{Type: event.EventMessage, Content: &event.MessageEventContent{
			MsgType: event.MsgNotice, Body: "started a thread: " + m.Content, Mentions: &event.Mentions{}}}}
		return cm, nil
	}
	if m.Content != "" || len(embedsOf(m)) > 0 || len(m.Attachments) == 0 && len(m.StickerItems) == 0 {
		cm.Parts = append(cm.Parts, &bridgev2.ConvertedMessagePart{Type: event.EventMessage, Content: c.text(m)})
	}
	for _, a := range m.Attachments {
		part := &bridgev2.ConvertedMessagePart{ID: networkid.PartID(a.ID), Type: event.EventMessage}
		data, err := c.download(ctx, a.URL)
		if err != nil {
			part.Content = &event.MessageEventContent{MsgType: event.MsgText, Body: "📎 " + a.Filename + ": " + a.URL}
		} else {
			mime := a.ContentType
			if mime == "" {
				mime = http.DetectContentType(data)
			}
			url, file, err := intent.UploadMedia(ctx, portal.MXID, data, a.Filename, mime)
			if err != nil {
				return nil, fmt.Errorf("uploading %s: %w", a.Filename, err)
			}
			msgtype := event.MsgFile
			switch {
			case strings.HasPrefix(mime, "image/"):
				msgtype = event.MsgImage
			case strings.HasPrefix(mime, "video/"):
				msgtype = event.MsgVideo
			case strings.HasPrefix(mime, "audio/"):
				msgtype = event.MsgAudio
			}
			part.Content = &event.MessageEventContent{MsgType: msgtype, Body: a.Filename, FileName: a.Filename, URL: url,
				File: file, Info: &event.FileInfo{MimeType: mime, Size: len(data), Width: a.Width, Height: a.Height}}
		}
		if len(cm.Parts) == 0 {
			part.ID = ""
		}
		cm.Parts = append(cm.Parts, part)
	}
	for _, st := range m.StickerItems {
		if st == nil {
			continue
		}
		part := c.sticker(ctx, portal, intent, st)
		if len(cm.Parts) == 0 {
			part.ID = ""
		}
		cm.Parts = append(cm.Parts, part)
	}
	if ref := m.MessageReference; ref != nil && ref.MessageID != "" && m.Type == discordgo.MessageTypeReply {
		cm.ReplyTo = &networkid.MessageOptionalPartID{MessageID: networkid.MessageID(ref.MessageID)}
	}
	return cm, nil
}

// stickerURL is where Discord serves a sticker's image ("" for a Lottie
// sticker, which is an animation script, not an image).
func stickerURL(st *discordgo.StickerItem) (url, mime string) {
	switch st.FormatType {
	case discordgo.StickerFormatTypePNG, discordgo.StickerFormatTypeAPNG:
		return "https://media.discordapp.net/stickers/" + st.ID + ".png", "image/png"
	case discordgo.StickerFormatTypeGIF:
		return "https://media.discordapp.net/stickers/" + st.ID + ".gif", "image/gif"
	}
	return "", ""
}

// sticker is an m.sticker of a sticker's image when it can be fetched,
// else a text naming it (as `tributary import discord` does).
func (c *Client) sticker(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, st *discordgo.StickerItem) *bridgev2.ConvertedMessagePart {
	name := st.Name
	if name == "" {
		name = "sticker"
	}
	part := &bridgev2.ConvertedMessagePart{ID: networkid.PartID("sticker-" + st.ID)}
	url, mime := stickerURL(st)
	if url != "" {
		if data, err := c.download(ctx, url); err == nil {
			if mxc, file, err := intent.UploadMedia(ctx, portal.MXID, data, name+url[strings.LastIndex(url, "."):], mime); err == nil {
				part.Type = event.EventSticker
				part.Content = &event.MessageEventContent{Body: name, URL: mxc, File: file,
					Info: &event.FileInfo{MimeType: mime, Size: len(data), Width: 160, Height: 160}}
				return part
			}
		}
	}
	part.Type = event.EventMessage
	part.Content = &event.MessageEventContent{MsgType: event.MsgText, Body: "[sticker: " + name + "]", Mentions: &event.Mentions{}}
	if url != "" {
		part.Content.Format = event.FormatHTML
		part.Content.FormattedBody = `[sticker: <a href="` + html.EscapeString(url) + `">` + html.EscapeString(name) + "</a>]"
	}
	return part
}

// download fetches a file of Discord's CDN.
func (c *Client) download(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.net.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 100<<20))
}

// GetChatInfo: a guild is a space the user is invited to, its members'
// ghosts at their roles' power levels. A channel's room invites nobody:
// it is open to the space's members (a restricted join rule, as `tributary
// import discord` makes them), so the user sees the guild's channels in
// the space and joins those they want, rather than being invited to every
// channel that has a message. A DM (with the bot) invites the user.
func (c *Client) GetChatInfo(ctx context.Context, portal *bridgev2.Portal) (*bridgev2.ChatInfo, error) {
	s := c.session()
	if s == nil {
		return nil, errors.New("not connected to Discord")
	}
	me := bridgev2.ChatMember{EventSender: bridgev2.EventSender{IsFromMe: true, Sender: networkid.UserID(c.login.ID)},
		Membership: event.MembershipJoin}
	withMe := bridgev2.ChatMemberMap{me.Sender: me}
	if guildID, ok := strings.CutPrefix(string(portal.ID), "*"); ok {
		g, err := s.State.Guild(guildID)
		if err != nil {
			if g, err = s.Guild(guildID); err != nil {
				return nil, err
			}
		}
		space := database.RoomTypeSpace
		return &bridgev2.ChatInfo{Name: &g.Name, Type: &space,
			Members: &bridgev2.ChatMemberList{MemberMap: withMe, PowerLevels: c.powerLevels(s, guildID)}}, nil
	}
	ch, err := s.State.Channel(string(portal.ID))
	if err != nil {
		if ch, err = s.Channel(string(portal.ID)); err != nil {
			return nil, err
		}
	}
	info := &bridgev2.ChatInfo{Members: &bridgev2.ChatMemberList{MemberMap: bridgev2.ChatMemberMap{}}}
	name, topic := ch.Name, ch.Topic
	if ch.Type == discordgo.ChannelTypeDM || ch.Type == discordgo.ChannelTypeGroupDM {
		dm := database.RoomTypeDM
		if ch.Type == discordgo.ChannelTypeGroupDM {
			dm = database.RoomTypeGroupDM
			info.Name = &name
		}
		info.Type = &dm
		info.Members.MemberMap = withMe
	} else {
		info.Name = &name
		info.Topic = &topic
	}
	if ch.GuildID != "" {
		parent := networkid.PortalID("*" + ch.GuildID)
		info.ParentID = &parent
		info.Members.PowerLevels = c.powerLevels(s, ch.GuildID)
		// The space first: the room is open to its members.
		sp, err := c.net.br.GetPortalByKey(ctx, networkid.PortalKey{ID: parent})
		if err != nil {
			return nil, err
		}
		if sp.MXID == "" {
			if err := sp.CreateMatrixRoom(ctx, c.login, nil); err != nil {
				return nil, fmt.Errorf("creating the guild's space: %w", err)
			}
		}
		info.JoinRule = &event.JoinRulesEventContent{JoinRule: event.JoinRuleRestricted,
			Allow: []event.JoinRuleAllow{{Type: event.JoinRuleAllowRoomMembership, RoomID: sp.MXID}}}
	}
	return info, nil
}

func (c *Client) GetUserInfo(ctx context.Context, ghost *bridgev2.Ghost) (*bridgev2.UserInfo, error) {
	c.mu.Lock()
	u := c.users[string(ghost.ID)]
	c.mu.Unlock()
	if u == nil {
		s := c.session()
		if s == nil {
			return nil, errors.New("not connected to Discord")
		}
		var err error
		if u, err = s.User(string(ghost.ID)); err != nil {
			return nil, err
		}
	}
	name := u.GlobalName
	if name == "" {
		name = u.Username
	}
	info := &bridgev2.UserInfo{Name: &name, IsBot: &u.Bot, Identifiers: []string{"discord:" + u.Username}}
	if u.Avatar != "" {
		url := u.AvatarURL("256")
		info.Avatar = &bridgev2.Avatar{ID: networkid.AvatarID(u.Avatar), Get: func(ctx context.Context) ([]byte, error) {
			return c.download(ctx, url)
		}}
	}
	return info, nil
}

// files are what Discord takes as attachments (25 MiB without Nitro).
var files = func() event.FileFeatureMap {
	any := &event.FileFeatures{MimeTypes: map[string]event.CapabilitySupportLevel{"*/*": event.CapLevelFullySupported},
		Caption: event.CapLevelDropped, MaxSize: 25 << 20}
	return event.FileFeatureMap{event.MsgImage: any, event.MsgFile: any, event.MsgVideo: any, event.MsgAudio: any,
		event.CapMsgSticker: any, event.CapMsgGIF: any, event.CapMsgVoice: any}
}()

func (c *Client) GetCapabilities(context.Context, *bridgev2.Portal) *event.RoomFeatures {
	// Threads: a Matrix thread goes to the Discord thread of its root
	// (started if the root has none).
	return &event.RoomFeatures{ID: "org.tributary.discord.v2", Reply: event.CapLevelFullySupported,
		Thread: event.CapLevelFullySupported, Edit: event.CapLevelFullySupported, Delete: event.CapLevelFullySupported,
		Reaction: event.CapLevelFullySupported, MaxTextLength: 2000, File: files}
}

// webhook is the bridge's webhook of a channel, made on first use.
func (c *Client) webhook(s *discordgo.Session, channelID string) (*discordgo.Webhook, error) {
	c.mu.Lock()
	wh := c.webhooks[channelID]
	c.mu.Unlock()
	if wh != nil {
		return wh, nil
	}
	hooks, err := s.ChannelWebhooks(channelID)
	if err != nil {
		return nil, err
	}
	for _, h := range hooks {
		if h.Name == "Tributary" && h.Token != "" {
			wh = h
		}
	}
	if wh == nil {
		if wh, err = s.WebhookCreate(channelID, "Tributary", ""); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	c.webhooks[channelID], c.ownHooks[wh.ID] = wh, true
	c.mu.Unlock()
	return wh, nil
}

// refused turns Discord's 401 into BAD_CREDENTIALS: a revoked token shows.
func (c *Client) refused(err error) error {
	var re *discordgo.RESTError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode == http.StatusUnauthorized {
		c.refusedToken()
	}
	return err
}

// HandleMatrixMessage posts through the channel's webhook, under the
// Matrix sender's name and avatar.
func (c *Client) HandleMatrixMessage(ctx context.Context, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	s := c.session()
	if s == nil {
		return nil, errors.New("not connected to Discord")
	}
	content := msg.Content.Body
	var files []*discordgo.File
	switch msg.Content.MsgType {
	case event.MsgImage, event.MsgFile, event.MsgVideo, event.MsgAudio, event.CapMsgSticker:
		// A sticker goes as its image: Discord's stickers are its own.
		data, err := c.net.br.Bot.DownloadMedia(ctx, msg.Content.URL, msg.Content.File)
		if err != nil {
			return nil, fmt.Errorf("downloading the file: %w", err)
		}
		name := msg.Content.FileName
		if name == "" {
			name = msg.Content.Body
		}
		if !strings.Contains(name, ".") {
			// Discord shows a file by its name's extension.
			if exts, _ := mime.ExtensionsByType(msg.Content.GetInfo().MimeType); len(exts) > 0 {
				name += exts[0]
			}
		}
		content = ""
		files = []*discordgo.File{{Name: name, ContentType: msg.Content.GetInfo().MimeType, Reader: bytes.NewReader(data)}}
	}
	var sent *discordgo.Message
	var err error
	if c.puppet() {
		sent, err = c.sendAsUser(s, msg, content, files)
	} else {
		sent, err = c.sendThroughWebhook(ctx, s, msg, content, files)
	}
	if err != nil {
		return nil, c.refused(err)
	}
	return &bridgev2.MatrixMessageResponse{DB: &database.Message{ID: networkid.MessageID(sent.ID),
		SenderID: networkid.UserID(c.login.ID), Timestamp: sent.Timestamp}}, nil
}

// sendThroughWebhook posts a Matrix message through the channel's webhook,
// under its sender's name and avatar; a reply links to its message.
func (c *Client) sendThroughWebhook(ctx context.Context, s *discordgo.Session, msg *bridgev2.MatrixMessage, content string,
	files []*discordgo.File) (*discordgo.Message, error) {
	channelID := string(msg.Portal.ID)
	wh, err := c.webhook(s, channelID)
	if err != nil {
		return nil, err
	}
	params := &discordgo.WebhookParams{Content: content, Files: files, AllowedMentions: &discordgo.MessageAllowedMentions{}}
	params.Username, params.AvatarURL = c.profile(ctx, msg.Portal, msg.Event.Sender, msg.OrigSender)
	if msg.ReplyTo != nil && len(files) == 0 {
		params.Content = fmt.Sprintf("-# ↪ https://discord.com/channels/%s/%s/%s\n%s", guildOf(s, channelID),
			c.messageChannel(s, msg.Portal, msg.ReplyTo), msg.ReplyTo.ID, params.Content)
	}
	if msg.ThreadRoot != nil {
		thread, err := c.startThread(s, channelID, msg)
		if err != nil {
			return nil, err
		}
		return s.WebhookThreadExecute(wh.ID, wh.Token, true, thread, params)
	}
	return s.WebhookExecute(wh.ID, wh.Token, true, params)
}

// sendAsUser sends a Matrix message as the user's own Discord account
// (user-token mode), a reply as a Discord reply.
func (c *Client) sendAsUser(s *discordgo.Session, msg *bridgev2.MatrixMessage, content string, files []*discordgo.File) (*discordgo.Message, error) {
	channelID := string(msg.Portal.ID)
	if msg.ThreadRoot != nil {
		thread, err := c.startThread(s, channelID, msg)
		if err != nil {
			return nil, err
		}
		channelID = thread
	}
	send := &discordgo.MessageSend{Content: content, Files: files, AllowedMentions: &discordgo.MessageAllowedMentions{}}
	if msg.ReplyTo != nil {
		send.Reference = &discordgo.MessageReference{MessageID: string(msg.ReplyTo.ID),
			ChannelID: c.messageChannel(s, msg.Portal, msg.ReplyTo)}
	}
	return s.ChannelMessageSendComplex(channelID, send)
}

func guildOf(s *discordgo.Session, channelID string) string {
	if ch, err := s.State.Channel(channelID); err == nil && ch.GuildID != "" {
		return ch.GuildID
	}
	return "@me"
}

// profile is a Matrix sender's name and avatar address for a webhook.
func (c *Client) profile(ctx context.Context, portal *bridgev2.Portal, sender id.UserID, orig *bridgev2.OrigSender) (string, string) {
	var member *event.MemberEventContent
	if orig != nil {
		member = &orig.MemberEventContent
	} else if m, err := c.net.br.Matrix.GetMemberInfo(ctx, portal.MXID, sender); err == nil && m != nil {
		member = m
	}
	name := sender.Localpart()
	var avatar string
	if member != nil {
		if member.Displayname != "" {
			name = member.Displayname
		}
		avatar = c.net.Config.avatarURL(member.AvatarURL)
	}
	// Discord's limit on webhook names, which may not say "discord".
	name = strings.ReplaceAll(name, "discord", "d1scord")
	if r := []rune(name); len(r) > 80 {
		name = string(r[:80])
	}
	return name, avatar
}

func (c *Client) HandleMatrixEdit(ctx context.Context, msg *bridgev2.MatrixEdit) error {
	s := c.session()
	if s == nil {
		return errors.New("not connected to Discord")
	}
	content := msg.Content.Body
	target := msg.EditTarget
	channelID := c.messageChannel(s, msg.Portal, target)
	if c.puppet() {
		// The account edits its own messages; Discord refuses the rest.
		_, err := s.ChannelMessageEdit(channelID, string(target.ID), content)
		return editError(c.refused(err))
	}
	// In bot mode the bridge edits what it posted through the webhook;
	// what a Discord user wrote (live or imported) only they can edit.
	if target.SenderID != networkid.UserID(c.login.ID) {
		return refusedEdit(fmt.Errorf("message %s is %s's", target.ID, target.SenderID))
	}
	wh, err := c.webhook(s, string(msg.Portal.ID))
	if err != nil {
		return c.refused(err)
	}
	var opts []discordgo.RequestOption
	if channelID != string(msg.Portal.ID) {
		opts = append(opts, inThread(channelID))
	}
	_, err = s.WebhookMessageEdit(wh.ID, wh.Token, string(target.ID), &discordgo.WebhookEdit{Content: &content}, opts...)
	return editError(c.refused(err))
}

// PreHandleMatrixReaction: a Unicode emoji reacts as itself; a custom
// emoji's image or :name: the bridge showed a Discord reaction as reacts
// with that custom emoji.
func (c *Client) PreHandleMatrixReaction(_ context.Context, msg *bridgev2.MatrixReaction) (bridgev2.MatrixReactionPreResponse, error) {
	key := msg.Content.RelatesTo.Key
	emojiID := networkid.EmojiID(key)
	c.mu.Lock()
	custom, ok := c.emojiByKey[key]
	c.mu.Unlock()
	if ok {
		emojiID = custom
	} else if strings.HasPrefix(key, "mxc://") {
		return bridgev2.MatrixReactionPreResponse{}, errors.New("an image reaction that is not one of Discord's custom emoji")
	}
	return bridgev2.MatrixReactionPreResponse{SenderID: networkid.UserID(c.login.ID), EmojiID: emojiID, Emoji: key}, nil
}

func (c *Client) HandleMatrixReaction(_ context.Context, msg *bridgev2.MatrixReaction) (*database.Reaction, error) {
	s := c.session()
	if s == nil {
		return nil, errors.New("not connected to Discord")
	}
	channelID := c.messageChannel(s, msg.Portal, msg.TargetMessage)
	err := s.MessageReactionAdd(channelID, string(msg.TargetMessage.ID), string(msg.PreHandleResp.EmojiID))
	return nil, c.refused(err)
}

// HandleMatrixReactionRemove takes a reaction back: the login's own, or,
// for a reaction bridgev2 has as someone else's (one an import wrote for a
// Matrix user standing for a Discord user, in bot mode), that user's, as
// the bot (which needs Manage Messages), as a redaction of their message
// deletes it.
func (c *Client) HandleMatrixReactionRemove(ctx context.Context, msg *bridgev2.MatrixReactionRemove) error {
	s := c.session()
	if s == nil {
		return errors.New("not connected to Discord")
	}
	r := msg.TargetReaction
	channelID := string(msg.Portal.ID)
	if target, err := c.net.br.DB.Message.GetPartByID(ctx, r.Room.Receiver, r.MessageID, r.MessagePartID); err != nil {
		return err
	} else if target != nil {
		channelID = c.messageChannel(s, msg.Portal, target)
	}
	who := "@me"
	if !c.puppet() && r.SenderID != "" && r.SenderID != networkid.UserID(c.login.ID) {
		who = string(r.SenderID)
	}
	return c.refused(s.MessageReactionRemove(channelID, string(r.MessageID), string(r.EmojiID), who))
}

func (c *Client) HandleMatrixTyping(_ context.Context, msg *bridgev2.MatrixTyping) error {
	s := c.session()
	if s == nil || !msg.IsTyping {
		return nil
	}
	return c.refused(s.ChannelTyping(string(msg.Portal.ID)))
}

// HandleMatrixMessageRemove deletes a redacted message on Discord: one the
// bridge posted through the webhook with the webhook's token, someone
// else's as the bot (which needs Manage Messages) or, in user-token mode,
// as the account.
func (c *Client) HandleMatrixMessageRemove(_ context.Context, msg *bridgev2.MatrixMessageRemove) error {
	s := c.session()
	if s == nil {
		return errors.New("not connected to Discord")
	}
	target := msg.TargetMessage
	channelID := c.messageChannel(s, msg.Portal, target)
	if target.SenderID == networkid.UserID(c.login.ID) && !c.puppet() {
		wh, err := c.webhook(s, string(msg.Portal.ID))
		if err != nil {
			return c.refused(err)
		}
		var opts []discordgo.RequestOption
		if channelID != string(msg.Portal.ID) {
			opts = append(opts, inThread(channelID))
		}
		return deleteError(c.refused(s.WebhookMessageDelete(wh.ID, wh.Token, string(target.ID), opts...)))
	}
	return deleteError(c.refused(s.ChannelMessageDelete(channelID, string(target.ID))))
}
