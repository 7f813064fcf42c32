package irc

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"

	"github.com/tributary-hs/tributary/bridges/irc/ircconn"
)

// FetchMessages backfills a portal from the server's history: IRCv3
// CHATHISTORY where the server offers it (forward after the newest bridged
// message, backward page by page), else the history replay the server
// sent when the connection joined the channel (forward only: there is
// nothing older to ask for).
func (c *Client) FetchMessages(ctx context.Context, p bridgev2.FetchMessagesParams) (*bridgev2.FetchMessagesResponse, error) {
	if p.ThreadRoot != "" {
		return &bridgev2.FetchMessagesResponse{Forward: p.Forward}, nil
	}
	_, channel, _, ok := parsePortalID(p.Portal.ID)
	if !ok {
		return &bridgev2.FetchMessagesResponse{Forward: p.Forward}, nil
	}
	if conn := c.currentConn(); conn != nil && conn.SupportsHistory() {
		target, _, err := c.target(ctx, p.Portal)
		if err != nil {
			return nil, err
		}
		return c.fetchHistory(ctx, conn, target, p)
	}
	if !p.Forward || channel == "" {
		return &bridgev2.FetchMessagesResponse{Forward: p.Forward}, nil
	}
	replay, _ := p.BundledData.([]*ircconn.Message)
	c.mu.Lock()
	if replay == nil {
		replay = c.replays[channel]
	}
	delete(c.unreplayed, channel)
	c.mu.Unlock()
	return &bridgev2.FetchMessagesResponse{
		Messages: c.backfillMessages(ctx, replay, p.AnchorMessage, p.Count),
		Forward:  true,
		// A replay may repeat what was bridged live (after a reconnect,
		// with its timestamps cut to the second): msgids tell.
		AggressiveDeduplication: true,
	}, nil
}

// backfillMessages converts history lines (oldest first) to backfill
// messages: text only, those not older than anchor, at most count of the
// newest.
func (c *Client) backfillMessages(ctx context.Context, lines []*ircconn.Message, anchor *database.Message, count int) []*bridgev2.BackfillMessage {
	var out []*bridgev2.BackfillMessage
	for _, m := range lines {
		if m.Command != "PRIVMSG" && m.Command != "NOTICE" {
			continue
		}
		ts := m.Time()
		src := m.Prefix()
		if ts.IsZero() || src.Name == "" || src.IsServer() {
			continue
		}
		if anchor != nil && ts.Before(anchor.Timestamp) {
			continue
		}
		if ircToMatrix(m.Command, m.Trailing()) == nil {
			continue
		}
		cm, err := c.convertMessage(ctx, nil, nil, m)
		if err != nil {
			continue
		}
		out = append(out, &bridgev2.BackfillMessage{
			ConvertedMessage: cm,
			Sender:           c.sender(ctx, src.Name, true),
			ID:               messageID(m),
			Timestamp:        ts,
			StreamOrder:      ts.UnixMilli(),
		})
	}
	if count > 0 && len(out) > count {
		out = out[len(out)-count:]
	}
	return out
}

// historyAnchor points CHATHISTORY at a bridged message: by msgid when it
// has one, else by time.
func historyAnchor(m *database.Message) ircconn.HistoryAnchor {
	if isRealMsgID(m.ID) {
		return ircconn.HistoryAnchor{MsgID: string(m.ID)}
	}
	return ircconn.HistoryAnchor{Time: m.Timestamp}
}

// A backward pagination cursor is "msgid:<id>" or "ts:<unix ms>" of the
// oldest line fetched so far.
func cursorFor(m *ircconn.Message) networkid.PaginationCursor {
	if mid := m.MsgID(); mid != "" {
		return networkid.PaginationCursor("msgid:" + mid)
	}
	return networkid.PaginationCursor("ts:" + strconv.FormatInt(m.Time().UnixMilli(), 10))
}

