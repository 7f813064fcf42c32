// Package e2eirc tests the IRC bridge end to end: a real InspIRCd 3 (with
// atheme-services linked for SASL accounts; internal/irctest runs both), the
// real tributary binary, and the bridges/irc connector running in a stock
// mautrix bridgev2.Bridge over the appservice HTTP API (the shape the
// plugin SDK gives it inside the server). A Matrix user talks through the
// bridge with plain IRC clients (bridges/irc/ircconn as a raw client).
package e2eirc

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"gopkg.in/yaml.v3"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"
	"maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/bridges/irc"
	"github.com/tributary-hs/tributary/bridges/irc/ircconn"
	"github.com/tributary-hs/tributary/internal/irctest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// ircUser is a plain IRC client of the test.
type ircUser struct {
	t testing.TB
	c *ircconn.Conn
}

func dialIRC(t testing.TB, addr, nick string) *ircUser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := ircconn.Dial(ctx, ircconn.Config{Addr: addr, Nick: nick,
		Flood: ircconn.FloodControl{Burst: 1000, Interval: time.Millisecond}})
	if err != nil {
		t.Fatalf("%s: %v", nick, err)
	}
	t.Cleanup(func() { c.Close() })
	return &ircUser{t: t, c: c}
}

// await returns the first line matching pred (lines inside batches
// included).
func (u *ircUser) await(what string, pred func(*ircconn.Message) bool) *ircconn.Message {
	u.t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case ev, ok := <-u.c.Events():
			if !ok {
				u.t.Fatalf("%s: connection ended waiting for %s: %v", u.c.Nick(), what, u.c.Err())
			}
			var lines []*ircconn.Message
			if ev.Message != nil {
				lines = []*ircconn.Message{ev.Message}
			} else {
				lines = ev.Batch.Messages()
			}
			for _, m := range lines {
				if pred(m) {
					return m
				}
			}
		case <-timeout:
			u.t.Fatalf("%s: timed out waiting for %s", u.c.Nick(), what)
		}
	}
}

func (u *ircUser) awaitCmd(command, param0 string) *ircconn.Message {
	u.t.Helper()
	return u.await(command+" "+param0, func(m *ircconn.Message) bool {
		return m.Command == command && (param0 == "" || strings.EqualFold(m.Param(0), param0))
	})
}

// awaitFrom waits for a command to param0 from nick (skipping, among
// others, the echoes of the client's own lines).
func (u *ircUser) awaitFrom(command, param0, nick string) *ircconn.Message {
	u.t.Helper()
	return u.await(command+" "+param0+" from "+nick, func(m *ircconn.Message) bool {
		return m.Command == command && strings.EqualFold(m.Param(0), param0) && m.Prefix().Name == nick
	})
}

func (u *ircUser) send(m *ircconn.Message) {
	u.t.Helper()
	if err := u.c.Send(context.Background(), m); err != nil {
		u.t.Fatal(err)
	}
}

func (u *ircUser) join(channel string) {
	u.t.Helper()
	u.send(ircconn.NewMessage("JOIN", channel))
	u.await("end of names of "+channel, func(m *ircconn.Message) bool {
		return m.Command == ircconn.RPL_ENDOFNAMES && strings.EqualFold(m.Param(1), channel)
	})
}

// say sends a PRIVMSG and returns the server's echo (labeled-response).
func (u *ircUser) say(target, text string) *ircconn.Message {
	u.t.Helper()
	echoes, err := u.c.Privmsg(context.Background(), target, text, nil)
	if err != nil || len(echoes) != 1 {
		u.t.Fatalf("PRIVMSG %s: %v (echoes %v)", target, err, echoes)
	}
	return echoes[0]
}

// bridgeLog keeps the bridge's JSON log lines and its errors.
type bridgeLog struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	errors []string
}

func (l *bridgeLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var rec struct {
		Level string `json:"level"`
	}
	if json.Unmarshal(p, &rec) == nil && (rec.Level == "error" || rec.Level == "fatal" || rec.Level == "panic") {
		l.errors = append(l.errors, strings.TrimSpace(string(p)))
	}
	return l.buf.Write(p)
}

func (l *bridgeLog) errorLines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errors...)
}

