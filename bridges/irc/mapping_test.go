package irc

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/irc/ircconn"
)

// memKV is bridgev2's key-value store in memory.
type memKV struct {
	mu sync.Mutex
	m  map[database.Key]string
}

func (k *memKV) Get(_ context.Context, key database.Key) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.m[key]
}

func (k *memKV) Set(_ context.Context, key database.Key, v string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil {
		k.m = map[database.Key]string{}
	}
	k.m[key] = v
}

func (k *memKV) Delete(_ context.Context, key database.Key) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, key)
}

func TestNickRegistry(t *testing.T) {
	ctx := context.Background()
	kv := &memKV{}
	r := newNickRegistry(kv, "net")
	steps := []struct {
		name string
		do   func() networkid.UserID
		want networkid.UserID
	}{
		{"first sight: the folded nick", func() networkid.UserID { return r.GhostID(ctx, "Alice[m]") }, "alice{m}"},
		{"same nick, any case", func() networkid.UserID { return r.GhostID(ctx, "ALICE{M}") }, "alice{m}"},
		{"NICK keeps the ghost", func() networkid.UserID {
			g, changed := r.Rename(ctx, "Alice[m]", "alice_away")
			if !changed {
				t.Error("the first rename reported no change")
			}
			return g
		}, "alice{m}"},
		{"another connection's copy of the NICK changes nothing", func() networkid.UserID {
			g, changed := r.Rename(ctx, "Alice[m]", "alice_away")
			if changed {
				t.Error("the repeated rename reported a change")
			}
			return g
		}, "alice{m}"},
		{"the new nick finds the ghost", func() networkid.UserID { return r.GhostID(ctx, "Alice_Away") }, "alice{m}"},
		{"someone else takes the old nick: a ghost of their own", func() networkid.UserID {
			return r.GhostID(ctx, "alice[m]")
		}, "alice{m}_2"},
		{"and keeps it", func() networkid.UserID { return r.GhostID(ctx, "alice[m]") }, "alice{m}_2"},
		{"a case-only NICK keeps the ghost", func() networkid.UserID {
			g, _ := r.Rename(ctx, "alice_away", "Alice_Away")
			return g
		}, "alice{m}"},
		{"a NICK of a nick never seen makes a ghost", func() networkid.UserID {
			g, _ := r.Rename(ctx, "bob", "bobby")
			return g
		}, "bob"},
	}
	for _, s := range steps {
		if got := s.do(); got != s.want {
			t.Fatalf("%s: %q, want %q", s.name, got, s.want)
		}
	}
	if n := r.Nick(ctx, "alice{m}"); n != "Alice_Away" {
		t.Errorf("ghost alice{m} has nick %q", n)
	}
	if n := r.Nick(ctx, "bob"); n != "bobby" {
		t.Errorf("ghost bob has nick %q", n)
	}
	// The mapping lives in the store: a new registry (a restart) agrees.
	r2 := newNickRegistry(kv, "net")
	if g := r2.GhostID(ctx, "bobby"); g != "bob" {
		t.Errorf("after a restart bobby is %q", g)
	}
	// Under ascii case mapping, [ and { are different nicks.
	ra := newNickRegistry(&memKV{}, "net")
	ra.setCaseMapping(ircconn.CaseMappingASCII)
	if a, b := ra.GhostID(ctx, "x[1]"), ra.GhostID(ctx, "x{1}"); a == b {
		t.Errorf("ascii: x[1] and x{1} share ghost %q", a)
	}
}

