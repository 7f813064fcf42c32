package e2eappservice

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/signatures"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// waitFor reads from ch until an item satisfies ok (others are skipped) or
// the deadline passes.
func waitFor[T any](t *testing.T, what string, ch <-chan T, ok func(T) bool) T {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case v := <-ch:
			if ok(v) {
				return v
			}
		case <-deadline:
			t.Fatalf("appservice never got %s", what)
		}
	}
}

// uploadKeys uploads signed device keys and n signed one-time keys for the
// client's device, made by a real Olm account.
func uploadKeys(t *testing.T, cli *mautrix.Client, n int) {
	t.Helper()
	acc := crypto.NewOlmAccount()
	dev := cli.DeviceID
	keys := &mautrix.DeviceKeys{UserID: cli.UserID, DeviceID: dev,
		Algorithms: []id.Algorithm{id.AlgorithmMegolmV1, id.AlgorithmOlmV1},
		Keys: map[id.DeviceKeyID]string{
			id.NewDeviceKeyID(id.KeyAlgorithmCurve25519, dev): string(acc.IdentityKey()),
			id.NewDeviceKeyID(id.KeyAlgorithmEd25519, dev):    string(acc.SigningKey()),
		}}
	sig, err := acc.SignJSON(keys)
	if err != nil {
		t.Fatal(err)
	}
	keys.Signatures = signatures.NewSingleSignature(cli.UserID, id.KeyAlgorithmEd25519, dev.String(), sig)
	otks := map[id.KeyID]mautrix.OneTimeKey{}
	if n > 0 {
		if err := acc.Internal.GenOneTimeKeys(uint(n)); err != nil {
			t.Fatal(err)
		}
		generated, err := acc.Internal.OneTimeKeys()
		if err != nil {
			t.Fatal(err)
		}
		for keyID, pub := range generated {
			// Signed as the object it is uploaded as: mautrix v0.33's
			// canonical JSON calls OneTimeKey.MarshalJSON, which writes an
			// unsigned key as a bare string.
			k := mautrix.OneTimeKey{Key: pub, IsSigned: true}
			sig, err := acc.SignJSON(k)
			if err != nil {
				t.Fatal(err)
			}
			k.Signatures = signatures.NewSingleSignature(cli.UserID, id.KeyAlgorithmEd25519, dev.String(), sig)
			k.IsSigned = true
			otks[id.NewKeyID(id.KeyAlgorithmSignedCurve25519, keyID)] = k
		}
	}
	if _, err := cli.UploadKeys(t.Context(), &mautrix.ReqUploadKeys{DeviceKeys: keys, OneTimeKeys: otks}); err != nil {
		t.Fatalf("upload keys: %v", err)
	}
}

// mautrixAS is a running maunium.net/go/mautrix appservice and the server
// that knows it.
type mautrixAS struct {
	*appservice.AppService
	srv *testserver.Server
	// http serves the appservice; addr is where it listens.
	http *httptest.Server
	addr string
	// raw gets every transaction body as the appservice received it.
	raw <-chan map[string]any
}

// startMautrixAS runs a mautrix appservice whose users are userRegex
// (exclusively), changed by tune before it is saved, and a server with
// that registration.
func startMautrixAS(t *testing.T, id, userRegex string, tune func(*appservice.Registration)) *mautrixAS {
	t.Helper()
	as := appservice.Create()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raw := make(chan map[string]any, 1000)
	record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/_matrix/app/v1/transactions/") {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			var txn map[string]any
			if err := json.Unmarshal(body, &txn); err == nil {
				raw <- txn
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		as.Router.ServeHTTP(w, r)
	})
	asSrv := &httptest.Server{Listener: l, Config: &http.Server{Handler: record}}
	asSrv.Start()
	t.Cleanup(asSrv.Close)
	reg := appservice.CreateRegistration()
	reg.ID = id
	reg.URL = "http://" + l.Addr().String()
	reg.SenderLocalpart = id + "bot"
	reg.Namespaces.UserIDs.Register(regexp.MustCompile(userRegex), true)
	if tune != nil {
		tune(reg)
	}
	as.Registration = reg
	regPath := filepath.Join(t.TempDir(), "registration.yaml")
	if err := reg.Save(regPath); err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Args: []string{"--appservice", regPath, "--disable-rate-limits"}})
	as.HomeserverDomain = "localhost"
	if err := as.SetHomeserverURL(srv.URL); err != nil {
		t.Fatal(err)
	}
	return &mautrixAS{AppService: as, srv: srv, http: asSrv, addr: l.Addr().String(), raw: raw}
}

