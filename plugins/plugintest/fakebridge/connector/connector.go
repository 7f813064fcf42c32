// Package connector is the fake network's bridgev2 NetworkConnector: what
// any bridge author writes for a network, here for plugins/plugintest/
// fakenet. It knows nothing of Tributary (the plugin main hands it to
// sdk.Serve); it would run just as well under mautrix's mxmain. Logins are
// made with the bot's `login` command (username and password); each login
// bridges its chats: portals with ghosts for the other members, messages
// both ways with replies, edits, reactions and deletions, and history
// through backfill.
//
// It imports nothing of this module but plugins/plugintest/fakenet.
package connector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.mau.fi/util/configupgrade"
	"go.mau.fi/util/ptr"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/simplevent"
	"maunium.net/go/mautrix/bridgev2/status"
	"maunium.net/go/mautrix/event"

	"github.com/tributary-hs/tributary/plugins/plugintest/fakenet"
)

// Config is the network section of the bridge's config.
type Config struct {
	// Address is the network's API.
	Address string `yaml:"address"`
	// HistoryNow fetches a new portal's older history at once, page after
	// page, as a network that hands its history over at login does;
	// otherwise bridgev2's backfill queue does it a minute after the portal
	// is created.
	HistoryNow bool `yaml:"history_now"`
}

const exampleConfig = `# The fake network's API.
address: http://127.0.0.1:8099
# Backfill a new portal's history at once instead of through the queue.
history_now: false
`

// LoginMetadata is what a login keeps in the bridge database: its token,
// and how far it followed the network's events (so that a restarted bridge
// gets what happened while it was down).
type LoginMetadata struct {
	Token    string `json:"token"`
	Position int64  `json:"position"`
}

// Connector is the fake network's bridgev2.NetworkConnector.
type Connector struct {
	Config Config
	br     *bridgev2.Bridge
}

var (
	_ bridgev2.NetworkConnector               = (*Connector)(nil)
	_ bridgev2.NetworkAPI                     = (*Client)(nil)
	_ bridgev2.BackfillingNetworkAPI          = (*Client)(nil)
	_ bridgev2.EditHandlingNetworkAPI         = (*Client)(nil)
	_ bridgev2.ReactionHandlingNetworkAPI     = (*Client)(nil)
	_ bridgev2.RedactionHandlingNetworkAPI    = (*Client)(nil)
	_ bridgev2.TypingHandlingNetworkAPI       = (*Client)(nil)
	_ bridgev2.ReadReceiptHandlingNetworkAPI  = (*Client)(nil)
	_ bridgev2.LoginProcessUserInput          = (*passwordLogin)(nil)
	_ bridgev2.IdentifierValidatingNetwork    = (*Connector)(nil)
	_ bridgev2.StoppableNetwork               = (*Connector)(nil)
	_ bridgev2.MaxFileSizeingNetwork          = (*Connector)(nil)
	_ bridgev2.PortalBridgeInfoFillingNetwork = (*Connector)(nil)
)

func (c *Connector) Init(br *bridgev2.Bridge)         { c.br = br }
func (c *Connector) Start(context.Context) error      { return nil }
func (c *Connector) Stop()                            {}
func (c *Connector) SetMaxFileSize(int64)             {}
func (c *Connector) GetBridgeInfoVersion() (int, int) { return 1, 1 }

func (c *Connector) FillPortalBridgeInfo(_ *bridgev2.Portal, content *event.BridgeEventContent) {
	content.Protocol.ExternalURL = c.Config.Address
}

func (c *Connector) ValidateUserID(id networkid.UserID) bool { return id != "" }

func (c *Connector) GetName() bridgev2.BridgeName {
	return bridgev2.BridgeName{
		DisplayName:          "Fake network",
		NetworkURL:           "https://fakenet.invalid",
		NetworkID:            "fakenet",
		BeeperBridgeType:     "github.com/tributary-hs/tributary/plugins/plugintest/fakebridge",
		DefaultCommandPrefix: "!fakenet",
	}
}

func (c *Connector) GetCapabilities() *bridgev2.NetworkGeneralCapabilities {
	return &bridgev2.NetworkGeneralCapabilities{}
}

func (c *Connector) GetConfig() (string, any, configupgrade.Upgrader) {
	return exampleConfig, &c.Config, configupgrade.NoopUpgrader
}

func (c *Connector) GetDBMetaTypes() database.MetaTypes {
	return database.MetaTypes{UserLogin: func() any { return &LoginMetadata{} }}
}

func (c *Connector) GetLoginFlows() []bridgev2.LoginFlow {
	return []bridgev2.LoginFlow{{Name: "Password", Description: "Log in with your username and password", ID: "password"}}
}

