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
	"slices"
	"strconv"
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
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

const batchSendRoute = "/_matrix/client/unstable/com.beeper.backfill/rooms/:roomId/batch_send"

// TestBridgev2Backfill: a bridgev2 bridge creates a portal for a chat with
// 10,000 messages of history. The portal's first forward backfill brings
// the newest messages; the backfill queue then fetches older history page
// by page and sends it as backward batches, before the timeline. A Matrix
// client paginates the room and reads every message back in order, with
// its original sender and timestamp; the history is marked read for the
// user; the event IDs the bridge chose stand for the real events, both when
// the client looks them up and when it replies to backfilled messages.
func TestBridgev2Backfill(t *testing.T) {
	const (
		n = 10_000
		// The first forward backfill: the newest messages of the chat.
		initial = 2_000
		// The backfill queue's pages: 3,000, 3,000 and 2,000 messages.
		batchSize = 3_000
	)
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
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
	cfg := bridgeConfig(asURL, tmp, initial, batchSize)
	reg := cfg.GenerateRegistration() // fills as_token and hs_token in cfg, as `bridge -g` does
	regPath := filepath.Join(tmp, "registration.yaml")
	if err := reg.Save(regPath); err != nil {
		t.Fatal(err)
	}

	srv := testserver.Start(t, testserver.Options{Args: []string{"--appservice", regPath,
		"--enable-registration", "--disable-rate-limits"}})
	cfg.Homeserver.Address = srv.URL
	alice := srv.Register(t, &mautrix.ReqRegister[any]{Username: "alice", Password: "correct horse battery"})

	network := newTestNetwork(n)
	br, mx, logs := startBridge(ctx, t, cfg, network, serveAS)
	if !mx.GetCapabilities().BatchSending {
		t.Fatalf("the bridge did not detect com.beeper.batch_sending in /versions: %+v", mx.SpecVersions)
	}

	// Alice logs in to the test network; the network tells the bridge
	// about its one chat, which makes the bridge create the portal and
	// backfill its newest messages.
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

	// Alice accepts the invite once the bridge has sent the chat's newest
	// messages, as a user does who opens the invite later: bridgev2 sends
	// that first batch while she is invited, marked read for her. (It
	// records the messages after the batch is sent.)
	roomID := waitInvite(ctx, t, alice, logs)
	waitBridged(ctx, t, br, network.chat, initial, logs)
	if _, err := alice.JoinRoomByID(ctx, roomID); err != nil {
		t.Fatalf("join the portal %s: %v", roomID, err)
	}
	waitMessage(ctx, t, alice, roomID, network.body(n-1), logs)

	// The older history is the backfill queue's: bridgev2 schedules the
	// portal's task a minute after creating the room
	// (BackfillMinBackoffAfterRoomCreate); the test brings it forward.
	task := waitBackfillTask(ctx, t, br, network.chat, logs)
	task.NextDispatchMinTS = time.Now()
	if err := br.DB.BackfillTask.Update(ctx, task); err != nil {
		t.Fatal(err)
	}
	br.WakeupBackfillQueue()
	waitBackfillDone(ctx, t, br, network.chat, logs)
	backfilled := time.Now()

	got := paginate(ctx, t, alice, roomID)
	if len(got) != n {
		t.Fatalf("paginated %d messages, want %d; FetchMessages calls %+v", len(got), n, network.fetchCalls())
	}
	realIDs := make([]id.EventID, n) // message i's event, as the server names it
	for i := range n {
		ev := got[n-1-i] // newest first
		wantSender := id.UserID(fmt.Sprintf("@testnet_%s:localhost", network.sender(i)))
		if body, _ := ev.Content.Raw["body"].(string); body != network.body(i) || ev.Sender != wantSender ||
			ev.Timestamp != network.ts(i).UnixMilli() || ev.Content.Raw["msgtype"] != "m.text" {
			t.Fatalf("message %d read back as %s from %s at %d (%v); want %q from %s at %d",
				i, ev.ID, ev.Sender, ev.Timestamp, ev.Content.Raw, network.body(i), wantSender, network.ts(i).UnixMilli())
		}
		realIDs[i] = ev.ID
	}

	// The network was asked for the newest messages once, then for older
	// pages until it said there were no more.
	wantCalls := []fetchCall{
		{Forward: true, Count: initial, Returned: initial, HasMore: true},
		{Count: batchSize, Anchor: messageID(n - initial), Returned: batchSize, HasMore: true},
		{Count: batchSize, Anchor: messageID(n - initial - batchSize), Cursor: cursor(n - initial - batchSize),
			Returned: batchSize, HasMore: true},
		{Count: batchSize, Anchor: messageID(n - initial - 2*batchSize), Cursor: cursor(n - initial - 2*batchSize),
			Returned: n - initial - 2*batchSize, HasMore: false},
	}
	if calls := network.fetchCalls(); !slices.Equal(calls, wantCalls) {
		t.Fatalf("FetchMessages calls\n%+v\nwant\n%+v", calls, wantCalls)
	}
	// Each page came through one batch_send, not message by message.
	batches := serverRequests(t, srv.Logs(), batchSendRoute)
	if len(batches) != len(wantCalls) {
		t.Fatalf("the server saw %d batch_send requests, want one per page (%d)", len(batches), len(wantCalls))
	}
	for _, status := range batches {
		if status != http.StatusOK {
			t.Fatalf("batch_send answered %d (all: %v)", status, batches)
		}
	}

	// The chat is older than unread_hours_threshold, so the bridge marked
	// it read for alice: her receipt is on the newest message, where the
	// backward batches' receipts on older history did not move it.
	if ev, ok := readReceipt(ctx, t, alice, roomID); !ok || ev != realIDs[n-1] {
		t.Fatalf("alice's read receipt is on %q (found %v), want the newest message %s", ev, ok, realIDs[n-1])
	}

	// The bridge knows each message by the event ID it chose; the server
	// answers for that ID with the real event.
	for _, i := range []int{0, n - initial - batchSize - 1, n - initial, n - 1} {
		part, err := br.DB.Message.GetFirstPartByID(ctx, "", messageID(i))
		if err != nil || part == nil {
			t.Fatalf("the bridge's record of message %d: %v, %v", i, part, err)
		}
		if part.MXID == realIDs[i] {
			t.Fatalf("message %d: the bridge recorded the real event ID %s, not one of its own", i, part.MXID)
		}
		ev, err := alice.GetEvent(ctx, roomID, part.MXID)
		if err != nil {
			t.Fatalf("GET the event of message %d by the bridge's ID %s: %v", i, part.MXID, err)
		}
		if body, _ := ev.Content.Raw["body"].(string); ev.ID != realIDs[i] || body != network.body(i) {
			t.Fatalf("the bridge's ID %s of message %d gives %s %q, want %s %q",
				part.MXID, i, ev.ID, body, realIDs[i], network.body(i))
		}
	}

	// Alice replies to backfilled messages the way Element does, by their
	// real event IDs; the network is told which of its messages she
	// replies to.
	for _, i := range []int{n - initial - batchSize - 1, n - 1} {
		body := fmt.Sprintf("reply to msg %d", i)
		content := map[string]any{"msgtype": "m.text", "body": body,
			"m.relates_to": map[string]any{"m.in_reply_to": map[string]any{"event_id": realIDs[i]}}}
		resp, err := alice.SendMessageEvent(ctx, roomID, event.EventMessage, content)
		if err != nil {
			t.Fatalf("send the reply to message %d: %v", i, err)
		}
		select {
		case sent := <-network.fromMatrix:
			if sent.Body != body || sent.ReplyTo != messageID(i) {
				t.Fatalf("the network got %+v, want %q replying to %s", sent, body, messageID(i))
			}
		case <-ctx.Done():
			t.Fatalf("the network never got the reply to message %d; bridge errors: %v", i, logs.errorLines())
		}
		// Done once the bridge has recorded the message it bridged.
		poll(ctx, t, logs, "the bridge's record of the reply", func() (bool, error) {
			part, err := br.DB.Message.GetPartByMXID(ctx, resp.EventID)
			return part != nil, err
		})
	}
	// The bridge accepted the server as it is (spec versions, ping) and
	// met no error on the way.
	if errs := logs.errorLines(); len(errs) > 0 {
		t.Fatalf("the bridge logged errors: %v", errs)
	}
	t.Logf("%d messages: %d batch_send requests; backfilled %.1fs after start, paginated and checked in %.1fs",
		n, len(batches), backfilled.Sub(start).Seconds(), time.Since(backfilled).Seconds())
}

