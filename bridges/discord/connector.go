package discord

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bwmarrin/discordgo"
	"go.mau.fi/util/configupgrade"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/bridgev2/status"
)

// Connector is the Discord bridge's bridgev2.NetworkConnector.
type Connector struct {
	Config Config

	br   *bridgev2.Bridge
	http *http.Client
	mu   sync.Mutex
	// clients: every loaded login, by login ID.
	clients map[networkid.UserLoginID]*Client
}

var (
	_ bridgev2.NetworkConnector        = (*Connector)(nil)
	_ bridgev2.ConfigValidatingNetwork = (*Connector)(nil)
)

// NewConnector returns a connector whose config bridgev2 loads.
func NewConnector() *Connector { return &Connector{} }

// LoginMetadata is what the bridge keeps of a login: its token, and
// whether it is a user account's (puppeting mode) rather than a bot's.
type LoginMetadata struct {
	Token string `json:"token"`
	User  bool   `json:"user,omitempty"`
}

func (n *Connector) Init(br *bridgev2.Bridge) {
	n.br = br
	n.clients = map[networkid.UserLoginID]*Client{}
}

func (n *Connector) ValidateConfig() error { return n.Config.validate() }

func (n *Connector) Start(context.Context) error {
	if err := n.Config.validate(); err != nil {
		return err
	}
	n.http = &http.Client{Timeout: time.Minute, Transport: redirect{to: n.Config.api, next: http.DefaultTransport}}
	return nil
}

