package clientapi

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
)

func TestLongPollHead(t *testing.T) {
	for _, c := range []struct {
		head string
		want bool
	}{
		{"GET /_matrix/client/v3/sync?since=s1_2&timeout=30000 HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"GET /_matrix/client/r0/sync?timeout=5&filter=0&since=s9 HTTP/1.1\r\n\r\n", true},
		{"GET /_matrix/client/v3/sync?since=s1&timeout=0 HTTP/1.1\r\n\r\n", false},
		{"GET /_matrix/client/v3/sync?since=s1&timeout=000 HTTP/1.1\r\n\r\n", false},
		{"GET /_matrix/client/v3/sync?since=s1&timeout=-5 HTTP/1.1\r\n\r\n", false},
		{"GET /_matrix/client/v3/sync?since=s1&timeout=1e3 HTTP/1.1\r\n\r\n", false},
		{"GET /_matrix/client/v3/sync?since=s1&timeout=9999999999999 HTTP/1.1\r\n\r\n", false},
		{"GET /_matrix/client/v3/sync?timeout=30000 HTTP/1.1\r\n\r\n", false}, // an initial sync
		{"GET /_matrix/client/v3/sync?since=&timeout=30000 HTTP/1.1\r\n\r\n", false},
		{"GET /_matrix/client/v3/sync HTTP/1.1\r\n\r\n", false},
		{"GET /_matrix/client/v3/syncx?since=s1&timeout=1 HTTP/1.1\r\n\r\n", false},
		{"POST /_matrix/client/v3/sync?since=s1&timeout=1 HTTP/1.1\r\n\r\n", false},
		{"GET /_matrix/client/v3/rooms/!r/messages?since=s1&timeout=1 HTTP/1.1\r\n\r\n", false},
		{"GET /_matrix/client/v3/sync?since=s1&timeout=1", true}, // the caller checks the head is whole
		{"", false},
	} {
		if got := LongPollHead([]byte(c.head)); got != c.want {
			t.Errorf("LongPollHead(%q) = %v, want %v", c.head, got, c.want)
		}
	}
}

// FuzzLongPollHead: any bytes are read without a panic, and a head picked
// that net/http accepts is a GET of /sync whose query has a positive
// timeout as the handler reads it.
func FuzzLongPollHead(f *testing.F) {
	f.Add([]byte("GET /_matrix/client/v3/sync?since=s1_2&timeout=30000 HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("GET /_matrix/client/r0/sync?timeout=0&since=x HTTP/1.1\r\n\r\n"))
	f.Add([]byte("\x00\xff GET /_matrix/client/v3/sync?&&==&since&timeout= \r\n"))
	f.Fuzz(func(t *testing.T, head []byte) {
		if !LongPollHead(head) {
			return
		}
		line, _, _ := strings.Cut(string(head), "\r\n")
		target, _, _ := strings.Cut(strings.TrimPrefix(line, "GET "), " ")
		u, err := url.ParseRequestURI(target)
		if err != nil {
			// net/http refuses the request (a control character in its
			// target): the connection closes, and with it the place.
			return
		}
		if u.Path != "/_matrix/client/v3/sync" && u.Path != "/_matrix/client/r0/sync" {
			t.Fatalf("picked %q: path %q", head, u.Path)
		}
		for _, param := range strings.Split(u.RawQuery, "&") {
			name, value, _ := strings.Cut(param, "=")
			if name == "timeout" && value != "" {
				if ms, err := strconv.ParseInt(value, 10, 64); err != nil || ms <= 0 {
					t.Fatalf("picked %q with timeout %q", head, value)
				}
			}
		}
	})
}
