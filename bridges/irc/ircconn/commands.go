package ircconn

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Join joins a channel (key may be "") and asks for its modes, so that a
// Tracker learns them (RPL_CHANNELMODEIS) along with the names and topic the
// server sends on join.
func (c *Conn) Join(ctx context.Context, channel, key string) error {
	m := NewMessage("JOIN", channel)
	if key != "" {
		m.Params = append(m.Params, key)
	}
	if err := c.Send(ctx, m); err != nil {
		return err
	}
	return c.Send(ctx, NewMessage("MODE", channel))
}

// Part leaves a channel.
func (c *Conn) Part(ctx context.Context, channel, reason string) error {
	m := NewMessage("PART", channel)
	if reason != "" {
		m.Params = append(m.Params, reason)
	}
	return c.Send(ctx, m)
}

// SetTopic sets a channel's topic.
func (c *Conn) SetTopic(ctx context.Context, channel, topic string) error {
	return c.Send(ctx, NewMessage("TOPIC", channel, topic))
}

// Kick removes nick from channel.
func (c *Conn) Kick(ctx context.Context, channel, nick, reason string) error {
	m := NewMessage("KICK", channel, nick)
	if reason != "" {
		m.Params = append(m.Params, reason)
	}
	return c.Send(ctx, m)
}

// SetNick asks to change nick; the change shows as a NICK event (or
// ERR_NICKNAMEINUSE).
func (c *Conn) SetNick(ctx context.Context, nick string) error {
	return c.Send(ctx, NewMessage("NICK", nick))
}