// startEphemeralAS runs a mautrix appservice that asked for ephemeral data
// (receive_ephemeral, MSC2409) and MSC3202 — or not.
func startEphemeralAS(t *testing.T, id string, ephemeral bool) (*appservice.AppService, *testserver.Server, <-chan map[string]any) {
	t.Helper()
	m := startMautrixAS(t, id, `@_eph_.*:localhost`, func(reg *appservice.Registration) {
		reg.EphemeralEvents, reg.MSC3202 = ephemeral, ephemeral
	})
	return m.AppService, m.srv, m.raw
}

// TestAppServiceEphemeral: typing, receipts, presence and to-device
// messages (MSC2409) and device lists and one-time key counts (MSC3202)
// reach an appservice that asked for them, only for rooms and users it is
// interested in.
func TestAppServiceEphemeral(t *testing.T) {
	ctx := context.Background()
	as, srv, _ := startEphemeralAS(t, "ephtest", true)
	human := loginHuman(t, srv)
	room, err := human.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	// A room without the appservice's users: nothing of it may arrive.
	private, err := human.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	ghost := as.Intent("@_eph_ghost:localhost")
	if err := ghost.EnsureJoined(ctx, room.RoomID); err != nil {
		t.Fatalf("ghost join: %v", err)
	}
	// The ghost gets a device (an appservice login, with the as_token) with keys.
	ghostCli := srv.Client(t)
	ghostCli.AccessToken = as.Registration.AppToken
	if _, err := ghostCli.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypeAppservice, DeviceID: "GHOSTDEV",
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: string(ghost.UserID)},
		StoreCredentials: true}); err != nil {
		t.Fatalf("ghost login: %v", err)
	}
	uploadKeys(t, ghostCli, 7)

	isEphemeral := func(typ event.Type, roomID id.RoomID) func(*event.Event) bool {
		return func(ev *event.Event) bool { return ev.Type.Type == typ.Type && ev.RoomID == roomID }
	}

	// Typing in the private room is not for the appservice; typing in the
	// shared room is, and arrives after it (the stream is in order).
	if _, err := human.UserTyping(ctx, private.RoomID, true, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := human.UserTyping(ctx, room.RoomID, true, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	typing := waitFor(t, "m.typing", as.Events, func(ev *event.Event) bool {
		if ev.Type == event.EphemeralEventTyping && ev.RoomID == private.RoomID {
			t.Fatal("typing in a room without the appservice's users arrived")
		}
		return isEphemeral(event.EphemeralEventTyping, room.RoomID)(ev)
	})
	if users := typing.Content.AsTyping().UserIDs; !slices.Equal(users, []id.UserID{human.UserID}) {
		t.Fatalf("typing users %v", users)
	}

	// Receipts: the public one arrives; the human's private one does not,
	// the ghost's own private one does.
	msg, err := human.SendText(ctx, room.RoomID, "read me")
	if err != nil {
		t.Fatal(err)
	}
	if err := human.SendReceipt(ctx, room.RoomID, msg.EventID, event.ReceiptTypeReadPrivate, nil); err != nil {
		t.Fatal(err)
	}
	if err := human.SendReceipt(ctx, room.RoomID, msg.EventID, event.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	receipt := waitFor(t, "m.receipt", as.Events, isEphemeral(event.EphemeralEventReceipt, room.RoomID))
	byType := (*receipt.Content.AsReceipt())[msg.EventID]
	if _, ok := byType[event.ReceiptTypeRead][human.UserID]; !ok {
		t.Fatalf("receipt content %+v", receipt.Content.Raw)
	}
	if _, ok := byType[event.ReceiptTypeReadPrivate]; ok {
		t.Fatalf("the human's private receipt reached the appservice: %+v", receipt.Content.Raw)
	}
	if err := ghost.SendReceipt(ctx, room.RoomID, msg.EventID, event.ReceiptTypeReadPrivate, nil); err != nil {
		t.Fatal(err)
	}
	own := waitFor(t, "the ghost's private receipt", as.Events, isEphemeral(event.EphemeralEventReceipt, room.RoomID))
	if _, ok := (*own.Content.AsReceipt())[msg.EventID][event.ReceiptTypeReadPrivate][ghost.UserID]; !ok {
		t.Fatalf("ghost's private receipt content %+v", own.Content.Raw)
	}

	// Presence of a user sharing a room with the ghost.
	if err := human.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: "lunch"}); err != nil {
		t.Fatal(err)
	}
	presence := waitFor(t, "m.presence", as.Events, func(ev *event.Event) bool {
		return ev.Type == event.EphemeralEventPresence && ev.Sender == human.UserID &&
			ev.Content.AsPresence().Presence == event.PresenceUnavailable
	})
	if presence.Content.AsPresence().StatusMessage != "lunch" {
		t.Fatalf("presence content %+v", presence.Content.Raw)
	}

	// A to-device message to the ghost's device, with the ghost's one-time
	// key count (MSC3202) in the same transaction.
	toDevType := event.Type{Type: "com.example.ping", Class: event.ToDeviceEventType}
	if _, err := human.SendToDevice(ctx, toDevType, &mautrix.ReqSendToDevice{Messages: map[id.UserID]map[id.DeviceID]*event.Content{
		ghost.UserID: {"GHOSTDEV": {Raw: map[string]any{"n": 1}}},
	}}); err != nil {
		t.Fatal(err)
	}
	td := waitFor(t, "the to-device message", as.ToDeviceEvents, func(ev *event.Event) bool { return ev.Type.Type == toDevType.Type })
	if td.ToUserID != ghost.UserID || td.ToDeviceID != "GHOSTDEV" || td.Sender != human.UserID || td.Content.Raw["n"] != float64(1) {
		t.Fatalf("to-device event %+v", td)
	}
	// (Earlier transactions carried the count from before the upload.)
	waitFor(t, "the ghost's one-time key count of 7", as.OTKCounts, func(c *mautrix.OTKCount) bool {
		return c.UserID == ghost.UserID && c.DeviceID == "GHOSTDEV" && c.SignedCurve25519 == 7
	})

	// The human's new device keys: a device list change for a user sharing
	// a room with the ghost.
	uploadKeys(t, human, 0)
	waitFor(t, "the human's device list change", as.DeviceLists, func(dl *mautrix.DeviceLists) bool {
		return slices.Contains(dl.Changed, human.UserID)
	})

	// A visitor who joins shares a room with the ghost (changed); once they
	// leave, they share none (left).
	if out, err := srv.Run(t, "", "user", "add", "visitor", "--password", "visitor-password"); err != nil {
		t.Fatalf("user add: %v %s", err, out)
	}
	visitor := srv.Client(t)
	if _, err := visitor.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Password: "visitor-password",
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "visitor"}, StoreCredentials: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := visitor.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the visitor's join as a device list change", as.DeviceLists, func(dl *mautrix.DeviceLists) bool {
		return slices.Contains(dl.Changed, visitor.UserID)
	})
	if _, err := visitor.LeaveRoom(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the visitor in device_lists.left", as.DeviceLists, func(dl *mautrix.DeviceLists) bool {
		return slices.Contains(dl.Left, visitor.UserID)
	})
}

