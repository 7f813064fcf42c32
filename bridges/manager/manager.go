package manager

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/appservice/pusher"
	"github.com/tributary-hs/tributary/appservice/registry"
	"github.com/tributary-hs/tributary/core/config"
	"github.com/tributary-hs/tributary/core/queue"
	"github.com/tributary-hs/tributary/core/rooms"
	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/plugins/host"
	"github.com/tributary-hs/tributary/plugins/proto"
	"github.com/tributary-hs/tributary/storage"
)

// AppServiceID is the ID of a plugin's internal appservice registration.
func AppServiceID(name string) string { return "plugin:" + name }

// Registrations are the internal appservice registrations of the configured
// plugins, for registry.LoadWith: an exclusive namespace of ghosts
// (@<ghost_prefix>…:server) and the bot as sender, no URL (the HTTP pusher
// leaves them alone: the manager delivers) and random tokens that no HTTP
// request ever shows.
func Registrations(plugins []config.Plugin, serverName string) ([]registry.Internal, error) {
	out := make([]registry.Internal, 0, len(plugins))
	for _, p := range plugins {
		as, hs := token(), token()
		if as == "" || hs == "" {
			return nil, errors.New("plugins: no randomness for the internal appservice tokens")
		}
		reg := &appservice.Registration{
			ID: AppServiceID(p.Name), AppToken: as, ServerToken: hs, SenderLocalpart: p.BotLocalpart,
			// Typing and receipts reach the plugin (bridgev2 bridges them
			// when the network connector handles them).
			EphemeralEvents: true,
			Namespaces:      appservice.Namespaces{UserIDs: []appservice.Namespace{{Regex: ghostRegex(p, serverName), Exclusive: true}}},
		}
		out = append(out, registry.Internal{Source: "plugins[" + p.Name + "]", Reg: reg})
	}
	return out, nil
}

func ghostRegex(p config.Plugin, serverName string) string {
	return "@" + regexp.QuoteMeta(p.GhostPrefix) + ".*:" + regexp.QuoteMeta(serverName)
}

func token() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return ""
	}
	return hex.EncodeToString(b)
}

// Events formats queued events (core/rooms.Reader).
type Events interface {
	EventsAt(ctx context.Context, positions []int64) ([]*rooms.ClientEvent, error)
	RefsToAliases(ctx context.Context, evs []*rooms.ClientEvent) error
}

// Deps are what the manager runs on.
type Deps struct {
	Plugins    []config.Plugin
	ServerName string
	// DataDir is the server's; each plugin gets DataDir/plugins/<name>.
	DataDir string
	// DatabaseURL is the server's PostgreSQL database, if it uses one: each
	// plugin keeps its bridge database there, in a schema of its own
	// (otherwise in SQLite under its data directory).
	DatabaseURL string
	Registry    *registry.Registry
	Queues      storage.InterestQueues
	Notifier    stream.Notifier
	Events      Events
	// Ephemeral, if set, feeds plugins the typing notifications and
	// receipts of their rooms (pusher.NewRoomEDUFeed); otherwise they get
	// events only.
	Ephemeral *pusher.Feed
	Host      HostDeps
	Logger    *slog.Logger
	// Backoff bounds the supervisor's relaunch waits and the queue's retry
	// waits (zero: their defaults).
	MinBackoff, MaxBackoff time.Duration
}

// Manager runs the configured plugins.
type Manager struct {
	d       Deps
	log     *slog.Logger
	sups    map[string]*host.Supervisor // by appservice ID
	hosts   map[string]*matrixHost      // by appservice ID
	runner  *queue.Runner
	ordered []string
}

var _ queue.Deliverer = (*Manager)(nil)

// New checks the plugins' registrations and builds their supervisors.
func New(d Deps) (*Manager, error) {
	if d.Registry == nil || d.Queues == nil || d.Events == nil {
		return nil, errors.New("manager: registry, queues and events are required")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	m := &Manager{d: d, log: d.Logger, sups: map[string]*host.Supervisor{}, hosts: map[string]*matrixHost{}}
	var err error
	m.runner, err = queue.New(d.Queues, stream.KindAppService, m, d.Notifier, queue.Options{Logger: d.Logger,
		FirstBackoff: d.MinBackoff, MaxBackoff: d.MaxBackoff})
	if err != nil {
		return nil, err
	}
	for _, p := range d.Plugins {
		asID := AppServiceID(p.Name)
		as := d.Registry.ByID(asID)
		if as == nil {
			return nil, fmt.Errorf("plugins[%s]: no internal appservice registration", p.Name)
		}
		var sum []byte
		if p.SHA256 != "" {
			if sum, err = hex.DecodeString(p.SHA256); err != nil {
				return nil, fmt.Errorf("plugins[%s].sha256: %w", p.Name, err)
			}
		}
		cfgJSON, err := json.Marshal(p.Config)
		if err != nil {
			return nil, fmt.Errorf("plugins[%s].config: %w", p.Name, err)
		}
		dataDir := filepath.Join(d.DataDir, "plugins", p.Name)
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("plugins[%s]: %w", p.Name, err)
		}
		mh := newMatrixHost(asID, as, d.ServerName, d.Host, d.Logger)
		start := &proto.StartRequest{ServerName: d.ServerName, BotUserId: string(as.Sender), Name: p.Name,
			GhostUserRegex: "^" + ghostRegex(p, d.ServerName) + "$", GhostLocalpartPrefix: p.GhostPrefix,
			Config: cfgJSON, DataDir: dataDir, DefaultRoomVersion: d.Host.DefaultRoomVersion}
		if d.Host.Media != nil {
			start.MaxUploadBytes = d.Host.Media.MaxUploadBytes()
		}
		if d.DatabaseURL != "" {
			start.DatabaseUrl, start.DatabaseSchema = d.DatabaseURL, PluginSchema(p.Name)
		}
		sup, err := host.New(host.Config{
			Name: p.Name, Path: p.Binary, Checksum: sum, Host: mh, Logger: d.Logger,
			// The plugin's environment is its own: only what it needs to run.
			Env:   []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dataDir, "TMPDIR=" + os.TempDir()},
			Start: start,
			// A plugin back up gets what was queued meanwhile at once.
			OnRunning:  func() { m.runner.Retry(asID) },
			MinBackoff: d.MinBackoff, MaxBackoff: d.MaxBackoff,
		})
		if err != nil {
			return nil, err
		}
		m.sups[asID] = sup
		m.hosts[asID] = mh
		m.ordered = append(m.ordered, asID)
	}
	return m, nil
}