func (n *Connector) GetName() bridgev2.BridgeName {
	return bridgev2.BridgeName{
		DisplayName: n.Config.DisplayName,
		// NetworkURL stays empty: the SDK names batch-sent events after its
		// host, and `tributary import discord` named the imported ones
		// ":backfill.<server>", the SDK's name without it. The same names
		// let the bridge point at imported messages.
		NetworkURL:           "",
		NetworkID:            "discord",
		BeeperBridgeType:     "github.com/tributary-hs/tributary/bridges/discord",
		DefaultPort:          29334,
		DefaultCommandPrefix: "!discord",
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
	c := &Client{net: n, login: login, webhooks: map[string]*discordgo.Webhook{}, ownHooks: map[string]bool{},
		users: map[string]*discordgo.User{}}
	login.Client = c
	n.mu.Lock()
	n.clients[login.ID] = c
	n.mu.Unlock()
	return nil
}

// session is a discordgo session of a token (a user account's if user,
// else a bot's), through the configured API.
func (n *Connector) session(token string, user bool) (*discordgo.Session, error) {
	token = strings.TrimPrefix(token, "Bot ")
	if !user {
		token = "Bot " + token
	}
	s, err := discordgo.New(token)
	if err != nil {
		return nil, err
	}
	s.Client = n.http
	s.Identify.Intents = discordgo.IntentsGuilds | discordgo.IntentsGuildMessages | discordgo.IntentsGuildMessageReactions |
		discordgo.IntentsGuildMessageTyping | discordgo.IntentsDirectMessages | discordgo.IntentsDirectMessageReactions |
		discordgo.IntentsDirectMessageTyping | discordgo.IntentsMessageContent | discordgo.IntentsGuildMembers
	// The client reconnects on its own, checking the token first
	// (Client.reconnect); this is set before any of discordgo's goroutines
	// runs and never changed.
	s.ShouldReconnectOnError = false
	s.ShouldRetryOnRateLimit = true
	// Handlers run one after the other, in the gateway's order: a message
	// is bridged before its edit or deletion.
	s.SyncEvents = true
	s.MaxRestRetries = 1
	return s, nil
}

// errBadToken marks a token Discord refuses.
var errBadToken = errors.New("the token was refused by Discord")

// whoAmI is the bot of a token; errBadToken if Discord refuses it.
func whoAmI(s *discordgo.Session) (*discordgo.User, error) {
	u, err := s.User("@me")
	var re *discordgo.RESTError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode == http.StatusUnauthorized {
		return nil, fmt.Errorf("%w (%s)", errBadToken, re.Response.Status)
	}
	return u, err
}

const (
	flowBot      = "bot"
	flowUser     = "user-token"
	stepToken    = "org.tributary.discord.token"
	stepDone     = "org.tributary.discord.complete"
	fieldToken   = "token"
	errBadCreds  = status.BridgeStateErrorCode("discord-bad-token")
	errConnFails = status.BridgeStateErrorCode("discord-connect-failed")
)

func (n *Connector) GetLoginFlows() []bridgev2.LoginFlow {
	return []bridgev2.LoginFlow{{ID: flowBot, Name: "Bot token",
		Description: "Bridge through a Discord bot of yours (Developer Portal → your application → Bot → token). " +
			"The bot needs the Message Content and Server Members intents and the Manage Webhooks permission " +
			"(Manage Messages to delete others' messages from Matrix)."},
		{ID: flowUser, Name: "User token (optional puppeting, at your own risk)",
			Description: "OPTIONAL, NOT RECOMMENDED: puppet your own Discord account with its token. Discord's terms " +
				"forbid automating user accounts: the account may meet captchas or be disabled. Your Matrix " +
				"messages are sent as your Discord account rather than through webhooks."}}
}

func (n *Connector) CreateLogin(_ context.Context, user *bridgev2.User, flowID string) (bridgev2.LoginProcess, error) {
	if flowID != flowBot && flowID != flowUser {
		return nil, fmt.Errorf("discord: unknown login flow %q", flowID)
	}
	return &loginProcess{net: n, user: user, userToken: flowID == flowUser}, nil
}

// loginProcess asks for a token, checks it with Discord and keeps it.
type loginProcess struct {
	net       *Connector
	user      *bridgev2.User
	userToken bool
}

var _ bridgev2.LoginProcessUserInput = (*loginProcess)(nil)

func (lp *loginProcess) Start(context.Context) (*bridgev2.LoginStep, error) {
	what := "Bot token"
	instructions := "Send the token of your Discord bot."
	if lp.userToken {
		what = "User token"
		instructions = "Send the token of your Discord account. Discord forbids automating user accounts: " +
			"it may ask for captchas or disable the account. A bot token is the safe way."
	}
	return &bridgev2.LoginStep{
		Type:         bridgev2.LoginStepTypeUserInput,
		StepID:       stepToken,
		Instructions: instructions,
		UserInputParams: &bridgev2.LoginUserInputParams{Fields: []bridgev2.LoginInputDataField{{
			Type: bridgev2.LoginInputFieldTypeToken, ID: fieldToken, Name: what,
		}}},
	}, nil
}

func (lp *loginProcess) SubmitUserInput(ctx context.Context, input map[string]string) (*bridgev2.LoginStep, error) {
	token := strings.TrimSpace(input[fieldToken])
	s, err := lp.net.session(token, lp.userToken)
	if err != nil {
		return nil, err
	}
	me, err := whoAmI(s)
	if err != nil {
		return nil, err
	}
	if me.Bot == lp.userToken {
		if lp.userToken {
			return nil, errors.New("that is a bot's token: log in with the bot flow")
		}
		return nil, errors.New("that is not a bot's token")
	}
	login, err := lp.user.NewLogin(ctx, &database.UserLogin{
		ID:         networkid.UserLoginID(me.ID),
		RemoteName: me.Username,
		Metadata:   &LoginMetadata{Token: token, User: lp.userToken},
	}, &bridgev2.NewLoginParams{DeleteOnConflict: true})
	if err != nil {
		return nil, fmt.Errorf("saving the login: %w", err)
	}
	login.Client.Connect(login.Log.WithContext(context.WithoutCancel(ctx)))
	done := fmt.Sprintf("Logged in as the bot %s.", me.Username)
	if lp.userToken {
		done = fmt.Sprintf("Logged in as %s (your Discord account).", me.Username)
	}
	return &bridgev2.LoginStep{
		Type:           bridgev2.LoginStepTypeComplete,
		StepID:         stepDone,
		Instructions:   done,
		CompleteParams: &bridgev2.LoginCompleteParams{UserLoginID: login.ID, UserLogin: login},
	}, nil
}

func (lp *loginProcess) Cancel() {}
