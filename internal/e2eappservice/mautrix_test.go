package e2eappservice

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// waitBodies reads message bodies from a mautrix appservice's event channel
// until want arrived, in order; anything else in between fails the test.
func waitBodies(t *testing.T, as *appservice.AppService, want []string) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for i := 0; i < len(want); {
		select {
		case ev := <-as.Events:
			if ev.Type != event.EventMessage {
				continue
			}
			_ = ev.Content.ParseRaw(ev.Type)
			if got := ev.Content.AsMessage().Body; got != want[i] {
				t.Fatalf("appservice got %q, want %q (position %d)", got, want[i], i)
			}
			i++
		case <-deadline:
			t.Fatalf("appservice got %d of %d events", i, len(want))
		}
	}
}

// TestMautrixAppService runs maunium.net/go/mautrix/appservice, as bridges
// do, against the real binary.
func TestMautrixAppService(t *testing.T) {
	ctx := context.Background()
	m := startMautrixAS(t, "mautrixtest", `@_mt_.*:localhost`, nil)
	as, srv, asSrv, asAddr, reg := m.AppService, m.srv, m.http, m.addr, m.Registration

	human := loginHuman(t, srv)
	room, err := human.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}

	// A ghost registers and joins through the intent API, as bridges do.
	ghost := as.Intent("@_mt_alice:localhost")
	if err := ghost.EnsureJoined(ctx, room.RoomID); err != nil {
		t.Fatalf("ghost join: %v", err)
	}
	// A ghost without an avatar or name gets one (issue 13, item 5): the
	// intent reads the current one first, which is the spec's 404.
	avatar := id.ContentURI{Homeserver: "localhost", FileID: "ghostavatar"}
	if err := ghost.SetAvatarURL(ctx, avatar); err != nil {
		t.Fatalf("ghost avatar: %v", err)
	}
	if err := ghost.SetDisplayName(ctx, "Alice (bridge)"); err != nil {
		t.Fatalf("ghost name: %v", err)
	}
	if got, err := human.GetAvatarURL(ctx, ghost.UserID); err != nil || got != avatar {
		t.Fatalf("ghost avatar read back: %v %v", got, err)
	}
	// Outside the namespace is refused.
	if err := as.Intent("@someone:localhost").EnsureRegistered(ctx); err == nil {
		t.Fatal("registered a user outside the namespace")
	}

	// Transactions arrive in order.
	var want []string
	for i := range 20 {
		want = append(want, fmt.Sprintf("hello %d", i))
		if _, err := human.SendText(ctx, room.RoomID, want[i]); err != nil {
			t.Fatal(err)
		}
	}
	waitBodies(t, as, want)

	// The ghost sends with a massaged timestamp; the human sees it.
	const ts = int64(1_300_000_000_000)
	resp, err := ghost.SendMessageEvent(ctx, room.RoomID, event.EventMessage,
		&event.MessageEventContent{MsgType: event.MsgText, Body: "old news"}, mautrix.ReqSendEvent{Timestamp: ts})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := human.GetEvent(ctx, room.RoomID, resp.EventID)
	if err != nil || ev.Timestamp != ts || ev.Sender != ghost.UserID {
		t.Fatalf("massaged event: %v %+v", err, ev)
	}
	waitBodies(t, as, []string{"old news"})

	// Ping.
	ping, err := as.BotClient().AppservicePing(ctx, reg.ID, "ping-txn")
	if err != nil || ping.DurationMS < 0 {
		t.Fatalf("ping: %v %+v", err, ping)
	}

	// The appservice goes away; what is sent meanwhile arrives when a new
	// instance listens again on its address.
	asSrv.Close()
	want = want[:0]
	for i := range 5 {
		want = append(want, fmt.Sprintf("while down %d", i))
		if _, err := human.SendText(ctx, room.RoomID, want[i]); err != nil {
			t.Fatal(err)
		}
	}
	as2 := appservice.Create()
	as2.Registration = reg
	l2, err := net.Listen("tcp", asAddr)
	if err != nil {
		t.Fatal(err)
	}
	asSrv2 := &httptest.Server{Listener: l2, Config: &http.Server{Handler: as2.Router}}
	asSrv2.Start()
	defer asSrv2.Close()
	waitBodies(t, as2, want)
}
