//go:build goolm

package e2ekeys

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/e2ee"
	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// e2eeClient is a mautrix client with an OlmMachine (in memory), syncing
// in the background; decrypted messages are collected.
type e2eeClient struct {
	cli    *mautrix.Client
	mach   *crypto.OlmMachine
	mu     sync.Mutex
	msgs   []*event.Event
	errs   []error
	joined map[id.RoomID]map[id.UserID]bool
	wake   chan struct{}
}

func newE2EEClient(t *testing.T, cli *mautrix.Client) *e2eeClient {
	t.Helper()
	c := newIdleE2EEClient(t, cli)
	c.startSync(t)
	return c
}

// newIdleE2EEClient is an e2eeClient that does not sync: tests that drive
// the OlmMachine themselves use it, since the machine's cross-signing keys
// are not safe to publish while a sync loop fetches keys.
func newIdleE2EEClient(t *testing.T, cli *mautrix.Client) *e2eeClient {
	t.Helper()
	ctx := t.Context()
	stateStore := e2ee.NewStateStore()
	cli.StateStore = stateStore
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel).With().Str("user", string(cli.UserID)).Logger()
	cli.Log = log
	mach := crypto.NewOlmMachine(cli, &log, e2ee.NewCryptoStore(), stateStore)
	if err := mach.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mach.ShareKeys(ctx, -1); err != nil {
		t.Fatalf("%s uploads keys: %v", cli.UserID, err)
	}
	c := &e2eeClient{cli: cli, mach: mach, joined: map[id.RoomID]map[id.UserID]bool{}, wake: make(chan struct{}, 1)}
	syncer := cli.Syncer.(*mautrix.DefaultSyncer)
	syncer.OnSync(mach.ProcessSyncResponse)
	syncer.OnEvent(cli.StateStoreSyncHandler)
	syncer.OnEventType(event.StateMember, mach.HandleMemberEvent)
	syncer.OnEventType(event.StateMember, func(ctx context.Context, evt *event.Event) {
		c.mu.Lock()
		if c.joined[evt.RoomID] == nil {
			c.joined[evt.RoomID] = map[id.UserID]bool{}
		}
		c.joined[evt.RoomID][id.UserID(evt.GetStateKey())] = evt.Content.AsMember().Membership == event.MembershipJoin
		c.mu.Unlock()
		c.poke()
	})
	syncer.OnEventType(event.EventEncrypted, func(ctx context.Context, evt *event.Event) {
		go c.decrypt(context.WithoutCancel(ctx), evt)
	})
	return c
}

