package netguard

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		allowed []string
		ok      bool
	}{
		{"93.184.216.34:443", nil, true},
		{"[2606:2800:220:1::1]:443", nil, true},
		{"127.0.0.1:80", nil, false},
		{"10.1.2.3:80", nil, false},
		{"169.254.169.254:80", nil, false},
		{"[::1]:80", nil, false},
		{"[::ffff:127.0.0.1]:80", nil, false}, // IPv4-mapped loopback
		{"[fd00::1]:80", nil, false},
		{"127.0.0.1:80", []string{"127.0.0.0/8"}, true},
		{"10.1.2.3:80", []string{"10.1.0.0/16"}, true},
		{"10.2.2.3:80", []string{"10.1.0.0/16"}, false},
	} {
		g := Guard{}
		for _, a := range tc.allowed {
			g.Allowed = append(g.Allowed, netip.MustParsePrefix(a))
		}
		err := g.Check(tc.addr)
		if tc.ok && err != nil {
			t.Errorf("%s (allowed %v): refused: %v", tc.addr, tc.allowed, err)
		}
		if !tc.ok && !errors.Is(err, ErrBlocked) {
			t.Errorf("%s (allowed %v): got %v, want ErrBlocked", tc.addr, tc.allowed, err)
		}
	}
}

// The transport refuses to connect to loopback unless it is allowed.
func TestTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	get := func(g Guard) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
		resp, err := (&http.Client{Transport: g.Transport(5 * time.Second)}).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(Guard{}); !errors.Is(err, ErrBlocked) {
		t.Fatalf("loopback without allow-listing: %v", err)
	}
	if err := get(Guard{Allowed: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}); err != nil {
		t.Fatalf("allow-listed loopback: %v", err)
	}
}
