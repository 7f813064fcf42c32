package telegram

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"go.mau.fi/util/configupgrade"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
)

// Connector is the Telegram bridge's bridgev2.NetworkConnector. The zero
// value is ready for bridgev2, which loads Config from the network section.
type Connector struct {
	Config Config

	br *bridgev2.Bridge
	// HTTP is the client for the Bot API (tests may replace it before
	// Start); nil means one with timeouts of its own.
	HTTP *http.Client

	// mu guards clients. Lock order: Connector.mu before Client.mu.
	mu      sync.Mutex
	clients map[networkid.UserLoginID]*Client
}

var (
	_ bridgev2.NetworkConnector        = (*Connector)(nil)
	_ bridgev2.ConfigValidatingNetwork = (*Connector)(nil)
)

// NewConnector returns a connector whose config bridgev2 loads.
func NewConnector() *Connector { return &Connector{} }

// LoginMetadata is what the bridge keeps of a login: a bot's, or (Mode
// "user") a user account's.
type LoginMetadata struct {
	// Mode is "user" for a user account (MTProto), empty for a bot.
	Mode string `json:"mode,omitempty"`
	// UserID and Phone are the account's; Session is gotd's session
	// (auth key and DC), with which a restarted plugin connects again.
	UserID  int64  `json:"user_id,omitempty"`
	Phone   string `json:"phone,omitempty"`
	Session []byte `json:"session,omitempty"`
	// Updates is the account's update state: where to ask Telegram for
	// what came while the plugin was away.
	Updates *updateState `json:"updates,omitempty"`
	// Peers are the access hashes of the users of private chats and of
	// the channels the login bridged (by Bot API chat ID), so that Matrix
	// messages to them go out after a restart, before Telegram names them
	// again.
	Peers map[int64]int64 `json:"peers,omitempty"`

	// Token is the bot's Bot API token.
	Token string `json:"token"`
	// BotID and Username are the bot's, from getMe.
	BotID    int64  `json:"bot_id"`
	Username string `json:"username,omitempty"`
	// Offset is the next getUpdates offset: every update before it has
	// been bridged.
	Offset int64 `json:"offset,omitempty"`

	// lock, when set, is what a user client changes the fields under;
	// MarshalJSON (a login's Save, from any goroutine) holds it too.
	lock sync.Locker
}

func (m *LoginMetadata) MarshalJSON() ([]byte, error) {
	if m.lock != nil {
		m.lock.Lock()
		defer m.lock.Unlock()
	}
	type fields LoginMetadata
	return json.Marshal((*fields)(m))
}

// MessageMetadata is what the bridge keeps of a bridged message.
type MessageMetadata struct {
	// Media: the message is a photo, document… whose text is a caption
	// (edited with editMessageCaption, not editMessageText).
	Media bool `json:"media,omitempty"`
}

func (n *Connector) Init(br *bridgev2.Bridge) {
	n.br = br
	n.clients = map[networkid.UserLoginID]*Client{}
}

// ValidateConfig checks the network section.
func (n *Connector) ValidateConfig() error { return n.Config.validate() }

func (n *Connector) Start(context.Context) error {
	if err := n.Config.validate(); err != nil {
		return err
	}
	if n.HTTP == nil {
		// Long polls last PollTimeout; every other call far less.
		n.HTTP = &http.Client{Timeout: n.Config.PollTimeout + 30*time.Second}
	}
	return nil
}

func (n *Connector) GetName() bridgev2.BridgeName {
	return bridgev2.BridgeName{
		DisplayName:          "Telegram",
		NetworkURL:           "https://telegram.org",
		NetworkIcon:          "mxc://maunium.net/tJCRmUyJDsgRNgqhOgoiHWbX",
		NetworkID:            "telegram",
		BeeperBridgeType:     "github.com/tributary-hs/tributary/bridges/telegram",
		DefaultPort:          29317,
		DefaultCommandPrefix: "!tg",
	}
}

func (n *Connector) GetDBMetaTypes() database.MetaTypes {
	return database.MetaTypes{
		UserLogin: func() any { return &LoginMetadata{} },
		Message:   func() any { return &MessageMetadata{} },
	}
}

func (n *Connector) GetCapabilities() *bridgev2.NetworkGeneralCapabilities {
	return &bridgev2.NetworkGeneralCapabilities{}
}

func (n *Connector) GetBridgeInfoVersion() (info, capabilities int) { return 1, 1 }

func (n *Connector) GetConfig() (example string, data any, upgrader configupgrade.Upgrader) {
	return exampleConfig, &n.Config, n.Config.upgrader()
}

func (n *Connector) LoadUserLogin(_ context.Context, login *bridgev2.UserLogin) error {
	if meta, ok := login.Metadata.(*LoginMetadata); ok && meta.Mode == modeUser {
		login.Client = newUserClient(n, login)
		return nil
	}
	c := newClient(n, login)
	login.Client = c
	n.mu.Lock()
	n.clients[login.ID] = c
	n.mu.Unlock()
	return nil
}

func (n *Connector) forget(c *Client) {
	n.mu.Lock()
	if n.clients[c.login.ID] == c {
		delete(n.clients, c.login.ID)
	}
	n.mu.Unlock()
}
