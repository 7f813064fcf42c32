// Package outbound is this server's side of requests to other servers: the
// signing federation client every outbound request goes through; the
// sender (sender.go) that delivers each destination's persisted interest
// queue in transactions, with backoff, EDUs and the admin view of
// destinations; and what core asks of other servers through the client
// (core/rooms.RemoteRooms: joins, leaves, knocks and invites over
// federation, missing events, state and history; remote profiles, keys and
// media). It imports core services and their declared interfaces,
// core/queue, core/stream, core/netguard, the storage interfaces and
// mautrix.
package outbound

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"go.mau.fi/util/exhttp"
	"maunium.net/go/mautrix/federation"

	"github.com/tributary-hs/tributary/core/netguard"
)

// ClientOptions configure the federation client.
type ClientOptions struct {
	ServerName string
	Key        *federation.SigningKey
	// Allowed are address ranges reached although netguard blocks them
	// (loopback for tests, a private network of servers).
	Allowed []netip.Prefix
	// InsecureSkipVerify skips verifying other servers' certificates
	// (loopback tests only).
	InsecureSkipVerify bool
	// FederatesWith is the allow/deny list; nil allows every server.
	FederatesWith func(serverName string) bool
}

// NewClient builds mautrix's federation client, which resolves server
// names (well-known, SRV _matrix-fed._tcp and _matrix._tcp, port 8448, IP
// literals) and signs requests with X-Matrix. Wrapped here where it falls
// short of this server's rules:
//
//   - mautrix's own address filter (federation.DefaultAllowIP) is replaced
//     by core/netguard, the one SSRF guard of the project, with its
//     allow-list; it runs in the dialer, after DNS.
//   - The .well-known lookup of server discovery would use
//     http.DefaultClient (no guard, environment proxies): it gets a client
//     dialing through the guard instead.
//   - Certificate checks follow InsecureSkipVerify; otherwise the system
//     pool (which honours SSL_CERT_FILE) is used.
func NewClient(o ClientOptions) *federation.Client {
	guard := netguard.Guard{Allowed: o.Allowed}
	settings := exhttp.SensibleClientSettings
	settings.InsecureTLS = o.InsecureSkipVerify
	settings.GlobalTimeout = time.Minute
	c := federation.NewClient(o.ServerName, o.Key, nil, settings)
	c.UserAgent = "Tributary"
	c.AllowIP = func(ip net.IP) bool {
		return guard.Check(net.JoinHostPort(ip.String(), strconv.Itoa(0))) == nil
	}
	if o.FederatesWith != nil {
		c.AllowServer = o.FederatesWith
	}
	if srt, ok := c.HTTP.Transport.(*federation.ServerResolvingTransport); ok {
		wk := guard.Transport(10 * time.Second)
		if o.InsecureSkipVerify {
			wk.TLSClientConfig = srt.Transport.TLSClientConfig
		}
		srt.ResolveOpts = &federation.ResolveServerNameOpts{HTTPClient: &http.Client{Transport: wk, Timeout: 30 * time.Second}}
	}
	return c
}