// startSync runs the client's sync loop until the test ends.
func (c *e2eeClient) startSync(t *testing.T) {
	cli := c.cli
	syncCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := cli.SyncWithContext(syncCtx); err != nil && syncCtx.Err() == nil {
			c.mu.Lock()
			c.errs = append(c.errs, fmt.Errorf("sync stopped: %w", err))
			c.mu.Unlock()
			c.poke()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// decrypt decrypts a Megolm event, waiting for its room key if needed.
func (c *e2eeClient) decrypt(ctx context.Context, evt *event.Event) {
	content := evt.Content.AsEncrypted()
	dec, err := c.mach.DecryptMegolmEvent(ctx, evt)
	if errors.Is(err, crypto.ErrNoSessionFound) &&
		c.mach.WaitForSession(ctx, evt.RoomID, content.SenderKey, content.SessionID, 20*time.Second) {
		dec, err = c.mach.DecryptMegolmEvent(ctx, evt)
	}
	c.mu.Lock()
	if err != nil {
		c.errs = append(c.errs, fmt.Errorf("decrypt %s: %w", evt.ID, err))
	} else {
		_ = dec.Content.ParseRaw(dec.Type)
		c.msgs = append(c.msgs, dec)
	}
	c.mu.Unlock()
	c.poke()
}

// send encrypts and sends a text message, sharing a group session with the
// room's members first when there is none.
func (c *e2eeClient) send(t *testing.T, room id.RoomID, body string) id.EventID {
	t.Helper()
	ctx := t.Context()
	content := &event.MessageEventContent{MsgType: event.MsgText, Body: body}
	enc, err := c.mach.EncryptMegolmEvent(ctx, room, event.EventMessage, content)
	if errors.Is(err, crypto.ErrNoGroupSession) || errors.Is(err, crypto.ErrSessionExpired) || errors.Is(err, crypto.ErrSessionNotShared) {
		members, err := c.cli.StateStore.GetRoomJoinedOrInvitedMembers(ctx, room)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.mach.ShareGroupSession(ctx, room, members); err != nil {
			t.Fatalf("%s shares the group session: %v", c.cli.UserID, err)
		}
		enc, err = c.mach.EncryptMegolmEvent(ctx, room, event.EventMessage, content)
		if err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	res, err := c.cli.SendMessageEvent(ctx, room, event.EventEncrypted, enc)
	if err != nil {
		t.Fatalf("%s sends: %v", c.cli.UserID, err)
	}
	return res.EventID
}

func (c *e2eeClient) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// waitFor polls cond (under the lock) until it holds or 30 seconds pass.
func (c *e2eeClient) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		ok := cond()
		errs := c.errs
		c.mu.Unlock()
		if ok {
			return
		}
		if len(errs) > 0 {
			t.Fatalf("%s: %v", c.cli.UserID, errs)
		}
		select {
		case <-c.wake:
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s: timed out waiting for %s", c.cli.UserID, what)
		}
	}
}

// message waits for a decrypted m.room.message with the body.
func (c *e2eeClient) message(t *testing.T, roomID id.RoomID, body string) *event.Event {
	t.Helper()
	var found *event.Event
	c.waitFor(t, "message "+body, func() bool {
		for _, evt := range c.msgs {
			if evt.RoomID == roomID && evt.Content.AsMessage().Body == body {
				found = evt
				return true
			}
		}
		return false
	})
	return found
}

// encryptedRoom has alice create an encrypted room that bob joins, and
// waits until both clients know both members.
func encryptedRoom(t *testing.T, alice, bob *e2eeClient) id.RoomID {
	t.Helper()
	ctx := t.Context()
	resp, err := alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bob.cli.UserID},
		InitialState: []*event.Event{{Type: event.StateEncryption, Content: event.Content{
			Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}}})
	if err != nil {
		t.Fatal(err)
	}
	room := resp.RoomID
	if _, err := bob.cli.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*e2eeClient{alice, bob} {
		c.waitFor(t, "both joined", func() bool {
			return c.joined[room][alice.cli.UserID] && c.joined[room][bob.cli.UserID]
		})
	}
	return room
}

func TestMegolmExchange(t *testing.T) { megolmExchange(t, start(t)) }

// TestMegolmExchangePostgres is the same on PostgreSQL (skipped without it,
// unless TRIBUTARY_REQUIRE_POSTGRES=1).
func TestMegolmExchangePostgres(t *testing.T) {
	url := pgtest.URL(t)
	megolmExchange(t, testserver.Start(t, testserver.Options{Args: []string{"--database-url", url,
		"--enable-registration", "--disable-rate-limits"}}))
}

func megolmExchange(t *testing.T, srv *testserver.Server) {
	alice := newE2EEClient(t, register(t, srv, "alice"))
	bob := newE2EEClient(t, register(t, srv, "bob"))
	ctx := t.Context()
	room := encryptedRoom(t, alice, bob)

	send := func(from *e2eeClient, body string) id.EventID { return from.send(t, room, body) }
	eventID := send(alice, "hello bob, this is secret")
	// The server only ever saw ciphertext.
	raw, err := bob.cli.GetEvent(ctx, room, eventID)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Type != event.EventEncrypted {
		t.Fatalf("stored event type %s, want m.room.encrypted", raw.Type)
	}
	got := bob.message(t, room, "hello bob, this is secret")
	if got.Sender != alice.cli.UserID || got.ID != eventID {
		t.Fatalf("bob decrypted %s from %s", got.ID, got.Sender)
	}
	send(bob, "hi alice, got it")
	alice.message(t, room, "hi alice, got it")
	// A second message on the same Megolm session.
	send(alice, "second message")
	bob.message(t, room, "second message")
}
