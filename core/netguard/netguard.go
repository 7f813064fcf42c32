// Package netguard keeps outbound HTTP requests that users can aim (URL
// previews, push gateways) off the server's own networks: loopback, private,
// link-local and reserved addresses are refused unless allow-listed. The
// check runs in the dialer, after DNS, so a name that resolves to a private
// address is refused too. It imports nothing of this module.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// blocked are never connected to unless allowed: loopback, private,
// link-local (cloud metadata at 169.254.169.254), carrier-grade NAT,
// benchmarking, documentation and reserved ranges.
var blocked = func() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range []string{"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
		"203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "::/128", "::1/128", "64:ff9b::/96", "100::/64",
		"2001:db8::/32", "fc00::/7", "fe80::/10", "ff00::/8"} {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}()

// ErrBlocked is the guard's refusal.
var ErrBlocked = errors.New("address not allowed")

// Guard checks the addresses a dialer is about to connect to.
type Guard struct {
	// Allowed are ranges let through although they are blocked (loopback
	// for tests, an internal push gateway…).
	Allowed []netip.Prefix
}

// Check refuses a host:port whose address is blocked and not allowed.
func (g Guard) Check(address string) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return err
	}
	return g.checkAddr(ap.Addr())
}

// checkAddr refuses an address that is blocked and not allowed.
func (g Guard) checkAddr(addr netip.Addr) error {
	addr = addr.Unmap()
	for _, a := range g.Allowed {
		if a.Contains(addr) {
			return nil
		}
	}
	for _, b := range blocked {
		if b.Contains(addr) {
			return fmt.Errorf("%w: %s", ErrBlocked, addr)
		}
	}
	return nil
}

// CheckHost resolves a host (a name or an IP literal) and refuses it when
// an address it resolves to is blocked and not allowed: for URLs users
// set up now and the server fetches later (push gateways), so that the
// user hears at once. A name that does not resolve passes: the dialer
// checks again at each connection.
func (g Guard) CheckHost(ctx context.Context, host string) error {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		addrs = []netip.Addr{a}
	} else if addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host); err != nil {
		return nil
	}
	for _, a := range addrs {
		if err := g.checkAddr(a); err != nil {
			return err
		}
	}
	return nil
}

// Dialer is a dialer that connects only where Check lets it.
func (g Guard) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, Control: func(_, address string, _ syscall.RawConn) error {
		return g.Check(address)
	}}
}

// Transport is an HTTP transport dialing through the guard, without
// proxies (a proxy from the environment would connect on its own terms).
func (g Guard) Transport(timeout time.Duration) *http.Transport {
	return &http.Transport{DialContext: g.Dialer(timeout).DialContext, Proxy: nil, MaxIdleConns: 16,
		IdleConnTimeout: 30 * time.Second, TLSHandshakeTimeout: timeout, ResponseHeaderTimeout: timeout}
}