func (l *bridgeLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// env is a running homeserver with the IRC bridge in front of an IRC
// server.
type env struct {
	t      testing.TB
	ircAdr string
	srv    *testserver.Server
	br     *bridgev2.Bridge
	net    *irc.Connector
	logs   *bridgeLog
}

// startEnv starts InspIRCd, tributary with the bridge's appservice
// registration, and the bridge.
func startEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, ircAdr: irctest.Start(t, irctest.Options{}).Addr}
	asURL, serveAS := listenAppService(t)
	// Not t.TempDir(): the bridge's unix socket path must stay short.
	tmp, err := os.MkdirTemp("", "e2eirc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	cfg := bridgeConfig(t, asURL, tmp)
	reg := cfg.GenerateRegistration()
	regPath := filepath.Join(tmp, "registration.yaml")
	if err := reg.Save(regPath); err != nil {
		t.Fatal(err)
	}
	e.srv = testserver.Start(t, testserver.Options{Args: []string{"--appservice", regPath,
		"--enable-registration", "--disable-rate-limits"}})
	cfg.Homeserver.Address = e.srv.URL

	e.net = irc.NewConnector()
	e.net.Config = irc.Config{
		Server:    e.ircAdr,
		NetworkID: "testnet",
		// The test's IRC clients and bridge send in bursts.
		FloodBurst: 1000, FloodInterval: time.Millisecond,
		// A killed connection comes back at once.
		ReconnectMin: 10 * time.Millisecond,
	}
	e.logs = &bridgeLog{}
	log := zerolog.New(e.logs).With().Timestamp().Logger().Level(zerolog.DebugLevel)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge logs:\n%s", e.logs.String())
		}
	})
	db, err := dbutil.NewFromConfig("e2eirc", cfg.Database, dbutil.ZeroLogger(log.With().Str("db_section", "main").Logger()))
	if err != nil {
		t.Fatal(err)
	}
	mx := matrix.NewConnector(cfg)
	e.br = bridgev2.NewBridge("", db, log, &cfg.Bridge, mx, e.net, commands.NewProcessor)
	serveAS(mx.AS.Router)
	ctx := log.WithContext(context.Background())
	if err := e.br.StartConnectors(ctx); err != nil {
		t.Fatalf("start the bridge: %v", err)
	}
	t.Cleanup(func() { e.br.StopWithTimeout(5 * time.Second) })
	if err := e.br.StartLogins(ctx); err != nil {
		t.Fatalf("start the bridge's logins: %v", err)
	}
	e.br.PostStart(ctx)
	return e
}

// bridgeConfig is what a bridge's config.yaml would hold.
func bridgeConfig(t testing.TB, asURL, dir string) *bridgeconfig.Config {
	cfg := &bridgeconfig.Config{
		Homeserver: bridgeconfig.HomeserverConfig{Domain: "localhost", Software: bridgeconfig.SoftwareStandard},
		AppService: bridgeconfig.AppserviceConfig{
			Address:          asURL,
			Hostname:         filepath.Join(dir, "as.sock"),
			ID:               "irc",
			Bot:              bridgeconfig.BotUserConfig{Username: "ircbot", Displayname: "IRC bridge bot"},
			UsernameTemplate: "irc_{{.}}",
		},
		Database: dbutil.Config{PoolConfig: dbutil.PoolConfig{Type: "sqlite3-fk-wal",
			URI: "file:" + filepath.Join(dir, "bridge.db") + "?_txlock=immediate", MaxOpenConns: 5, MaxIdleConns: 1}},
		Bridge: bridgeconfig.BridgeConfig{
			CommandPrefix:       "!irc",
			BridgeStatusNotices: "none",
			BridgeMatrixLeave:   true,
			Permissions:         bridgeconfig.PermissionConfig{"localhost": &bridgeconfig.PermissionLevelUser},
		},
		Backfill: bridgeconfig.BackfillConfig{
			Enabled:              true,
			MaxInitialMessages:   50,
			MaxCatchupMessages:   50,
			UnreadHoursThreshold: 720,
		},
		Encryption: bridgeconfig.EncryptionConfig{Allow: false},
	}
	// Relay mode on; its templates are built when the section is read
	// from YAML, as from a config file.
	if err := yaml.Unmarshal([]byte("enabled: true\ndisplayname_format: \"{{ .DisambiguatedName }}\"\n"), &cfg.Bridge.Relay); err != nil {
		t.Fatal(err)
	}
	cfg.Bridge.Backfill = cfg.Backfill
	return cfg
}

// listenAppService listens on a loopback port for the homeserver's
// transactions; until serve is called it answers 503, which the homeserver
// retries.
func listenAppService(t testing.TB) (url string, serve func(http.Handler)) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var h atomic.Pointer[http.Handler]
	s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := h.Load(); p != nil {
			(*p).ServeHTTP(w, r)
			return
		}
		http.Error(w, `{"errcode":"M_UNKNOWN","error":"bridge not started"}`, http.StatusServiceUnavailable)
	})}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return "http://" + l.Addr().String(), func(handler http.Handler) { h.Store(&handler) }
}

