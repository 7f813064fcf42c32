package discord

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/bwmarrin/discordgo"
	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"

	"github.com/tributary-hs/tributary/plugins/sdk"
)

// Threads. A Discord thread is a channel of its own; on Matrix its
// messages go to its parent channel's room as an m.thread rooted at the
// message the thread starts at, as `tributary import discord` puts them:
//
//   - a thread started from a message has that message's ID;
//   - a forum post's thread starts at its first message, which has the
//     thread's ID too (and is in the thread, not in the forum);
//   - a thread started at no message (a standalone or private thread)
//     starts at the ThreadCreated notice Discord posts in the parent
//     channel, whose message_reference names the thread.
//
// So a thread's root is not always its ID, nor is a root always the
// channel its thread's messages are in: the client keeps both ways
// between them, learnt from the notices it sees and, for threads of
// before (an import's), asked of Discord once.

// rememberThread records the message a thread starts at.
func (c *Client) rememberThread(threadID, root string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.threadRoots == nil {
		c.threadRoots, c.threadsOf = map[string]string{}, map[string]string{}
	}
	if len(c.threadRoots) > 10_000 {
		// A bound; what is forgotten is asked again.
		clear(c.threadRoots)
		clear(c.threadsOf)
	}
	c.threadRoots[threadID], c.threadsOf[root] = root, threadID
}

// threadRoot is the message a thread's messages relate to on Matrix (see
// above). A thread whose ID is no message bridgev2 or an import knows
// may have started at a ThreadCreated notice: Discord is asked for the
// parent channel's messages after the thread's making, once per thread.
func (c *Client) threadRoot(ctx context.Context, s *discordgo.Session, portal *bridgev2.Portal, thread *discordgo.Channel) networkid.MessageID {
	c.mu.Lock()
	root, ok := c.threadRoots[thread.ID]
	c.mu.Unlock()
	if ok {
		return networkid.MessageID(root)
	}
	root = thread.ID
	parts, err := sdk.ImportedMessage(ctx, portal, networkid.MessageID(thread.ID))
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("thread_id", thread.ID).Msg("Failed to look a thread's root up among imported messages")
		return networkid.MessageID(root) // asked again next time
	}
	if len(parts) == 0 && thread.ParentID != "" {
		// The notice comes just after the thread (snowflakes grow with
		// time).
		msgs, err := s.ChannelMessages(thread.ParentID, 50, "", thread.ID, "", discordgo.WithContext(ctx))
		if err != nil {
			zerolog.Ctx(ctx).Warn().Err(c.refused(err)).Str("thread_id", thread.ID).Msg("Failed to look for a thread's ThreadCreated notice")
			if !refusal(err) {
				return networkid.MessageID(root) // asked again next time
			}
		}
		for _, m := range msgs {
			if m.Type == discordgo.MessageTypeThreadCreated && m.MessageReference != nil && m.MessageReference.ChannelID == thread.ID {
				root = m.ID
				c.knowImported(ctx, portal, networkid.MessageID(root))
				break
			}
		}
	}
	c.rememberThread(thread.ID, root)
	return networkid.MessageID(root)
}

// threadChannel is the thread (channel) whose messages are rooted at
// root, a message of the channel parentID.
func (c *Client) threadChannel(s *discordgo.Session, parentID string, root networkid.MessageID) string {
	r := string(root)
	c.mu.Lock()
	th, ok := c.threadsOf[r]
	c.mu.Unlock()
	if ok {
		return th
	}
	if ch, err := s.State.Channel(r); err == nil && ch.IsThread() {
		return r
	}
	// Not a thread Discord announced (or one archived since): a notice
	// names its thread; another message has its thread's ID.
	th = r
	if m, err := s.ChannelMessage(parentID, r); err == nil {
		if m.Type == discordgo.MessageTypeThreadCreated && m.MessageReference != nil && m.MessageReference.ChannelID != "" {
			th = m.MessageReference.ChannelID
		}
	} else if !refusal(c.refused(err)) {
		return th // not known either way: asked again next time
	}
	c.rememberThread(th, r)
	return th
}

