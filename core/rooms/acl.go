package rooms

import (
	"context"
	"net/netip"
	"strings"

	"github.com/tidwall/gjson"
	"go.mau.fi/util/glob"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
)

// ServerAllowed applies the room's server ACL (m.room.server_acl in the
// current state) to a server making a request about the room: 403
// M_FORBIDDEN when it is denied (server-server API, "Server Access Control
// Lists"). The rules, in order (the event's schema): no ACL allows; an IP
// literal is denied when allow_ip_literals is false; a deny match denies;
// an allow match allows; anything else is denied. Ports are not compared
// and globs match case-insensitively.
func (s *Reader) ServerAllowed(ctx context.Context, roomID id.RoomID, server string) error {
	eid, err := s.store.CurrentStateEvent(ctx, roomID, "m.room.server_acl", "")
	if storageNotFound(err) || (err == nil && eid == "") {
		return nil
	} else if err != nil {
		return err
	}
	e, err := s.store.GetEvent(ctx, eid)
	if err != nil {
		return err
	}
	if !aclAllows(gjson.GetBytes(e.JSON, "content"), server) {
		return types.Forbidden("Server %s is denied by the server ACL of %s", server, roomID)
	}
	return nil
}

// aclAllows evaluates an m.room.server_acl content for server.
func aclAllows(content gjson.Result, server string) bool {
	host := strings.ToLower(serverHost(server))
	ipLiterals := content.Get("allow_ip_literals")
	if ipLiterals.Type == gjson.False {
		if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
			return false
		}
	}
	matches := func(list gjson.Result) bool {
		for _, p := range list.Array() {
			if p.Type == gjson.String && glob.Compile(strings.ToLower(p.Str)).Match(host) {
				return true
			}
		}
		return false
	}
	if matches(content.Get("deny")) {
		return false
	}
	return matches(content.Get("allow"))
}

// serverHost is a server name without its port ("[::1]:8448" → "[::1]").
func serverHost(server string) string {
	if strings.HasPrefix(server, "[") {
		if i := strings.IndexByte(server, ']'); i >= 0 {
			return server[:i+1]
		}
		return server
	}
	if i := strings.LastIndexByte(server, ':'); i >= 0 && strings.Count(server, ":") == 1 {
		return server[:i]
	}
	return server
}
