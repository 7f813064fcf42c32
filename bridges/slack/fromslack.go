package slack

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/simplevent"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/slack/slackfmt"
	"github.com/tributary-hs/tributary/plugins/sdk"
)

// handleEventsAPI turns one Events API event into bridgev2 remote events.
// It returns once bridgev2 has handled them.
func (c *Client) handleEventsAPI(ctx context.Context, ea slackevents.EventsAPIEvent) {
	if ea.TeamID != "" && ea.TeamID != c.meta.TeamID {
		return
	}
	switch e := ea.InnerEvent.Data.(type) {
	case *slackevents.MessageEvent:
		c.handleMessage(ctx, e)
	case *slackevents.ReactionAddedEvent:
		c.handleReaction(ctx, e.User, e.Reaction, e.Item, e.EventTimestamp, true)
	case *slackevents.ReactionRemovedEvent:
		c.handleReaction(ctx, e.User, e.Reaction, e.Item, e.EventTimestamp, false)
	case *slackevents.TokensRevokedEvent:
		// The event names the users whose tokens went: this login's user
		// (or its bot user) among them ends the login.
		if slices.Contains(e.Tokens.Oauth, c.meta.UserID) || slices.Contains(e.Tokens.Bot, c.meta.UserID) {
			c.badCredentials("tokens_revoked")
		}
	case *slackevents.AppUninstalledEvent:
		c.badCredentials("app_uninstalled")
	default:
		c.log.Debug().Str("type", ea.InnerEvent.Type).Msg("Slack event not bridged")
	}
}

// tsTime is a Slack ts ("1700000000.000100") as a time.
func tsTime(ts string) time.Time {
	sec, frac, _ := strings.Cut(ts, ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Now()
	}
	us, _ := strconv.ParseInt((frac + "000000")[:6], 10, 64)
	return time.Unix(s, us*1000)
}

// streamOrder orders a conversation's messages as their ts do.
func streamOrder(ts string) int64 { return tsTime(ts).UnixMicro() }

func (c *Client) meta0(channel, user, ts string, typ bridgev2.RemoteEventType) simplevent.EventMeta {
	var post func(context.Context, *bridgev2.Portal)
	if c.relays() && typ == bridgev2.RemoteEventMessage {
		// A portal made before (or by an import, or while relay was
		// off) gets its relay with its next message.
		post = func(ctx context.Context, portal *bridgev2.Portal) {
			if portal.MXID != "" {
				c.relayUpdater(ctx, portal)
			}
		}
	}
	return simplevent.EventMeta{
		PostHandleFunc: post,
		Type:           typ,
		PortalKey:      portalKey(c.meta.TeamID, channel),
		Sender:         c.sender(user),
		CreatePortal:   typ == bridgev2.RemoteEventMessage,
		Timestamp:      tsTime(ts),
		StreamOrder:    streamOrder(ts),
		LogContext: func(lc zerolog.Context) zerolog.Context {
			return lc.Str("slack_channel", channel).Str("slack_ts", ts)
		},
	}
}

func (c *Client) handleMessage(ctx context.Context, e *slackevents.MessageEvent) {
	switch e.SubType {
	case "message_changed":
		c.handleEdit(ctx, e)
		return
	case "message_deleted":
		if e.PreviousMessage == nil {
			return
		}
		sdk.QueueRemoteEvent(c.login, &simplevent.MessageRemove{
			EventMeta:     c.meta0(e.Channel, e.PreviousMessage.User, e.EventTimeStamp, bridgev2.RemoteEventMessageRemove),
			TargetMessage: messageID(c.meta.TeamID, e.Channel, e.DeletedTimeStamp),
		})
		return
	case "", "thread_broadcast", "file_share", "bot_message", "me_message":
	default:
		// Joins, topics, pins… are not bridged live.
		c.log.Debug().Str("subtype", e.SubType).Msg("Slack message subtype not bridged")
		return
	}
	msg := e.Message
	if msg == nil {
		return
	}
	user := msg.User
	if user == "" {
		user = msg.BotID
	}
	sdk.QueueRemoteEvent(c.login, &simplevent.Message[*slack.Msg]{
		EventMeta:          c.meta0(e.Channel, user, msg.Timestamp, bridgev2.RemoteEventMessage),
		Data:               msg,
		ID:                 messageID(c.meta.TeamID, e.Channel, msg.Timestamp),
		ConvertMessageFunc: c.convertMessage(e.Channel),
	})
}

