package ircconn

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tributary-hs/tributary/internal/irctest"
)

// ircClient is a Conn with a Tracker fed from the events the test reads.
type ircClient struct {
	t  *testing.T
	c  *Conn
	tr *Tracker
}

func dialInsp(t *testing.T, addr, nick string, tr *Tracker) *ircClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, Config{Addr: addr, Nick: nick, Flood: FloodControl{Burst: 100, Interval: time.Millisecond}})
	if err != nil {
		t.Fatalf("%s: %v", nick, err)
	}
	t.Cleanup(func() { c.Close() })
	if tr == nil {
		tr = NewTracker()
	}
	return &ircClient{t: t, c: c, tr: tr}
}

// await returns the first event matching pred, feeding the tracker every
// event on the way.
func (cl *ircClient) await(what string, pred func(Event) bool) Event {
	cl.t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-cl.c.Events():
			if !ok {
				cl.t.Fatalf("%s: connection ended waiting for %s: %v", cl.c.Nick(), what, cl.c.Err())
			}
			cl.tr.HandleEvent(ev)
			if pred(ev) {
				return ev
			}
		case <-timeout:
			cl.t.Fatalf("%s: timed out waiting for %s", cl.c.Nick(), what)
		}
	}
}

func (cl *ircClient) awaitMsg(what string, pred func(*Message) bool) *Message {
	cl.t.Helper()
	return cl.await(what, func(ev Event) bool { return ev.Message != nil && pred(ev.Message) }).Message
}

func (cl *ircClient) awaitCmd(command, param0 string) *Message {
	cl.t.Helper()
	return cl.awaitMsg(command+" "+param0, func(m *Message) bool {
		return m.Command == command && (param0 == "" || strings.EqualFold(m.Param(0), param0))
	})
}

// join joins and waits until the tracker has the names.
func (cl *ircClient) join(channel string) {
	cl.t.Helper()
	if err := cl.c.Join(context.Background(), channel, ""); err != nil {
		cl.t.Fatal(err)
	}
	cl.awaitMsg("end of names of "+channel, func(m *Message) bool {
		return m.Command == RPL_ENDOFNAMES && strings.EqualFold(m.Param(1), channel)
	})
}

func (cl *ircClient) say(target, text string) []*Message {
	cl.t.Helper()
	echoes, err := cl.c.Privmsg(context.Background(), target, text, nil)
	if err != nil {
		cl.t.Fatal(err)
	}
	return echoes
}

