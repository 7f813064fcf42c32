package outbound

// Device lists for servers new to a user. The server-server API ("Device
// Management") has m.device_list_update EDUs sent to every server sharing
// a room with the user whenever the list changes, which includes "when
// that user joins a room which contains servers which are not already
// receiving updates for that user's device list". So when a membership
// change makes servers and local users share a room, the server is sent
// each local user's latest device change again — the EDU it would have had,
// with its stream_id and prev_id. A server that follows the list already
// knows that stream ID and ignores it; one without a copy (or with an older
// one) cannot place it and fetches the list with /user/devices, whose
// stream_id the next updates then follow, as the spec has a receiver do.
// (Synapse replays its users' device updates to the hosts of a room the
// same way when it learns the room's full state.)
//
// The pokes wait in memory: one lost to a restart is made good by the
// user's next device change, which the server cannot place either.

import (
	"context"
	"math"
	"slices"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/stream"
)

// queueMembership hands a membership change to pokeLoop without waiting
// (its reads of the room's members must not hold up wakeLoop); when it is
// behind, the change is dropped, and a server it made new to a user learns
// of her list at her next device change.
func (s *Sender) queueMembership(c stream.Change) {
	if !s.memberships.push(c) {
		s.log.Info("federation: device lists for servers new to a room skipped (busy)", "room", c.RoomID)
	}
}

// pokeLoop runs shareDeviceLists for each membership change.
func (s *Sender) pokeLoop(ctx context.Context) {
	defer s.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.memberships.ready:
			for _, c := range s.memberships.take() {
				if ctx.Err() != nil {
					return
				}
				if err := s.shareDeviceLists(ctx, c); err != nil && ctx.Err() == nil {
					s.log.Warn("federation: device lists for servers new to a room", "room", c.RoomID, "err", err)
				}
			}
		}
	}
}

// shareDeviceLists finds, after a membership change in c.RoomID, the
// servers newly sharing the room with local users, and has each sent the
// device lists of those users: a local user who is joined now goes to
// every server of the room; every local member goes to a server all of
// whose joined members are among the changed users (it was not in the
// room before). A server already in the room is not told again of its
// members' profile changes; a local user's profile change re-sends her
// latest update, which costs each server one EDU it ignores.
func (s *Sender) shareDeviceLists(ctx context.Context, c stream.Change) error {
	members, err := s.store.RoomMembers(ctx, c.RoomID, []string{"join"})
	if err != nil {
		return err
	}
	joined := make(map[id.UserID]bool, len(members))
	perServer := map[string]int{}
	var locals []id.UserID
	for _, m := range members {
		joined[m.UserID] = true
		if s.local(m.UserID) {
			locals = append(locals, m.UserID)
		} else if srv := m.UserID.Homeserver(); srv != "" {
			perServer[srv]++
		}
	}
	changed := map[string]int{}
	var newLocals []id.UserID
	for _, u := range c.Users {
		switch {
		case !joined[u]:
		case s.local(u):
			newLocals = append(newLocals, u)
		default:
			changed[u.Homeserver()]++
		}
	}
	pokes := map[string][]id.UserID{}
	if len(newLocals) > 0 {
		for srv := range perServer {
			pokes[srv] = append(pokes[srv], newLocals...)
		}
	}
	if len(locals) > 0 {
		for srv, n := range changed {
			if n == perServer[srv] {
				pokes[srv] = append(pokes[srv], locals...)
			}
		}
	}
	var wake []string
	s.mu.Lock()
	for srv, users := range pokes {
		if srv == s.opts.ServerName || !s.opts.FederatesWith(srv) {
			continue
		}
		if s.pokes[srv] == nil {
			s.pokes[srv] = map[id.UserID]bool{}
		}
		for _, u := range users {
			s.pokes[srv][u] = true
		}
		wake = append(wake, srv)
	}
	s.mu.Unlock()
	if len(wake) > 0 {
		slices.Sort(wake)
		s.runner.Wake(wake...)
	}
	return nil
}

// takePokes removes and returns up to n of the users whose lists wait for
// dest, and whether more wait.
func (s *Sender) takePokes(dest string, n int) ([]id.UserID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return takeSome(s.pokes, dest, n)
}

// takeSome removes and returns up to n of the users waiting in m for
// dest, and whether more wait.
func takeSome(m map[string]map[id.UserID]bool, dest string, n int) ([]id.UserID, bool) {
	p := m[dest]
	var out []id.UserID
	for u := range p {
		if len(out) == n {
			return out, true
		}
		out = append(out, u)
		delete(p, u)
	}
	delete(m, dest)
	return out, false
}

// pokeEDUs adds for each of users the m.device_list_update of its latest
// device change (none for a user who never had a device).
func (s *Sender) pokeEDUs(ctx context.Context, b *eduBatch, users []id.UserID) error {
	for _, u := range users {
		last, err := s.store.PrevDeviceChange(ctx, u, math.MaxInt64)
		if err != nil {
			return err
		}
		if last == 0 {
			continue
		}
		rows, err := s.store.DeviceListChangesRange(ctx, last-1, last, 1)
		if err != nil {
			return err
		}
		if len(rows) == 0 || rows[0].UserID != u || rows[0].DeviceID == "" {
			continue
		}
		prev, err := s.store.PrevDeviceChange(ctx, u, last)
		if err != nil {
			return err
		}
		uk, err := s.loadUserKeys(ctx, u)
		if err != nil {
			return err
		}
		if err := b.add("m.device_list_update", deviceUpdate(uk, u, rows[0].DeviceID, last, prev)); err != nil {
			return err
		}
	}
	return nil
}

// repoke puts back users whose EDUs could not be made.
func (s *Sender) repoke(dest string, users []id.UserID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pokes[dest] == nil {
		s.pokes[dest] = map[id.UserID]bool{}
	}
	for _, u := range users {
		s.pokes[dest][u] = true
	}
}