func (c *Client) handleEdit(ctx context.Context, e *slackevents.MessageEvent) {
	msg := e.Message
	if msg == nil || (e.PreviousMessage != nil && msg.Text == e.PreviousMessage.Text) {
		return // an unfurl or a thread's reply count, not an edit
	}
	if c.isEcho("edit:" + e.Channel + ":" + msg.Timestamp) {
		return
	}
	sdk.QueueRemoteEvent(c.login, &simplevent.Message[*slack.Msg]{
		EventMeta:     c.meta0(e.Channel, msg.User, e.EventTimeStamp, bridgev2.RemoteEventEdit),
		Data:          msg,
		ID:            messageID(c.meta.TeamID, e.Channel, msg.Timestamp),
		TargetMessage: messageID(c.meta.TeamID, e.Channel, msg.Timestamp),
		ConvertEditFunc: func(ctx context.Context, portal *bridgev2.Portal, _ bridgev2.MatrixAPI, existing []*database.Message, m *slack.Msg) (*bridgev2.ConvertedEdit, error) {
			var text *database.Message
			for _, part := range existing {
				if part.PartID == "" {
					text = part
				}
			}
			if text == nil {
				return nil, bridgev2.ErrIgnoringRemoteEvent
			}
			content := c.textContent(ctx, portal, m)
			return &bridgev2.ConvertedEdit{ModifiedParts: []*bridgev2.ConvertedEditPart{{
				Part: text, Type: event.EventMessage, Content: content}}}, nil
		},
	})
}

func (c *Client) handleReaction(ctx context.Context, user, name string, item slackevents.Item, ts string, added bool) {
	if item.Type != "message" || item.Channel == "" {
		return
	}
	typ := bridgev2.RemoteEventReactionRemove
	if added {
		typ = bridgev2.RemoteEventReaction
	}
	key, _ := slackfmt.ReactionKey(name)
	var extra map[string]any
	if added {
		if mxc := c.customEmoji(ctx, name); mxc != "" {
			key, extra = string(mxc), map[string]any{shortcodeKey: ":" + name + ":"}
		}
	}
	sdk.QueueRemoteEvent(c.login, &simplevent.Reaction{
		EventMeta:     c.meta0(item.Channel, user, ts, typ),
		TargetMessage: messageID(c.meta.TeamID, item.Channel, item.Timestamp),
		EmojiID:       networkid.EmojiID(name),
		Emoji:         key,
		ExtraContent:  extra,
	})
}

// resolver names Slack users and channels in text, as ghosts and portals.
type resolver struct {
	ctx    context.Context
	c      *Client
	portal *bridgev2.Portal
}

func (r resolver) User(slackID string) (id.UserID, string) {
	// A Slack user who logged in to the bridge is mentioned as their Matrix
	// account, others as their ghosts.
	ghost := r.c.n.br.Matrix.FormatGhostMXID(userID(r.c.meta.TeamID, slackID))
	if l, err := r.c.n.br.GetExistingUserLoginByID(r.ctx, loginID(r.c.meta.TeamID, slackID)); err == nil && l != nil {
		ghost = l.UserMXID
	}
	if u, err := r.c.user(r.ctx, slackID); err == nil {
		return ghost, displayName(u)
	}
	return ghost, ""
}

