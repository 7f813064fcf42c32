package sdk

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	bstatus "maunium.net/go/mautrix/bridgev2/status"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/plugins/proto"
)

// Matrix is bridgev2's Matrix side of a plugin: a bridgev2.MatrixConnector
// whose every call is a MatrixHost call to the homeserver over the
// plugin's gRPC connection, where a standalone bridge makes appservice
// HTTP requests. It needs no registration file (the host registered the
// plugin's namespace) and no listener (events arrive on the Events
// stream, see Serve).
type Matrix struct {
	host proto.MatrixHostClient
	env  *Env
	cfg  *Config
	br   *bridgev2.Bridge
	log  *zerolog.Logger

	bot *intent
	// dpValue marks events the bridge sent as double-puppeted users, so
	// their echo is not bridged back (as appservice bridges do).
	dpValue string
	// eventIDServer is the server part of the event IDs bridgev2 chooses
	// for batch-sent events.
	eventIDServer string

	mu sync.Mutex
	// ghosts are the ghost intents made so far; registered the users known
	// to exist on the homeserver; puppets the double-puppeted users' intents.
	ghosts     map[id.UserID]*intent
	registered map[id.UserID]bool
	// creates caches rooms' create events, which never change.
	creates map[id.RoomID]*event.Event
	// sentByPuppets are events the bridge sent as double-puppeted users
	// whose echo carries no mark (redactions).
	sentByPuppets map[id.EventID]bool
	// localRooms are the portal keys of the local room IDs bridgev2 asked
	// for (adopt.go).
	localRooms map[id.RoomID]networkid.PortalKey
	// importedReal are the aliases of the real IDs of imported events
	// looked up ("" for an event no import wrote), imported.go.
	importedReal map[id.EventID]id.EventID
}

var (
	_ bridgev2.MatrixConnector                       = (*Matrix)(nil)
	_ bridgev2.MatrixConnectorWithArbitraryRoomState = (*Matrix)(nil)
	_ bridgev2.MatrixConnectorWithBridgeIdentifier   = (*Matrix)(nil)
)

// NewMatrix builds the Matrix side over a MatrixHost client, for the
// environment and configuration the host started the plugin with.
func NewMatrix(host proto.MatrixHostClient, env *Env, cfg *Config) *Matrix {
	m := &Matrix{host: host, env: env, cfg: cfg, dpValue: "tributary-plugin:" + env.Name,
		ghosts: map[id.UserID]*intent{}, registered: map[id.UserID]bool{env.BotUserID: true},
		creates: map[id.RoomID]*event.Event{}, sentByPuppets: map[id.EventID]bool{}, localRooms: map[id.RoomID]networkid.PortalKey{},
		importedReal: map[id.EventID]id.EventID{}}
	m.bot = &intent{m: m, user: env.BotUserID, kind: kindBot}
	return m
}

func (m *Matrix) Init(br *bridgev2.Bridge) {
	m.br = br
	m.log = &br.Log
	m.eventIDServer = "backfill." + m.env.ServerName
}

// Start makes sure the bot exists and has its profile.
func (m *Matrix) Start(ctx context.Context) error {
	if _, err := m.host.EnsureRegistered(ctx, &proto.EnsureRegisteredRequest{UserId: string(m.env.BotUserID)}); err != nil {
		return hostError("registering the bot", err)
	}
	if u, _ := url.Parse(m.br.Network.GetName().NetworkURL); u != nil && u.Hostname() != "" {
		m.eventIDServer = strings.TrimPrefix(u.Hostname(), "www.")
	}
	if mfs, ok := m.br.Network.(bridgev2.MaxFileSizeingNetwork); ok && m.env.MaxUploadBytes > 0 {
		mfs.SetMaxFileSize(m.env.MaxUploadBytes)
	}
	bot := m.cfg.Bot
	if bot.Displayname != "" {
		name := bot.Displayname
		if name == "remove" {
			name = ""
		}
		if err := m.bot.SetDisplayName(ctx, name); err != nil {
			m.log.Warn().Err(err).Msg("Failed to set the bot's display name")
		}
	}
	if bot.Avatar != "" {
		avatar := id.ContentURIString(bot.Avatar)
		if bot.Avatar == "remove" {
			avatar = ""
		}
		if err := m.bot.SetAvatarURL(ctx, avatar); err != nil {
			m.log.Warn().Err(err).Msg("Failed to set the bot's avatar")
		}
	}
	return nil
}