// Start launches the plugins and their delivery loops.
func (m *Manager) Start(ctx context.Context) {
	for _, asID := range m.ordered {
		m.sups[asID].Start(ctx)
	}
	m.runner.Start(ctx, m.ordered)
	if m.d.Ephemeral != nil && m.d.Notifier != nil {
		m.d.Notifier.Observe(func(c stream.Change) { m.runner.Wake(m.d.Ephemeral.Woken(c)...) })
	}
}

// Stop ends delivery, then the plugins; queued events stay queued.
func (m *Manager) Stop() {
	m.runner.Stop()
	for _, asID := range m.ordered {
		m.sups[asID].Stop()
	}
}

// PluginSchema is the PostgreSQL schema of a plugin's bridge database.
func PluginSchema(name string) string {
	return "plugin_" + strings.ReplaceAll(name, "-", "_")
}

// Status is a plugin's process state and the bridge states its logins
// reported.
type Status struct {
	host.Status
	Logins []LoginState `json:"logins,omitempty"`
}

// Status lists the plugins' states, in configuration order.
func (m *Manager) Status() []Status {
	out := make([]Status, 0, len(m.ordered))
	for _, asID := range m.ordered {
		out = append(out, Status{Status: m.sups[asID].Status(), Logins: m.hosts[asID].loginStates()})
	}
	return out
}

// Open implements queue.Deliverer: a plugin's transaction is its queued
// events and the typing notifications and receipts of its rooms.
func (m *Manager) Open(ctx context.Context, asID string, pending []int64) (*queue.Plan, bool, error) {
	as := m.d.Registry.ByID(asID)
	if m.d.Ephemeral == nil || as == nil {
		if len(pending) == 0 {
			return nil, false, nil
		}
		return &queue.Plan{}, false, nil
	}
	return m.d.Ephemeral.Open(ctx, as, pending)
}

// Deliver implements queue.Deliverer: stream the transaction to the plugin
// and wait for its acknowledgement.
func (m *Manager) Deliver(ctx context.Context, asID string, t *queue.Txn) error {
	sup := m.sups[asID]
	if sup == nil {
		return fmt.Errorf("unknown plugin %s", asID)
	}
	evs, err := m.d.Events.EventsAt(ctx, t.Positions)
	if err != nil {
		return err
	}
	// As for HTTP appservices: events the bridge named itself (batch send)
	// are referred to by its names.
	if err := m.d.Events.RefsToAliases(ctx, evs); err != nil {
		return err
	}
	txn := &proto.Transaction{Id: t.ID, Events: make([]*proto.Event, 0, len(evs))}
	for _, ev := range evs {
		pe := &proto.Event{EventId: string(ev.EventID), RoomId: string(ev.RoomID), Sender: string(ev.Sender),
			Type: ev.Type, StateKey: ev.StateKey, OriginServerTs: ev.OriginServerTS, Content: []byte(ev.Content)}
		if len(ev.Unsigned) > 0 {
			if pe.Unsigned, err = json.Marshal(ev.Unsigned); err != nil {
				return err
			}
		}
		txn.Events = append(txn.Events, pe)
	}
	if as := m.d.Registry.ByID(asID); as != nil && m.d.Ephemeral != nil {
		eph, err := m.d.Ephemeral.ForTxn(ctx, as, t)
		if err != nil {
			return err
		}
		if eph != nil {
			for _, edu := range eph.EDUs() {
				content, err := json.Marshal(edu["content"])
				if err != nil {
					return err
				}
				typ, _ := edu["type"].(string)
				roomID, _ := edu["room_id"].(id.RoomID)
				txn.Ephemeral = append(txn.Ephemeral, &proto.Event{Type: typ, RoomId: string(roomID), Content: content})
			}
		}
	}
	return sup.Deliver(ctx, txn)
}

// Acked implements queue.Deliverer.
func (m *Manager) Acked(ctx context.Context, asID string, t *queue.Txn) error {
	if as := m.d.Registry.ByID(asID); as != nil && m.d.Ephemeral != nil {
		return m.d.Ephemeral.Acked(ctx, as, t)
	}
	return nil
}