func (r resolver) Channel(slackID string) (id.RoomID, string) {
	p, err := r.c.n.br.GetExistingPortalByKey(r.ctx, portalKey(r.c.meta.TeamID, slackID))
	if err != nil || p == nil {
		return "", ""
	}
	return p.MXID, p.Name
}

// textContent is the Matrix content of a message's text (and its blocks
// and attachments when it has no text of its own).
func (c *Client) textContent(ctx context.Context, portal *bridgev2.Portal, m *slack.Msg) *event.MessageEventContent {
	text := m.Text
	if blocks := blocksMrkdwn(m.Blocks); blocks != "" && (strings.TrimSpace(text) == "" || hasLayoutBlocks(m.Blocks)) {
		text = blocks
	}
	f := slackfmt.Mrkdwn(text, resolver{ctx: ctx, c: c, portal: portal})
	body, htmlBody := f.Body, f.HTML
	for _, a := range m.Attachments {
		ab, ah := attachmentText(a, resolver{ctx: ctx, c: c, portal: portal})
		if ab == "" {
			continue
		}
		if htmlBody == "" && body != "" {
			htmlBody = html.EscapeString(body)
		}
		body = strings.TrimSpace(body + "\n\n" + ab)
		htmlBody += "<blockquote>" + ah + "</blockquote>"
	}
	content := &event.MessageEventContent{MsgType: event.MsgText, Body: body}
	switch {
	case m.SubType == "bot_message" || m.BotID != "" && m.User == "":
		content.MsgType = event.MsgNotice
	case m.SubType == "me_message":
		content.MsgType = event.MsgEmote
	}
	if htmlBody != "" {
		content.Format, content.FormattedBody = event.FormatHTML, htmlBody
	}
	content.Mentions = &event.Mentions{UserIDs: f.Mentions}
	return content
}

func attachmentText(a slack.Attachment, r slackfmt.Resolver) (string, string) {
	var b, h []string
	if a.Pretext != "" {
		f := slackfmt.Mrkdwn(a.Pretext, r)
		b, h = append(b, f.Body), append(h, htmlOrEscaped(f))
	}
	if a.Title != "" {
		t := html.EscapeString(slackfmt.DecodeEntities(a.Title))
		if a.TitleLink != "" && slackfmt.SafeLink(a.TitleLink) {
			t = `<a href="` + html.EscapeString(a.TitleLink) + `">` + t + `</a>`
		}
		b, h = append(b, slackfmt.DecodeEntities(a.Title)), append(h, "<strong>"+t+"</strong>")
	}
	if a.Text != "" {
		f := slackfmt.Mrkdwn(a.Text, r)
		b, h = append(b, f.Body), append(h, htmlOrEscaped(f))
	} else if a.Fallback != "" && a.Title == "" {
		t := slackfmt.DecodeEntities(a.Fallback)
		b, h = append(b, t), append(h, html.EscapeString(t))
	}
	return strings.Join(b, "\n"), strings.Join(h, "<br>")
}

func htmlOrEscaped(f slackfmt.Formatted) string {
	if f.HTML != "" {
		return f.HTML
	}
	return strings.ReplaceAll(html.EscapeString(f.Body), "\n", "<br>")
}