// messageChannel is the channel a message bridgev2 has is in: its
// thread's, a forum post's own thread for the post's first message, or
// the portal's channel.
func (c *Client) messageChannel(s *discordgo.Session, portal *bridgev2.Portal, msg *database.Message) string {
	channelID := string(portal.ID)
	if msg.ThreadRoot != "" {
		return c.threadChannel(s, channelID, msg.ThreadRoot)
	}
	if parent, err := s.State.Channel(channelID); err == nil &&
		(parent.Type == discordgo.ChannelTypeGuildForum || parent.Type == discordgo.ChannelTypeGuildMedia) {
		if th, err := s.State.Channel(string(msg.ID)); err == nil && th.IsThread() && th.ParentID == channelID {
			return th.ID
		}
	}
	return channelID
}

// startThread is the thread a Matrix thread message goes to: its root's,
// started at the root message (named for the message) if Discord has none
// yet.
func (c *Client) startThread(s *discordgo.Session, channelID string, msg *bridgev2.MatrixMessage) (string, error) {
	thread := c.threadChannel(s, channelID, msg.ThreadRoot.ID)
	if thread != string(msg.ThreadRoot.ID) {
		return thread, nil // a notice's thread
	}
	if ch, err := s.State.Channel(thread); err == nil && ch.IsThread() {
		return thread, nil
	}
	name := []rune(strings.TrimSpace(strings.SplitN(msg.Content.Body, "\n", 2)[0]))
	if len(name) == 0 {
		name = []rune("Thread")
	}
	_, err := s.MessageThreadStart(channelID, thread, string(name[:min(len(name), 100)]), 1440)
	var re *discordgo.RESTError
	if err != nil && !(errors.As(err, &re) && re.Message != nil && re.Message.Code == discordgo.ErrCodeThreadAlreadyCreatedForThisMessage) {
		return "", fmt.Errorf("starting a thread at message %s: %w", thread, c.refused(err))
	}
	return thread, nil
}

// deleteError is a deletion's error as the user sees it: Discord refusing
// (the bot lacks Manage Messages for another's message, an account
// deletes another's) is shown, not left as a redaction that seemed to
// work.
func deleteError(err error) error {
	var re *discordgo.RESTError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode == http.StatusForbidden {
		return bridgev2.WrapErrorInStatus(err).WithStatus(event.MessageStatusFail).
			WithErrorReason(event.MessageStatusNoPermission).WithIsCertain(true).WithSendNotice(true).
			WithMessage("Discord did not let the bridge delete this message (deleting someone else's message takes Manage Messages)")
	}
	return err
}

// refusal reports whether Discord answered a request with a client error
// (no such message, no permission to read the history): asking again
// would get the same answer.
func refusal(err error) bool {
	var re *discordgo.RESTError
	return errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 &&
		re.Response.StatusCode != http.StatusTooManyRequests && re.Response.StatusCode != http.StatusUnauthorized
}

// inThread makes a webhook call act in a thread (Discord's thread_id).
func inThread(threadID string) discordgo.RequestOption {
	return func(cfg *discordgo.RequestConfig) {
		q := cfg.Request.URL.Query()
		q.Set("thread_id", threadID)
		cfg.Request.URL.RawQuery = q.Encode()
	}
}

// refusedEdit: Discord lets a message be edited by its author only (a
// webhook's message by that webhook), and the bot cannot act as anyone
// else. The user is told (a notice and a failed message status), not left
// believing the edit went through.
func refusedEdit(err error) error {
	return bridgev2.WrapErrorInStatus(err).WithStatus(event.MessageStatusFail).
		WithErrorReason(event.MessageStatusUnsupported).WithIsCertain(true).WithSendNotice(true).
		WithMessage("Discord lets only a message's author edit it, and this one is someone else's")
}

// editError is an edit's error as the user sees it: Discord refusing the
// edit (not the author, or no such message for the webhook) is shown.
func editError(err error) error {
	var re *discordgo.RESTError
	if errors.As(err, &re) && re.Response != nil &&
		(re.Response.StatusCode == http.StatusForbidden || re.Response.StatusCode == http.StatusNotFound) {
		return refusedEdit(err)
	}
	return err
}