// TestInspIRCd runs the client against a real InspIRCd 3.
func TestInspIRCd(t *testing.T) {
	checkGoroutines(t)
	addr := irctest.Start(t, irctest.Options{}).Addr
	ctx := context.Background()

	t.Run("caps", func(t *testing.T) {
		t.Parallel() // each subtest has its own nicks and channels
		a := dialInsp(t, addr, "capper", nil)
		t.Logf("InspIRCd offers: %v", a.c.OfferedCaps())
		for _, want := range []string{"server-time", "message-tags", "echo-message", "batch", "labeled-response"} {
			if !a.c.HasCap(want) {
				t.Errorf("%s not enabled; enabled: %v", want, a.c.Caps())
			}
		}
		is := a.c.ISupport()
		if is.Network() != "Test" || is.CaseMapping() != CaseMappingRFC1459 || is.LineLen() != 512 {
			t.Errorf("ISUPPORT NETWORK %q CASEMAPPING %v LINELEN %d", is.Network(), is.CaseMapping(), is.LineLen())
		}
		if m, s := is.Prefix(); m != "ov" || s != "@+" {
			t.Errorf("PREFIX %q %q", m, s)
		}
		if a.c.SupportsHistory() {
			t.Error("InspIRCd 3 has no CHATHISTORY, yet SupportsHistory says yes")
		}
	})

	t.Run("nick in use", func(t *testing.T) {
		t.Parallel() // each subtest has its own nicks and channels
		a := dialInsp(t, addr, "dupe", nil)
		b := dialInsp(t, addr, "dupe", nil)
		if a.c.Nick() != "dupe" || b.c.Nick() != "dupe_" {
			t.Fatalf("nicks %q and %q", a.c.Nick(), b.c.Nick())
		}
	})

	t.Run("messages", func(t *testing.T) {
		t.Parallel() // each subtest has its own nicks and channels
		a := dialInsp(t, addr, "alice", nil)
		b := dialInsp(t, addr, "bob", nil)
		a.join("#msgs")
		b.join("#msgs")
		before := time.Now().Add(-time.Minute)
		echoes := a.say("#msgs", "hello bob")
		if len(echoes) != 1 || echoes[0].MsgID() == "" || echoes[0].Time().Before(before) || echoes[0].Trailing() != "hello bob" {
			t.Fatalf("echo %v", echoes)
		}
		got := b.awaitCmd("PRIVMSG", "#msgs")
		if got.Trailing() != "hello bob" || got.Prefix().Name != "alice" || got.MsgID() != echoes[0].MsgID() || !got.Time().Equal(echoes[0].Time()) {
			t.Fatalf("bob got %v (tags %v), echo had %v", got, got.Tags, echoes[0].Tags)
		}
		// An action and a client-only tag go through.
		if _, err := b.c.Action(ctx, "#msgs", "waves", map[string]string{"+draft/reply": got.MsgID()}); err != nil {
			t.Fatal(err)
		}
		act := a.awaitCmd("PRIVMSG", "#msgs")
		if text, ok := ParseAction(act.Trailing()); !ok || text != "waves" || act.Tags["+draft/reply"] != got.MsgID() {
			t.Fatalf("action %v tags %v", act, act.Tags)
		}
		// Without labeled-response in the way, the echo comes out of Events.
		if err := a.c.Send(ctx, NewMessage("PRIVMSG", "#msgs", "unlabeled")); err != nil {
			t.Fatal(err)
		}
		if e := a.awaitCmd("PRIVMSG", "#msgs"); e.Trailing() != "unlabeled" || e.Prefix().Name != "alice" {
			t.Fatalf("echo %v", e)
		}
	})

	t.Run("long message", func(t *testing.T) {
		t.Parallel() // each subtest has its own nicks and channels
		a := dialInsp(t, addr, "longa", nil)
		b := dialInsp(t, addr, "longb", nil)
		a.join("#long")
		b.join("#long")
		var sb strings.Builder
		for i := 0; sb.Len() < 3000; i++ {
			sb.WriteString("word" + strconv.Itoa(i) + " ünïcödé ☃ ")
		}
		text := strings.TrimSpace(sb.String())
		echoes := a.say("#long", text)
		if len(echoes) < 6 {
			t.Fatalf("%d lines for %d bytes", len(echoes), len(text))
		}
		var got strings.Builder
		for got.Len() < len(text) {
			m := b.awaitCmd("PRIVMSG", "#long")
			line := &Message{Source: m.Source, Command: m.Command, Params: m.Params} // as relayed, tags aside
			if n := len(line.Bytes()); n > 512 {
				t.Fatalf("relayed line of %d bytes", n)
			}
			got.WriteString(m.Trailing())
		}
		if got.String() != text {
			t.Fatalf("reassembled text differs:\n%q\n%q", got.String(), text)
		}
	})

	t.Run("topic and kick", func(t *testing.T) {
		t.Parallel() // each subtest has its own nicks and channels
		a := dialInsp(t, addr, "opper", nil)
		b := dialInsp(t, addr, "victim", nil)
		a.join("#tk")
		b.join("#tk")
		if mem, _ := b.tr.Channel("#tk"); mem.Members["opper"].Modes != "o" || mem.Members["victim"].Modes != "" {
			t.Fatalf("names with prefixes: %+v", mem.Members)
		}
		if err := a.c.SetTopic(ctx, "#tk", "a new topic"); err != nil {
			t.Fatal(err)
		}
		top := b.awaitCmd("TOPIC", "#tk")
		if top.Param(1) != "a new topic" || top.Prefix().Name != "opper" || top.Time().IsZero() {
			t.Fatalf("TOPIC %v", top)
		}
		if ch, _ := b.tr.Channel("#tk"); ch.Topic != "a new topic" || ch.TopicSetBy != "opper" {
			t.Fatalf("tracked topic %+v", ch)
		}
		if err := a.c.Send(ctx, NewMessage("MODE", "#tk", "+v", "victim")); err != nil {
			t.Fatal(err)
		}
		b.awaitCmd("MODE", "#tk")
		if ch, _ := b.tr.Channel("#TK"); ch.Members["victim"].Modes != "v" {
			t.Fatalf("after +v: %+v", ch.Members)
		}
		if err := a.c.Kick(ctx, "#tk", "victim", "bye now"); err != nil {
			t.Fatal(err)
		}
		k := b.awaitCmd("KICK", "#tk")
		if k.Param(1) != "victim" || k.Param(2) != "bye now" || k.Prefix().Name != "opper" {
			t.Fatalf("KICK %v", k)
		}
		if _, ok := b.tr.Channel("#tk"); ok {
			t.Fatal("the kicked client still tracks the channel")
		}
		a.awaitCmd("KICK", "#tk")
		if ch, _ := a.tr.Channel("#tk"); !reflect.DeepEqual(ch.Nicks(), []string{"opper"}) {
			t.Fatalf("opper sees %v", ch.Nicks())
		}
	})

	t.Run("chanhistory replay", func(t *testing.T) {
		t.Parallel() // each subtest has its own nicks and channels
		a := dialInsp(t, addr, "historian", nil)
		a.join("#hist")
		// chanhistory keeps lines only in channels with mode +H lines:period.
		if err := a.c.Send(ctx, NewMessage("MODE", "#hist", "+H", "10:1h")); err != nil {
			t.Fatal(err)
		}
		a.awaitCmd("MODE", "#hist")
		var sent []*Message
		for _, text := range []string{"first", "second", "third"} {
			sent = append(sent, a.say("#hist", text)...)
		}
		late := dialInsp(t, addr, "latecomer", nil)
		if err := late.c.Join(ctx, "#hist", ""); err != nil {
			t.Fatal(err)
		}
		// InspIRCd replays after the join burst; with the batch cap it may
		// wrap the replay in a batch. Collect the three lines either way.
		var got []*Message
		var inBatch string
		for len(got) < 3 {
			ev := late.await("history replay", func(ev Event) bool {
				return ev.Batch != nil || (ev.Message != nil && ev.Message.Command == "PRIVMSG")
			})
			if ev.Batch != nil {
				inBatch = ev.Batch.Type
				for _, m := range ev.Batch.Messages() {
					if m.Command == "PRIVMSG" {
						got = append(got, m)
					}
				}
				continue
			}
			got = append(got, ev.Message)
		}
		// InspIRCd 3 wraps the replay in a "chathistory" batch for clients
		// with the batch cap.
		if inBatch != "chathistory" {
			t.Errorf("replay batch type %q, want chathistory", inBatch)
		}
		for i, m := range got {
			if m.Trailing() != sent[i].Trailing() || m.Prefix().Name != "historian" {
				t.Fatalf("replayed %d: %v", i, m)
			}
			// chanhistory keeps whole seconds.
			if m.Time().IsZero() || !m.Time().Equal(sent[i].Time().Truncate(time.Second)) {
				t.Fatalf("replayed %q at %v, sent at %v", m.Trailing(), m.Time(), sent[i].Time())
			}
		}
		if ch, ok := late.tr.Channel("#hist"); !ok || !ch.Synced || !reflect.DeepEqual(ch.Nicks(), []string{"historian", "latecomer"}) {
			t.Fatalf("tracker %+v", ch)
		}
	})

	t.Run("reconnect resyncs", func(t *testing.T) {
		t.Parallel() // each subtest has its own nicks and channels
		tr := NewTracker()
		a := dialInsp(t, addr, "phoenix", tr)
		b := dialInsp(t, addr, "keeper", nil)
		op := dialInsp(t, addr, "killer", nil)
		b.join("#re")
		a.join("#re")
		if err := b.c.SetTopic(ctx, "#re", "before"); err != nil {
			t.Fatal(err)
		}
		a.awaitCmd("TOPIC", "#re")
		if err := b.c.Send(ctx, NewMessage("MODE", "#re", "+l", "42")); err != nil {
			t.Fatal(err)
		}
		a.awaitCmd("MODE", "#re")
		before, _ := tr.Channel("#re")
		if before.Topic != "before" || before.Modes['l'] != "42" || !reflect.DeepEqual(before.Nicks(), []string{"keeper", "phoenix"}) {
			t.Fatalf("before: %+v", before)
		}

		// The server closes phoenix's connection.
		if err := op.c.Send(ctx, NewMessage("OPER", "admin", "adminpw")); err != nil {
			t.Fatal(err)
		}
		op.awaitCmd("381", "")
		if err := op.c.Send(ctx, NewMessage("KILL", "phoenix", "reconnect test")); err != nil {
			t.Fatal(err)
		}
		for ev := range a.c.Events() {
			tr.HandleEvent(ev)
		}
		if !errors.Is(a.c.Err(), ErrServerClosing) {
			t.Fatalf("phoenix ended with %v", a.c.Err())
		}
		b.awaitCmd("QUIT", "")

		// Meanwhile the channel changes.
		if err := b.c.SetTopic(ctx, "#re", "after"); err != nil {
			t.Fatal(err)
		}
		b.awaitCmd("TOPIC", "#re")
		if err := b.c.Send(ctx, NewMessage("MODE", "#re", "-l+m")); err != nil {
			t.Fatal(err)
		}
		b.awaitCmd("MODE", "#re")
		newcomer := dialInsp(t, addr, "newcomer", nil)
		newcomer.join("#re")

		// Reconnect with the same tracker and rejoin.
		a2 := dialInsp(t, addr, "phoenix", tr)
		a2.await("welcome", func(ev Event) bool { return ev.Message != nil && ev.Message.Command == RPL_WELCOME })
		if ch, _ := tr.Channel("#re"); ch.Joined || ch.Synced || ch.Topic != "before" {
			t.Fatalf("after welcome, before rejoin: %+v", ch)
		}
		if err := tr.Rejoin(ctx, a2.c); err != nil {
			t.Fatal(err)
		}
		a2.awaitCmd(RPL_CHANNELMODEIS, "")
		after, _ := tr.Channel("#re")
		if !after.Joined || !after.Synced {
			t.Fatalf("not resynced: %+v", after)
		}
		if after.Topic != "after" || after.TopicSetBy != "keeper" {
			t.Fatalf("topic %q by %q", after.Topic, after.TopicSetBy)
		}
		if _, ok := after.Modes['l']; ok || !slices.Contains(modeKeys(after), 'm') || !slices.Contains(modeKeys(after), 'n') {
			t.Fatalf("modes %q", after.Modes)
		}
		joined, left := DiffMembers(before, after)
		if !reflect.DeepEqual(joined, []string{"newcomer"}) || len(left) != 0 {
			t.Fatalf("diff: joined %v left %v (now %v)", joined, left, after.Nicks())
		}
	})
}