func (c *Connector) CreateLogin(_ context.Context, user *bridgev2.User, flowID string) (bridgev2.LoginProcess, error) {
	if flowID != "password" {
		return nil, fmt.Errorf("unknown login flow %q", flowID)
	}
	return &passwordLogin{c: c, user: user}, nil
}

func (c *Connector) LoadUserLogin(_ context.Context, login *bridgev2.UserLogin) error {
	meta, _ := login.Metadata.(*LoginMetadata)
	if meta == nil {
		meta = &LoginMetadata{}
	}
	login.Client = &Client{c: c, login: login, self: networkid.UserID(login.ID),
		api: &fakenet.Client{URL: c.Config.Address, Token: meta.Token}}
	return nil
}

// passwordLogin asks for a username and a password.
type passwordLogin struct {
	c    *Connector
	user *bridgev2.User
}

func (p *passwordLogin) Start(context.Context) (*bridgev2.LoginStep, error) {
	return &bridgev2.LoginStep{
		Type: bridgev2.LoginStepTypeUserInput, StepID: "fakenet.password",
		Instructions: "Enter your fake network username and password",
		UserInputParams: &bridgev2.LoginUserInputParams{Fields: []bridgev2.LoginInputDataField{
			{Type: bridgev2.LoginInputFieldTypeUsername, ID: "username", Name: "Username"},
			{Type: bridgev2.LoginInputFieldTypePassword, ID: "password", Name: "Password"},
		}},
	}, nil
}

func (p *passwordLogin) Cancel() {}

func (p *passwordLogin) SubmitUserInput(ctx context.Context, input map[string]string) (*bridgev2.LoginStep, error) {
	api, me, err := fakenet.Login(ctx, p.c.Config.Address, input["username"], input["password"])
	if err != nil {
		return nil, err
	}
	ul, err := p.user.NewLogin(ctx, &database.UserLogin{ID: networkid.UserLoginID(me.ID), RemoteName: me.Name,
		Metadata: &LoginMetadata{Token: api.Token}}, &bridgev2.NewLoginParams{DeleteOnConflict: true})
	if err != nil {
		return nil, err
	}
	ul.Client.Connect(ul.Log.WithContext(context.Background()))
	return &bridgev2.LoginStep{Type: bridgev2.LoginStepTypeComplete, StepID: "fakenet.complete",
		Instructions:   fmt.Sprintf("Logged in as %s (%s)", me.Name, me.ID),
		CompleteParams: &bridgev2.LoginCompleteParams{UserLoginID: ul.ID, UserLogin: ul}}, nil
}

// Client is one login's connection to the network.
type Client struct {
	c     *Connector
	login *bridgev2.UserLogin
	self  networkid.UserID
	api   *fakenet.Client

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

func portalKey(chat string) networkid.PortalKey {
	return networkid.PortalKey{ID: networkid.PortalID(chat)}
}

// Connect resyncs the login's chats (bridgev2 creates their portals, or
// catches up on what it missed) and then follows the network's events.
func (c *Client) Connect(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel, c.done = cancel, make(chan struct{})
	go c.run(ctx, c.done)
}

func (c *Client) Disconnect() {
	c.mu.Lock()
	cancel, done := c.cancel, c.done
	c.cancel, c.done = nil, nil
	c.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func (c *Client) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	log := c.login.Log
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateConnecting})
		var err error
		pos := c.meta().Position
		if pos == 0 {
			pos, err = c.api.Position(ctx)
		}
		if err == nil {
			err = c.resync(ctx)
		}
		if err == nil {
			c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateConnected})
			backoff = 100 * time.Millisecond
			err = c.follow(ctx, pos)
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, fakenet.ErrUnauthorized) {
			c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateBadCredentials,
				Error: "fakenet-unauthorized", Message: "The network no longer knows this login"})
			return
		}
		log.Warn().Err(err).Msg("Lost the connection to the fake network")
		c.login.BridgeState.Send(status.BridgeState{StateEvent: status.StateTransientDisconnect,
			Error: "fakenet-disconnected", Message: err.Error()})
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (c *Client) resync(ctx context.Context) error {
	chats, err := c.api.Chats(ctx)
	if err != nil {
		return err
	}
	for _, chat := range chats {
		info, err := c.chatInfo(ctx, chat)
		if err != nil {
			return err
		}
		evt := &simplevent.ChatResync{
			EventMeta: simplevent.EventMeta{Type: bridgev2.RemoteEventChatResync, PortalKey: portalKey(chat.ID),
				CreatePortal: true},
			ChatInfo: info,
		}
		if chat.LatestTS > 0 {
			evt.LatestMessageTS = time.UnixMilli(chat.LatestTS)
		}
		c.login.QueueRemoteEvent(evt)
		if c.c.Config.HistoryNow {
			go c.fetchHistory(ctx, portalKey(chat.ID))
		}
	}
	return nil
}