// PreStop and Stop have nothing to do: the plugin's event stream ends with
// the process.
func (m *Matrix) PreStop() {}
func (m *Matrix) Stop()    {}

// GetCapabilities says what the homeserver offers bridgev2: batch sending
// (com.beeper.batch_sending), and none of Beeper's server extensions.
func (m *Matrix) GetCapabilities() *bridgev2.MatrixCapabilities {
	return &bridgev2.MatrixCapabilities{BatchSending: true}
}

func (m *Matrix) ServerName() string { return m.env.ServerName }

// GetUniqueBridgeID names the bridge for bridgev2 (the server and the
// plugin's name, as a standalone bridge uses its appservice ID).
func (m *Matrix) GetUniqueBridgeID() string { return m.env.ServerName + "/" + m.env.Name }

// ParseGhostMXID: a ghost is @<ghost_prefix><encoded network ID>:<server>.
func (m *Matrix) ParseGhostMXID(userID id.UserID) (networkid.UserID, bool) {
	if userID == m.env.BotUserID {
		return "", false
	}
	local, server, err := userID.Parse()
	if err != nil || server != m.env.ServerName || !strings.HasPrefix(local, m.env.GhostLocalpartPrefix) {
		return "", false
	}
	decoded, err := id.DecodeUserLocalpart(strings.TrimPrefix(local, m.env.GhostLocalpartPrefix))
	if err != nil {
		return "", false
	}
	return networkid.UserID(decoded), true
}

func (m *Matrix) FormatGhostMXID(userID networkid.UserID) id.UserID {
	return id.NewUserID(m.env.GhostLocalpartPrefix+id.EncodeUserLocalpart(string(userID)), m.env.ServerName)
}

func (m *Matrix) GhostIntent(userID networkid.UserID) bridgev2.MatrixAPI {
	mxid := m.FormatGhostMXID(userID)
	m.mu.Lock()
	defer m.mu.Unlock()
	in := m.ghosts[mxid]
	if in == nil {
		in = &intent{m: m, user: mxid, kind: kindGhost}
		m.ghosts[mxid] = in
	}
	return in
}

// BotIntent is the bridge bot (bridgev2.NewBridge asks for it).
func (m *Matrix) BotIntent() bridgev2.MatrixAPI { return m.bot }

// NewUserIntent double-puppets a local user: instead of logging in with a
// shared secret or a token, the plugin asks the host, which vouches for
// its own users (bridges/manager says whom). accessToken is kept as it is;
// the bridge needs none.
func (m *Matrix) NewUserIntent(ctx context.Context, userID id.UserID, accessToken string) (bridgev2.MatrixAPI, string, error) {
	_, err := m.host.DoublePuppet(ctx, &proto.DoublePuppetRequest{UserId: string(userID)})
	if status.Code(err) == codes.PermissionDenied {
		zerolog.Ctx(ctx).Info().Err(err).Stringer("user_id", userID).Msg("The homeserver does not let the bridge double-puppet the user")
		return nil, accessToken, nil
	} else if err != nil {
		return nil, accessToken, hostError("double puppeting "+string(userID), err)
	}
	return &intent{m: m, user: userID, kind: kindPuppet}, accessToken, nil
}

