package telegram

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	tgbot "github.com/go-telegram/bot"
	"github.com/rs/zerolog"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/status"
	"maunium.net/go/mautrix/event"
)

// retryWait is how long to wait after a 429 answer: what Telegram asked
// for (at least a second), and at least twice the last wait for the same
// call, up to max (never below what Telegram asked for).
func retryWait(retryAfter int, last, limit time.Duration) time.Duration {
	asked := time.Duration(max(retryAfter, 1)) * time.Second
	return max(asked, min(2*last, limit))
}

// retrying runs call until Telegram takes it. A 429 (Too Many Requests)
// answer makes it wait retryWait and try again, however often: the
// message is delayed, never dropped, and since a portal's events are
// handled one after the other, those behind it keep their order. While it
// waits, the login's bridge state says so, the sender sees a PENDING
// message status, and the room gets a notice (once per run of 429s).
// Other errors are returned as the sender's error status.
func (c *Client) retrying(ctx context.Context, portal *bridgev2.Portal, evt *event.Event, call func(context.Context) error) error {
	var wait time.Duration
	for attempt := 0; ; attempt++ {
		err := call(ctx)
		var tooMany *tgbot.TooManyRequestsError
		if !errors.As(err, &tooMany) {
			if attempt > 0 {
				c.rateLimitOver()
			}
			if err != nil {
				return errTelegram(err)
			}
			return nil
		}
		wait = retryWait(tooMany.RetryAfter, wait, c.net.Config.MaxRetryWait)
		zerolog.Ctx(ctx).Warn().Int("retry_after", tooMany.RetryAfter).Dur("wait", wait).Int("attempt", attempt).
			Msg("Telegram answered 429; waiting before trying again")
		c.rateLimited(ctx, portal, evt, wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for Telegram's rate limit: %w", ctx.Err())
		case <-time.After(wait):
		}
	}
}

// sendLimits is a login's state of being rate-limited, shared by bot and
// user mode.
type sendLimits struct {
	mu      sync.Mutex
	limited bool // within a run of 429 / FLOOD_WAIT answers
}

// rateLimited shows that sending waits: the login's bridge state and, at
// the start of a run of 429s, a notice in the room; the event gets a
// PENDING status.
func (c *Client) rateLimited(ctx context.Context, portal *bridgev2.Portal, evt *event.Event, wait time.Duration) {
	c.net.showLimited(ctx, &c.limits, c.login.BridgeState.Send, portal, evt,
		fmt.Sprintf("Telegram is limiting how fast the bot may send: messages wait %s and are then sent in order",
			wait.Round(time.Second)))
}

// rateLimitOver ends a run of 429s: the login is connected again.
func (c *Client) rateLimitOver() { c.limits.over(c.login.BridgeState.Send) }

// showLimited shows msg as the login's state and, at the start of a run,
// as a notice in the portal's room; evt gets a PENDING status.
func (n *Connector) showLimited(ctx context.Context, l *sendLimits, setState func(status.BridgeState),
	portal *bridgev2.Portal, evt *event.Event, msg string) {
	l.mu.Lock()
	first := !l.limited
	l.limited = true
	l.mu.Unlock()
	if first {
		setState(status.BridgeState{StateEvent: status.StateTransientDisconnect, Error: errRateLimited, Message: msg})
		if n.br != nil && portal != nil && portal.MXID != "" {
			if _, err := n.br.Bot.SendMessage(ctx, portal.MXID, event.EventMessage, &event.Content{
				Parsed: &event.MessageEventContent{MsgType: event.MsgNotice, Body: "⏳ " + msg + "."},
			}, nil); err != nil {
				zerolog.Ctx(ctx).Err(err).Msg("sending the rate limit notice")
			}
		}
	}
	if evt != nil && n.br != nil {
		n.br.Matrix.SendMessageStatus(ctx, &bridgev2.MessageStatus{Status: event.MessageStatusPending,
			Step: status.MsgStepRemote, Message: msg}, bridgev2.StatusEventInfoFromEvent(evt))
	}
}

// over ends a run of rate-limit answers: the login is connected again.
func (l *sendLimits) over(setState func(status.BridgeState)) {
	l.mu.Lock()
	was := l.limited
	l.limited = false
	l.mu.Unlock()
	if was {
		setState(status.BridgeState{StateEvent: status.StateConnected})
	}
}
