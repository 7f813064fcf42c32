//go:build goolm

package e2ee

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Client is a mautrix client with an OlmMachine (in memory) that syncs in
// the background until the test ends: it decrypts the Megolm messages it
// receives and keeps what the tests look for.
type Client struct {
	Cli  *mautrix.Client
	Mach *crypto.OlmMachine

	mu       sync.Mutex
	msgs     []*event.Event
	toDevice []ToDeviceMessage
	changed  map[id.UserID]bool
	left     map[id.UserID]bool
	presence map[id.UserID]event.PresenceEventContent
	errs     []error
	wake     chan struct{}
}

// New sets up cli's OlmMachine, uploads its device's keys and starts its
// sync loop.
func New(t *testing.T, cli *mautrix.Client) *Client {
	t.Helper()
	ctx := t.Context()
	stateStore := NewStateStore()
	cli.StateStore = stateStore
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel).With().Str("user", string(cli.UserID)).Logger()
	cli.Log = log
	mach := crypto.NewOlmMachine(cli, &log, NewCryptoStore(), stateStore)
	if err := mach.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mach.ShareKeys(ctx, -1); err != nil {
		t.Fatalf("%s uploads keys: %v", cli.UserID, err)
	}
	c := &Client{Cli: cli, Mach: mach, changed: map[id.UserID]bool{}, left: map[id.UserID]bool{},
		presence: map[id.UserID]event.PresenceEventContent{}, wake: make(chan struct{}, 1)}
	syncer := cli.Syncer.(*mautrix.DefaultSyncer)
	syncer.OnSync(mach.ProcessSyncResponse)
	syncer.OnSync(func(_ context.Context, resp *mautrix.RespSync, _ string) bool {
		c.mu.Lock()
		for _, u := range resp.DeviceLists.Changed {
			c.changed[u] = true
		}
		for _, u := range resp.DeviceLists.Left {
			c.left[u] = true
		}
		// Copies: the syncer goes on to parse the events in place.
		for _, ev := range resp.ToDevice.Events {
			if ev.Type.Type != event.ToDeviceEncrypted.Type {
				c.toDevice = append(c.toDevice, ToDeviceMessage{Type: ev.Type.Type, Sender: ev.Sender,
					Content: slices.Clone(ev.Content.VeryRaw)})
			}
		}
		for _, ev := range resp.Presence.Events {
			var p event.PresenceEventContent
			if json.Unmarshal(ev.Content.VeryRaw, &p) == nil {
				c.presence[ev.Sender] = p
			}
		}
		c.mu.Unlock()
		c.poke()
		return true
	})
	syncer.OnEvent(cli.StateStoreSyncHandler)
	syncer.OnEventType(event.StateMember, mach.HandleMemberEvent)
	syncer.OnEventType(event.StateMember, func(context.Context, *event.Event) { c.poke() })
	syncer.OnEventType(event.EventEncrypted, func(ctx context.Context, evt *event.Event) {
		go c.decrypt(context.WithoutCancel(ctx), evt)
	})
	syncCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := cli.SyncWithContext(syncCtx); err != nil && syncCtx.Err() == nil {
			c.fail(fmt.Errorf("sync stopped: %w", err))
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return c
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	c.errs = append(c.errs, err)
	c.mu.Unlock()
	c.poke()
}

func (c *Client) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// decrypt decrypts a Megolm event, waiting for its room key if needed.
func (c *Client) decrypt(ctx context.Context, evt *event.Event) {
	content := evt.Content.AsEncrypted()
	dec, err := c.Mach.DecryptMegolmEvent(ctx, evt)
	if errors.Is(err, crypto.ErrNoSessionFound) &&
		c.Mach.WaitForSession(ctx, evt.RoomID, content.SenderKey, content.SessionID, 20*time.Second) {
		dec, err = c.Mach.DecryptMegolmEvent(ctx, evt)
	}
	if err != nil {
		c.fail(fmt.Errorf("decrypt %s: %w", evt.ID, err))
		return
	}
	_ = dec.Content.ParseRaw(dec.Type)
	c.mu.Lock()
	c.msgs = append(c.msgs, dec)
	c.mu.Unlock()
	c.poke()
}