// SendBridgeStatus tells the host a login's (or the bridge's) state, for
// the admin (`tributary plugins list`, metrics). Users see states as
// notices in their management room, which bridgev2 sends itself.
func (m *Matrix) SendBridgeStatus(ctx context.Context, state *bstatus.BridgeState) error {
	_, err := m.host.ReportBridgeState(ctx, &proto.BridgeState{StateEvent: string(state.StateEvent),
		UserId: string(state.UserID), RemoteId: string(state.RemoteID), RemoteName: state.RemoteName,
		Error: string(state.Error), Message: state.Message, Timestamp: state.Timestamp.UnixMilli()})
	return hostError("reporting the bridge state", err)
}

// SendMessageStatus tells the sender how bridging their event went, as the
// matrix section of the config asks: a notice on failure, MSC-style
// message status events, a read receipt from the bot on success.
func (m *Matrix) SendMessageStatus(ctx context.Context, ms *bridgev2.MessageStatus, evt *bridgev2.MessageStatusEventInfo) {
	commandFinished(ctx, ms, evt)
	if evt.EventType.IsEphemeral() || evt.SourceEventID == "" {
		return
	}
	go m.sendMessageStatus(context.WithoutCancel(ctx), ms, evt)
}

func (m *Matrix) sendMessageStatus(ctx context.Context, ms *bridgev2.MessageStatus, evt *bridgev2.MessageStatusEventInfo) {
	log := zerolog.Ctx(ctx)
	if !ms.DisableMSS && m.cfg.Matrix.MessageStatusEvents {
		if _, err := m.bot.SendMessage(ctx, evt.RoomID, event.BeeperMessageStatus,
			&event.Content{Parsed: ms.ToMSSEvent(evt)}, nil); err != nil {
			log.Err(err).Stringer("event_id", evt.SourceEventID).Msg("Failed to send message status event")
		}
	}
	if ms.SendNotice && m.cfg.Matrix.MessageErrorNotices && evt.MessageType != event.MsgNotice &&
		(ms.Status == event.MessageStatusFail || ms.Status == event.MessageStatusRetriable || ms.Step == bstatus.MsgStepDecrypted) {
		if _, err := m.bot.SendMessage(ctx, evt.RoomID, event.EventMessage,
			&event.Content{Parsed: ms.ToNoticeEvent(evt)}, nil); err != nil {
			log.Err(err).Stringer("event_id", evt.SourceEventID).Msg("Failed to send error notice")
		}
	}
	if ms.Status == event.MessageStatusSuccess && m.cfg.Matrix.DeliveryReceipts {
		if err := m.bot.MarkRead(ctx, evt.RoomID, evt.SourceEventID, time.Time{}); err != nil {
			log.Err(err).Stringer("event_id", evt.SourceEventID).Msg("Failed to send delivery receipt")
		}
	}
}

// Direct media (serving the network's files under mxc URIs of the bridge)
// needs an HTTP listener; plugins have none.
func (m *Matrix) GenerateContentURI(context.Context, networkid.MediaID) (id.ContentURIString, error) {
	return "", bridgev2.ErrDirectMediaNotEnabled
}

func (m *Matrix) ParseContentURI(context.Context, id.ContentURIString) (networkid.MediaID, error) {
	return nil, bridgev2.ErrDirectMediaNotEnabled
}

// GetPowerLevels reads the room's power levels as the bot, with the create
// event that says who the room's creators are (room version 12).
func (m *Matrix) GetPowerLevels(ctx context.Context, roomID id.RoomID) (*event.PowerLevelsEventContent, error) {
	evt, err := m.bot.GetStateEvent(ctx, roomID, event.StatePowerLevels, "")
	if err != nil {
		return nil, err
	}
	pl, ok := evt.Content.Parsed.(*event.PowerLevelsEventContent)
	if !ok {
		return nil, errors.New("the room's power levels are not a power levels event")
	}
	if pl.CreateEvent, err = m.createEvent(ctx, roomID); err != nil {
		return nil, err
	}
	return pl, nil
}