// login runs the bridge's login flow for a Matrix user with a nick.
func (e *env) login(ctx context.Context, user id.UserID, nick string) (*bridgev2.UserLogin, string) {
	e.t.Helper()
	u, err := e.br.GetUserByMXID(ctx, user)
	if err != nil {
		e.t.Fatal(err)
	}
	proc, err := e.net.CreateLogin(ctx, u, e.net.GetLoginFlows()[0].ID)
	if err != nil {
		e.t.Fatal(err)
	}
	step, err := proc.Start(ctx)
	if err != nil || step.Type != bridgev2.LoginStepTypeUserInput {
		e.t.Fatalf("login start: %+v, %v", step, err)
	}
	step, err = proc.(bridgev2.LoginProcessUserInput).SubmitUserInput(ctx, map[string]string{"nick": nick})
	if err != nil || step.Type != bridgev2.LoginStepTypeComplete {
		e.t.Fatalf("login: %+v, %v", step, err)
	}
	return step.CompleteParams.UserLogin, step.Instructions
}

// ghost is the Matrix ID of an IRC user's ghost.
func ghost(nick string) id.UserID { return id.UserID("@irc_" + nick + ":localhost") }

// watcher follows a Matrix user's /sync and keeps every room event it saw.
type watcher struct {
	t     testing.TB
	cli   *mautrix.Client
	logs  *bridgeLog
	since string
	seen  map[id.RoomID][]*event.Event
	// invites are the rooms the user was invited to, in order.
	invites []id.RoomID
}

func newWatcher(t testing.TB, cli *mautrix.Client, logs *bridgeLog) *watcher {
	return &watcher{t: t, cli: cli, logs: logs, seen: map[id.RoomID][]*event.Event{}}
}

// syncFilter asks for long timelines, so that no event is skipped.
const syncFilter = `{"room":{"timeline":{"limit":500}}}`

// next runs one /sync long-poll.
func (w *watcher) next(ctx context.Context) {
	w.t.Helper()
	resp, err := w.cli.SyncRequest(ctx, 5000, w.since, syncFilter, false, "")
	if err != nil {
		w.t.Fatalf("/sync: %v; bridge errors: %v", err, w.logs.errorLines())
	}
	w.since = resp.NextBatch
	for roomID := range resp.Rooms.Invite {
		w.invites = append(w.invites, roomID)
	}
	for roomID, room := range resp.Rooms.Join {
		for _, evt := range append(room.State.Events, room.Timeline.Events...) {
			evt.RoomID = roomID
			_ = evt.Content.ParseRaw(evt.Type)
			w.seen[roomID] = append(w.seen[roomID], evt)
		}
		// Typing and receipts too, marked as ephemeral.
		for _, evt := range room.Ephemeral.Events {
			evt.RoomID = roomID
			evt.Type.Class = event.EphemeralEventType
			_ = evt.Content.ParseRaw(evt.Type)
			w.seen[roomID] = append(w.seen[roomID], evt)
		}
	}
}

// waitInvite returns the first invite not in skip.
func (w *watcher) waitInvite(ctx context.Context, skip ...id.RoomID) id.RoomID {
	w.t.Helper()
	for {
		for _, r := range w.invites {
			found := false
			for _, s := range skip {
				found = found || s == r
			}
			if !found {
				return r
			}
		}
		if ctx.Err() != nil {
			w.t.Fatalf("no invite: %v; bridge errors: %v", ctx.Err(), w.logs.errorLines())
		}
		w.next(ctx)
	}
}

// wait returns the first event of the room matching pred, syncing until
// one arrives.
func (w *watcher) wait(ctx context.Context, roomID id.RoomID, what string, pred func(*event.Event) bool) *event.Event {
	w.t.Helper()
	for {
		for _, evt := range w.seen[roomID] {
			if pred(evt) {
				return evt
			}
		}
		if ctx.Err() != nil {
			w.t.Fatalf("waiting for %s in %s: %v; bridge errors: %v", what, roomID, ctx.Err(), w.logs.errorLines())
		}
		w.next(ctx)
	}
}

// waitMessage waits for a message with the body.
func (w *watcher) waitMessage(ctx context.Context, roomID id.RoomID, body string) *event.Event {
	w.t.Helper()
	return w.wait(ctx, roomID, "message "+strconv.Quote(body), func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && evt.Content.AsMessage().Body == body
	})
}

// waitMember waits for a member event of user with the membership.
func (w *watcher) waitMember(ctx context.Context, roomID id.RoomID, user id.UserID, ms event.Membership, extra func(*event.Event) bool) *event.Event {
	w.t.Helper()
	return w.wait(ctx, roomID, string(user)+" "+string(ms), func(evt *event.Event) bool {
		return evt.Type == event.StateMember && evt.GetStateKey() == string(user) &&
			evt.Content.AsMember().Membership == ms && (extra == nil || extra(evt))
	})
}