func parseCursor(cur networkid.PaginationCursor) (ircconn.HistoryAnchor, bool) {
	kind, v, ok := strings.Cut(string(cur), ":")
	if !ok || v == "" {
		return ircconn.HistoryAnchor{}, false
	}
	switch kind {
	case "msgid":
		return ircconn.HistoryAnchor{MsgID: v}, true
	case "ts":
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return ircconn.HistoryAnchor{}, false
		}
		return ircconn.HistoryAnchor{Time: time.UnixMilli(ms)}, true
	}
	return ircconn.HistoryAnchor{}, false
}

// historyRequest is the CHATHISTORY request for a FetchMessages call.
func historyRequest(target string, p bridgev2.FetchMessagesParams) ircconn.HistoryRequest {
	req := ircconn.HistoryRequest{Sub: ircconn.HistoryLatest, Target: target, Limit: p.Count}
	switch {
	case p.Forward && p.AnchorMessage != nil:
		req.Sub, req.From = ircconn.HistoryAfter, historyAnchor(p.AnchorMessage)
	case p.Forward:
	case p.Cursor != "":
		if a, ok := parseCursor(p.Cursor); ok {
			req.Sub, req.From = ircconn.HistoryBefore, a
		}
	case p.AnchorMessage != nil:
		req.Sub, req.From = ircconn.HistoryBefore, historyAnchor(p.AnchorMessage)
	}
	return req
}

func (c *Client) fetchHistory(ctx context.Context, conn *ircconn.Conn, target string, p bridgev2.FetchMessagesParams) (*bridgev2.FetchMessagesResponse, error) {
	req := historyRequest(target, p)
	limit := req.Limit
	if max, _ := conn.ISupport().ChatHistory(); max > 0 && (limit <= 0 || limit > max) {
		limit = max
	}
	if limit <= 0 {
		limit = 100
	}
	b, err := conn.ChatHistory(ctx, req)
	if err != nil {
		return nil, err
	}
	lines := b.Messages()
	var anchor *database.Message
	if p.Forward {
		anchor = p.AnchorMessage
	}
	resp := &bridgev2.FetchMessagesResponse{
		Messages:                c.backfillMessages(ctx, lines, anchor, 0),
		Forward:                 p.Forward,
		HasMore:                 len(lines) >= limit,
		AggressiveDeduplication: p.Forward,
	}
	if !p.Forward && len(lines) > 0 {
		resp.Cursor = cursorFor(lines[0])
	}
	return resp, nil
}

// catchUp backfills a channel's portal from the history replay of the
// login's latest join before a Matrix event is sent there, unless the
// portal had it already. The replay's resync waits behind the Matrix event
// in the portal's queue, and bridgev2 backfills nothing older than the
// newest bridged message: what IRC said while the login was away (a
// reconnect, a restarted plugin) would be cut off by a Matrix message
// written meanwhile and sent on the new connection.
func (c *Client) catchUp(ctx context.Context, portal *bridgev2.Portal, channel string) {
	conn := c.currentConn()
	if conn == nil || portal.MXID == "" || !c.net.br.Config.Backfill.Enabled {
		return
	}
	f := conn.Fold(channel)
	c.mu.Lock()
	pending, replay := c.unreplayed[f], c.replays[f]
	delete(c.unreplayed, f)
	c.mu.Unlock()
	if !pending {
		return
	}
	last, err := c.net.br.DB.Message.GetLastPartAtOrBeforeTime(ctx, portal.PortalKey, time.Now().Add(10*time.Second))
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Catching up with the channel's history before a Matrix event")
		return
	}
	if last != nil && !slices.ContainsFunc(replay, func(m *ircconn.Message) bool { return m.Time().After(last.Timestamp) }) {
		return
	}
	// The forward backfill a resync runs, run here: the Matrix event's
	// handler holds the portal's event lock (events are handled as they
	// come), so a queued remote event would wait for it.
	//lint:ignore SA1019 bridgev2 offers no other way to backfill inside a portal's event
	portal.Internal().DoForwardBackfill(ctx, c.login, last, replay)
}