// TestAppServiceWithoutEphemeral: an appservice that did not ask gets no
// ephemeral data, only events.
func TestAppServiceWithoutEphemeral(t *testing.T) {
	ctx := context.Background()
	as, srv, raw := startEphemeralAS(t, "plain", false)
	human := loginHuman(t, srv)
	room, err := human.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	ghost := as.Intent("@_eph_ghost:localhost")
	if err := ghost.EnsureJoined(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	if _, err := human.UserTyping(ctx, room.RoomID, true, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// Events are in order: once this message arrives, typing would have too.
	if _, err := human.SendText(ctx, room.RoomID, "after typing"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message", raw, func(txn map[string]any) bool {
		for k := range txn {
			if k != "events" {
				t.Fatalf("an appservice that did not ask for ephemeral data got %q: %v", k, txn)
			}
		}
		evs, _ := txn["events"].([]any)
		return slices.ContainsFunc(evs, func(ev any) bool {
			content, _ := ev.(map[string]any)["content"].(map[string]any)
			return content["body"] == "after typing"
		})
	})
}

// TestAliasNamespaceInterest: events of a room with an alias in the
// appservice's alias namespace reach it, though none of its users is there.
func TestAliasNamespaceInterest(t *testing.T) {
	ctx := context.Background()
	m := startMautrixAS(t, "aliasns", `@_eph_.*:localhost`, func(reg *appservice.Registration) {
		reg.Namespaces.RoomAliases.Register(regexp.MustCompile(`#_eph_.*:localhost`), true)
	})
	human := loginHuman(t, m.srv)
	room, err := human.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.BotClient().CreateAlias(ctx, "#_eph_room:localhost", room.RoomID); err != nil {
		t.Fatalf("create alias: %v", err)
	}
	if _, err := human.SendText(ctx, room.RoomID, "for the alias owner"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message of the aliased room", m.raw, func(txn map[string]any) bool {
		evs, _ := txn["events"].([]any)
		return slices.ContainsFunc(evs, func(ev any) bool {
			content, _ := ev.(map[string]any)["content"].(map[string]any)
			return content["body"] == "for the alias owner"
		})
	})
}
