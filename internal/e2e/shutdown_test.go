package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// TestShutdownUnderConcurrentSenders: stopping the server (SIGTERM) while 16
// clients send never panics, the process exits cleanly, and every send it
// acknowledged is there after the restart.
func TestShutdownUnderConcurrentSenders(t *testing.T) { stopUnderSenders(t, false) }

// TestKillUnderConcurrentSenders: a crash (kill -9) while 16 clients send,
// with each room's writer building a batch while the one before commits,
// loses no send the server acknowledged.
func TestKillUnderConcurrentSenders(t *testing.T) { stopUnderSenders(t, true) }

func stopUnderSenders(t *testing.T, kill bool) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	var rooms []id.RoomID
	for range 4 {
		resp, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "private_chat"})
		if err != nil {
			t.Fatal(err)
		}
		rooms = append(rooms, resp.RoomID)
	}
	type ack struct {
		room id.RoomID
		ev   id.EventID
	}
	var mu sync.Mutex
	var acked []ack
	started := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for g := range 16 {
		cli := clientFor(t, srv, alice.UserID, alice.DeviceID, alice.AccessToken)
		wg.Go(func() {
			for i := 0; ; i++ {
				room := rooms[(g+i)%len(rooms)]
				resp, err := cli.SendMessageEvent(t.Context(), room, event.EventMessage,
					map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("%d/%d", g, i)},
					mautrix.ReqSendEvent{TransactionID: fmt.Sprintf("g%d-%d", g, i)})
				if err != nil {
					return // the server went away: what it did not answer may or may not be kept
				}
				mu.Lock()
				acked = append(acked, ack{room, resp.EventID})
				mu.Unlock()
				if i == 5 {
					started <- struct{}{}
				}
			}
		})
	}
	for range 16 {
		<-started
	}
	if kill {
		srv.Kill()
		wg.Wait()
	} else {
		srv.Stop()
		wg.Wait()
		checkCleanExit(t, srv)
	}

	srv = testserver.Start(t, srv.Opts)
	cli := clientFor(t, srv, alice.UserID, alice.DeviceID, alice.AccessToken)
	for _, a := range acked {
		if _, err := cli.GetEvent(t.Context(), a.room, a.ev); err != nil {
			t.Fatalf("acknowledged event %s is gone after the %s: %v", a.ev, map[bool]string{true: "crash", false: "shutdown"}[kill], err)
		}
	}
	t.Logf("%d acknowledged sends, all kept", len(acked))
}

// checkCleanExit fails the test unless the server exited with 0 and without
// a panic.
func checkCleanExit(t *testing.T, srv *testserver.Server) {
	t.Helper()
	if code := srv.ExitCode(); code != 0 {
		t.Fatalf("the server exited with %d on SIGTERM under load:\n%s", code, srv.Logs())
	}
	if logs := srv.Logs(); strings.Contains(logs, "panic") || strings.Contains(logs, "closed channel") {
		t.Fatalf("the server panicked at shutdown:\n%s", logs)
	}
}
