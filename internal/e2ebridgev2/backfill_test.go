// Package e2ebridgev2 runs a real mautrix bridgev2 bridge — the stock
// bridgev2.Bridge and its Matrix appservice connector, with a small
// in-memory NetworkConnector — against the real tributary binary.
package e2ebridgev2

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"
	"maunium.net/go/mautrix/bridgev2/commands"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/matrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

const batchSendRoute = "/_matrix/client/unstable/com.beeper.backfill/rooms/:roomId/batch_send"

// TestBridgev2Backfill: a bridgev2 bridge creates a portal for a chat with
// 10,000 messages of history and backfills it through batch_send; a Matrix
// client then paginates the room and reads every message back in order,
// with its original sender and timestamp.
func TestBridgev2Backfill(t *testing.T) {
	const (
		n = 10_000
		// The network's history pages; each becomes one batch_send.
		pageLimit = 2_500
	)
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	// The appservice listener belongs to the test, so that the registration
	// can name its address before the bridge exists; it serves the bridge's
	// router once the bridge is built.
	asURL, serveAS := listenAppService(t)
	// Not t.TempDir(): the bridge's unix socket path must stay short.
	tmp, err := os.MkdirTemp("", "e2ebridgev2-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	cfg := bridgeConfig(asURL, tmp)
	reg := cfg.GenerateRegistration() // fills as_token and hs_token in cfg, as `bridge -g` does
	regPath := filepath.Join(tmp, "registration.yaml")
	if err := reg.Save(regPath); err != nil {
		t.Fatal(err)
	}

	srv := testserver.Start(t, testserver.Options{Args: []string{"--appservice", regPath,
		"--enable-registration", "--disable-rate-limits"}})
	cfg.Homeserver.Address = srv.URL
	alice := srv.Register(t, &mautrix.ReqRegister{Username: "alice", Password: "correct horse battery"})

	network := newTestNetwork(n, pageLimit)
	br, mx, logs := startBridge(ctx, t, cfg, network)
	serveAS(mx.AS.Router)
	if !mx.GetCapabilities().BatchSending {
		t.Fatalf("the bridge did not detect com.beeper.batch_sending in /versions: %+v", mx.SpecVersions)
	}

	// Alice logs in to the test network; the network tells the bridge
	// about its one chat, which makes the bridge create the portal and
	// backfill it.
	user, err := br.GetUserByMXID(ctx, alice.UserID)
	if err != nil {
		t.Fatal(err)
	}
	login, err := user.NewLogin(ctx, &database.UserLogin{ID: "alice-login", RemoteName: "Alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	login.Client.Connect(ctx)
	res := login.QueueRemoteEvent(network.resync(true))
	if !res.Success {
		t.Fatalf("queueing the chat resync: %+v", res)
	}

	roomID := waitInvite(ctx, t, alice, logs)
	if _, err := alice.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatalf("join the portal %s: %v", roomID, err)
	}
	waitMessage(ctx, t, alice, roomID, network.body(n-1), logs)
	backfilled := time.Now()

	got := paginate(ctx, t, alice, roomID)
	if len(got) != n {
		t.Fatalf("paginated %d messages, want %d", len(got), n)
	}
	for i := range n {
		ev := got[n-1-i] // newest first
		wantSender := id.UserID(fmt.Sprintf("@testnet_%s:localhost", network.sender(i)))
		if body, _ := ev.Content.Raw["body"].(string); body != network.body(i) || ev.Sender != wantSender ||
			ev.Timestamp != network.ts(i).UnixMilli() || ev.Content.Raw["msgtype"] != "m.text" {
			t.Fatalf("message %d read back as %s from %s at %d (%v); want %q from %s at %d",
				i, ev.ID, ev.Sender, ev.Timestamp, ev.Content.Raw, network.body(i), wantSender, network.ts(i).UnixMilli())
		}
	}

	// The history came through batch_send, not message by message.
	batches := serverRequests(t, srv.Logs(), batchSendRoute)
	if len(batches) != n/pageLimit {
		t.Fatalf("the server saw %d batch_send requests, want one per page (%d)", len(batches), n/pageLimit)
	}
	for _, status := range batches {
		if status != http.StatusOK {
			t.Fatalf("batch_send answered %d (all: %v)", status, batches)
		}
	}
	returned := 0
	for _, c := range network.fetchCalls() {
		if !c.Forward {
			t.Fatalf("a backward FetchMessages call: %+v", c)
		}
		returned += c.Returned
	}
	if returned != n {
		t.Fatalf("FetchMessages returned %d messages in all, want %d: %+v", returned, n, network.fetchCalls())
	}
	t.Logf("%d messages: FetchMessages calls %+v, %d batch_send requests; backfilled %.1fs after start, paginated in %.1fs",
		n, network.fetchCalls(), len(batches), backfilled.Sub(start).Seconds(), time.Since(backfilled).Seconds())
}

// bridgeConfig is the bridge's configuration: what a bridge's config.yaml
// would hold. Features the server does not offer are switched off here.
func bridgeConfig(asURL, dir string) *bridgeconfig.Config {
	cfg := &bridgeconfig.Config{
		Homeserver: bridgeconfig.HomeserverConfig{Domain: "localhost", Software: bridgeconfig.SoftwareStandard},
		AppService: bridgeconfig.AppserviceConfig{
			Address: asURL,
			// The bridge's own listener goes to a socket nobody calls; the
			// homeserver reaches the same router through asURL.
			Hostname:         filepath.Join(dir, "as.sock"),
			ID:               "testnet",
			Bot:              bridgeconfig.BotUserConfig{Username: "testnetbot", Displayname: "Test network bridge bot"},
			UsernameTemplate: "testnet_{{.}}",
		},
		Database: dbutil.Config{PoolConfig: dbutil.PoolConfig{Type: "sqlite3-fk-wal",
			URI: "file:" + filepath.Join(dir, "bridge.db") + "?_txlock=immediate", MaxOpenConns: 5, MaxIdleConns: 1}},
		Bridge: bridgeconfig.BridgeConfig{
			CommandPrefix:       "!testnet",
			BridgeStatusNotices: "none",
			Permissions:         bridgeconfig.PermissionConfig{"localhost": &bridgeconfig.PermissionLevelUser},
		},
		Backfill: bridgeconfig.BackfillConfig{
			Enabled: true,
			// The whole history through forward backfills: the first one
			// of the new portal, then catch-ups after each resync, one
			// batch_send per page the network returns. The server takes at
			// most 5,000 events per batch, so no page may be larger.
			MaxInitialMessages: 10_000,
			MaxCatchupMessages: 10_000,
			// 0: do not mark old history read. Above 0 (the example config
			// has 720) the bridge sends mark_read_by with the Matrix user
			// of the login, a user outside its namespace.
			UnreadHoursThreshold: 0,
			// The queue sends backward batches, which the server does not
			// take into a room that has messages.
			Queue: bridgeconfig.BackfillQueueConfig{Enabled: false},
		},
		// No end-to-bridge encryption, direct media, public media or
		// provisioning API: none of them is under test.
		Encryption: bridgeconfig.EncryptionConfig{Allow: false},
	}
	cfg.Bridge.Backfill = cfg.Backfill // as mxmain's LoadConfig does
	return cfg
}

// startBridge builds and starts the bridge the way mxmain does, minus flags
// and config files.
func startBridge(ctx context.Context, t *testing.T, cfg *bridgeconfig.Config, network bridgev2.NetworkConnector) (*bridgev2.Bridge, *matrix.Connector, *bridgeLog) {
	t.Helper()
	logs := &bridgeLog{}
	log := zerolog.New(logs).With().Timestamp().Logger().Level(zerolog.DebugLevel)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge logs:\n%s", logs.String())
		}
	})
	db, err := dbutil.NewFromConfig("e2ebridgev2", cfg.Database, dbutil.ZeroLogger(log.With().Str("db_section", "main").Logger()))
	if err != nil {
		t.Fatal(err)
	}
	mx := matrix.NewConnector(cfg)
	// /versions lists no spec versions yet; mxmain's --ignore-unsupported-server.
	mx.IgnoreUnsupportedServer = true
	br := bridgev2.NewBridge("", db, log, &cfg.Bridge, mx, network, commands.NewProcessor)
	ctx = log.WithContext(ctx)
	if err := br.StartConnectors(ctx); err != nil {
		t.Fatalf("start the bridge: %v", err)
	}
	t.Cleanup(func() { br.StopWithTimeout(5 * time.Second) })
	if err := br.StartLogins(ctx); err != nil {
		t.Fatalf("start the bridge's logins: %v", err)
	}
	br.PostStart(ctx)
	return br, mx, logs
}