func (m *Matrix) createEvent(ctx context.Context, roomID id.RoomID) (*event.Event, error) {
	m.mu.Lock()
	ev := m.creates[roomID]
	m.mu.Unlock()
	if ev != nil {
		return ev, nil
	}
	ev, err := m.bot.GetStateEvent(ctx, roomID, event.StateCreate, "")
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.creates[roomID] = ev
	m.mu.Unlock()
	return ev, nil
}

// GetMembers lists the room's members as the bot sees them.
func (m *Matrix) GetMembers(ctx context.Context, roomID id.RoomID) (map[id.UserID]*event.MemberEventContent, error) {
	resp, err := m.host.GetMembers(ctx, &proto.GetMembersRequest{RoomId: string(roomID), UserId: string(m.env.BotUserID)})
	if err != nil {
		return nil, hostError("getting the members of "+string(roomID), err)
	}
	out := make(map[id.UserID]*event.MemberEventContent, len(resp.Events))
	for _, pe := range resp.Events {
		if pe.StateKey == nil {
			continue
		}
		evt := eventFromHost(pe)
		if content, ok := evt.Content.Parsed.(*event.MemberEventContent); ok {
			out[id.UserID(*pe.StateKey)] = content
		}
	}
	return out, nil
}

// GetMemberInfo is a member's event content; "leave" for a user who never
// was in the room.
func (m *Matrix) GetMemberInfo(ctx context.Context, roomID id.RoomID, userID id.UserID) (*event.MemberEventContent, error) {
	evt, err := m.bot.GetStateEvent(ctx, roomID, event.StateMember, string(userID))
	if errors.Is(err, mautrix.MNotFound) {
		return &event.MemberEventContent{Membership: event.MembershipLeave}, nil
	} else if err != nil {
		return nil, err
	}
	if content, ok := evt.Content.Parsed.(*event.MemberEventContent); ok {
		return content, nil
	}
	return &event.MemberEventContent{Membership: event.MembershipLeave}, nil
}

// GetStateEvent reads a state event as the bot; mautrix.MNotFound when
// the room has none.
func (m *Matrix) GetStateEvent(ctx context.Context, roomID id.RoomID, eventType event.Type, stateKey string) (*event.Event, error) {
	return m.bot.GetStateEvent(ctx, roomID, eventType, stateKey)
}

// BatchSend inserts a batch (backfill) through the host's batch send:
// original senders and timestamps, the event IDs bridgev2 chose, all or
// nothing. Senders are registered first, as appservice intents register
// themselves before they act.
func (m *Matrix) BatchSend(ctx context.Context, roomID id.RoomID, req *mautrix.ReqBeeperBatchSend, _ []*bridgev2.MatrixSendExtra) (*mautrix.RespBeeperBatchSend, error) {
	preq := &proto.BatchSendRequest{RoomId: string(roomID), Forward: req.Forward,
		ForwardIfNoMessages: req.ForwardIfNoMessages, SendNotification: req.SendNotification,
		MarkReadBy: string(req.MarkReadBy), Events: make([]*proto.BatchEvent, 0, len(req.Events))}
	seen := map[id.UserID]bool{}
	for _, evt := range req.Events {
		if !seen[evt.Sender] {
			seen[evt.Sender] = true
			if err := m.ensureRegistered(ctx, evt.Sender); err != nil {
				return nil, err
			}
		}
		if m.isPuppet(evt.Sender) {
			m.markDoublePuppeted(&evt.Content, evt.Timestamp)
		}
		raw, err := json.Marshal(&evt.Content)
		if err != nil {
			return nil, err
		}
		preq.Events = append(preq.Events, &proto.BatchEvent{EventId: string(evt.ID), Type: evt.Type.Type,
			StateKey: evt.StateKey, Sender: string(evt.Sender), Content: raw, OriginServerTs: evt.Timestamp})
	}
	resp, err := m.host.BatchSend(ctx, preq)
	if err != nil {
		return nil, hostError("batch send", err)
	}
	out := &mautrix.RespBeeperBatchSend{EventIDs: make([]id.EventID, len(resp.EventIds))}
	for i, e := range resp.EventIds {
		out.EventIDs[i] = id.EventID(e)
	}
	return out, nil
}

