package irc

import (
	"context"
	"sync"
	"time"

	"go.mau.fi/util/configupgrade"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/id"
)

// Connector is the IRC bridge's bridgev2.NetworkConnector. The zero value
// is ready for bridgev2 (which loads Config from the network section);
// tests may fill Config before starting the bridge.
type Connector struct {
	Config Config

	br    *bridgev2.Bridge
	nicks *nickRegistry

	// mu guards the maps below. Lock order: Connector.mu before
	// Client.mu, never the other way.
	mu sync.Mutex
	// claims: which login bridges each channel's events.
	claims map[networkid.PortalID]networkid.UserLoginID
	// clients: every loaded login.
	clients map[networkid.UserLoginID]*Client
}

var (
	_ bridgev2.NetworkConnector        = (*Connector)(nil)
	_ bridgev2.ConfigValidatingNetwork = (*Connector)(nil)
)

// NewConnector returns a connector whose config bridgev2 loads.
func NewConnector() *Connector { return &Connector{} }

// LoginMetadata is what the bridge keeps of a login.
type LoginMetadata struct {
	// Nick is the nick the user wants; a connection may have another one
	// until the server frees it.
	Nick string `json:"nick"`
	// Account and Password are the SASL PLAIN credentials, if any.
	Account  string `json:"account,omitempty"`
	Password string `json:"password,omitempty"`
	// Channels are joined on every connection.
	Channels []ChannelEntry `json:"channels,omitempty"`
}

// ChannelEntry is a channel a login is in, with its key.
type ChannelEntry struct {
	Name string `json:"name"`
	Key  string `json:"key,omitempty"`
}

func (n *Connector) Init(br *bridgev2.Bridge) {
	n.br = br
	n.claims = map[networkid.PortalID]networkid.UserLoginID{}
	n.clients = map[networkid.UserLoginID]*Client{}
	if proc, ok := br.Commands.(*commands.Processor); ok {
		proc.AddHandlers(n.commands()...)
	}
}

// ValidateConfig checks the network section (bridgev2 calls it before
// Start when the bridge is run by mxmain; Start calls it too).
func (n *Connector) ValidateConfig() error { return n.Config.validate() }

func (n *Connector) Start(context.Context) error {
	if err := n.Config.validate(); err != nil {
		return err
	}
	n.nicks = newNickRegistry(n.br.DB.KV, n.Config.NetworkID)
	return nil
}

func (n *Connector) GetName() bridgev2.BridgeName {
	name := n.Config.DisplayName
	if name == "" {
		name = "IRC"
	}
	return bridgev2.BridgeName{
		DisplayName:          name,
		NetworkURL:           "https://ircv3.net",
		NetworkID:            "irc",
		BeeperBridgeType:     "github.com/tributary-hs/tributary/bridges/irc",
		DefaultPort:          29340,
		DefaultCommandPrefix: "!irc",
	}
}

func (n *Connector) GetDBMetaTypes() database.MetaTypes {
	return database.MetaTypes{UserLogin: func() any { return &LoginMetadata{} }}
}

func (n *Connector) GetCapabilities() *bridgev2.NetworkGeneralCapabilities {
	// A Matrix user's typing is told again every 3 s while it lasts, as
	// the IRCv3 typing tag asks ("active" expires after 6 s).
	return &bridgev2.NetworkGeneralCapabilities{TypingRepeatInterval: 3 * time.Second}
}

func (n *Connector) GetBridgeInfoVersion() (info, capabilities int) { return 1, 1 }

func (n *Connector) GetConfig() (example string, data any, upgrader configupgrade.Upgrader) {
	return exampleConfig, &n.Config, n.Config.upgrader()
}

func (n *Connector) LoadUserLogin(_ context.Context, login *bridgev2.UserLogin) error {
	n.newClient(login, nil)
	return nil
}

// newClient makes login's Client; conn, when set, is a connection the
// login flow already registered.
func (n *Connector) newClient(login *bridgev2.UserLogin, prepared *preparedConn) *Client {
	c := newClient(n, login, prepared)
	login.Client = c
	n.mu.Lock()
	n.clients[login.ID] = c
	n.mu.Unlock()
	return c
}

// claim reports whether login bridges the channel's events, taking the
// channel when nobody does.
func (n *Connector) claim(portal networkid.PortalID, login networkid.UserLoginID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	cur, ok := n.claims[portal]
	if !ok {
		n.claims[portal] = login
		return true
	}
	return cur == login
}

// release gives up login's claim on a channel (or on every channel, when
// portal is "").
func (n *Connector) release(portal networkid.PortalID, login networkid.UserLoginID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for p, l := range n.claims {
		if l == login && (portal == "" || p == portal) {
			delete(n.claims, p)
		}
	}
}

// loginByNick returns the connected login whose connection has nick.
func (n *Connector) loginByNick(nick string) (*Client, bool) {
	n.mu.Lock()
	clients := make([]*Client, 0, len(n.clients))
	for _, c := range n.clients {
		clients = append(clients, c)
	}
	n.mu.Unlock()
	for _, c := range clients {
		if c.hasNick(nick) {
			return c, true
		}
	}
	return nil, false
}

// loginByUser returns the login of a Matrix user, if it is loaded.
func (n *Connector) loginByUser(user id.UserID) (*Client, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.clients[loginID(n.Config.NetworkID, user)]
	return c, ok
}

func (n *Connector) forget(c *Client) {
	n.mu.Lock()
	if n.clients[c.login.ID] == c {
		delete(n.clients, c.login.ID)
	}
	n.mu.Unlock()
	n.release("", c.login.ID)
}