// Quit says goodbye and waits, bounded by ctx, for the server to close the
// link; the Conn is closed either way.
func (c *Conn) Quit(ctx context.Context, reason string) error {
	err := c.Send(ctx, NewMessage("QUIT", reason))
	if err == nil {
		select {
		case <-c.dead:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	c.Close()
	return err
}

// textBudget is how many bytes of text fit in one command to target.
func (c *Conn) textBudget(command, target string) int {
	c.mu.Lock()
	src := c.selfSource
	nick := c.nick
	c.mu.Unlock()
	srcLen := c.isupport.MaxPrefixLen(nick)
	if src != "" {
		srcLen = len(src)
	}
	return TextBudget(c.isupport.LineLen(), srcLen, command, target)
}

// Privmsg sends text to a channel or nick, split into lines that fit (see
// SplitText) and tagged with tags on every line (client-only tags such as
// +draft/reply; nil for none). With echo-message and labeled-response the
// server's echo of each line is returned, carrying its msgid and time;
// otherwise the result is nil and the echoes, if any, come out of Events.
func (c *Conn) Privmsg(ctx context.Context, target, text string, tags map[string]string) ([]*Message, error) {
	return c.sendText(ctx, "PRIVMSG", target, text, "", tags)
}

// Notice is Privmsg with NOTICE.
func (c *Conn) Notice(ctx context.Context, target, text string, tags map[string]string) ([]*Message, error) {
	return c.sendText(ctx, "NOTICE", target, text, "", tags)
}

// Action sends text as CTCP ACTION (/me), split like Privmsg, each line its
// own ACTION.
func (c *Conn) Action(ctx context.Context, target, text string, tags map[string]string) ([]*Message, error) {
	return c.sendText(ctx, "PRIVMSG", target, text, "ACTION", tags)
}

func (c *Conn) sendText(ctx context.Context, command, target, text, ctcp string, tags map[string]string) ([]*Message, error) {
	budget := c.textBudget(command, target)
	if ctcp != "" {
		budget -= len(CTCP(ctcp, " "))
	}
	lines := SplitText(text, budget)
	labeled := c.HasCap("labeled-response") && c.HasCap("echo-message") && c.HasCap("batch")
	var echoes []*Message
	for _, line := range lines {
		if ctcp != "" {
			line = CTCP(ctcp, line)
		}
		m := NewMessage(command, target, line)
		for k, v := range tags {
			m.SetTag(k, v)
		}
		if !labeled {
			if err := c.Send(ctx, m); err != nil {
				return echoes, err
			}
			continue
		}
		r, err := c.Request(ctx, m)
		if err != nil {
			return echoes, err
		}
		for _, e := range r.Messages() {
			if e.Command == command {
				echoes = append(echoes, e)
			} else if e.Command == "FAIL" || (e.IsNumeric() && e.Command >= "400" && e.Command < "600") {
				return echoes, fmt.Errorf("irc: %s to %s refused: %s %s", command, target, e.Command, e.Trailing())
			}
		}
	}
	return echoes, nil
}

// HistoryAnchor is one end of a CHATHISTORY range: a msgid or a time.
// The zero anchor is "*" (only LATEST accepts it).
type HistoryAnchor struct {
	MsgID string
	Time  time.Time
}

func (a HistoryAnchor) String() string {
	switch {
	case a.MsgID != "":
		return "msgid=" + a.MsgID
	case !a.Time.IsZero():
		return "timestamp=" + a.Time.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	return "*"
}

// History subcommands of CHATHISTORY.
const (
	HistoryLatest  = "LATEST"
	HistoryBefore  = "BEFORE"
	HistoryAfter   = "AFTER"
	HistoryAround  = "AROUND"
	HistoryBetween = "BETWEEN"
)

// HistoryRequest is one IRCv3 CHATHISTORY request. From is the anchor of
// LATEST, BEFORE, AFTER and AROUND, and the start of BETWEEN; To is the end
// of BETWEEN.
type HistoryRequest struct {
	Sub      string
	Target   string
	From, To HistoryAnchor
	Limit    int
}

// Message returns the CHATHISTORY line.
func (r HistoryRequest) Message() *Message {
	m := NewMessage("CHATHISTORY", strings.ToUpper(r.Sub), r.Target, r.From.String())
	if strings.EqualFold(r.Sub, HistoryBetween) {
		m.Params = append(m.Params, r.To.String())
	}
	m.Params = append(m.Params, strconv.Itoa(r.Limit))
	return m
}

// SupportsHistory reports whether the server offers CHATHISTORY.
func (c *Conn) SupportsHistory() bool {
	if c.HasCap("draft/chathistory") || c.HasCap("chathistory") {
		return true
	}
	_, ok := c.isupport.ChatHistory()
	return ok
}

// ChatHistory sends a CHATHISTORY request and returns the chathistory batch
// that answers it (empty when there is no history). The limit is lowered to
// the server's CHATHISTORY maximum. Without labeled-response, the answer is
// the next chathistory batch for the same target, so concurrent requests for
// one target must not overlap.
func (c *Conn) ChatHistory(ctx context.Context, req HistoryRequest) (*Batch, error) {
	if !c.SupportsHistory() {
		return nil, fmt.Errorf("%w: CHATHISTORY", ErrNotSupported)
	}
	if max, _ := c.isupport.ChatHistory(); max > 0 && (req.Limit <= 0 || req.Limit > max) {
		req.Limit = max
	}
	if req.Limit <= 0 {
		req.Limit = 100
	}
	m := req.Message()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if c.HasCap("labeled-response") && c.HasCap("batch") {
		r, err := c.Request(ctx, m)
		if err != nil {
			return nil, err
		}
		if b := r.Batch.Find("chathistory"); b != nil {
			return b, nil
		}
		for _, e := range r.Messages() {
			if e.Command == "FAIL" {
				return nil, fmt.Errorf("irc: CHATHISTORY failed: %s", strings.Join(e.Params, " "))
			}
		}
		if r.Batch == nil && r.Message == nil {
			return &Batch{Type: "chathistory", Params: []string{req.Target}}, nil
		}
		return nil, fmt.Errorf("irc: unexpected answer to CHATHISTORY: %v", r.Messages())
	}
	key := c.Fold(req.Target)
	ch := make(chan *Batch, 1)
	c.mu.Lock()
	c.histWait[key] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.histWait[key] == ch {
			delete(c.histWait, key)
		}
		c.mu.Unlock()
	}()
	if err := c.Send(ctx, m); err != nil {
		return nil, err
	}
	return await(ctx, ch, c.dead)
}
