package e2eirc

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"

	"github.com/tributary-hs/tributary/bridges/irc/ircconn"
	"github.com/tributary-hs/tributary/internal/irctest"
)

// TestIRCPluginSASL: through the plugin binary, in front of InspIRCd with
// atheme-services linked, a Matrix user logs in with the bot's login flow,
// giving the password of a NickServ account (registered by a plain client
// first) and its name: the bridge's connection for her authenticates with
// SASL PLAIN, and the IRC side sees her nick identified to the account
// (WHOIS 330), again after the plugin was killed and restarted. A wrong
// password first is refused with the bot's answer, and the password
// messages do not stay in the management room.
func TestIRCPluginSASL(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	const account, password = "aliceacct", "alices-password"
	var bob *ircUser
	p := startPluginSetup(ctx, t, irctest.Options{Services: true}, func(irc *irctest.Server) {
		irc.RegisterAccount(t, account, password)
		bob = dialIRC(t, irc.Addr, "bob")
	})
	alice, w, mgmt := p.alice, p.w, p.mgmt

	// sendPassword answers the bot's password prompt and waits for the
	// bot to redact the answer.
	sendPassword := func(pw, nextPrompt string) {
		t.Helper()
		sent, err := alice.SendText(ctx, mgmt, pw)
		if err != nil {
			t.Fatal(err)
		}
		w.botSays(ctx, mgmt, sent.EventID, nextPrompt)
		w.wait(ctx, mgmt, "the password message redacted", func(evt *event.Event) bool {
			return evt.Type == event.EventRedaction && (evt.Redacts == sent.EventID ||
				evt.Content.AsRedaction().Redacts == sent.EventID)
		})
	}

	// A wrong password: the server refuses the login, and the bot says so.
	command(ctx, t, alice, w, mgmt, "login", "Nick")
	command(ctx, t, alice, w, mgmt, "alice", "SASL password")
	sendPassword("not-her-password", "SASL account")
	sent, err := alice.SendText(ctx, mgmt, account)
	if err != nil {
		t.Fatal(err)
	}
	answer := w.botSays(ctx, mgmt, sent.EventID, "") // the bot's next message
	if body := answer.Content.AsMessage().Body; !strings.Contains(body, "refused the SASL login") {
		t.Fatalf("login with a wrong password: the bot says %q", body)
	}

	// The right one.
	command(ctx, t, alice, w, mgmt, "login", "Nick")
	command(ctx, t, alice, w, mgmt, "alice", "SASL password")
	sendPassword(password, "SASL account")
	command(ctx, t, alice, w, mgmt, account, "as alice")

	// bob sees alice identified to her account.
	if got := whoisAccount(bob, "alice"); got != account {
		t.Fatalf("WHOIS alice: account %q, want %q", got, account)
	}

	// The login keeps the credentials: when the plugin is killed and
	// restarted, alice's connection comes back logged in again.
	bob.send(ircconn.NewMessage("MONITOR", "+", "alice"))
	bob.awaitCmd("730", "") // RPL_MONONLINE
	pid := pluginPID(p.s, p.bin)
	if pid == 0 {
		t.Fatal("no plugin process under the server")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	bob.awaitCmd("731", "") // RPL_MONOFFLINE
	bob.awaitCmd("730", "")
	if got := whoisAccount(bob, "alice"); got != account {
		t.Fatalf("WHOIS alice after the plugin's restart: account %q, want %q", got, account)
	}
}

// whoisAccount is the account WHOIS shows for nick (330), or "".
func whoisAccount(u *ircUser, nick string) string {
	u.t.Helper()
	u.send(ircconn.NewMessage("WHOIS", nick))
	var acct string
	u.await("the end of the WHOIS of "+nick, func(m *ircconn.Message) bool {
		if m.Command == ircconn.RPL_WHOISACCOUNT && strings.EqualFold(m.Param(1), nick) {
			acct = m.Param(2)
		}
		return m.Command == ircconn.RPL_ENDOFWHOIS
	})
	return acct
}
