package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
)

// TestSyncCrowdInLane: long-polls run their work a few at a time (the sync
// service's lane, and a crowd's next long-polls queue for it before they
// are read). Many more long-polls than the lane has places, woken by each
// message at once and coming straight back, all get every message; and
// connections that could hold a place and never give it back hold up
// nobody: half-sent long-polls (their head never ends), long-polls whose
// client never reads the answer, and long-polls whose client goes away
// while they wait.
func TestSyncCrowdInLane(t *testing.T) {
	srv := startOpen(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	alice := register(t, srv, "lanealice", defaultPassword)
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	const crowd = 48
	var members []*mautrix.Client
	for i := range crowd {
		m := register(t, srv, fmt.Sprintf("lane%d", i), defaultPassword)
		if _, err := m.JoinRoomByID(ctx, room.RoomID); err != nil {
			t.Fatal(err)
		}
		members = append(members, m)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	since := syncOnce(t, members[0], "", 0).NextBatch
	longPoll := func(token string) string {
		return "GET /_matrix/client/v3/sync?timeout=30000&since=" + url.QueryEscape(since) +
			" HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + token + "\r\n"
	}
	dial := func() net.Conn {
		c, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// The ones that must not hold anyone up.
	var goners []net.Conn
	for i := range 10 {
		token := members[i].AccessToken
		half := dial() // a head that never ends
		if _, err := io.WriteString(half, longPoll(token)); err != nil {
			t.Fatal(err)
		}
		deaf := dial() // never reads its answers
		if _, err := io.WriteString(deaf, longPoll(token)+"\r\n"); err != nil {
			t.Fatal(err)
		}
		gone := dial() // goes away while it waits, or is woken
		if _, err := io.WriteString(gone, longPoll(token)+"\r\n"); err != nil {
			t.Fatal(err)
		}
		goners = append(goners, gone)
	}

	const messages = 5
	var wg sync.WaitGroup
	errs := make(chan error, crowd)
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- followUntil(ctx, srv.URL, m.AccessToken, since, room.RoomID.String(), messages)
		}()
	}
	for i := range messages {
		if _, err := alice.SendText(ctx, room.RoomID, fmt.Sprintf("crowd message %d", i)); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			for _, c := range goners {
				c.Close()
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// An unrelated sync answers, and the server still takes long-polls.
	probe := syncOnce(t, alice, "", 0)
	if probe.Rooms.Join[room.RoomID] == nil {
		t.Fatal("alice's sync after the crowd lacks her room")
	}
	if after := syncOnce(t, members[0], probe.NextBatch, 100); after.NextBatch == "" {
		t.Fatal("no next_batch")
	}
}

// followUntil long-polls as token on one keep-alive connection, each
// long-poll straight after the last answer, until it has seen want
// messages in the room.
func followUntil(ctx context.Context, base, token, since, roomID string, want int) error {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r := bufio.NewReader(conn)
	seen := 0
	for seen < want {
		req, _ := http.NewRequest("GET", base+"/_matrix/client/v3/sync?timeout=30000&since="+url.QueryEscape(since), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if err := req.Write(conn); err != nil {
			return err
		}
		resp, err := http.ReadResponse(r, req)
		if err != nil {
			return fmt.Errorf("after %d of %d messages: %w", seen, want, err)
		}
		var body mautrix.RespSync
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			return fmt.Errorf("long-poll: HTTP %d, %v", resp.StatusCode, err)
		}
		since = body.NextBatch
		for id, joined := range body.Rooms.Join {
			if id.String() != roomID {
				continue
			}
			for _, evt := range joined.Timeline.Events {
				if evt.Type == event.EventMessage {
					seen++
				}
			}
		}
	}
	if seen != want {
		return fmt.Errorf("saw %d messages, want %d", seen, want)
	}
	return nil
}