// convertMessage makes a message's Matrix parts: its text ("") and its
// files ("file-<i>-<id>"; the first file is "" when there is no text), as
// the importer names them.
func (c *Client) convertMessage(channel string) func(context.Context, *bridgev2.Portal, bridgev2.MatrixAPI, *slack.Msg) (*bridgev2.ConvertedMessage, error) {
	return func(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, m *slack.Msg) (*bridgev2.ConvertedMessage, error) {
		// A file the bridge uploaded for a Matrix message comes back as a
		// message of its own. This runs in the portal's turn, after the
		// upload's Matrix message was handled, so the echo is known.
		if m.User == c.meta.UserID && len(m.Files) > 0 {
			for _, f := range m.Files {
				if c.isEcho("file:" + f.ID) {
					return nil, bridgev2.ErrIgnoringRemoteEvent
				}
			}
		}
		out := &bridgev2.ConvertedMessage{}
		hasText := strings.TrimSpace(m.Text) != "" || len(m.Attachments) > 0 || blocksMrkdwn(m.Blocks) != "" || len(m.Files) == 0
		if hasText {
			out.Parts = append(out.Parts, &bridgev2.ConvertedMessagePart{ID: "", Type: event.EventMessage,
				Content: c.textContent(ctx, portal, m)})
		}
		for i, f := range m.Files {
			content, err := c.fileContent(ctx, portal, intent, f)
			if err != nil {
				zerolog.Ctx(ctx).Warn().Err(err).Str("file_id", f.ID).Msg("Slack file not bridged as media")
				content = &event.MessageEventContent{MsgType: event.MsgNotice,
					Body: fmt.Sprintf("%s (not bridged: %v) %s", f.Name, err, f.Permalink)}
			}
			out.Parts = append(out.Parts, &bridgev2.ConvertedMessagePart{ID: filePartID(i, f.ID, hasText),
				Type: event.EventMessage, Content: content})
		}
		if m.ThreadTimestamp != "" && m.ThreadTimestamp != m.Timestamp && m.SubType != "thread_broadcast" {
			root := messageID(c.meta.TeamID, channel, m.ThreadTimestamp)
			out.ThreadRoot = &root
			// bridgev2 sets the thread from its own record of the root,
			// which the SDK fills in for a root an import wrote. An import
			// that recorded no message IDs (before bridge_messages) is
			// pointed at by the event ID alias it gave the root.
			if parts, err := sdk.ImportedMessage(ctx, portal, root); err != nil || len(parts) == 0 {
				alias := c.n.br.Matrix.GenerateDeterministicEventID(portal.MXID, portal.PortalKey, root, "")
				for _, p := range out.Parts {
					p.Content.GetRelatesTo().SetThread(alias, alias)
				}
			}
		}
		return out, nil
	}
}

// fileContent downloads a Slack file into the media repository.
func (c *Client) fileContent(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, f slack.File) (*event.MessageEventContent, error) {
	src := f.URLPrivateDownload
	if src == "" {
		src = f.URLPrivate
	}
	if src == "" {
		return nil, fmt.Errorf("the file has no URL")
	}
	data, err := c.download(ctx, src, true)
	if err != nil {
		return nil, err
	}
	mime := f.Mimetype
	if mime == "" {
		mime = http.DetectContentType(data)
	}
	name := f.Name
	if name == "" {
		name = f.Title
	}
	mxc, file, err := intent.UploadMedia(ctx, portal.MXID, data, name, mime)
	if err != nil {
		return nil, err
	}
	content := &event.MessageEventContent{MsgType: msgTypeOf(mime), Body: name, FileName: name, URL: mxc, File: file,
		Info: &event.FileInfo{MimeType: mime, Size: len(data)}}
	if f.OriginalW > 0 && f.OriginalH > 0 {
		content.Info.Width, content.Info.Height = f.OriginalW, f.OriginalH
	}
	return content, nil
}

func msgTypeOf(mime string) event.MessageType {
	switch {
	case strings.HasPrefix(mime, "image/"):
		return event.MsgImage
	case strings.HasPrefix(mime, "video/"):
		return event.MsgVideo
	case strings.HasPrefix(mime, "audio/"):
		return event.MsgAudio
	}
	return event.MsgFile
}

// hasLayoutBlocks reports blocks that say more than the text does
// (sections, headers, context…), as apps send; people's messages carry
// only rich_text, which mirrors the text.
func hasLayoutBlocks(blocks slack.Blocks) bool {
	for _, b := range blocks.BlockSet {
		if b.BlockType() != slack.MBTRichText {
			return true
		}
	}
	return false
}

