package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// Issue 12, item 2: slow clients. These tests speak raw TCP, which is what
// an attacker (or a client on a bad link) does.

// trickler is a connection sending a request's head, then its body one
// byte at a time until stopped or the server closes the connection.
type trickler struct {
	conn net.Conn
	stop chan struct{}
	wg   sync.WaitGroup
}

// trickle sends head (the request line and headers, without the blank line
// that ends them) and then chunk every interval.
func trickle(t *testing.T, srv *testserver.Server, head string, chunk []byte, interval time.Duration) *trickler {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	tr := &trickler{conn: conn, stop: make(chan struct{})}
	t.Cleanup(func() {
		tr.halt()
		conn.Close()
	})
	if _, err := io.WriteString(conn, strings.ReplaceAll(head, "\n", "\r\n")+"\r\n"); err != nil {
		t.Fatal(err)
	}
	tr.wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			if _, err := conn.Write(chunk); err != nil {
				return // the server closed the connection
			}
			select {
			case <-tr.stop:
				return
			case <-tick.C:
			}
		}
	})
	return tr
}

func (tr *trickler) halt() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	tr.wg.Wait()
}

// answer reads the server's answer within wait.
func (tr *trickler) answer(t *testing.T, wait time.Duration) (*http.Response, map[string]any) {
	t.Helper()
	_ = tr.conn.SetReadDeadline(time.Now().Add(wait))
	rd := bufio.NewReader(tr.conn)
	resp, err := http.ReadResponse(rd, nil)
	if err != nil {
		t.Fatalf("no answer within %v: %v", wait, err)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	body := map[string]any{}
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("answer %d %q is not JSON", resp.StatusCode, raw)
	}
	// The connection is closed after the answer: nothing more comes but
	// its end (or a reset, as the client is still writing).
	rest, err := io.ReadAll(rd)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection stayed open after the answer %d %v", resp.StatusCode, body)
	}
	if len(rest) > 0 {
		t.Fatalf("more after the answer: %q", rest)
	}
	return resp, body
}

// The answer to an unauthenticated request comes at once, whatever its body
// does; then the connection closes (before: no answer at all, as the server
// waited for the body it was never going to use).
func TestRefusedBeforeTheBody(t *testing.T) {
	srv := startOpen(t) // the default body timeout (30 s): the answer must not wait for it
	alice := register(t, srv, "alice", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{})
	if err != nil {
		t.Fatal(err)
	}
	path := "/_matrix/client/v3/rooms/" + url.PathEscape(string(room.RoomID)) + "/send/m.room.message/"
	for _, tc := range []struct {
		name, request, auth, framing string
		chunk                        []byte
		code                         string
	}{
		{"no token, chunked", "PUT " + path + "a", "", "Transfer-Encoding: chunked", []byte("1\r\n \r\n"), "M_MISSING_TOKEN"},
		{"bad token, chunked", "PUT " + path + "b", "Authorization: Bearer not-a-token\n", "Transfer-Encoding: chunked",
			[]byte("1\r\n \r\n"), "M_UNKNOWN_TOKEN"},
		{"bad token, length", "PUT " + path + "c", "Authorization: Bearer not-a-token\n", "Content-Length: 500000",
			[]byte(" "), "M_UNKNOWN_TOKEN"},
		{"no token, upload", "POST /_matrix/media/v3/upload", "", "Content-Length: 40000000", []byte("x"), "M_MISSING_TOKEN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			tr := trickle(t, srv, tc.request+" HTTP/1.1\nHost: localhost\nContent-Type: application/json\n"+tc.auth+
				tc.framing+"\n", tc.chunk, 100*time.Millisecond)
			resp, body := tr.answer(t, 10*time.Second)
			wantStatus(t, tc.name, resp.StatusCode, body, http.StatusUnauthorized, tc.code)
			if waited := time.Since(start); waited > 10*time.Second {
				t.Fatalf("the 401 took %v", waited)
			}
		})
	}
}