// fetchHistory backfills a portal's older history now, one page after the
// other, until bridgev2 says its backfill task is done.
func (c *Client) fetchHistory(ctx context.Context, key networkid.PortalKey) {
	br := c.c.br
	portal, err := br.GetExistingPortalByKey(ctx, key)
	if err != nil || portal == nil {
		return
	}
	for page := 0; page < 100_000 && ctx.Err() == nil; page++ {
		task, err := br.DB.BackfillTask.GetNextForPortal(ctx, key, false)
		if err != nil || task == nil {
			return
		}
		done := make(chan error, 1)
		br.WakeupBackfillQueue(&bridgev2.ManualBackfill{Source: c.login, Portal: portal,
			DoneCallback: func(err error) { done <- err }})
		select {
		case err := <-done:
			if err != nil {
				c.login.Log.Err(err).Msg("Backfilling history failed")
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// follow turns the network's events into bridgev2's remote events.
func (c *Client) follow(ctx context.Context, pos int64) error {
	for {
		evs, next, err := c.api.Events(ctx, pos, 25*time.Second)
		if err != nil {
			return err
		}
		for _, e := range evs {
			if rev := c.remoteEvent(e); rev != nil {
				c.login.QueueRemoteEvent(rev)
			}
		}
		if next != pos {
			pos = next
			c.meta().Position = pos
			if err := c.login.Save(ctx); err != nil {
				return err
			}
		}
	}
}

func (c *Client) meta() *LoginMetadata {
	meta, _ := c.login.Metadata.(*LoginMetadata)
	if meta == nil {
		meta = &LoginMetadata{}
		c.login.Metadata = meta
	}
	return meta
}

func (c *Client) sender(id string) bridgev2.EventSender {
	return bridgev2.EventSender{Sender: networkid.UserID(id), IsFromMe: networkid.UserID(id) == c.self}
}

func (c *Client) remoteEvent(e *fakenet.Event) bridgev2.RemoteEvent {
	meta := simplevent.EventMeta{PortalKey: portalKey(e.Chat), Sender: c.sender(e.Sender),
		Timestamp: time.UnixMilli(e.TS), StreamOrder: e.Seq}
	if e.Type == "typing" {
		meta.Type = bridgev2.RemoteEventTyping
		timeout := 10 * time.Second
		if e.Stopped {
			timeout = 0
		}
		return &simplevent.Typing{EventMeta: meta, Timeout: timeout, Type: bridgev2.TypingTypeText}
	}
	if e.Message == nil {
		return nil
	}
	target := networkid.MessageID(e.Message.ID)
	switch e.Type {
	case "read":
		meta.Type = bridgev2.RemoteEventReadReceipt
		return &simplevent.Receipt{EventMeta: meta, LastTarget: target}
	case "edit":
		meta.Type = bridgev2.RemoteEventEdit
		return &simplevent.Message[*fakenet.Message]{EventMeta: meta, Data: e.Message, TargetMessage: target,
			ConvertEditFunc: convertEdit}
	case "reaction":
		meta.Type = bridgev2.RemoteEventReaction
		return &simplevent.Reaction{EventMeta: meta, TargetMessage: target, Emoji: e.Emoji}
	case "unreaction":
		meta.Type = bridgev2.RemoteEventReactionRemove
		return &simplevent.Reaction{EventMeta: meta, TargetMessage: target}
	case "delete":
		meta.Type = bridgev2.RemoteEventMessageRemove
		return &simplevent.MessageRemove{EventMeta: meta, TargetMessage: target}
	default:
		meta.Type, meta.CreatePortal = bridgev2.RemoteEventMessage, true
		return &simplevent.Message[*fakenet.Message]{EventMeta: meta, Data: e.Message, ID: target,
			ConvertMessageFunc: convertMessage}
	}
}

func textContent(m *fakenet.Message) *event.MessageEventContent {
	return &event.MessageEventContent{MsgType: event.MsgText, Body: m.Text}
}

// convertMessage turns a network message into Matrix content; a file is
// uploaded to the homeserver as the sender's ghost.
func convertMessage(ctx context.Context, portal *bridgev2.Portal, intent bridgev2.MatrixAPI, m *fakenet.Message) (*bridgev2.ConvertedMessage, error) {
	content := textContent(m)
	if f := m.File; f != nil {
		url, file, err := intent.UploadMedia(ctx, portal.MXID, f.Data, f.Name, f.Mime)
		if err != nil {
			return nil, fmt.Errorf("uploading %s: %w", f.Name, err)
		}
		content = &event.MessageEventContent{MsgType: event.MsgFile, Body: f.Name, FileName: f.Name, URL: url,
			File: file, Info: &event.FileInfo{MimeType: f.Mime, Size: len(f.Data)}}
		if strings.HasPrefix(f.Mime, "image/") {
			content.MsgType = event.MsgImage
		}
	}
	cm := &bridgev2.ConvertedMessage{Parts: []*bridgev2.ConvertedMessagePart{{Type: event.EventMessage,
		Content: content}}}
	if m.ReplyTo != "" {
		cm.ReplyTo = &networkid.MessageOptionalPartID{MessageID: networkid.MessageID(m.ReplyTo)}
	}
	return cm, nil
}

func convertEdit(_ context.Context, _ *bridgev2.Portal, _ bridgev2.MatrixAPI, existing []*database.Message, m *fakenet.Message) (*bridgev2.ConvertedEdit, error) {
	if len(existing) == 0 {
		return nil, errors.New("no message to edit")
	}
	return &bridgev2.ConvertedEdit{ModifiedParts: []*bridgev2.ConvertedEditPart{{Part: existing[0],
		Type: event.EventMessage, Content: textContent(m)}}}, nil
}

func (c *Client) chatInfo(ctx context.Context, chat *fakenet.Chat) (*bridgev2.ChatInfo, error) {
	members := &bridgev2.ChatMemberList{IsFull: true, MemberMap: bridgev2.ChatMemberMap{}}
	for _, m := range chat.Members {
		members.MemberMap.Set(bridgev2.ChatMember{EventSender: c.sender(m), Membership: event.MembershipJoin})
	}
	return &bridgev2.ChatInfo{Name: ptr.Ptr(chat.Name), Topic: ptr.Ptr(chat.Topic), Members: members,
		Type: ptr.Ptr(database.RoomTypeDefault), CanBackfill: true}, nil
}

func (c *Client) IsLoggedIn() bool                                        { return c.api.Token != "" }
func (c *Client) LogoutRemote(context.Context)                            {}
func (c *Client) IsThisUser(_ context.Context, uid networkid.UserID) bool { return uid == c.self }

func (c *Client) GetChatInfo(ctx context.Context, portal *bridgev2.Portal) (*bridgev2.ChatInfo, error) {
	chats, err := c.api.Chats(ctx)
	if err != nil {
		return nil, err
	}
	for _, chat := range chats {
		if networkid.PortalID(chat.ID) == portal.ID {
			return c.chatInfo(ctx, chat)
		}
	}
	return nil, fmt.Errorf("no chat %s on the network", portal.ID)
}

func (c *Client) GetUserInfo(ctx context.Context, ghost *bridgev2.Ghost) (*bridgev2.UserInfo, error) {
	u, err := c.api.User(ctx, string(ghost.ID))
	if err != nil {
		return nil, err
	}
	return &bridgev2.UserInfo{Name: ptr.Ptr(u.Name)}, nil
}

func (c *Client) GetCapabilities(context.Context, *bridgev2.Portal) *event.RoomFeatures {
	anyFile := &event.FileFeatures{MimeTypes: map[string]event.CapabilitySupportLevel{"*/*": event.CapLevelFullySupported}}
	return &event.RoomFeatures{ID: "fakenet", Reply: event.CapLevelFullySupported, Edit: event.CapLevelFullySupported,
		Delete: event.CapLevelFullySupported, Reaction: event.CapLevelFullySupported, ReactionCount: 1,
		File: event.FileFeatureMap{event.MsgImage: anyFile, event.MsgFile: anyFile}}
}

func (c *Client) HandleMatrixMessage(ctx context.Context, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	var m *fakenet.Message
	var err error
	switch msg.Content.MsgType {
	case event.MsgText, event.MsgNotice, event.MsgEmote:
		var replyTo string
		if msg.ReplyTo != nil {
			replyTo = string(msg.ReplyTo.ID)
		}
		m, err = c.api.Send(ctx, string(msg.Portal.ID), msg.Content.Body, replyTo)
	case event.MsgFile, event.MsgImage:
		data, derr := c.c.br.Bot.DownloadMedia(ctx, msg.Content.URL, msg.Content.File)
		if derr != nil {
			return nil, fmt.Errorf("downloading the file: %w", derr)
		}
		f := &fakenet.File{Name: msg.Content.GetFileName(), Data: data}
		if msg.Content.Info != nil {
			f.Mime = msg.Content.Info.MimeType
		}
		m, err = c.api.SendFile(ctx, string(msg.Portal.ID), f)
	default:
		return nil, fmt.Errorf("%w: the fake network takes text and files", bridgev2.ErrUnsupportedMessageType)
	}
	if err != nil {
		return nil, err
	}
	return &bridgev2.MatrixMessageResponse{DB: &database.Message{ID: networkid.MessageID(m.ID), SenderID: c.self,
		Timestamp: time.UnixMilli(m.TS)}}, nil
}

func (c *Client) HandleMatrixEdit(ctx context.Context, msg *bridgev2.MatrixEdit) error {
	return c.api.Edit(ctx, string(msg.EditTarget.ID), msg.Content.Body)
}

func (c *Client) PreHandleMatrixReaction(_ context.Context, msg *bridgev2.MatrixReaction) (bridgev2.MatrixReactionPreResponse, error) {
	return bridgev2.MatrixReactionPreResponse{SenderID: c.self, Emoji: msg.Content.RelatesTo.Key, MaxReactions: 1}, nil
}

func (c *Client) HandleMatrixReaction(ctx context.Context, msg *bridgev2.MatrixReaction) (*database.Reaction, error) {
	return &database.Reaction{}, c.api.React(ctx, string(msg.TargetMessage.ID), msg.PreHandleResp.Emoji)
}

func (c *Client) HandleMatrixReactionRemove(ctx context.Context, msg *bridgev2.MatrixReactionRemove) error {
	return c.api.Unreact(ctx, string(msg.TargetReaction.MessageID), msg.TargetReaction.Emoji)
}

func (c *Client) HandleMatrixTyping(ctx context.Context, msg *bridgev2.MatrixTyping) error {
	return c.api.SetTyping(ctx, string(msg.Portal.ID), msg.IsTyping)
}

func (c *Client) HandleMatrixReadReceipt(ctx context.Context, msg *bridgev2.MatrixReadReceipt) error {
	if msg.ExactMessage == nil {
		return nil // read up to a message the network does not know: nothing to say
	}
	return c.api.MarkRead(ctx, string(msg.ExactMessage.ID))
}

func (c *Client) HandleMatrixMessageRemove(ctx context.Context, msg *bridgev2.MatrixMessageRemove) error {
	return c.api.Delete(ctx, string(msg.TargetMessage.ID))
}

// FetchMessages pages through a chat's history the way bridgev2 asks: a
// forward page is the newest messages after the anchor, a backward page
// the Count messages before the cursor (or the anchor).
func (c *Client) FetchMessages(ctx context.Context, p bridgev2.FetchMessagesParams) (*bridgev2.FetchMessagesResponse, error) {
	if p.ThreadRoot != "" {
		return &bridgev2.FetchMessagesResponse{}, nil
	}
	var after, before string
	if p.AnchorMessage != nil {
		if p.Forward {
			after = string(p.AnchorMessage.ID)
		} else {
			before = string(p.AnchorMessage.ID)
		}
	}
	if !p.Forward && p.Cursor != "" {
		before = string(p.Cursor)
	}
	msgs, hasMore, err := c.api.History(ctx, string(p.Portal.ID), p.Forward, after, before, p.Count)
	if err != nil {
		return nil, err
	}
	resp := &bridgev2.FetchMessagesResponse{Forward: p.Forward, HasMore: hasMore,
		Messages: make([]*bridgev2.BackfillMessage, 0, len(msgs))}
	if len(msgs) > 0 && !p.Forward {
		resp.Cursor = networkid.PaginationCursor(msgs[0].ID)
	}
	for _, m := range msgs {
		if m.Deleted {
			continue
		}
		intent, ok := p.Portal.GetIntentFor(ctx, c.sender(m.Sender), c.login, bridgev2.RemoteEventMessage)
		if !ok {
			continue
		}
		cm, err := convertMessage(ctx, p.Portal, intent, m)
		if err != nil {
			return nil, err
		}
		bm := &bridgev2.BackfillMessage{ConvertedMessage: cm, Sender: c.sender(m.Sender), ID: networkid.MessageID(m.ID),
			Timestamp: time.UnixMilli(m.TS)}
		for who, emoji := range m.Reactions {
			bm.Reactions = append(bm.Reactions, &bridgev2.BackfillReaction{Sender: c.sender(who), Emoji: emoji})
		}
		resp.Messages = append(resp.Messages, bm)
	}
	return resp, nil
}
