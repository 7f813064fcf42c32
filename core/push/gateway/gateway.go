// Package gateway delivers the persisted push queue to push gateways
// (POST <pusher url>, push gateway API /_matrix/push/v1/notify): each
// notification at least once, per pusher in event order, retried with
// exponential backoff across restarts, dropped after a bounded time. A
// gateway that rejects a pushkey has its pusher deleted. Requests go
// through core/netguard: private and loopback gateways are refused unless
// allow-listed. It imports core/push, core/netguard and the storage
// interfaces; cmd hands it core/rooms as Events.
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/netguard"
	"github.com/tributary-hs/tributary/core/push"
	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/storage"
)

// Store is the queue and what the counts are read from.
type Store interface {
	DuePushDeliveries(ctx context.Context, now int64, limit int) ([]*storage.PushDelivery, error)
	NextPushAttempt(ctx context.Context) (int64, bool, error)
	AckPushDelivery(ctx context.Context, pusherID, streamPos int64) error
	RetryPushDelivery(ctx context.Context, pusherID, streamPos, nextAttempt int64) error
	RoomsOfUser(ctx context.Context, userID id.UserID, memberships []string) ([]storage.CurrentMember, error)
	UnreadCounts(ctx context.Context, roomID id.RoomID, userID id.UserID) ([]storage.UnreadCount, error)
}

// Events describes queued events (core/rooms).
type Events interface {
	PushEvents(ctx context.Context, positions []int64) (map[int64]*push.EventInfo, error)
}

// Pushers deletes pushers whose pushkey a gateway rejected (core/push).
type Pushers interface {
	PusherRejected(ctx context.Context, userID id.UserID, pusherID int64) error
}

// Options tune delivery; zero values take the defaults.
type Options struct {
	// Allowed are private ranges gateways may be reached in (push.allowed_ranges).
	Allowed []netip.Prefix
	Logger  *slog.Logger
	Now     func() time.Time
	// Timeout bounds one request to a gateway (default 15s).
	Timeout time.Duration
	// FirstBackoff is the wait after a first failure, doubled after each
	// (default 1s) up to MaxBackoff (default 1h).
	FirstBackoff, MaxBackoff time.Duration
	// MaxAttempts at one notification before it is dropped (default 13:
	// about two hours of retries with the default backoff).
	MaxAttempts int64
	// Parallel is how many pushers are delivered to at once (default 8).
	Parallel int
	// Notifier tells the loop when notifications were queued (nil: it
	// reads the queue only after a start and its own retries).
	Notifier stream.Notifier
}

// batch bounds the deliveries read from the queue at once.
const batch = 200