func TestPortalAndMessageIDs(t *testing.T) {
	for _, tc := range []struct {
		key             networkid.PortalKey
		channel, dm, nw string
	}{
		{channelPortalKey("libera", "#go-nuts"), "#go-nuts", "", "libera"},
		{channelPortalKey("libera", "##weird/chan"), "##weird/chan", "", "libera"},
		{dmPortalKey("libera", "bob", "libera/@a:b"), "", "bob", "libera"},
	} {
		nw, ch, dm, ok := parsePortalID(tc.key.ID)
		if !ok || nw != tc.nw || ch != tc.channel || string(dm) != tc.dm {
			t.Errorf("%s: %q %q %q %v", tc.key.ID, nw, ch, dm, ok)
		}
	}
	for _, bad := range []networkid.PortalID{"", "libera", "libera/", "libera/@"} {
		if _, _, _, ok := parsePortalID(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}

	ts := time.Date(2024, 1, 2, 3, 4, 5, 600e6, time.UTC)
	withID, _ := ircconn.Parse("@msgid=abc;time=2024-01-02T03:04:05.600Z :bob!u@h PRIVMSG #c :hi")
	without, _ := ircconn.Parse("@time=2024-01-02T03:04:05.600Z :bob!u@h PRIVMSG #c :hi")
	if got := messageID(withID); got != "abc" || !isRealMsgID(got) {
		t.Errorf("msgid: %q", got)
	}
	synth := messageID(without)
	if synth != syntheticMessageID("bob", ts, "hi") || isRealMsgID(synth) {
		t.Errorf("synthetic ID %q", synth)
	}
	if syntheticMessageID("bob", ts, "hi!") == synth || syntheticMessageID("bob", ts.Add(time.Millisecond), "hi") == synth {
		t.Error("synthetic IDs do not depend on the text and time")
	}
	if isRealMsgID("mx/$event") {
		t.Error("an ID made from a Matrix event is not a msgid")
	}
}

func TestIRCToMatrix(t *testing.T) {
	for _, tc := range []struct {
		command, text string
		msgType       event.MessageType
		body, html    string
		ignored       bool
	}{
		{command: "PRIVMSG", text: "plain", msgType: event.MsgText, body: "plain"},
		{command: "NOTICE", text: "note", msgType: event.MsgNotice, body: "note"},
		{command: "PRIVMSG", text: "\x01ACTION waves\x01", msgType: event.MsgEmote, body: "waves"},
		{command: "PRIVMSG", text: "\x02bold\x02 \x1ditalic\x1d \x0304,01red on black\x0f <tag>",
			msgType: event.MsgText, body: "bold italic red on black <tag>",
			html: `<b>bold</b> <i>italic</i> <font data-mx-color="#ff0000" data-mx-bg-color="#000000">red on black</font> &lt;tag&gt;`},
		{command: "PRIVMSG", text: "\x01VERSION\x01", ignored: true},
		{command: "NOTICE", text: "\x01PING 123\x01", ignored: true},
	} {
		c := ircToMatrix(tc.command, tc.text)
		if tc.ignored {
			if c != nil {
				t.Errorf("%q: %+v, want nothing", tc.text, c)
			}
			continue
		}
		if c == nil || c.MsgType != tc.msgType || c.Body != tc.body || c.FormattedBody != tc.html ||
			(tc.html != "") != (c.Format == event.FormatHTML) {
			t.Errorf("%s %q: %+v", tc.command, tc.text, c)
		}
	}

	nicks := map[string]id.UserID{"alice": "@alice:hs", "b{o}b": "@bob:hs"}
	fold := ircconn.CaseMappingRFC1459.Fold
	c := &event.MessageEventContent{Body: "ALICE: have you seen b[o]b? not alice_ or malice"}
	mentionNicks(c, nicks, fold)
	if c.Mentions == nil || len(c.Mentions.UserIDs) != 2 || !c.Mentions.Has("@alice:hs") || !c.Mentions.Has("@bob:hs") {
		t.Errorf("mentions %+v", c.Mentions)
	}
	c = &event.MessageEventContent{Body: "nobody here"}
	mentionNicks(c, nicks, fold)
	if c.Mentions != nil {
		t.Errorf("mentions %+v", c.Mentions)
	}
}

func TestMatrixToIRC(t *testing.T) {
	nickOf := func(u id.UserID) string {
		return map[id.UserID]string{"@irc_bob:hs": "bob[away]", "@alice:hs": "alice"}[u]
	}
	for _, tc := range []struct {
		name    string
		content *event.MessageEventContent
		want    string
	}{
		{"plain", &event.MessageEventContent{Body: "just text"}, "just text"},
		{"html", &event.MessageEventContent{Body: "x", Format: event.FormatHTML,
			FormattedBody: "<strong>hi</strong> <em>there</em> <del>no</del>"},
			"\x02hi\x02 \x1dthere\x1d \x1eno\x0f"},
		{"pills become nicks", &event.MessageEventContent{Body: "x", Format: event.FormatHTML,
			FormattedBody: `<a href="https://matrix.to/#/%40irc_bob%3Ahs">Bob (IRC)</a>: and <a href="https://matrix.to/#/@alice:hs?via=hs">Alice Liddell</a>, <a href="https://matrix.to/#/@stranger:hs">Stranger</a>`},
			"bob[away]: and alice, Stranger"},
		{"paragraphs are lines", &event.MessageEventContent{Body: "x", Format: event.FormatHTML,
			FormattedBody: "<p>one</p><p>two</p>"}, "one\ntwo"},
		{"reply fallback dropped (HTML)", &event.MessageEventContent{Body: "x", Format: event.FormatHTML,
			FormattedBody: "<mx-reply><blockquote>quoted</blockquote></mx-reply>answer"}, "answer"},
		{"reply fallback dropped (plain)", &event.MessageEventContent{
			Body:      "> <@bob:hs> quoted\n> more\n\nanswer",
			RelatesTo: &event.RelatesTo{InReplyTo: &event.InReplyTo{EventID: "$x"}}}, "answer"},
		{"quote without a reply stays", &event.MessageEventContent{Body: "> not a fallback"}, "> not a fallback"},
	} {
		if got := matrixToIRC(tc.content, nickOf); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}

	// A long multi-paragraph message is split into lines that fit the
	// server's limit once it adds the source, each line in one piece.
	var html strings.Builder
	for p := range 3 {
		html.WriteString("<p>")
		for range 120 {
			html.WriteString("<b>ünï</b>cödé ")
		}
		html.WriteString("</p>")
		_ = p
	}
	text := matrixToIRC(&event.MessageEventContent{Body: "x", Format: event.FormatHTML, FormattedBody: html.String()}, nickOf)
	budget := ircconn.TextBudget(512, len("alice!~alice@matrix.example.org"), "PRIVMSG", "#channel")
	lines := ircconn.SplitText(text, budget)
	if len(lines) < 6 {
		t.Fatalf("%d lines for %d bytes", len(lines), len(text))
	}
	for i, l := range lines {
		relayed := ":alice!~alice@matrix.example.org PRIVMSG #channel :" + l + "\r\n"
		if len(relayed) > ircconn.MaxLineLen {
			t.Fatalf("line %d is %d bytes relayed", i, len(relayed))
		}
	}
	if got := strings.Join(lines, ""); strings.ReplaceAll(text, "\n", "") != got {
		t.Fatal("the lines do not add up to the text")
	}

	if got := relayLines("Eve", "one\n\ntwo", false); got != "<Eve> one\n<Eve> two" {
		t.Errorf("relay: %q", got)
	}
	if got := relayLines("Eve\nX", "waves", true); got != "* Eve X waves" {
		t.Errorf("relayed emote: %q", got)
	}
}

func TestPowerLevels(t *testing.T) {
	for modes, want := range map[string]int{"": 0, "v": 1, "h": 25, "o": 50, "ov": 50, "ao": 75, "qaohv": 100} {
		if got := memberLevel(modes); got != want {
			t.Errorf("memberLevel(%q) = %d, want %d", modes, got, want)
		}
	}
	for level, want := range map[int]string{0: "", 1: "v", 10: "v", 49: "v", 50: "o", 100: "o", -5: ""} {
		if got := modesForLevel(level); got != want {
			t.Errorf("modesForLevel(%d) = %q, want %q", level, got, want)
		}
	}
	for _, tc := range []struct {
		modes      map[byte]string
		ed, topicL int
	}{
		{map[byte]string{}, 0, 0},
		{map[byte]string{'n': "", 't': ""}, 0, 50},
		{map[byte]string{'m': "", 'l': "10"}, 1, 0},
		{map[byte]string{'m': "", 't': ""}, 1, 50},
	} {
		if ed, tl := channelLevels(tc.modes); ed != tc.ed || tl != tc.topicL {
			t.Errorf("channelLevels(%v) = %d, %d", tc.modes, ed, tl)
		}
	}
}

// testClient is a Client of a connector that has no bridge: enough for
// the mapping functions.
func testClient(t *testing.T) *Client {
	t.Helper()
	n := &Connector{Config: Config{Server: "irc.example.org:6667", NetworkID: "net"}}
	if err := n.Config.validate(); err != nil {
		t.Fatal(err)
	}
	n.nicks = newNickRegistry(&memKV{}, "net")
	n.claims = map[networkid.PortalID]networkid.UserLoginID{}
	n.clients = map[networkid.UserLoginID]*Client{}
	login := &bridgev2.UserLogin{UserLogin: &database.UserLogin{ID: "net/@me:hs", UserMXID: "@me:hs",
		Metadata: &LoginMetadata{Nick: "me"}}}
	c := newClient(n, login, nil)
	n.clients[login.ID] = c
	return c
}

func TestChatInfo(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	ch := ircconn.Channel{
		Name: "#Chan", Topic: "the topic",
		Modes: map[byte]string{'n': "", 't': "", 'm': ""},
		Members: map[string]ircconn.Member{
			"op":    {Nick: "Op", Modes: "o"},
			"voice": {Nick: "Voice", Modes: "v"},
			"pleb":  {Nick: "Pleb"},
		},
	}
	info := c.chatInfo(ctx, ch)
	if *info.Name != "#Chan" || *info.Topic != "the topic" || !info.CanBackfill || !info.Members.IsFull {
		t.Fatalf("info %+v", info)
	}
	levels := map[networkid.UserID]int{}
	for k, m := range info.Members.MemberMap {
		if m.Sender != k || m.Membership != event.MembershipJoin || m.PowerLevel == nil || m.UserInfo == nil {
			t.Fatalf("member %q: %+v", k, m)
		}
		levels[k] = *m.PowerLevel
	}
	if levels["op"] != 50 || levels["voice"] != 1 || levels["pleb"] != 0 || len(levels) != 3 {
		t.Errorf("levels %v", levels)
	}
	pl := info.Members.PowerLevels
	if *pl.EventsDefault != 1 || pl.Events[event.StateTopic] != 50 {
		t.Errorf("room levels: events_default %d, topic %d", *pl.EventsDefault, pl.Events[event.StateTopic])
	}
	// A ghost's name is its nick as the server spells it.
	if name := *info.Members.MemberMap["op"].UserInfo.Name; name != "Op" {
		t.Errorf("ghost name %q", name)
	}
}

func TestHistoryRequests(t *testing.T) {
	anchor := &database.Message{ID: "msg9", Timestamp: time.UnixMilli(1700000000123)}
	noMsgID := &database.Message{ID: "mx/$ev", Timestamp: time.UnixMilli(1700000000123)}
	for _, tc := range []struct {
		name string
		p    bridgev2.FetchMessagesParams
		want string
	}{
		{"first forward fill", bridgev2.FetchMessagesParams{Forward: true, Count: 50}, "CHATHISTORY LATEST #c * 50"},
		{"catch up after a msgid", bridgev2.FetchMessagesParams{Forward: true, Count: 50, AnchorMessage: anchor},
			"CHATHISTORY AFTER #c msgid=msg9 50"},
		{"catch up after a time", bridgev2.FetchMessagesParams{Forward: true, Count: 50, AnchorMessage: noMsgID},
			"CHATHISTORY AFTER #c timestamp=2023-11-14T22:13:20.123Z 50"},
		{"older than the oldest bridged", bridgev2.FetchMessagesParams{Count: 100, AnchorMessage: anchor},
			"CHATHISTORY BEFORE #c msgid=msg9 100"},
		{"the next page", bridgev2.FetchMessagesParams{Count: 100, AnchorMessage: anchor, Cursor: "msgid:msg3"},
			"CHATHISTORY BEFORE #c msgid=msg3 100"},
		{"a page by time", bridgev2.FetchMessagesParams{Count: 100, Cursor: "ts:1700000000123"},
			"CHATHISTORY BEFORE #c timestamp=2023-11-14T22:13:20.123Z 100"},
	} {
		if got := historyRequest("#c", tc.p).Message().String(); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	m, _ := ircconn.Parse("@msgid=m1;time=2023-11-14T22:13:20.123Z :a!b@c PRIVMSG #c :x")
	if cur := cursorFor(m); cur != "msgid:m1" {
		t.Errorf("cursor %q", cur)
	}
	delete(m.Tags, "msgid")
	if a, ok := parseCursor(cursorFor(m)); !ok || !a.Time.Equal(m.Time()) {
		t.Errorf("time cursor %q → %+v", cursorFor(m), a)
	}
	for _, bad := range []networkid.PaginationCursor{"", "msgid:", "ts:x", "other:1"} {
		if _, ok := parseCursor(bad); ok {
			t.Errorf("cursor %q parsed", bad)
		}
	}
}

func TestBackfillMessages(t *testing.T) {
	c := testClient(t)
	ctx := context.Background()
	var lines []*ircconn.Message
	for _, raw := range []string{
		"@msgid=1;time=2024-01-01T00:00:01.000Z :bob!u@h PRIVMSG #c :one",
		"@msgid=2;time=2024-01-01T00:00:02.000Z :bob!u@h JOIN #c",
		"@msgid=3;time=2024-01-01T00:00:03.000Z :carol!u@h NOTICE #c :\x02two\x02",
		"@msgid=4 :bob!u@h PRIVMSG #c :no time: not history",
		"@msgid=5;time=2024-01-01T00:00:05.000Z :irc.server NOTICE #c :from the server",
		"@msgid=6;time=2024-01-01T00:00:06.000Z :bob!u@h PRIVMSG #c :\x01ACTION three\x01",
		"@msgid=7;time=2024-01-01T00:00:07.000Z;+draft/reply=1 :carol!u@h PRIVMSG #c :four",
	} {
		m, err := ircconn.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	got := c.backfillMessages(ctx, lines, nil, 0)
	var ids []string
	for _, m := range got {
		ids = append(ids, string(m.ID))
	}
	if strings.Join(ids, ",") != "1,3,6,7" {
		t.Fatalf("backfilled %v", ids)
	}
	if got[0].Sender.Sender != "bob" || !got[0].Timestamp.Equal(time.Date(2024, 1, 1, 0, 0, 1, 0, time.UTC)) {
		t.Errorf("first: %+v", got[0])
	}
	if p := got[1].Parts[0].Content; p.MsgType != event.MsgNotice || p.FormattedBody != "<b>two</b>" {
		t.Errorf("notice: %+v", p)
	}
	if p := got[2].Parts[0].Content; p.MsgType != event.MsgEmote || p.Body != "three" {
		t.Errorf("action: %+v", p)
	}
	if got[3].ReplyTo == nil || got[3].ReplyTo.MessageID != "1" {
		t.Errorf("reply: %+v", got[3].ReplyTo)
	}
	// Not older than the anchor; at most count, the newest.
	anchor := &database.Message{ID: "3", Timestamp: time.Date(2024, 1, 1, 0, 0, 3, 0, time.UTC)}
	if got := c.backfillMessages(ctx, lines, anchor, 0); len(got) != 3 || got[0].ID != "3" {
		t.Errorf("after the anchor: %d messages", len(got))
	}
	if got := c.backfillMessages(ctx, lines, nil, 2); len(got) != 2 || got[0].ID != "6" {
		t.Errorf("count 2: %d messages", len(got))
	}
}

func TestConfig(t *testing.T) {
	cfg := Config{Server: "irc.libera.chat:6697", NickTemplate: "{{.Localpart}}[m]"}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.NetworkID != "irc.libera.chat" || cfg.DisplayName != "IRC" || cfg.FloodBurst <= 0 ||
		cfg.ReconnectMin <= 0 || cfg.ReconnectMax < cfg.ReconnectMin {
		t.Errorf("defaults: %+v", cfg)
	}
	user := id.UserID("@Ann.Lee=2:example.org")
	if n := cfg.defaultNick(user); n != "Ann_Lee_2[m]" || !ValidNick(n) {
		t.Errorf("nick %q", n)
	}
	if u := cfg.ident(user); u != "Ann.Lee2" {
		t.Errorf("ident %q", u)
	}
	if r := cfg.realName(user); r != string(user) {
		t.Errorf("real name %q", r)
	}
	for in, want := range map[string]string{"": "matrix", "9lives": "_9lives", "-x": "_-x", "é": "_", "ok{}|": "ok{}|"} {
		if got := SanitizeNick(in); got != want || !ValidNick(got) {
			t.Errorf("SanitizeNick(%q) = %q, want %q", in, got, want)
		}
	}
	for _, bad := range []Config{{}, {Server: "no-port"}, {Server: "h:1", NetworkID: "a/b"}, {Server: "h:1", NickTemplate: "{{"}} {
		if err := bad.validate(); err == nil {
			t.Errorf("config %+v accepted", bad)
		}
	}
}

// TestDialSASL: a login with a password registers with SASL PLAIN as its
// account, and a refused login is ErrSASLFailed (bad credentials: the
// bridge does not retry it).
func TestDialSASL(t *testing.T) {
	for _, accept := range []bool{true, false} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		n := &Connector{Config: Config{Server: ln.Addr().String(), FloodBurst: 100, FloodInterval: time.Millisecond}}
		if err := n.Config.validate(); err != nil {
			t.Fatal(err)
		}
		payload := make(chan string, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			r := bufio.NewReader(c)
			say := func(lines ...string) {
				for _, l := range lines {
					_, _ = io.WriteString(c, l+"\r\n")
				}
			}
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				m, _ := ircconn.Parse(line)
				switch {
				case m.Command == "USER":
					say(":srv CAP * LS :sasl=PLAIN")
				case m.Command == "CAP" && m.Param(0) == "REQ":
					say(":srv CAP * ACK :sasl")
				case m.Command == "AUTHENTICATE" && m.Param(0) == "PLAIN":
					say("AUTHENTICATE +")
				case m.Command == "AUTHENTICATE":
					raw, _ := base64.StdEncoding.DecodeString(m.Param(0))
					payload <- string(raw)
					if accept {
						say(":srv 900 annie annie!u@h acct :You are now logged in", ":srv 903 annie :SASL successful")
					} else {
						say(":srv 904 annie :SASL authentication failed")
					}
				case m.Command == "CAP" && m.Param(0) == "END":
					say(":srv 001 annie :Welcome", ":srv 376 annie :End of MOTD")
				}
			}
		}()
		conn, err := n.dial(context.Background(), "@ann:hs", &LoginMetadata{Nick: "annie", Account: "acct", Password: "s3cret"})
		if got := <-payload; got != "\x00acct\x00s3cret" {
			t.Errorf("SASL PLAIN payload %q", got)
		}
		if accept {
			if err != nil {
				t.Fatal(err)
			}
			if conn.Account() != "acct" {
				t.Errorf("account %q", conn.Account())
			}
			conn.Close()
		} else if !errors.Is(err, ircconn.ErrSASLFailed) {
			t.Errorf("refused SASL: %v", err)
		}
	}
}

// TestExampleConfig: the example network section (what bridgev2 and the
// plugin SDK load under the operator's) decodes and validates, durations
// included.
func TestExampleConfig(t *testing.T) {
	n := NewConnector()
	example, data, upgrader := n.GetConfig()
	if upgrader == nil || data != &n.Config {
		t.Fatal("GetConfig")
	}
	if err := yaml.Unmarshal([]byte(example), data); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte("server: irc.libera.chat:6697\nnetwork_id: libera\nflood_interval: 2s\n"), data); err != nil {
		t.Fatal(err)
	}
	if err := n.ValidateConfig(); err != nil {
		t.Fatal(err)
	}
	c := n.Config
	if c.Server != "irc.libera.chat:6697" || !c.TLS || c.NetworkID != "libera" || c.FloodInterval != 2*time.Second ||
		c.PingInterval != time.Minute || c.ReconnectMax != 5*time.Minute || c.NickTemplate != "{{.Localpart}}" {
		t.Errorf("config %+v", c)
	}
}
