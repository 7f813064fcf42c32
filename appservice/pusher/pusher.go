// Package pusher delivers each appservice's persisted queue of events as
// transactions (PUT /_matrix/app/v1/transactions/{txnId}, Bearer hs_token):
// in order, at least once, the same transaction ID and events on every retry
// until the appservice acknowledges, across restarts of either side. It
// imports core/rooms (to format events), appservice/registry and the
// storage interfaces.
package pusher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tributary-hs/tributary/appservice/registry"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/storage"
)

// maxEvents bounds one transaction.
const maxEvents = 100

// Pusher runs one delivery loop per appservice that has a URL.
type Pusher struct {
	store    Store
	registry *registry.Registry
	rooms    *rooms.Service
	client   *http.Client
	log      *slog.Logger
	// Ephemeral data (WithEphemeral); nil: events only.
	eph      Ephemeral
	keys     Keys
	notifier stream.Notifier

	mu    sync.Mutex
	wakes map[string]chan struct{}
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

// New builds the pusher; it learns of queued events from the notifier.
func New(store Store, reg *registry.Registry, r *rooms.Service, n stream.Notifier, log *slog.Logger, opts ...Option) *Pusher {
	if log == nil {
		log = slog.Default()
	}
	p := &Pusher{store: store, registry: reg, rooms: r, notifier: n, log: log, wakes: map[string]chan struct{}{},
		client: &http.Client{Timeout: 60 * time.Second}}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Start begins delivery (and resumes whatever is queued from before).
func (p *Pusher) Start(ctx context.Context) {
	ctx, p.stop = context.WithCancel(ctx)
	for _, as := range p.registry.All() {
		if as.Reg.URL == "" {
			continue // no URL: the appservice only uses the client API
		}
		wake := make(chan struct{}, 1)
		p.mu.Lock()
		p.wakes[as.Reg.ID] = wake
		p.mu.Unlock()
		p.wg.Add(1)
		go p.loop(ctx, as, wake)
	}
	p.notifier.Observe(p.observe)
}

// Stop ends delivery; queued events stay queued.
func (p *Pusher) Stop() {
	if p.stop != nil {
		p.stop()
		p.wg.Wait()
	}
}

// wake tells the loops of these appservices that there is news.
func (p *Pusher) wake(asIDs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range asIDs {
		if w, ok := p.wakes[id]; ok {
			select {
			case w <- struct{}{}:
			default:
			}
		}
	}
}

func (p *Pusher) loop(ctx context.Context, as *registry.AppService, wake chan struct{}) {
	defer p.wg.Done()
	backoff := time.Duration(0)
	for {
		sent, err := p.deliver(ctx, as)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			backoff = min(max(2*backoff, time.Second), 5*time.Minute)
			p.log.Warn("appservice transaction failed", "appservice", as.Reg.ID, "retry_in", backoff, "err", err)
		case sent:
			backoff = 0
			continue // maybe more is queued
		default:
			backoff = 0
		}
		var timer <-chan time.Time
		if backoff > 0 {
			timer = time.After(backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
			if backoff > 0 {
				// A failing appservice is retried on its schedule, not on every event.
				select {
				case <-timer:
				case <-ctx.Done():
					return
				}
			}
		case <-timer:
		}
	}
}

// deliver sends the transaction in flight, or opens one from the queue and
// the ephemeral streams. It reports whether there may be more to send.
func (p *Pusher) deliver(ctx context.Context, as *registry.AppService) (bool, error) {
	withEphemeral := p.wantsEphemeral(as) || p.wantsMSC3202(as)
	var from stream.Positions
	if withEphemeral {
		var err error
		if from, err = p.cursor(ctx, as); err != nil {
			return false, err
		}
	}
	var eph *ephemeralData
	// inTxn are the queue positions the transaction carries; opened says
	// they are known already (a new transaction carries what was pending).
	var inTxn []int64
	opened := false
	txn, err := p.store.TxnInFlight(ctx, as.Reg.ID)
	if errors.Is(err, storage.ErrNotFound) {
		pending, err := p.store.PendingForAppService(ctx, as.Reg.ID, maxEvents)
		if err != nil {
			return false, err
		}
		var lastPos int64
		if len(pending) > 0 {
			lastPos = pending[len(pending)-1]
		}
		var ephPos []int64
		if withEphemeral {
			to := p.notifier.Current()
			if eph, err = p.ephemeral(ctx, as, from, to); err != nil {
				return false, err
			}
			if eph.reached != from {
				ephPos = eph.reached[:]
			}
			if len(pending) == 0 && eph.empty() {
				// Nothing for this appservice: just move its cursor on.
				if ephPos != nil {
					err = p.store.SetAppServiceCursor(ctx, as.Reg.ID, ephPos)
				}
				return eph.reached != maxPositions(from, to), err
			}
		}
		if len(pending) == 0 && ephPos == nil {
			return false, nil
		}
		if txn, err = p.store.OpenTxn(ctx, as.Reg.ID, lastPos, ephPos); err != nil {
			return false, err
		}
		inTxn, opened = pending, true
	} else if err != nil {
		return false, err
	} else if txn.Ephemeral != nil && withEphemeral {
		// A retry carries the same stretch of the ephemeral streams.
		var to stream.Positions
		copy(to[:], txn.Ephemeral)
		if eph, err = p.ephemeral(ctx, as, from, to); err != nil {
			return false, err
		}
	}
	if !opened && txn.LastPos > 0 {
		// A retry: the queue up to the transaction's last position.
		positions, err := p.store.PendingForAppService(ctx, as.Reg.ID, maxEvents)
		if err != nil {
			return false, err
		}
		for _, pos := range positions {
			if pos <= txn.LastPos {
				inTxn = append(inTxn, pos)
			}
		}
	}
	evs, err := p.rooms.EventsAt(ctx, inTxn)
	if err != nil {
		return false, err
	}
	if evs == nil {
		evs = []*rooms.ClientEvent{}
	}
	// Events the appservice named itself are referred to by its names.
	if err := p.rooms.RefsToAliases(ctx, evs); err != nil {
		return false, err
	}
	body := map[string]any{"events": evs}
	if eph != nil {
		if err := p.addEphemeral(ctx, as, body, evs, eph); err != nil {
			return false, err
		}
	}
	if err := p.send(ctx, as, txn.TxnID, body); err != nil {
		return false, err
	}
	if err := p.store.AckTxn(ctx, txn); err != nil {
		return false, err
	}
	if eph != nil {
		return true, p.forgetToDevice(ctx, as, eph)
	}
	return true, nil
}

// addEphemeral puts the ephemeral data into a transaction body under the
// keys the appservice's registration asked for.
func (p *Pusher) addEphemeral(ctx context.Context, as *registry.AppService, body map[string]any, evs []*rooms.ClientEvent, eph *ephemeralData) error {
	if len(eph.edus) > 0 {
		if as.Reg.EphemeralEvents {
			body["ephemeral"] = eph.edus
		}
		if as.Reg.SoruEphemeralEvents {
			body["de.sorunome.msc2409.ephemeral"] = eph.edus
		}
	}
	if len(eph.toDevice) > 0 {
		body["de.sorunome.msc2409.to_device"] = eph.toDeviceEvents()
	}
	if !p.wantsMSC3202(as) {
		return nil
	}
	if len(eph.deviceLists) > 0 || len(eph.deviceListsLeft) > 0 {
		body["org.matrix.msc3202.device_lists"] = map[string]any{"changed": nonNil(eph.deviceLists),
			"left": nonNil(eph.deviceListsLeft)}
	}
	// Key counts of the appservice's users this transaction concerns: its
	// bot, senders of its events and recipients of its to-device messages.
	users := []string{string(as.Sender)}
	for _, ev := range evs {
		users = append(users, string(ev.Sender))
	}
	for _, m := range eph.toDevice {
		users = append(users, m.UserID)
	}
	counts, fallback, err := p.keyCounts(ctx, as, users)
	if err != nil {
		return err
	}
	if len(counts) > 0 {
		body["org.matrix.msc3202.device_one_time_keys_count"] = counts
		body["org.matrix.msc3202.device_unused_fallback_key_types"] = fallback
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func maxPositions(a, b stream.Positions) stream.Positions {
	for i := range a {
		a[i] = max(a[i], b[i])
	}
	return a
}

func (p *Pusher) send(ctx context.Context, as *registry.AppService, txnID int64, body any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	url := strings.TrimSuffix(as.Reg.URL, "/") + "/_matrix/app/v1/transactions/" + strconv.FormatInt(txnID, 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+as.Reg.ServerToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("appservice answered %d", resp.StatusCode)
	}
	return nil
}
