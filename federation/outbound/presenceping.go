package outbound

// Presence pings. A presence change goes out once (edus.go), but a server
// that hears nothing of a user for a while shows them offline (Synapse
// after 30 minutes, FEDERATION_TIMEOUT; this server after
// presence.remote_offline_after, core/ephemeral), so that a server gone
// quiet leaves nobody online forever. A user who stays online without a
// change would time out too: every SenderOptions.PresencePing (Synapse's
// FEDERATION_PING_INTERVAL is 25 minutes) the presence of the local users
// who are online or unavailable goes again to the servers sharing a room
// with them.

import (
	"context"
	"time"

	"maunium.net/go/mautrix/id"
)

// maxPingUsers bounds the users of one transaction's ping.
const maxPingUsers = 500

// pingLoop queues a ping of every local user not offline, every
// PresencePing.
func (s *Sender) pingLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.PresencePing)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.queuePings(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("federation: presence pings", "err", err)
			}
		}
	}
}

func (s *Sender) queuePings(ctx context.Context) error {
	rows, err := s.store.PresenceNotOffline(ctx)
	if err != nil {
		return err
	}
	pings := map[string][]id.UserID{}
	for _, p := range rows {
		if !s.local(p.UserID) {
			continue
		}
		rs, err := s.rooms.JoinedRooms(ctx, p.UserID)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, r := range rs {
			srvs, err := s.servers.get(ctx, r)
			if err != nil {
				return err
			}
			for _, srv := range srvs {
				if !seen[srv] && srv != s.opts.ServerName && s.opts.FederatesWith(srv) {
					seen[srv] = true
					pings[srv] = append(pings[srv], p.UserID)
				}
			}
		}
	}
	if len(pings) == 0 {
		return nil
	}
	wake := make([]string, 0, len(pings))
	s.mu.Lock()
	for srv, users := range pings {
		if s.pings[srv] == nil {
			s.pings[srv] = map[id.UserID]bool{}
		}
		for _, u := range users {
			s.pings[srv][u] = true
		}
		wake = append(wake, srv)
	}
	s.mu.Unlock()
	s.runner.Wake(wake...)
	return nil
}

// takePings removes and returns up to maxPingUsers of the users whose
// presence waits to go to dest again, and whether more wait.
func (s *Sender) takePings(dest string) ([]id.UserID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return takeSome(s.pings, dest, maxPingUsers)
}

// pingEDU adds one m.presence with the presence of those of users who are
// not offline.
func (s *Sender) pingEDU(ctx context.Context, b *eduBatch, users []id.UserID) error {
	if len(users) == 0 {
		return nil
	}
	evs, err := s.eph.PresenceOf(ctx, users)
	if err != nil {
		return err
	}
	var push []map[string]any
	for _, ev := range evs {
		if c, _ := ev["content"].(map[string]any); c["presence"] != "offline" {
			push = append(push, presencePush(ev))
		}
	}
	if len(push) == 0 {
		return nil
	}
	return b.add("m.presence", map[string]any{"push": push})
}