// A body trickled byte by byte is cut off once http.read_body_timeout has
// passed (plus what its bytes earned at http.read_body_min_rate); one that
// arrives at that rate gets the time it needs, and long-polls, which have no
// body, are not cut.
func TestSlowBodies(t *testing.T) {
	srv := startWithConfig(t, "http:\n  read_header_timeout: 1s\n  read_body_timeout: 1s\n  read_body_min_rate: 65536\n  idle_timeout: 1s\n")
	alice := register(t, srv, "alice", defaultPassword)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("trickled body", func(t *testing.T) {
		start := time.Now()
		tr := trickle(t, srv, "PUT /_matrix/client/v3/rooms/"+url.PathEscape(string(room.RoomID))+
			"/send/m.room.message/slow HTTP/1.1\nHost: localhost\nContent-Type: application/json\nAuthorization: Bearer "+
			alice.AccessToken+"\nContent-Length: 1000\n", []byte(" "), 50*time.Millisecond)
		resp, body := tr.answer(t, 15*time.Second)
		wantStatus(t, "trickled body", resp.StatusCode, body, http.StatusRequestTimeout, "M_UNKNOWN")
		if waited := time.Since(start); waited < time.Second {
			t.Fatalf("cut off after %v, before the configured second", waited)
		}
	})

	t.Run("trickled chunks", func(t *testing.T) {
		tr := trickle(t, srv, "PUT /_matrix/client/v3/rooms/"+url.PathEscape(string(room.RoomID))+
			"/send/m.room.message/slow2 HTTP/1.1\nHost: localhost\nContent-Type: application/json\nAuthorization: Bearer "+
			alice.AccessToken+"\nTransfer-Encoding: chunked\n", []byte("1\r\n \r\n"), 50*time.Millisecond)
		resp, body := tr.answer(t, 15*time.Second)
		wantStatus(t, "trickled chunks", resp.StatusCode, body, http.StatusRequestTimeout, "M_UNKNOWN")
	})

	t.Run("trickled headers", func(t *testing.T) {
		tr := trickle(t, srv, "GET /_matrix/client/versions HTTP/1.1", []byte("X-Slow: a\r\n"), 100*time.Millisecond)
		_ = tr.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		if n, err := io.Copy(io.Discard, tr.conn); n > 0 && !isReset(err) {
			t.Fatalf("the server answered trickled headers (%d bytes, %v)", n, err)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("trickled headers held the connection for 15 s")
		}
	})

	t.Run("idle connection", func(t *testing.T) {
		conn, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /_matrix/client/versions HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		rd := bufio.NewReader(conn)
		resp, err := http.ReadResponse(rd, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("versions: %v %v", resp, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if _, err := rd.ReadByte(); !errors.Is(err, io.EOF) && !isReset(err) {
			t.Fatalf("an idle kept-alive connection: %v, want it closed", err)
		}
	})

	t.Run("slow but steady upload", func(t *testing.T) {
		// 1 MiB in 64 KiB pieces every 100 ms: 1.6 s, past the 1 s
		// timeout, at ten times the minimum rate.
		const size, piece = 1 << 20, 64 << 10
		pr, pw := io.Pipe()
		go func() {
			chunk := bytes.Repeat([]byte("x"), piece)
			for sent := 0; sent < size; sent += piece {
				if _, err := pw.Write(chunk); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond) // the client's pace, not synchronisation
			}
			pw.Close()
		}()
		req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/_matrix/media/v3/upload?filename=slow.bin", pr)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = size
		req.Header.Set("Authorization", "Bearer "+alice.AccessToken)
		req.Header.Set("Content-Type", "application/octet-stream")
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		wantStatus(t, "slow upload", resp.StatusCode, body, http.StatusOK, "")
		if took := time.Since(start); took < time.Second {
			t.Fatalf("the upload took %v: not slower than the timeout, it tests nothing", took)
		}
		if uri, _ := body["content_uri"].(string); !strings.HasPrefix(uri, "mxc://") {
			t.Fatalf("upload answer %v", body)
		}
	})

	t.Run("long-poll", func(t *testing.T) {
		since := rawSync(t, srv, alice.AccessToken, "", 0, "")["next_batch"].(string)
		start := time.Now()
		body := rawSync(t, srv, alice.AccessToken, since, 2500, "")
		if took := time.Since(start); took < 2*time.Second {
			t.Fatalf("a 2.5 s long-poll answered after %v: %v", took, body)
		}
	})
}

// isReset: the server closed a connection the client still wrote to.
func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && (errors.Is(err, os.ErrClosed) || strings.Contains(err.Error(), "reset"))
}