// listenAppService listens on a loopback port for the homeserver's
// transactions; until serve is called it answers 503, which the homeserver
// retries.
func listenAppService(t *testing.T) (url string, serve func(http.Handler)) {
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

// backfillFailure is the bridge's report of a failed backfill, if any:
// bridgev2 logs it and carries on, so the room would simply stay empty.
func (l *bridgeLog) backfillFailure() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.errors {
		if strings.Contains(e, "backfill") {
			return e
		}
	}
	return ""
}

// waitInvite long-polls /sync until the user is invited to a room.
func waitInvite(ctx context.Context, t *testing.T, cli *mautrix.Client, logs *bridgeLog) id.RoomID {
	t.Helper()
	since := ""
	for {
		resp, err := cli.SyncRequest(ctx, 5000, since, "", false, "")
		if err != nil {
			t.Fatalf("waiting for the portal invite: %v; bridge errors: %v", err, logs.errorLines())
		}
		for roomID := range resp.Rooms.Invite {
			return roomID
		}
		since = resp.NextBatch
	}
}

// waitMessage waits until the room's newest message has the given body,
// checking after each /sync wake-up; a backfill failure the bridge logs
// ends the wait at once.
func waitMessage(ctx context.Context, t *testing.T, cli *mautrix.Client, roomID id.RoomID, body string, logs *bridgeLog) {
	t.Helper()
	since := ""
	for {
		if e := logs.backfillFailure(); e != "" {
			t.Fatalf("the bridge failed to backfill: %s", e)
		}
		page, err := cli.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 50)
		if err != nil {
			t.Fatalf("waiting for the backfill: %v", err)
		}
		for _, ev := range page.Chunk {
			if ev.Type == event.EventMessage {
				if ev.Content.Raw["body"] == body {
					return
				}
				break
			}
		}
		resp, err := cli.SyncRequest(ctx, 2000, since, "", false, "")
		if err != nil {
			t.Fatalf("waiting for the backfill (last page %d events): %v", len(page.Chunk), err)
		}
		since = resp.NextBatch
	}
}

// paginate reads the room's messages with /messages, newest first.
func paginate(ctx context.Context, t *testing.T, cli *mautrix.Client, roomID id.RoomID) []*event.Event {
	t.Helper()
	var got []*event.Event
	from := ""
	for pages := 0; ; pages++ {
		page, err := cli.Messages(ctx, roomID, from, "", mautrix.DirectionBackward, nil, 1000)
		if err != nil {
			t.Fatalf("/messages page %d: %v", pages, err)
		}
		for _, ev := range page.Chunk {
			if ev.Type == event.EventMessage {
				got = append(got, ev)
			}
		}
		if page.End == "" || len(page.Chunk) == 0 {
			return got
		}
		if pages > 10_000 {
			t.Fatal("/messages does not end")
		}
		from = page.End
	}
}

// serverRequests returns the status of each request the server logged for
// the route.
func serverRequests(t *testing.T, logs, route string) []int {
	t.Helper()
	var statuses []int
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		var rec struct {
			Msg    string `json:"msg"`
			Route  string `json:"route"`
			Status int    `json:"status"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "request" && rec.Route == route {
			statuses = append(statuses, rec.Status)
		}
	}
	return statuses
}
