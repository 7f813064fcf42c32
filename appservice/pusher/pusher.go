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
	"github.com/tributary-hs/tributary/storage"
)

// maxEvents bounds one transaction.
const maxEvents = 100

// Pusher runs one delivery loop per appservice that has a URL.
type Pusher struct {
	store    storage.AppServiceQueues
	registry *registry.Registry
	rooms    *rooms.Service
	client   *http.Client
	log      *slog.Logger

	mu    sync.Mutex
	wakes map[string]chan struct{}
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

// New builds the pusher.
func New(store storage.AppServiceQueues, reg *registry.Registry, r *rooms.Service, log *slog.Logger) *Pusher {
	if log == nil {
		log = slog.Default()
	}
	return &Pusher{store: store, registry: reg, rooms: r, log: log, wakes: map[string]chan struct{}{},
		client: &http.Client{Timeout: 60 * time.Second}}
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
}

// Stop ends delivery; queued events stay queued.
func (p *Pusher) Stop() {
	if p.stop != nil {
		p.stop()
		p.wg.Wait()
	}
}

// Wake tells the loops of these appservices that events were queued.
func (p *Pusher) Wake(asIDs []string) {
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

// deliver sends the transaction in flight, or opens one from the queue. It
// reports whether it sent anything.
func (p *Pusher) deliver(ctx context.Context, as *registry.AppService) (bool, error) {
	txn, err := p.store.TxnInFlight(ctx, as.Reg.ID)
	if errors.Is(err, storage.ErrNotFound) {
		pending, err := p.store.PendingForAppService(ctx, as.Reg.ID, maxEvents)
		if err != nil || len(pending) == 0 {
			return false, err
		}
		if txn, err = p.store.OpenTxn(ctx, as.Reg.ID, pending[len(pending)-1]); err != nil {
			return false, err
		}
	} else if err != nil {
		return false, err
	}
	positions, err := p.store.PendingForAppService(ctx, as.Reg.ID, maxEvents)
	if err != nil {
		return false, err
	}
	var inTxn []int64
	for _, pos := range positions {
		if pos <= txn.LastPos {
			inTxn = append(inTxn, pos)
		}
	}
	evs, err := p.rooms.EventsAt(ctx, inTxn)
	if err != nil {
		return false, err
	}
	if evs == nil {
		evs = []*rooms.ClientEvent{}
	}
	if err := p.send(ctx, as, txn.TxnID, map[string]any{"events": evs}); err != nil {
		return false, err
	}
	return true, p.store.AckTxn(ctx, txn)
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
