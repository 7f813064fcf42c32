package e2eirc

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2/provisionutil"
	"maunium.net/go/mautrix/event"

	"github.com/tributary-hs/tributary/bridges/irc"
	"github.com/tributary-hs/tributary/bridges/irc/ircconn"
)

// TestIRCBridge: a Matrix user (alice) logs in to the IRC server through
// the bridge and joins a channel where a plain IRC client (bob) is op.
// The portal room is created with the channel's history (InspIRCd's
// chanhistory replay) at its original times; then messages go both ways
// with formatting, a long message is split within IRC's line limit,
// edits, topics, ops, kicks and nick changes cross over, a relayed Matrix
// user speaks through alice's connection, and after a reconnect the room
// shows what changed in the channel meanwhile.
func TestIRCBridge(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	e := startEnv(t)
	const channel = "#bridged"

	// Before the bridge is in the channel: bob opens it, keeps its
	// history (+H) and says two things.
	bob := dialIRC(t, e.ircAdr, "bob")
	bob.join(channel)
	bob.send(ircconn.NewMessage("MODE", channel, "+H", "50:1h"))
	bob.awaitCmd("MODE", channel)
	hist1 := bob.say(channel, "history one")
	hist2 := bob.say(channel, "history \x02two\x02")

	// Someone holds alice's nick when she logs in: she gets a fallback
	// nick and takes hers back as soon as it is free.
	squatter := dialIRC(t, e.ircAdr, "alice")

	aliceMX := e.srv.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})
	w := newWatcher(t, aliceMX, e.logs)
	login, instructions := e.login(ctx, aliceMX.UserID, "alice")
	if !strings.Contains(instructions, "alice_") {
		t.Fatalf("login with a taken nick: %q", instructions)
	}
	client := login.Client.(*irc.Client)
	if err := client.JoinChannel(ctx, channel, ""); err != nil {
		t.Fatal(err)
	}
	bob.await("alice_ joining", func(m *ircconn.Message) bool {
		return m.Command == "JOIN" && m.Prefix().Name == "alice_"
	})
	squatter.send(ircconn.NewMessage("QUIT", "bye"))
	bob.await("alice_ taking her nick back", func(m *ircconn.Message) bool {
		return m.Command == "NICK" && m.Prefix().Name == "alice_" && m.Param(0) == "alice"
	})

	// The portal: alice is invited; the room has the channel's history.
	roomID := w.waitInvite(ctx)
	if _, err := aliceMX.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	h1 := w.waitMessage(ctx, roomID, "history one")
	h2 := w.waitMessage(ctx, roomID, "history two")
	for i, c := range []struct {
		evt  *event.Event
		echo *ircconn.Message
	}{{h1, hist1}, {h2, hist2}} {
		// chanhistory keeps whole seconds.
		want := c.echo.Time().Truncate(time.Second).UnixMilli()
		if c.evt.Sender != ghost("bob") || c.evt.Timestamp != want {
			t.Errorf("history line %d: from %s at %d, want %s at %d", i, c.evt.Sender, c.evt.Timestamp, ghost("bob"), want)
		}
	}
	if f := h2.Content.AsMessage().FormattedBody; f != "history <b>two</b>" {
		t.Errorf("formatted history line: %q", f)
	}
	name := w.wait(ctx, roomID, "room name", func(evt *event.Event) bool { return evt.Type == event.StateRoomName })
	if name.Content.AsRoomName().Name != channel {
		t.Errorf("room name %q", name.Content.AsRoomName().Name)
	}
	// bob is op: power level 50.
	w.wait(ctx, roomID, "bob at power level 50", func(evt *event.Event) bool {
		return evt.Type == event.StatePowerLevels && evt.Content.AsPowerLevels().GetUserLevel(ghost("bob")) == 50
	})

	// IRC → Matrix, with mIRC formatting and a highlight.
	bob.say(channel, "hey alice: \x02bold\x02 and \x0304red\x03!")
	msg := w.waitMessage(ctx, roomID, "hey alice: bold and red!")
	mc := msg.Content.AsMessage()
	if msg.Sender != ghost("bob") || mc.MsgType != event.MsgText ||
		mc.FormattedBody != `hey alice: <b>bold</b> and <font data-mx-color="#ff0000">red</font>!` {
		t.Fatalf("from IRC: %s %s %q", msg.Sender, mc.MsgType, mc.FormattedBody)
	}
	if mc.Mentions == nil || !mc.Mentions.Has(aliceMX.UserID) {
		t.Errorf("alice's nick in the text does not mention her: %+v", mc.Mentions)
	}
	bob.send(ircconn.NewMessage("PRIVMSG", channel, ircconn.Action("waves")))
	if evt := w.waitMessage(ctx, roomID, "waves"); evt.Content.AsMessage().MsgType != event.MsgEmote {
		t.Errorf("ACTION arrived as %s", evt.Content.AsMessage().MsgType)
	}
	bob.send(ircconn.NewMessage("NOTICE", channel, "a notice"))
	if evt := w.waitMessage(ctx, roomID, "a notice"); evt.Content.AsMessage().MsgType != event.MsgNotice {
		t.Errorf("NOTICE arrived as %s", evt.Content.AsMessage().MsgType)
	}

	// Matrix → IRC, with HTML formatting.
	sent, err := aliceMX.SendMessageEvent(ctx, roomID, event.EventMessage, &event.MessageEventContent{
		MsgType: event.MsgText, Body: "hi bob", Format: event.FormatHTML,
		FormattedBody: `<strong>hi</strong> <em>bob</em>`,
	})
	if err != nil {
		t.Fatal(err)
	}
	got := bob.awaitFrom("PRIVMSG", channel, "alice")
	if got.Prefix().Name != "alice" || got.Trailing() != "\x02hi\x02 \x1dbob\x0f" {
		t.Fatalf("bob got %q from %s", got.Trailing(), got.Prefix().Name)
	}
	// A long message arrives in lines that fit, and nothing is lost.
	var long strings.Builder
	for i := 0; long.Len() < 3000; i++ {
		long.WriteString("word" + strconv.Itoa(i) + " ünïcödé ☃ ")
	}
	longText := strings.TrimSpace(long.String())
	if _, err := aliceMX.SendText(ctx, roomID, longText); err != nil {
		t.Fatal(err)
	}
	var reassembled strings.Builder
	lines := 0
	for reassembled.Len() < len(longText) {
		m := bob.awaitFrom("PRIVMSG", channel, "alice")
		relayed := &ircconn.Message{Source: m.Source, Command: m.Command, Params: m.Params}
		if n := len(relayed.Bytes()); n > ircconn.MaxLineLen {
			t.Fatalf("a relayed line of %d bytes", n)
		}
		reassembled.WriteString(m.Trailing())
		lines++
	}
	if reassembled.String() != longText || lines < 6 {
		t.Fatalf("%d lines reassembled to %d bytes, sent %d", lines, reassembled.Len(), len(longText))
	}
	// An emote, then an edit: a correction line.
	if _, err := aliceMX.SendMessageEvent(ctx, roomID, event.EventMessage,
		&event.MessageEventContent{MsgType: event.MsgEmote, Body: "waves back"}); err != nil {
		t.Fatal(err)
	}
	if m := bob.awaitFrom("PRIVMSG", channel, "alice"); m.Trailing() != ircconn.Action("waves back") {
		t.Fatalf("emote arrived as %q", m.Trailing())
	}
	edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "hi there, bob"}
	edit.SetEdit(sent.EventID) // the body becomes "* hi there, bob"; m.new_content has the text
	if _, err := aliceMX.SendMessageEvent(ctx, roomID, event.EventMessage, edit); err != nil {
		t.Fatal(err)
	}
	if m := bob.awaitFrom("PRIVMSG", channel, "alice"); m.Trailing() != "* hi there, bob" {
		t.Fatalf("edit arrived as %q", m.Trailing())
	}

	// Topic from IRC.
	bob.send(ircconn.NewMessage("TOPIC", channel, "the IRC topic"))
	topic := w.wait(ctx, roomID, "topic from IRC", func(evt *event.Event) bool {
		return evt.Type == event.StateTopic && evt.Content.AsTopic().Topic == "the IRC topic"
	})
	if topic.Sender != ghost("bob") {
		t.Errorf("topic set by %s", topic.Sender)
	}
	// bob ops alice: power level 50 in the room; she sets the topic.
	bob.send(ircconn.NewMessage("MODE", channel, "+o", "alice"))
	w.wait(ctx, roomID, "alice at power level 50", func(evt *event.Event) bool {
		return evt.Type == event.StatePowerLevels && evt.Content.AsPowerLevels().GetUserLevel(aliceMX.UserID) == 50
	})
	if _, err := aliceMX.SendStateEvent(ctx, roomID, event.StateTopic, "", &event.TopicEventContent{Topic: "set on Matrix"}); err != nil {
		t.Fatal(err)
	}
	if m := bob.awaitFrom("TOPIC", channel, "alice"); m.Prefix().Name != "alice" || m.Param(1) != "set on Matrix" {
		t.Fatalf("bob saw TOPIC %v", m)
	}

	// carol joins (her ghost joins the room), changes nick (the same
	// ghost, renamed), and bob kicks her.
	carol := dialIRC(t, e.ircAdr, "carol")
	carol.join(channel)
	w.waitMember(ctx, roomID, ghost("carol"), event.MembershipJoin, nil)
	carol.send(ircconn.NewMessage("NICK", "carol2"))
	w.waitMember(ctx, roomID, ghost("carol"), event.MembershipJoin, func(evt *event.Event) bool {
		return evt.Content.AsMember().Displayname == "carol2"
	})
	bob.send(ircconn.NewMessage("KICK", channel, "carol2", "bye carol"))
	kick := w.waitMember(ctx, roomID, ghost("carol"), event.MembershipLeave, nil)
	if kick.Sender != ghost("bob") || kick.Content.AsMember().Reason != "bye carol" {
		t.Fatalf("kick on Matrix: by %s, reason %q", kick.Sender, kick.Content.AsMember().Reason)
	}
	// carol comes back; alice (op) kicks her from Matrix.
	carol.join(channel)
	w.wait(ctx, roomID, "carol back", func(evt *event.Event) bool {
		return evt.Type == event.StateMember && evt.GetStateKey() == string(ghost("carol")) &&
			evt.Content.AsMember().Membership == event.MembershipJoin && evt.Timestamp > kick.Timestamp
	})
	if _, err := aliceMX.KickUser(ctx, roomID, &mautrix.ReqKickUser{UserID: ghost("carol"), Reason: "from Matrix"}); err != nil {
		t.Fatal(err)
	}
	if m := carol.awaitFrom("KICK", channel, "alice"); m.Prefix().Name != "alice" || m.Param(1) != "carol2" || m.Param(2) != "from Matrix" {
		t.Fatalf("carol saw %v", m)
	}

	// Relay: eve has no IRC login; alice's connection relays for her.
	eve := e.srv.Register(t, &mautrix.ReqRegister[any]{Username: "eve", Password: "correct horse battery"})
	portal, err := e.br.GetPortalByMXID(ctx, roomID)
	if err != nil || portal == nil {
		t.Fatalf("portal: %v", err)
	}
	if err := portal.SetRelay(ctx, login); err != nil {
		t.Fatal(err)
	}
	if _, err := aliceMX.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: eve.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := eve.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatal(err)
	}
	if _, err := eve.SendText(ctx, roomID, "hello from eve"); err != nil {
		t.Fatal(err)
	}
	if m := bob.awaitFrom("PRIVMSG", channel, "alice"); m.Prefix().Name != "alice" || m.Trailing() != "<eve> hello from eve" {
		t.Fatalf("relayed message: %q from %s", m.Trailing(), m.Prefix().Name)
	}

	// A private message is a DM room with bob's ghost.
	bob.say("alice", "psst")
	dm := w.waitInvite(ctx, roomID)
	if _, err := aliceMX.JoinRoomByID(ctx, dm); err != nil {
		t.Fatal(err)
	}
	if evt := w.waitMessage(ctx, dm, "psst"); evt.Sender != ghost("bob") {
		t.Fatalf("DM from %s", evt.Sender)
	}
	if _, err := aliceMX.SendText(ctx, dm, "what?"); err != nil {
		t.Fatal(err)
	}
	if m := bob.awaitFrom("PRIVMSG", "bob", "alice"); m.Prefix().Name != "alice" || m.Trailing() != "what?" {
		t.Fatalf("DM reply: %v", m)
	}

	// The server kills alice's connection: the bridge reconnects with her
	// nick and rejoins.
	bob.send(ircconn.NewMessage("OPER", "admin", "adminpw"))
	bob.awaitCmd("381", "")
	bob.send(ircconn.NewMessage("KILL", "alice", "reconnect test"))
	bob.await("alice back", func(m *ircconn.Message) bool {
		return m.Command == "JOIN" && m.Prefix().Name == "alice" && strings.EqualFold(m.Param(0), channel)
	})
	// She stays away while the channel changes: back, the room shows the
	// channel as it is (topic, members, moderation).
	frank := dialIRC(t, e.ircAdr, "frank")
	frank.join(channel)
	w.waitMember(ctx, roomID, ghost("frank"), event.MembershipJoin, nil)
	client.Disconnect()
	bob.await("alice quitting", func(m *ircconn.Message) bool { return m.Command == "QUIT" && m.Prefix().Name == "alice" })
	bob.send(ircconn.NewMessage("TOPIC", channel, "while you were away"))
	bob.await("the new topic", func(m *ircconn.Message) bool { return m.Command == "TOPIC" && m.Param(1) == "while you were away" })
	bob.send(ircconn.NewMessage("MODE", channel, "+m"))
	bob.await("+m", func(m *ircconn.Message) bool { return m.Command == "MODE" && m.Param(1) == "+m" })
	dave := dialIRC(t, e.ircAdr, "dave")
	dave.join(channel)
	frank.send(ircconn.NewMessage("PART", channel))
	dave.await("frank leaving", func(m *ircconn.Message) bool { return m.Command == "PART" && m.Prefix().Name == "frank" })
	client.Connect(ctx)
	w.wait(ctx, roomID, "the topic after the resync", func(evt *event.Event) bool {
		return evt.Type == event.StateTopic && evt.Content.AsTopic().Topic == "while you were away"
	})
	w.waitMember(ctx, roomID, ghost("dave"), event.MembershipJoin, nil)
	w.waitMember(ctx, roomID, ghost("frank"), event.MembershipLeave, nil)
	w.wait(ctx, roomID, "moderated: events_default 1", func(evt *event.Event) bool {
		return evt.Type == event.StatePowerLevels && evt.Content.AsPowerLevels().EventsDefault == 1
	})
	// alice is still in the room, and the history replay of the rejoin
	// brought no duplicates.
	if err := aliceMX.StateEvent(ctx, roomID, event.StateMember, string(aliceMX.UserID), &event.MemberEventContent{}); err != nil {
		t.Fatal(err)
	}
	bob.say(channel, "last words")
	w.waitMessage(ctx, roomID, "last words")
	// start-chat (and the provisioning API) open a DM with a nick.
	resolved, err := provisionutil.ResolveIdentifier(ctx, login, "dave", true)
	if err != nil || resolved.MXID != ghost("dave") || resolved.DMRoomID == "" {
		t.Fatalf("start a chat with dave: %+v, %v", resolved, err)
	}
	if invited := w.waitInvite(ctx, roomID, dm); invited != resolved.DMRoomID {
		t.Fatalf("invited to %s, the DM is %s", invited, resolved.DMRoomID)
	}
	if _, err := aliceMX.JoinRoomByID(ctx, resolved.DMRoomID); err != nil {
		t.Fatal(err)
	}
	if _, err := aliceMX.SendText(ctx, resolved.DMRoomID, "hi dave"); err != nil {
		t.Fatal(err)
	}
	if m := dave.awaitFrom("PRIVMSG", "dave", "alice"); m.Trailing() != "hi dave" {
		t.Fatalf("dave got %q", m.Trailing())
	}

	counts := map[string]int{}
	for _, evt := range w.seen[roomID] {
		if evt.Type == event.EventMessage {
			counts[evt.Content.AsMessage().Body]++
		}
	}
	for body, n := range counts {
		if n > 1 {
			t.Errorf("%q is in the room %d times", body, n)
		}
	}
	for _, line := range e.logs.errorLines() {
		// bridgev2 itself logs, at error level, that eve has no login
		// when it looks up the target of her (Matrix-only) invite and
		// join; it then leaves them to Matrix, as it should.
		if strings.Contains(line, "Failed to get member event target") && strings.Contains(line, `"target_user_id":"@eve:localhost"`) {
			continue
		}
		t.Errorf("the bridge logged an error: %s", line)
	}
}
