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
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/appservice/registry"
	"github.com/tributary-hs/tributary/core/queue"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/storage"
)

// maxEvents bounds one transaction.
const maxEvents = 100

// Pusher delivers appservice transactions over HTTP: the Deliverer of the
// appservice kind of core/queue's interest queues, one loop per
// appservice that has a URL.
type Pusher struct {
	// Feed gathers the ephemeral data (WithEphemeral; without it, events
	// only).
	*Feed
	rooms  *rooms.Reader
	client *http.Client
	log    *slog.Logger
	runner *queue.Runner
	// backoff is the first and the longest wait after failed deliveries
	// (zero: core/queue's defaults).
	backoff [2]time.Duration
}

var _ queue.Deliverer = (*Pusher)(nil)

// New builds the pusher; it learns of queued events (and, WithEphemeral,
// of ephemeral data) from the notifier.
func New(store Store, reg *registry.Registry, r *rooms.Reader, n stream.Notifier, log *slog.Logger, opts ...Option) (*Pusher, error) {
	if store == nil || reg == nil || r == nil || n == nil {
		return nil, errors.New("pusher: store, registry, rooms and notifier are required")
	}
	if log == nil {
		log = slog.Default()
	}
	p := &Pusher{Feed: &Feed{store: store, registry: reg, notifier: n}, rooms: r, log: log,
		client: &http.Client{Timeout: 60 * time.Second}}
	for _, o := range opts {
		o(p)
	}
	var err error
	p.runner, err = queue.New(store, stream.KindAppService, p, n, queue.Options{Limit: maxEvents, Logger: log,
		FirstBackoff: p.backoff[0], MaxBackoff: p.backoff[1]})
	return p, err
}

// WithRetryBackoff sets the wait after a failed delivery, doubled after
// each further failure up to longest. The wait ends early when the
// appservice shows it is back (appservice/routes publishes that).
func WithRetryBackoff(first, longest time.Duration) Option {
	return func(p *Pusher) { p.backoff = [2]time.Duration{first, longest} }
}

// Start begins delivery (and resumes whatever is queued from before).
func (p *Pusher) Start(ctx context.Context) {
	var ids []string
	for _, as := range p.registry.All() {
		if as.Reg.URL != "" { // no URL: the appservice only uses the client API
			ids = append(ids, as.Reg.ID)
		}
	}
	p.runner.Start(ctx, ids)
	p.notifier.Observe(p.observe)
}

// Stop ends delivery; queued events stay queued.
func (p *Pusher) Stop() { p.runner.Stop() }

func consumerOf(as *registry.AppService) storage.Consumer {
	return storage.Consumer{Kind: stream.KindAppService, ID: as.Reg.ID}
}

// Open implements queue.Deliverer: a new transaction carries the queued
// events and, for appservices that receive it, the ephemeral data since
// the appservice's cursor.
func (p *Pusher) Open(ctx context.Context, asID string, pending []int64) (*queue.Plan, bool, error) {
	as := p.registry.ByID(asID)
	if as == nil {
		return nil, false, fmt.Errorf("unknown appservice %s", asID)
	}
	return p.Feed.Open(ctx, as, pending)
}

// Deliver implements queue.Deliverer: PUT the transaction to the appservice.
func (p *Pusher) Deliver(ctx context.Context, asID string, t *queue.Txn) error {
	as := p.registry.ByID(asID)
	if as == nil {
		return fmt.Errorf("unknown appservice %s", asID)
	}
	eph, err := p.Feed.ForTxn(ctx, as, t)
	if err != nil {
		return err
	}
	evs, err := p.rooms.EventsAt(ctx, t.Positions)
	if err != nil {
		return err
	}
	if evs == nil {
		evs = []*rooms.ClientEvent{}
	}
	// Events the appservice named itself are referred to by its names.
	if err := p.rooms.RefsToAliases(ctx, evs); err != nil {
		return err
	}
	body := map[string]any{"events": evs}
	if eph != nil {
		if err := p.addEphemeral(ctx, as, body, evs, eph); err != nil {
			return err
		}
	}
	return p.send(ctx, as, t.ID, body)
}

// Acked implements queue.Deliverer: to-device messages only the
// appservice could read are deleted once delivered.
func (p *Pusher) Acked(ctx context.Context, asID string, t *queue.Txn) error {
	as := p.registry.ByID(asID)
	if as == nil {
		return nil
	}
	return p.Feed.Acked(ctx, as, t)
}

// addEphemeral puts the ephemeral data into a transaction body under the
// keys the appservice's registration asked for.
func (p *Pusher) addEphemeral(ctx context.Context, as *registry.AppService, body map[string]any, evs []*rooms.ClientEvent, eph *EphemeralData) error {
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
	users := []id.UserID{as.Sender}
	for _, ev := range evs {
		users = append(users, ev.Sender)
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

func nonNil[S any](s []S) []S {
	if s == nil {
		return []S{}
	}
	return s
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