// WaitFor polls cond until it holds or 30 seconds pass; cond runs under the
// client's lock when it reads what the client kept, so it may not call
// the client's other methods.
func (c *Client) WaitFor(t *testing.T, what string, cond func() bool) {
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
			t.Fatalf("%s: %v", c.Cli.UserID, errs)
		}
		select {
		case <-c.wake:
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s: timed out waiting for %s", c.Cli.UserID, what)
		}
	}
}

// Joined reports whether the client's state store has user joined to room.
func (c *Client) Joined(ctx context.Context, room id.RoomID, user id.UserID) bool {
	m, err := c.Cli.StateStore.GetMember(ctx, room, user)
	return err == nil && m != nil && m.Membership == event.MembershipJoin
}

// WaitJoined waits until the client has each user joined to room.
func (c *Client) WaitJoined(t *testing.T, room id.RoomID, users ...id.UserID) {
	t.Helper()
	c.WaitFor(t, "members joined", func() bool {
		for _, u := range users {
			if !c.Joined(t.Context(), room, u) {
				return false
			}
		}
		return true
	})
}

// Send encrypts and sends a text message, sharing a group session with the
// room's members first when there is none (or it must be replaced).
func (c *Client) Send(t *testing.T, room id.RoomID, body string) id.EventID {
	t.Helper()
	ctx := t.Context()
	content := &event.MessageEventContent{MsgType: event.MsgText, Body: body}
	enc, err := c.Mach.EncryptMegolmEvent(ctx, room, event.EventMessage, content)
	if errors.Is(err, crypto.ErrNoGroupSession) || errors.Is(err, crypto.ErrSessionExpired) || errors.Is(err, crypto.ErrSessionNotShared) {
		members, err := c.Cli.StateStore.GetRoomJoinedOrInvitedMembers(ctx, room)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Mach.ShareGroupSession(ctx, room, members); err != nil {
			t.Fatalf("%s shares the group session: %v", c.Cli.UserID, err)
		}
		if enc, err = c.Mach.EncryptMegolmEvent(ctx, room, event.EventMessage, content); err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	res, err := c.Cli.SendMessageEvent(ctx, room, event.EventEncrypted, enc)
	if err != nil {
		t.Fatalf("%s sends: %v", c.Cli.UserID, err)
	}
	return res.EventID
}

// Message waits for a decrypted m.room.message with the body.
func (c *Client) Message(t *testing.T, room id.RoomID, body string) *event.Event {
	t.Helper()
	var found *event.Event
	c.WaitFor(t, "message "+body, func() bool {
		for _, evt := range c.msgs {
			if evt.RoomID == room && evt.Content.AsMessage().Body == body {
				found = evt
				return true
			}
		}
		return false
	})
	return found
}

// ToDeviceMessage is a to-device message the client received unencrypted.
type ToDeviceMessage struct {
	Type    string
	Sender  id.UserID
	Content json.RawMessage
}

// ToDevice waits for a (plain) to-device message of the type from sender
// and returns those received so far.
func (c *Client) ToDevice(t *testing.T, typ string, sender id.UserID) []ToDeviceMessage {
	t.Helper()
	var got []ToDeviceMessage
	c.WaitFor(t, "to-device "+typ, func() bool {
		got = nil
		for _, evt := range c.toDevice {
			if evt.Type == typ && evt.Sender == sender {
				got = append(got, evt)
			}
		}
		return len(got) > 0
	})
	return got
}

// DeviceListChanged waits until a sync said user's devices changed (or,
// with left, that the client no longer shares a room with them).
func (c *Client) DeviceListChanged(t *testing.T, user id.UserID, left bool) {
	t.Helper()
	c.WaitFor(t, "device list news of "+string(user), func() bool {
		if left {
			return c.left[user]
		}
		return c.changed[user]
	})
}

// ForgetDeviceListNews forgets what syncs said of device lists so far.
func (c *Client) ForgetDeviceListNews() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changed, c.left = map[id.UserID]bool{}, map[id.UserID]bool{}
}

// Presence waits for a presence event of user that cond accepts.
func (c *Client) Presence(t *testing.T, user id.UserID, cond func(*event.PresenceEventContent) bool) {
	t.Helper()
	c.WaitFor(t, "presence of "+string(user), func() bool {
		p, ok := c.presence[user]
		return ok && cond(&p)
	})
}
