package sdk

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Serve runs a mautrix bridgev2 network connector as a plugin of the
// homeserver that started this process, and never returns: the stock
// bridgev2.Bridge, with connector as its network side and Matrix (over the
// plugin's gRPC connection to the host) as its Matrix side, bot commands
// and all. The bridge keeps its database in the server's data directory or
// PostgreSQL database; its configuration is the plugin's block of the
// server's (see Config). A main of a bridge is
//
//	func main() { sdk.Serve(&connector.MyConnector{}, sdk.WithVersion(version)) }
func Serve(connector bridgev2.NetworkConnector, opts ...Option) {
	r := &bridgeRunner{net: connector, cmdQueue: newCommandQueue()}
	for _, o := range opts {
		o(r)
	}
	// bridgev2 logs with zerolog: as hclog JSON lines, which the host
	// logs at their level (see Logger).
	zerolog.LevelFieldName = "@level"
	zerolog.MessageFieldName = "@message"
	ServePlugin(r)
}

// Option changes how Serve runs a bridge.
type Option func(*bridgeRunner)

// WithVersion is the version the plugin reports (Describe, `tributary
// plugins list`).
func WithVersion(v string) Option { return func(r *bridgeRunner) { r.version = v } }

// bridgeRunner is the Plugin that runs a bridgev2 bridge.
type bridgeRunner struct {
	net     bridgev2.NetworkConnector
	version string

	// cmdQueue orders each user's bot commands (see commandQueue).
	cmdQueue *commandQueue

	mu sync.Mutex
	br *bridgev2.Bridge
	mx *Matrix
}

var _ Plugin = (*bridgeRunner)(nil)

func (r *bridgeRunner) Describe() Info {
	name := r.net.GetName()
	return Info{Network: name.NetworkID, Name: name.DisplayName, Version: r.version,
		Capabilities: []string{"bridgev2", "batch_send", "media", "double_puppet", "bridge_state"}}
}

// Start builds the bridge and starts it: its database, the Matrix side,
// the network connector and the logins it has.
func (r *bridgeRunner) Start(_ context.Context, env *Env) error {
	cfg, err := loadConfig(env.Config, r.net, env.ServerName)
	if err != nil {
		return err
	}
	level := zerolog.InfoLevel
	if cfg.LogLevel != "" {
		if level, err = zerolog.ParseLevel(cfg.LogLevel); err != nil {
			return fmt.Errorf("plugin config: log_level: %w", err)
		}
	}
	log := zerolog.New(logOut).Level(level)
	// The bridge outlives the Start call: it runs on a context of its own.
	ctx := log.WithContext(context.Background())
	db, err := openDatabase(ctx, env)
	if err != nil {
		return fmt.Errorf("bridge database: %w", err)
	}
	db.Log = dbutil.ZeroLogger(log.With().Str("db_section", "main").Logger())
	mx := NewMatrix(env.Host.Client(), env, cfg)
	br := bridgev2.NewBridge("", db, log, &cfg.Bridge, mx, r.net, commands.NewProcessor)
	if err := br.StartConnectors(ctx); err != nil {
		_ = db.Close()
		return fmt.Errorf("starting the bridge: %w", err)
	}
	if err := br.StartLogins(ctx); err != nil {
		br.StopWithTimeout(5 * time.Second)
		return fmt.Errorf("starting the bridge's logins: %w", err)
	}
	go br.PostStart(ctx)
	r.mu.Lock()
	r.br, r.mx = br, mx
	r.mu.Unlock()
	return nil
}

func (r *bridgeRunner) Stop(context.Context) error {
	r.mu.Lock()
	br := r.br
	r.br = nil
	r.mu.Unlock()
	if br != nil {
		br.StopWithTimeout(5 * time.Second)
	}
	return nil
}

// errStopping asks the host for a transaction again: the bridge is going.
var errStopping = errors.New("the bridge is stopping")