// GenerateDeterministicEventID names a batch-sent event after its room,
// message and part: bridgev2 records the name before the event exists; the
// host keeps it as an alias of the real event.
func (m *Matrix) GenerateDeterministicEventID(roomID id.RoomID, _ networkid.PortalKey, messageID networkid.MessageID, partID networkid.PartID) id.EventID {
	h := sha256.New()
	h.Write([]byte(roomID))
	h.Write([]byte{0})
	h.Write([]byte(messageID))
	h.Write([]byte{0})
	h.Write([]byte(partID))
	return id.EventID("$" + base64.RawURLEncoding.EncodeToString(h.Sum(nil)) + ":" + m.eventIDServer)
}

// GenerateDeterministicRoomID names a portal's room before it exists
// (bridgev2 puts it in the create request as its local room ID). This
// server does not let bridges choose room IDs; the SDK uses the name to
// know which portal a create request is for (adopt.go).
func (m *Matrix) GenerateDeterministicRoomID(key networkid.PortalKey) id.RoomID {
	roomID := id.RoomID("!" + string(key.ID) + "." + string(key.Receiver) + ":" + m.env.ServerName)
	m.rememberLocalRoom(roomID, key)
	return roomID
}

func (m *Matrix) GenerateReactionEventID(id.RoomID, *database.Message, networkid.UserID, networkid.EmojiID) id.EventID {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return id.EventID("$" + base64.RawURLEncoding.EncodeToString(b) + ":" + m.eventIDServer)
}

// ensureRegistered creates a ghost on the homeserver the first time the
// bridge acts as it.
func (m *Matrix) ensureRegistered(ctx context.Context, user id.UserID) error {
	m.mu.Lock()
	done := m.registered[user]
	m.mu.Unlock()
	if done {
		return nil
	}
	if _, ok := m.ParseGhostMXID(user); !ok {
		return nil // the bot, or a double-puppeted user: they exist
	}
	if _, err := m.host.EnsureRegistered(ctx, &proto.EnsureRegisteredRequest{UserId: string(user)}); err != nil {
		return hostError("registering "+string(user), err)
	}
	m.mu.Lock()
	m.registered[user] = true
	m.mu.Unlock()
	return nil
}

// isPuppet: a user who is neither the bot nor a ghost.
func (m *Matrix) isPuppet(user id.UserID) bool {
	if user == m.env.BotUserID {
		return false
	}
	_, ghost := m.ParseGhostMXID(user)
	return !ghost
}

// markDoublePuppeted marks content sent as a double-puppeted user, so that
// its echo is not bridged back.
func (m *Matrix) markDoublePuppeted(content *event.Content, ts int64) {
	if content.Raw == nil {
		content.Raw = map[string]any{}
	}
	content.Raw[doublePuppetKey] = m.dpValue
	if ts != 0 {
		content.Raw[doublePuppetTSKey] = ts
	}
}

// The keys appservice bridges mark double-puppeted events with
// (mautrix appservice.DoublePuppetKey and DoublePuppetTSKey).
const (
	doublePuppetKey   = "fi.mau.double_puppet_source"
	doublePuppetTSKey = "fi.mau.double_puppet_ts"
)

func (m *Matrix) rememberPuppetEvent(evID id.EventID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.sentByPuppets) > 10_000 {
		clear(m.sentByPuppets) // a bound; echoes come back within seconds
	}
	m.sentByPuppets[evID] = true
}

// isEcho reports whether an event from the homeserver is one the bridge
// sent itself as a double-puppeted user.
func (m *Matrix) isEcho(evt *event.Event) bool {
	if v, ok := evt.Content.Raw[doublePuppetKey]; ok && v == m.dpValue {
		ts, ok := evt.Content.Raw[doublePuppetTSKey].(float64)
		if !ok || int64(ts) == evt.Timestamp {
			return true
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sentByPuppets[evt.ID]
}
