package telegram

import (
	"context"
	"errors"
	"fmt"
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

// rateLimited shows that sending waits: the login's bridge state and, at
// the start of a run of 429s, a notice in the room; the event gets a
// PENDING status.
func (c *Client) rateLimited(ctx context.Context, portal *bridgev2.Portal, evt *event.Event, wait time.Duration) {
	c.mu.Lock()
	first := !c.limited
	c.limited = true
	c.mu.Unlock()
	msg := fmt.Sprintf("Telegram is limiting how fast the bot may send: messages wait %s and are then sent in order",
		wait.Round(time.Second))
	if first {
		c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateTransientDisconnect,
			Error: errRateLimited, Message: msg})
		if portal != nil && portal.MXID != "" {
			if _, err := c.net.br.Bot.SendMessage(ctx, portal.MXID, event.EventMessage, &event.Content{
				Parsed: &event.MessageEventContent{MsgType: event.MsgNotice, Body: "⏳ " + msg + "."},
			}, nil); err != nil {
				zerolog.Ctx(ctx).Err(err).Msg("sending the rate limit notice")
			}
		}
	}
	if evt != nil {
		c.net.br.Matrix.SendMessageStatus(ctx, &bridgev2.MessageStatus{Status: event.MessageStatusPending,
			Step: status.MsgStepRemote, Message: msg}, bridgev2.StatusEventInfoFromEvent(evt))
	}
}

// rateLimitOver ends a run of 429s: the login is connected again.
func (c *Client) rateLimitOver() {
	c.mu.Lock()
	was := c.limited
	c.limited = false
	c.mu.Unlock()
	if was {
		c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateConnected})
	}
}