// matrixEventTypes are the room events bridgev2 handles (those an
// appservice bridge's Matrix connector hands it).
var matrixEventTypes = map[event.Type]bool{
	event.EventMessage: true, event.EventSticker: true, event.EventUnstablePollStart: true,
	event.EventUnstablePollResponse: true, event.EventReaction: true, event.EventRedaction: true,
	event.StateMember: true, event.StatePowerLevels: true, event.StateRoomName: true, event.BeeperSendState: true,
	event.StateRoomAvatar: true, event.StateTopic: true, event.StateTombstone: true,
	event.StateBeeperDisappearingTimer: true, event.BeeperDeleteChat: true, event.BeeperBlockUser: true,
	event.BeeperAcceptMessageRequest: true,
	// Ephemeral: bridged when the network connector handles them
	// (TypingHandlingNetworkAPI, ReadReceiptHandlingNetworkAPI).
	event.EphemeralEventTyping: true, event.EphemeralEventReceipt: true,
}

// errNoEncryption is the status of an encrypted event: plugins do no
// end-to-bridge encryption.
var errNoEncryption = bridgev2.WrapErrorInStatus(errors.New("this bridge does not support encrypted rooms")).
	WithIsCertain(true).WithErrorAsMessage().WithSendNotice(true)

// HandleEvent hands one event of the plugin's queue to bridgev2 and
// returns once bridgev2 has handled it (portal events are handled as they
// arrive), so that the host's acknowledgement means "bridged". What the
// bridge fails to bridge is reported to the sender as a standalone bridge
// does (message status notices), not retried; only a bridge that is
// stopping asks for the transaction again.
func (r *bridgeRunner) HandleEvent(ctx context.Context, evt *event.Event) error {
	r.mu.Lock()
	br, mx := r.br, r.mx
	r.mu.Unlock()
	if br == nil || br.IsStopping() {
		return errStopping
	}
	ctx = br.Log.With().Stringer("event_id", evt.ID).Stringer("room_id", evt.RoomID).
		Str("event_type", evt.Type.Type).Logger().WithContext(ctx)
	if mx.isEcho(evt) {
		return nil
	}
	if evt.Type == event.EventEncrypted {
		if !mx.fromBridge(evt.Sender) {
			mx.SendMessageStatus(ctx, &errNoEncryption, bridgev2.StatusEventInfoFromEvent(evt))
		}
		return nil
	}
	if !matrixEventTypes[evt.Type] {
		return nil
	}
	if mx.fromBridge(evt.Sender) && evt.Type != event.StateTombstone {
		return nil // the bridge's own users: not bridged back
	}
	if mx.cfg.Bridge.DropMatrixProfileChanges && isOwnProfileChange(evt) {
		return nil
	}
	if alreadyBridged(ctx, br, evt) {
		return nil
	}
	mx.knowImportedTargets(ctx, evt)
	if r.queueCommand(ctx, br, evt) {
		return nil
	}
	res := br.QueueMatrixEvent(ctx, evt)
	if !res.Success && br.IsStopping() {
		return errStopping
	}
	return nil
}

// alreadyBridged reports whether a message or reaction was bridged before:
// delivery is at least once, and a plugin that stopped after bridging an
// event but before its transaction was acknowledged gets it again. The
// network must not get it twice.
func alreadyBridged(ctx context.Context, br *bridgev2.Bridge, evt *event.Event) bool {
	var err error
	found := false
	switch evt.Type {
	case event.EventMessage, event.EventSticker:
		var msg *database.Message
		msg, err = br.DB.Message.GetPartByMXID(ctx, evt.ID)
		found = msg != nil
	case event.EventReaction:
		var r *database.Reaction
		r, err = br.DB.Reaction.GetByMXID(ctx, evt.ID)
		found = r != nil
	}
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Msg("Checking whether the event was bridged before")
	}
	if found {
		zerolog.Ctx(ctx).Debug().Msg("Event bridged before (a transaction delivered again): not bridged twice")
	}
	return found
}

// fromBridge: the bot or a ghost.
func (m *Matrix) fromBridge(user id.UserID) bool {
	if user == m.env.BotUserID {
		return true
	}
	_, ghost := m.ParseGhostMXID(user)
	return ghost
}

// isOwnProfileChange: a join after a join, a user changing their name or
// avatar.
func isOwnProfileChange(evt *event.Event) bool {
	if evt.Type != event.StateMember || evt.StateKey == nil || string(evt.Sender) != *evt.StateKey ||
		evt.Unsigned.PrevContent == nil {
		return false
	}
	cur, ok := evt.Content.Parsed.(*event.MemberEventContent)
	prev, okPrev := evt.Unsigned.PrevContent.Parsed.(*event.MemberEventContent)
	return ok && okPrev && cur.Membership == event.MembershipJoin && prev.Membership == event.MembershipJoin
}
