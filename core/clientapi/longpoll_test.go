package clientapi

import (
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
