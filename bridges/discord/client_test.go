package discord

import (
	"testing"
	"time"

	"github.com/bwmarrin/discordgo"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/status"

	"github.com/tributary-hs/tributary/internal/fakediscord"
)

// testClient is a Client of a bot token against fake, its bridge states
// on the returned channel.
func testClient(t *testing.T, fake *fakediscord.Fake, token string) (*Client, <-chan status.BridgeState) {
	t.Helper()
	n := &Connector{Config: Config{APIURL: fake.URL()}}
	if err := n.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	states := make(chan status.BridgeState, 100)
	c := &Client{net: n, login: &bridgev2.UserLogin{UserLogin: &database.UserLogin{ID: fakediscord.BotID,
		Metadata: &LoginMetadata{Token: token}}},
		webhooks: map[string]*discordgo.Webhook{}, ownHooks: map[string]bool{}, users: map[string]*discordgo.User{},
		stateHook: func(st status.BridgeState) { states <- st }}
	t.Cleanup(c.Disconnect)
	return c, states
}

func awaitState(t *testing.T, states <-chan status.BridgeState, want status.BridgeStateEvent) status.BridgeState {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case st := <-states:
			if st.StateEvent == want {
				return st
			}
		case <-timeout:
			t.Fatalf("no %s state", want)
		}
	}
}

// TestRevokedTokenEndsSession: a token revoked while connected shows as
// BAD_CREDENTIALS and ends the session, without racing discordgo's own
// reconnects (run with -race).
func TestRevokedTokenEndsSession(t *testing.T) {
	fake := fakediscord.New(t, "tok")
	c, states := testClient(t, fake, "tok")
	c.Connect(t.Context())
	awaitState(t, states, status.StateConnected)
	fake.Revoke()
	st := awaitState(t, states, status.StateBadCredentials)
	if st.Error != errBadCreds {
		t.Fatalf("state %+v", st)
	}
	if c.IsLoggedIn() {
		t.Fatal("the session still counts as logged in")
	}
}

// TestDroppedGatewayReconnects: a gateway Discord drops is opened again
// while the token is good.
func TestDroppedGatewayReconnects(t *testing.T) {
	fake := fakediscord.New(t, "tok")
	c, states := testClient(t, fake, "tok")
	c.Connect(t.Context())
	awaitState(t, states, status.StateConnected)
	fake.Drop()
	awaitState(t, states, status.StateConnected)
	if !c.IsLoggedIn() {
		t.Fatal("not logged in after the reconnect")
	}
}

// TestLevelOf is the roles → power levels mapping of doc.go.
func TestLevelOf(t *testing.T) {
	g := &discordgo.Guild{ID: "g", OwnerID: "owner", Roles: []*discordgo.Role{
		{ID: "g", Permissions: discordgo.PermissionSendMessages},
		{ID: "admin", Permissions: discordgo.PermissionAdministrator},
		{ID: "server", Permissions: discordgo.PermissionManageServer},
		{ID: "mod", Permissions: discordgo.PermissionManageMessages},
		{ID: "kick", Permissions: discordgo.PermissionKickMembers},
		{ID: "chat", Permissions: discordgo.PermissionSendMessages | discordgo.PermissionAddReactions},
	}}
	for _, tc := range []struct {
		user  string
		roles []string
		want  int
	}{
		{"owner", nil, 100},
		{"u", []string{"admin"}, 100},
		{"u", []string{"server"}, 100},
		{"u", []string{"mod"}, 50},
		{"u", []string{"kick", "chat"}, 50},
		{"u", []string{"mod", "admin"}, 100},
		{"u", []string{"chat"}, 0},
		{"u", nil, 0},
		{"u", []string{"unknown"}, 0},
	} {
		if got := levelOf(g, tc.user, tc.roles); got != tc.want {
			t.Errorf("%s with %v: %d, want %d", tc.user, tc.roles, got, tc.want)
		}
	}
	// @everyone's permissions count for everyone.
	g.Roles[0].Permissions |= discordgo.PermissionManageMessages
	if got := levelOf(g, "u", nil); got != 50 {
		t.Errorf("with @everyone moderating: %d, want 50", got)
	}
}