// Gateway runs the delivery loop.
type Gateway struct {
	store   Store
	events  Events
	pushers Pushers
	opts    Options
	log     *slog.Logger
	client  *http.Client
	wake    chan struct{}
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// New builds the delivery loop; Start runs it.
func New(store Store, events Events, pushers Pushers, opts Options) (*Gateway, error) {
	if store == nil || events == nil || pushers == nil {
		return nil, errors.New("gateway: store, events and pushers are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 15 * time.Second
	}
	if opts.FirstBackoff <= 0 {
		opts.FirstBackoff = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Hour
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 13
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	g := &Gateway{store: store, events: events, pushers: pushers, opts: opts, log: opts.Logger,
		wake: make(chan struct{}, 1)}
	g.client = &http.Client{Timeout: opts.Timeout, Transport: netguard.Guard{Allowed: opts.Allowed}.Transport(opts.Timeout),
		// A gateway answers where it is asked; a redirect is a failure.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return g, nil
}

// Start begins delivery, resuming whatever is queued.
func (g *Gateway) Start(ctx context.Context) {
	ctx, g.stop = context.WithCancel(ctx)
	if g.opts.Notifier != nil {
		g.opts.Notifier.Observe(g.observe)
	}
	g.wg.Add(1)
	go g.loop(ctx)
}

// Stop ends delivery; what is queued stays queued.
func (g *Gateway) Stop() {
	if g.stop != nil {
		g.stop()
		g.wg.Wait()
	}
}

// observe wakes the loop when a change queued notifications.
func (g *Gateway) observe(c stream.Change) {
	for _, q := range c.Queued {
		if q.Kind == stream.KindPushGateway {
			g.wake1()
			return
		}
	}
}

// wake1 tells the loop there is something to read.
func (g *Gateway) wake1() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

func (g *Gateway) loop(ctx context.Context) {
	defer g.wg.Done()
	for {
		more, err := g.round(ctx)
		if ctx.Err() != nil {
			return
		}
		var wait <-chan time.Time
		switch {
		case err != nil:
			g.log.Warn("push delivery failed", "err", err)
			wait = time.After(5 * time.Second)
		case more:
			continue
		default:
			next, ok, err := g.store.NextPushAttempt(ctx)
			if err != nil {
				g.log.Warn("push queue", "err", err)
				wait = time.After(5 * time.Second)
			} else if ok {
				d := time.UnixMilli(next).Sub(g.opts.Now())
				if d <= 0 {
					continue
				}
				wait = time.After(d)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-g.wake:
		case <-wait:
		}
	}
}

// round delivers what is due; it reports whether more may be due.
func (g *Gateway) round(ctx context.Context) (bool, error) {
	due, err := g.store.DuePushDeliveries(ctx, g.opts.Now().UnixMilli(), batch)
	if err != nil || len(due) == 0 {
		return false, err
	}
	var positions []int64
	var order []int64
	byPusher := map[int64][]*storage.PushDelivery{}
	for _, d := range due {
		if !slices.Contains(positions, d.StreamPos) {
			positions = append(positions, d.StreamPos)
		}
		if _, ok := byPusher[d.Pusher.PusherID]; !ok {
			order = append(order, d.Pusher.PusherID)
		}
		byPusher[d.Pusher.PusherID] = append(byPusher[d.Pusher.PusherID], d)
	}
	infos, err := g.events.PushEvents(ctx, positions)
	if err != nil {
		return false, err
	}
	unread := newUnread(g.store)
	sem := make(chan struct{}, g.opts.Parallel)
	var wg sync.WaitGroup
	errs := make([]error, len(order))
	for i, pid := range order {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = g.deliverAll(ctx, byPusher[pid], infos, unread)
		}()
	}
	wg.Wait()
	return len(due) == batch, errors.Join(errs...)
}

// deliverAll sends one pusher's due notifications in order, stopping at
// the first that fails (the pusher then waits out its backoff).
func (g *Gateway) deliverAll(ctx context.Context, ds []*storage.PushDelivery, infos map[int64]*push.EventInfo, unread *unread) error {
	for _, d := range ds {
		p := &d.Pusher
		info, ok := infos[d.StreamPos]
		if !ok {
			// The event is gone (purged): nothing to tell.
			if err := g.store.AckPushDelivery(ctx, p.PusherID, d.StreamPos); err != nil {
				return err
			}
			continue
		}
		count, err := unread.of(ctx, p.UserID)
		if err != nil {
			return err
		}
		rejected, err := g.send(ctx, p, info, d.Tweaks, count)
		switch {
		case ctx.Err() != nil:
			return nil // shutting down: the delivery stays queued
		case err == nil && rejected:
			g.log.Info("push gateway rejected a pushkey; deleting the pusher", "user", p.UserID,
				"app_id", p.AppID, "pusher_id", p.PusherID)
			return g.pushers.PusherRejected(ctx, p.UserID, p.PusherID)
		case err == nil:
			if err := g.store.AckPushDelivery(ctx, p.PusherID, d.StreamPos); err != nil {
				return err
			}
			continue
		}
		attempts := d.Attempts + 1
		backoff := g.backoff(attempts)
		next := g.opts.Now().Add(backoff).UnixMilli()
		if attempts >= g.opts.MaxAttempts || errors.Is(err, netguard.ErrBlocked) {
			// Given up on: the pusher moves on to its next notification
			// after the wait.
			g.log.Warn("push notification dropped", "user", p.UserID, "pusher_id", p.PusherID,
				"event_id", info.EventID, "attempts", attempts, "err", err)
			if err := g.store.AckPushDelivery(ctx, p.PusherID, d.StreamPos); err != nil {
				return err
			}
		} else {
			g.log.Info("push gateway failed; retrying", "user", p.UserID, "pusher_id", p.PusherID,
				"attempts", attempts, "retry_in", backoff.String(), "err", err)
		}
		return g.store.RetryPushDelivery(ctx, p.PusherID, d.StreamPos, next)
	}
	return nil
}

func (g *Gateway) backoff(attempts int64) time.Duration {
	d := g.opts.FirstBackoff
	for i := int64(1); i < attempts && d < g.opts.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, g.opts.MaxBackoff)
}

// notification is the body's notification object (push gateway API).
type notification struct {
	EventID           string           `json:"event_id,omitempty"`
	RoomID            string           `json:"room_id,omitempty"`
	Type              string           `json:"type,omitempty"`
	Sender            string           `json:"sender,omitempty"`
	SenderDisplayName string           `json:"sender_display_name,omitempty"`
	RoomName          string           `json:"room_name,omitempty"`
	RoomAlias         string           `json:"room_alias,omitempty"`
	UserIsTarget      bool             `json:"user_is_target,omitempty"`
	Prio              string           `json:"prio"`
	Content           json.RawMessage  `json:"content,omitempty"`
	Counts            map[string]int64 `json:"counts"`
	Devices           []device         `json:"devices"`
}

type device struct {
	AppID     string                     `json:"app_id"`
	PushKey   string                     `json:"pushkey"`
	PushKeyTS int64                      `json:"pushkey_ts"`
	Data      map[string]json.RawMessage `json:"data"`
	Tweaks    json.RawMessage            `json:"tweaks"`
}

// body builds the request: everything about the event unless the pusher
// asked for event_id_only.
func body(p *storage.Pusher, info *push.EventInfo, tweaks json.RawMessage, unread int64) ([]byte, string, error) {
	data := map[string]json.RawMessage{}
	if err := json.Unmarshal(p.Data, &data); err != nil {
		return nil, "", fmt.Errorf("pusher %d: stored data: %w", p.PusherID, err)
	}
	var url string
	if err := json.Unmarshal(data["url"], &url); err != nil {
		return nil, "", fmt.Errorf("pusher %d: stored url: %w", p.PusherID, err)
	}
	delete(data, "url")
	var format string
	_ = json.Unmarshal(data["format"], &format)
	if len(tweaks) == 0 {
		tweaks = json.RawMessage(`{}`)
	}
	n := notification{EventID: string(info.EventID), RoomID: string(info.RoomID), Prio: prio(info, tweaks),
		Counts: map[string]int64{}, Devices: []device{{AppID: p.AppID, PushKey: p.PushKey,
			PushKeyTS: p.PushKeyTS / 1000, Data: data, Tweaks: tweaks}}}
	if unread > 0 {
		n.Counts["unread"] = unread // counts of zero are left out
	}
	if format != "event_id_only" {
		n.Type, n.Sender, n.SenderDisplayName = info.Type, string(info.Sender), info.SenderDisplayName
		n.RoomName, n.RoomAlias, n.Content = info.RoomName, info.RoomAlias, info.Content
		n.UserIsTarget = info.Type == "m.room.member" && info.StateKey != nil && *info.StateKey == string(p.UserID)
	}
	raw, err := json.Marshal(map[string]any{"notification": n})
	return raw, url, err
}

// prio is high for what should wake a phone: encrypted events (which may
// be anything) and notifications that highlight or make a sound.
func prio(info *push.EventInfo, tweaks json.RawMessage) string {
	var t map[string]any
	_ = json.Unmarshal(tweaks, &t)
	if info.Type == "m.room.encrypted" || t["highlight"] == true || t["sound"] != nil {
		return "high"
	}
	return "low"
}

// send posts one notification; rejected reports whether the gateway
// rejected the pusher's pushkey.
func (g *Gateway) send(ctx context.Context, p *storage.Pusher, info *push.EventInfo, tweaks json.RawMessage, unread int64) (bool, error) {
	raw, url, err := body(p, info, tweaks, unread)
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(raw))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return false, err
	}
	if resp.StatusCode/100 != 2 {
		return false, fmt.Errorf("push gateway answered %d", resp.StatusCode)
	}
	var res struct {
		Rejected []string `json:"rejected"`
	}
	_ = json.Unmarshal(answer, &res) // an answer without rejected rejects nothing
	return slices.Contains(res.Rejected, p.PushKey), nil
}

// unread counts a user's unread notifications across their rooms, once
// per round.
type unread struct {
	store Store
	mu    sync.Mutex
	by    map[id.UserID]int64
}

func newUnread(store Store) *unread { return &unread{store: store, by: map[id.UserID]int64{}} }

func (u *unread) of(ctx context.Context, userID id.UserID) (int64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if n, ok := u.by[userID]; ok {
		return n, nil
	}
	rooms, err := u.store.RoomsOfUser(ctx, userID, []string{"join"})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, r := range rooms {
		counts, err := u.store.UnreadCounts(ctx, r.RoomID, userID)
		if err != nil {
			return 0, err
		}
		for _, c := range counts {
			n += c.Notifications
		}
	}
	u.by[userID] = n
	return n, nil
}
