//go:build goolm

package e2efed

import (
	"testing"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/e2ee"
	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// login logs local in on a new device of s.
func login(t *testing.T, s *testserver.Server, local string) *mautrix.Client {
	t.Helper()
	cli := s.Client(t)
	if _, err := cli.Login(t.Context(), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Password: "correct horse battery",
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: local}, StoreCredentials: true}); err != nil {
		t.Fatalf("login %s: %v", local, err)
	}
	return cli
}

// Users of three real servers exchange Megolm-encrypted messages with
// mautrix's crypto package: each server asks the others for their users'
// keys (/user/keys/query, /user/keys/claim), the room keys cross as
// to-device messages (m.direct_to_device). bob's new device reaches alice
// and carol through B's m.device_list_update (their syncs say bob's devices
// changed, their clients find the device) and decrypts what they send
// next. A plain to-device message to all of bob's devices and alice's
// presence cross too; when bob leaves, alice's sync says she no longer
// shares a room with him.
func TestFederatedE2EE(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { federatedE2EE(t, start(t), start(t), start(t)) })
	t.Run("postgres", func(t *testing.T) {
		pg := func() *testserver.Server { return start(t, "--database-url", pgtest.URL(t)) }
		federatedE2EE(t, pg(), pg(), pg())
	})
}

func federatedE2EE(t *testing.T, a, b, c *testserver.Server) {
	ctx := t.Context()
	alice := e2ee.New(t, register(t, a, "alice"))
	bob := e2ee.New(t, register(t, b, "bob"))
	carol := e2ee.New(t, register(t, c, "carol"))
	aliceID, bobID, carolID := alice.Cli.UserID, bob.Cli.UserID, carol.Cli.UserID
	created, err := alice.Cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bobID, carolID},
		InitialState: []*event.Event{{Type: event.StateEncryption, Content: event.Content{
			Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}}})
	if err != nil {
		t.Fatal(err)
	}
	room := created.RoomID
	for _, u := range []*e2ee.Client{bob, carol} {
		if _, err := u.Cli.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{a.Opts.ServerName}}); err != nil {
			t.Fatalf("%s joins through A: %v", u.Cli.UserID, err)
		}
	}
	for _, u := range []*e2ee.Client{alice, bob, carol} {
		u.WaitJoined(t, room, aliceID, bobID, carolID)
	}

	eventID := alice.Send(t, room, "hello, across servers")
	for _, u := range []*e2ee.Client{bob, carol} {
		if got := u.Message(t, room, "hello, across servers"); got.Sender != aliceID || got.ID != eventID {
			t.Fatalf("%s decrypted %s from %s", u.Cli.UserID, got.ID, got.Sender)
		}
	}
	// B only ever had the ciphertext.
	if raw, err := bob.Cli.GetEvent(ctx, room, eventID); err != nil || raw.Type != event.EventEncrypted {
		t.Fatalf("the event on B: %v, %v", raw, err)
	}
	bob.Send(t, room, "hi alice, got it")
	alice.Message(t, room, "hi alice, got it")
	carol.Message(t, room, "hi alice, got it")

	// bob's second device: B tells A and C, alice's and carol's clients
	// learn of it.
	alice.ForgetDeviceListNews()
	carol.ForgetDeviceListNews()
	bob2 := e2ee.New(t, login(t, b, "bob"))
	for _, u := range []*e2ee.Client{alice, carol} {
		u.DeviceListChanged(t, bobID, false)
		u.WaitFor(t, "bob's second device", func() bool {
			devs, err := u.Mach.CryptoStore.GetDevices(ctx, bobID)
			return err == nil && devs[bob2.Cli.DeviceID] != nil
		})
	}
	bob2.WaitJoined(t, room, aliceID, bobID, carolID)
	alice.Send(t, room, "hello to both of bob's devices")
	carol.Send(t, room, "carol here")
	for _, u := range []*e2ee.Client{bob, bob2} {
		u.Message(t, room, "hello to both of bob's devices")
		u.Message(t, room, "carol here")
	}

	// A plain to-device message to every device of bob's.
	ping := event.Type{Type: "org.example.ping", Class: event.ToDeviceEventType}
	if _, err := alice.Cli.SendToDevice(ctx, ping, &mautrix.ReqSendToDevice{Messages: map[id.UserID]map[id.DeviceID]*event.Content{
		bobID: {"*": {Raw: map[string]any{"n": 1}}}}}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*e2ee.Client{bob, bob2} {
		got := c.ToDevice(t, ping.Type, aliceID)
		if len(got) != 1 || gjson.GetBytes(got[0].Content, "n").Int() != 1 {
			t.Fatalf("%s's device %s got %+v", bobID, c.Cli.DeviceID, got)
		}
	}

	// Presence (alice's client syncs as online, which the server keeps).
	if err := alice.Cli.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "in a meeting"}); err != nil {
		t.Fatal(err)
	}
	bob.Presence(t, aliceID, func(p *event.PresenceEventContent) bool {
		return p.Presence == event.PresenceOnline && p.StatusMessage == "in a meeting"
	})

	// bob leaves the only room they shared.
	if _, err := bob.Cli.LeaveRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	alice.DeviceListChanged(t, bobID, true)
}