func cursor(i int) networkid.PaginationCursor { return networkid.PaginationCursor(strconv.Itoa(i)) }

// bridgeConfig is the bridge's configuration: what a bridge's config.yaml
// would hold. Features the server does not offer are switched off here.
func bridgeConfig(asURL, dir string, initial, batchSize int) *bridgeconfig.Config {
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
			// A new portal gets the chat's newest messages in one forward
			// batch; the queue backfills the rest.
			MaxInitialMessages: initial,
			MaxCatchupMessages: initial,
			// The example config's: the chat is older, so each batch is
			// sent with mark_read_by the login's Matrix user.
			UnreadHoursThreshold: 720,
			Queue: bridgeconfig.BackfillQueueConfig{
				Enabled:   true,
				BatchSize: batchSize,
				// Seconds; 0 would make the queue poll its table without pause.
				BatchDelay: 1,
				// All the history there is: the network's HasMore ends it.
				MaxBatches: -1,
			},
		},
		// No end-to-bridge encryption, direct media, public media or
		// provisioning API: none of them is under test.
		Encryption: bridgeconfig.EncryptionConfig{Allow: false},
	}
	cfg.Bridge.Backfill = cfg.Backfill // as mxmain's LoadConfig does
	return cfg
}

// startBridge builds and starts the bridge the way mxmain does, minus flags
// and config files. The test's cleanup stops it, unless stopBridge did.
func startBridge(ctx context.Context, t *testing.T, cfg *bridgeconfig.Config, network bridgev2.NetworkConnector,
	serveAS func(http.Handler)) (*bridgev2.Bridge, *matrix.Connector, *bridgeLog) {
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
	br := bridgev2.NewBridge("", db, log, &cfg.Bridge, mx, network, commands.NewProcessor)
	// The appservice router exists now; serve it before the connector
	// starts, which checks the spec versions and pings the homeserver →
	// appservice connection.
	serveAS(mx.AS.Router)
	ctx = log.WithContext(ctx)
	if err := br.StartConnectors(ctx); err != nil {
		t.Fatalf("start the bridge: %v", err)
	}
	t.Cleanup(func() { stopBridge(br) })
	if err := br.StartLogins(ctx); err != nil {
		t.Fatalf("start the bridge's logins: %v", err)
	}
	br.PostStart(ctx)
	return br, mx, logs
}

