package slack

import (
	"context"
	"net/http"
	"sync"

	"go.mau.fi/util/configupgrade"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
)

// Connector is the Slack bridge's bridgev2.NetworkConnector. The zero
// value is ready for bridgev2, which loads Config from the network section.
type Connector struct {
	Config Config

	br   *bridgev2.Bridge
	http *http.Client

	mu sync.Mutex
	// clients are the loaded logins.
	clients map[networkid.UserLoginID]*Client
	// emojis are the workspaces' custom emoji (emoji.go), by team.
	emojis map[string]*emojiCache
}

var (
	_ bridgev2.NetworkConnector        = (*Connector)(nil)
	_ bridgev2.ConfigValidatingNetwork = (*Connector)(nil)
)

// NewConnector returns a connector whose config bridgev2 loads.
func NewConnector() *Connector { return &Connector{} }

// LoginMetadata is what the bridge keeps of a login.
type LoginMetadata struct {
	// Mode is "bot" (a bot token; the bridge relays) or "user" (a user
	// token; the bridge puppets).
	Mode     string `json:"mode"`
	Token    string `json:"token"`
	AppToken string `json:"app_token"`
	TeamID   string `json:"team_id"`
	TeamName string `json:"team_name,omitempty"`
	// UserID is the Slack user the token acts as (the bot's user in bot
	// mode).
	UserID string `json:"user_id"`
}

func (n *Connector) Init(br *bridgev2.Bridge) {
	n.br = br
	n.clients = map[networkid.UserLoginID]*Client{}
	n.http = &http.Client{}
}

// ValidateConfig checks the network section.
func (n *Connector) ValidateConfig() error { return n.Config.validate() }

func (n *Connector) Start(context.Context) error {
	if err := n.Config.validate(); err != nil {
		return err
	}
	n.http.Timeout = n.Config.FileTimeout
	return nil
}

func (n *Connector) GetName() bridgev2.BridgeName {
	return bridgev2.BridgeName{
		DisplayName: n.Config.DisplayName,
		// NetworkURL stays empty: the SDK names batch-sent events after its
		// host, and `tributary import slack` named the imported ones
		// ":backfill.<server>", the SDK's name without it. The same names
		// let the bridge point at imported messages.
		NetworkURL:           "",
		NetworkID:            "slack",
		BeeperBridgeType:     "github.com/tributary-hs/tributary/bridges/slack",
		DefaultPort:          29335,
		DefaultCommandPrefix: "!slack",
	}
}

func (n *Connector) GetDBMetaTypes() database.MetaTypes {
	return database.MetaTypes{UserLogin: func() any { return &LoginMetadata{} }}
}

func (n *Connector) GetCapabilities() *bridgev2.NetworkGeneralCapabilities {
	return &bridgev2.NetworkGeneralCapabilities{}
}

func (n *Connector) GetBridgeInfoVersion() (info, capabilities int) { return 1, 1 }

func (n *Connector) GetConfig() (example string, data any, upgrader configupgrade.Upgrader) {
	return exampleConfig, &n.Config, n.Config.upgrader()
}

func (n *Connector) LoadUserLogin(_ context.Context, login *bridgev2.UserLogin) error {
	n.newClient(login)
	return nil
}

func (n *Connector) newClient(login *bridgev2.UserLogin) *Client {
	c := newClient(n, login)
	login.Client = c
	n.mu.Lock()
	if old := n.clients[login.ID]; old != nil && old != c {
		old.Disconnect()
	}
	n.clients[login.ID] = c
	n.mu.Unlock()
	return c
}

func (n *Connector) forget(c *Client) {
	n.mu.Lock()
	if n.clients[c.login.ID] == c {
		delete(n.clients, c.login.ID)
	}
	n.mu.Unlock()
}
