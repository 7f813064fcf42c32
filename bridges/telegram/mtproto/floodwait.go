package mtproto

import (
	"context"
	"fmt"
	"time"

	"github.com/gotd/td/tgerr"
)

// Wait is how long to wait after a FLOOD_WAIT_X answer: X seconds (at
// least one), and at least twice the last wait of the same call, up to
// limit (never below what Telegram asked for).
func Wait(asked, last, limit time.Duration) time.Duration {
	asked = max(asked, time.Second)
	return max(asked, min(2*last, limit))
}

// Retry runs call until Telegram takes it: after each FLOOD_WAIT answer it
// tells waiting (to show the state to the user) and waits (Wait). Other
// errors end it. A FLOOD_WAIT longer than giveUp is returned instead of
// waited for (a login's SendCode may be told to wait hours).
func Retry(ctx context.Context, limit, giveUp time.Duration, waiting func(d time.Duration, attempt int),
	call func(context.Context) error) error {
	var wait time.Duration
	for attempt := 0; ; attempt++ {
		err := call(ctx)
		asked, flood := tgerr.AsFloodWait(err)
		if !flood {
			return err
		}
		if giveUp > 0 && asked > giveUp {
			return &FloodWaitError{Wait: asked, Err: err}
		}
		wait = Wait(asked, wait, limit)
		if waiting != nil {
			waiting(wait, attempt)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting out FLOOD_WAIT: %w", ctx.Err())
		case <-time.After(wait):
		}
	}
}

// FloodWaitError is a FLOOD_WAIT too long to wait for.
type FloodWaitError struct {
	Wait time.Duration
	Err  error
}

func (e *FloodWaitError) Error() string {
	return fmt.Sprintf("Telegram asks to wait %s before trying again", e.Wait.Round(time.Second))
}

func (e *FloodWaitError) Unwrap() error { return e.Err }