func modeKeys(ch Channel) []byte {
	var out []byte
	for k := range ch.Modes {
		out = append(out, k)
	}
	return out
}

// TestInspIRCdSASL logs in with SASL PLAIN against real services: atheme
// linked to InspIRCd, an account registered through NickServ.
func TestInspIRCdSASL(t *testing.T) {
	checkGoroutines(t)
	srv := irctest.Start(t, irctest.Options{Services: true})
	const account, password = "saslacct", "correct-horse"
	srv.RegisterAccount(t, account, password)
	dial := func(t *testing.T, nick, password string, require bool) (*ircClient, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := Dial(ctx, Config{Addr: srv.Addr, Nick: nick, Flood: FloodControl{Burst: 100, Interval: time.Millisecond},
			SASL: &SASLPlain{User: account, Password: password}, RequireSASL: require})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { c.Close() })
		return &ircClient{t: t, c: c, tr: NewTracker()}, nil
	}
	// whoisAccount is the account WHOIS shows for nick (330), or "".
	whoisAccount := func(cl *ircClient, nick string) string {
		cl.t.Helper()
		if err := cl.c.Send(context.Background(), NewMessage("WHOIS", nick)); err != nil {
			cl.t.Fatal(err)
		}
		var acct string
		cl.awaitMsg("end of WHOIS "+nick, func(m *Message) bool {
			if m.Command == RPL_WHOISACCOUNT && strings.EqualFold(m.Param(1), nick) {
				acct = m.Param(2)
			}
			return m.Command == RPL_ENDOFWHOIS
		})
		return acct
	}

	t.Run("logged in", func(t *testing.T) {
		t.Parallel()
		cl, err := dial(t, "sasluser", password, true)
		if err != nil {
			t.Fatal(err)
		}
		// The server offered PLAIN, and 900 RPL_LOGGEDIN named the account.
		if mechs := cl.c.Caps()["sasl"]; !slices.Contains(strings.Split(mechs, ","), "PLAIN") {
			t.Errorf("sasl cap %q", mechs)
		}
		if got := cl.c.Account(); got != account {
			t.Fatalf("Account() = %q after SASL, want %q", got, account)
		}
		// The network agrees: services set the account on the user.
		if got := whoisAccount(cl, "sasluser"); got != account {
			t.Fatalf("WHOIS account %q, want %q", got, account)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		_, err := dial(t, "saslbad", "not-the-password", true)
		if !errors.Is(err, ErrSASLFailed) || !strings.Contains(err.Error(), ERR_SASLFAIL) {
			t.Fatalf("Dial with a wrong password: %v, want ErrSASLFailed with 904", err)
		}
	})

	t.Run("wrong password, SASL optional", func(t *testing.T) {
		t.Parallel()
		// Registration goes on without an account.
		cl, err := dial(t, "saslopt", "not-the-password", false)
		if err != nil {
			t.Fatal(err)
		}
		if got := cl.c.Account(); got != "" {
			t.Fatalf("Account() = %q after a failed SASL", got)
		}
		if got := whoisAccount(cl, "saslopt"); got != "" {
			t.Fatalf("WHOIS account %q after a failed SASL", got)
		}
	})
}