// blocksMrkdwn renders blocks as mrkdwn, for Mrkdwn to convert.
func blocksMrkdwn(blocks slack.Blocks) string {
	var out []string
	for _, b := range blocks.BlockSet {
		switch b := b.(type) {
		case *slack.HeaderBlock:
			if b.Text != nil {
				out = append(out, "*"+slackfmt.Escape(b.Text.Text)+"*")
			}
		case *slack.SectionBlock:
			if b.Text != nil {
				out = append(out, textObject(b.Text))
			}
			for _, f := range b.Fields {
				out = append(out, textObject(f))
			}
		case *slack.ContextBlock:
			var parts []string
			for _, e := range b.ContextElements.Elements {
				if t, ok := e.(*slack.TextBlockObject); ok {
					parts = append(parts, textObject(t))
				}
			}
			if len(parts) > 0 {
				out = append(out, strings.Join(parts, " "))
			}
		case *slack.DividerBlock:
			out = append(out, "---")
		case *slack.RichTextBlock:
			if s := richText(b.Elements); s != "" {
				out = append(out, s)
			}
		}
	}
	return strings.Join(out, "\n")
}

func textObject(t *slack.TextBlockObject) string {
	if t.Type == slack.PlainTextType {
		return slackfmt.Escape(t.Text)
	}
	return t.Text
}

// richText renders rich_text elements as mrkdwn.
func richText(elems []slack.RichTextElement) string {
	var b bytes.Buffer
	for _, e := range elems {
		switch e := e.(type) {
		case *slack.RichTextSection:
			b.WriteString(richSection(e.Elements))
			b.WriteString("\n")
		case *slack.RichTextList:
			for i, item := range e.Elements {
				if s, ok := item.(*slack.RichTextSection); ok {
					if e.Style == slack.RTEListOrdered {
						fmt.Fprintf(&b, "%d. ", i+1)
					} else {
						b.WriteString("• ")
					}
					b.WriteString(richSection(s.Elements))
					b.WriteString("\n")
				}
			}
		case *slack.RichTextQuote:
			for _, line := range strings.Split(richSection(e.Elements), "\n") {
				b.WriteString("> " + line + "\n")
			}
		case *slack.RichTextPreformatted:
			b.WriteString("```" + richSection(e.Elements) + "```\n")
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func richSection(elems []slack.RichTextSectionElement) string {
	var b strings.Builder
	for _, e := range elems {
		switch e := e.(type) {
		case *slack.RichTextSectionTextElement:
			t := slackfmt.Escape(e.Text)
			if s := e.Style; s != nil {
				// Markers hug the words: mrkdwn ignores "* bold*".
				core := strings.TrimSpace(t)
				lead, trail := t[:strings.Index(t, core)], t[strings.Index(t, core)+len(core):]
				if core != "" {
					for _, m := range []struct {
						on     bool
						marker string
					}{{s.Code, "`"}, {s.Bold, "*"}, {s.Italic, "_"}, {s.Strike, "~"}} {
						if m.on {
							core = m.marker + core + m.marker
						}
					}
				}
				t = lead + core + trail
			}
			b.WriteString(t)
		case *slack.RichTextSectionUserElement:
			b.WriteString("<@" + e.UserID + ">")
		case *slack.RichTextSectionChannelElement:
			b.WriteString("<#" + e.ChannelID + ">")
		case *slack.RichTextSectionLinkElement:
			if e.Text != "" {
				b.WriteString("<" + e.URL + "|" + slackfmt.Escape(e.Text) + ">")
			} else {
				b.WriteString("<" + e.URL + ">")
			}
		case *slack.RichTextSectionEmojiElement:
			b.WriteString(":" + e.Name + ":")
		case *slack.RichTextSectionBroadcastElement:
			b.WriteString("<!" + e.Range + ">")
		}
	}
	return b.String()
}