// stopped holds a sync.Once per started bridge: bridgev2 must not be
// stopped twice (its event processor closes a channel).
var stopped sync.Map

// stopBridge stops a bridge startBridge started, once.
func stopBridge(br *bridgev2.Bridge) {
	once, _ := stopped.LoadOrStore(br, &sync.Once{})
	once.(*sync.Once).Do(func() { br.StopWithTimeout(5 * time.Second) })
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

// waitBackfillTask waits for the portal's backfill queue task, which
// bridgev2 creates with the room.
func waitBackfillTask(ctx context.Context, t *testing.T, br *bridgev2.Bridge, portal networkid.PortalKey, logs *bridgeLog) *database.BackfillTask {
	t.Helper()
	var task *database.BackfillTask
	poll(ctx, t, logs, "the backfill task", func() (bool, error) {
		var err error
		task, err = br.DB.BackfillTask.GetNextForPortal(ctx, portal, true)
		return task != nil, err
	})
	return task
}

// waitBridged waits until the bridge's database holds count messages of
// the portal.
func waitBridged(ctx context.Context, t *testing.T, br *bridgev2.Bridge, portal networkid.PortalKey, count int, logs *bridgeLog) {
	t.Helper()
	poll(ctx, t, logs, fmt.Sprintf("%d bridged messages", count), func() (bool, error) {
		got, err := br.DB.Message.CountMessagesInPortal(ctx, portal)
		return got >= count, err
	})
}

// waitBackfillDone waits until the portal's backfill task is done: the
// queue marks it so after the batch of the network's last page is sent.
func waitBackfillDone(ctx context.Context, t *testing.T, br *bridgev2.Bridge, portal networkid.PortalKey, logs *bridgeLog) {
	t.Helper()
	poll(ctx, t, logs, "the backfill queue", func() (bool, error) {
		var done bool
		err := br.DB.QueryRow(ctx, `SELECT is_done FROM backfill_task WHERE bridge_id=$1 AND portal_id=$2 AND portal_receiver=$3`,
			br.ID, portal.ID, portal.Receiver).Scan(&done)
		return done, err
	})
}

// poll checks cond every 100ms until it holds; a backfill failure the
// bridge logs, or the context's deadline, ends the wait.
func poll(ctx context.Context, t *testing.T, logs *bridgeLog, what string, cond func() (bool, error)) {
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if e := logs.backfillFailure(); e != "" {
			t.Fatalf("waiting for %s: the bridge failed to backfill: %s", what, e)
		}
		ok, err := cond()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; bridge errors: %v", what, ctx.Err(), logs.errorLines())
		}
	}
}

// readReceipt returns the event of the user's m.read receipt in the room,
// as an initial /sync shows it.
func readReceipt(ctx context.Context, t *testing.T, cli *mautrix.Client, roomID id.RoomID) (id.EventID, bool) {
	t.Helper()
	resp, err := cli.SyncRequest(ctx, 0, "", "", true, "")
	if err != nil {
		t.Fatalf("initial /sync: %v", err)
	}
	room := resp.Rooms.Join[roomID]
	if room == nil {
		t.Fatalf("initial /sync has no joined room %s", roomID)
	}
	for _, ev := range room.Ephemeral.Events {
		if ev.Type != event.EphemeralEventReceipt {
			continue
		}
		for evID, byType := range ev.Content.Raw {
			read, _ := byType.(map[string]any)["m.read"].(map[string]any)
			if _, ok := read[string(cli.UserID)]; ok {
				return id.EventID(evID), true
			}
		}
	}
	return "", false
}
