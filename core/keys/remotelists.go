package keys

// Copies of other servers' users' device lists (server-server API, "Device
// Management"). A list is fetched whole when a local client asks for the
// keys of a remote user who shares a room with a local user, or when their
// server sends an update for a user of whom there is no copy, then kept up
// to date by the EDUs of the user's server: each m.device_list_update
// whose prev_id is known replaces one device; one whose prev_id is not
// (an update was lost) marks the list stale, and it is fetched again with
// /user/devices, whose stream_id the next updates follow. Every update
// also advances the device_lists stream for the user, so that local
// clients in a room with them see device_lists.changed and ask again.
//
// A list answers /keys/query only while it can be trusted: not stale, and
// the user has shared a room with a local user since it was fetched (the
// user's server sends updates only while it does). A list of a user who
// shares no room any more is forgotten when next seen.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/stream"
	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// resyncTimeout bounds a resync's request and the retries after a change
// raced it; resyncWait how long a key query waits for a resync running.
const (
	resyncTimeout  = 30 * time.Second
	resyncAttempts = 3
	resyncWait     = 5 * time.Second
	// At most maxResyncs resyncs wait or run, resyncConcurrency of them
	// fetching at once.
	maxResyncs        = 1000
	resyncConcurrency = 8
	maxRemoteKeys     = 64 * 1024
)

// RemoteUserDevices is another server's answer to
// GET /_matrix/federation/v1/user/devices/{userId}.
type RemoteUserDevices struct {
	UserID         id.UserID       `json:"user_id"`
	StreamID       int64           `json:"stream_id"`
	Devices        []RemoteDevice  `json:"devices"`
	MasterKey      json.RawMessage `json:"master_key,omitempty"`
	SelfSigningKey json.RawMessage `json:"self_signing_key,omitempty"`
}

// DeviceListUpdate is the content of an m.device_list_update EDU.
type DeviceListUpdate struct {
	UserID      id.UserID       `json:"user_id"`
	DeviceID    id.DeviceID     `json:"device_id"`
	DisplayName string          `json:"device_display_name,omitempty"`
	StreamID    int64           `json:"stream_id"`
	PrevID      []int64         `json:"prev_id,omitempty"`
	Deleted     bool            `json:"deleted,omitempty"`
	Keys        json.RawMessage `json:"keys,omitempty"`
}

// resyncs are the users whose list a resync is fetching, so that a second
// gap while one runs does not start another.
type resyncs struct {
	mu sync.Mutex
	// running: each user's resync, closed when it ends.
	running map[id.UserID]chan struct{}
	// slots bound the resyncs fetching at once.
	slots chan struct{}
}

// remoteOwned fails unless user is a user of origin (and not of this server).
func (s *Service) remoteOwned(origin string, user id.UserID) error {
	_, server, err := user.Parse()
	if err != nil || server != origin || s.isLocal(user) {
		return types.Forbidden("%s is not a user of %s", user, origin)
	}
	return nil
}

// checkRemoteKey checks a key object another server sent: an object no
// bigger than maxRemoteKeys that says it is the user's (and the device's).
func checkRemoteKey(raw json.RawMessage, user id.UserID, device id.DeviceID) bool {
	if len(raw) > maxRemoteKeys || !gjson.ValidBytes(raw) || !gjson.ParseBytes(raw).IsObject() {
		return false
	}
	if gjson.GetBytes(raw, "user_id").Str != string(user) {
		return false
	}
	return device == "" || gjson.GetBytes(raw, "device_id").Str == string(device)
}

// sharedWithLocal reports since when user has shared a room with a local
// user, and whether they do.
func (s *Service) sharedWithLocal(ctx context.Context, user id.UserID) (int64, bool, error) {
	shared, err := s.store.RemoteUsersSharedSince(ctx, []id.UserID{user})
	if err != nil {
		return 0, false, internal("rooms shared with a remote user", err)
	}
	since, ok := shared[user]
	return since, ok, nil
}

// RemoteDeviceListUpdate takes an m.device_list_update EDU from origin.
func (s *Service) RemoteDeviceListUpdate(ctx context.Context, origin string, u *DeviceListUpdate) error {
	if err := s.remoteOwned(origin, u.UserID); err != nil {
		return err
	}
	if u.DeviceID == "" || !types.ValidText(string(u.DeviceID)) || len(u.DeviceID) > 255 || u.StreamID <= 0 ||
		!types.ValidText(u.DisplayName) || len(u.DisplayName) > 1024 {
		return types.BadJSON("an m.device_list_update needs a device_id and a positive stream_id")
	}
	if isNull(u.Keys) {
		u.Keys = nil
	} else if !checkRemoteKey(u.Keys, u.UserID, u.DeviceID) {
		return types.BadJSON("the device keys of %s %s are not theirs", u.UserID, u.DeviceID)
	}
	if _, ok, err := s.sharedWithLocal(ctx, u.UserID); err != nil {
		return err
	} else if !ok {
		// No one here shares a room with them: their server should not be
		// telling us, and a list kept from before would go stale.
		return s.store.DeleteRemoteDeviceList(ctx, u.UserID)
	}
	lists, err := s.store.RemoteDeviceLists(ctx, []id.UserID{u.UserID})
	if err != nil {
		return internal("remote device list", err)
	}
	l := lists[u.UserID]
	seen, applies := placeUpdate(l, u.StreamID, u.PrevID)
	if seen {
		return nil // had it already (a retried transaction)
	}
	var pos int64
	err = s.store.WithTx(ctx, func(ctx context.Context) error {
		var err error
		if pos, err = s.deviceListChanged(ctx, u.UserID, u.DeviceID); err != nil {
			return err
		}
		if applies {
			return s.store.ApplyRemoteDeviceUpdate(ctx, u.UserID, &storage.RemoteDevice{DeviceID: u.DeviceID,
				KeyJSON: u.Keys, DisplayName: u.DisplayName}, u.Deleted, u.StreamID, pos)
		}
		// Also without a list: a fetch in flight must not store what it
		// got from before this change.
		return s.store.MarkRemoteDeviceListStale(ctx, u.UserID, pos)
	})
	if err != nil {
		return internal("device list update", err)
	}
	s.publish(ctx, u.UserID, pos)
	if !applies {
		// A list this server has no copy of (or one it cannot follow):
		// fetched now, so that the updates after this one apply to it.
		// The user shares a room with a local user: a client here will
		// want their keys. (The user's server sends its user's latest
		// update to a server newly sharing a room with them; this is
		// where that server's copy starts.)
		s.resync(u.UserID)
	}
	return nil
}

// placeUpdate tells how an update (its stream ID and prev_id) stands to
// the stored list l (nil: none): seen, the list includes it already;
// applies, it follows the list — each update it names is one the list
// includes (stream IDs grow per user, so those up to the list's). Neither:
// an update was lost, or the list has no stream ID to follow (it came from
// /user/keys/query), or it is stale; it must be fetched again. An update
// naming no prev_id starts a sequence the list cannot place either.
func placeUpdate(l *storage.RemoteDeviceList, streamID int64, prev []int64) (seen, applies bool) {
	if l == nil || l.Stale || l.StreamID <= 0 {
		return false, false
	}
	if streamID <= l.StreamID {
		return true, false
	}
	return false, len(prev) > 0 && !slices.ContainsFunc(prev, func(p int64) bool { return p > l.StreamID })
}

// RemoteSigningKeyUpdate takes an m.signing_key_update EDU from origin.
func (s *Service) RemoteSigningKeyUpdate(ctx context.Context, origin string, user id.UserID, master, selfSigning json.RawMessage) error {
	if err := s.remoteOwned(origin, user); err != nil {
		return err
	}
	for _, k := range []*json.RawMessage{&master, &selfSigning} {
		if isNull(*k) {
			*k = nil
		} else if !checkRemoteKey(*k, user, "") {
			return types.BadJSON("the cross-signing keys of %s are not theirs", user)
		}
	}
	if master == nil && selfSigning == nil {
		return nil
	}
	if _, ok, err := s.sharedWithLocal(ctx, user); err != nil {
		return err
	} else if !ok {
		return s.store.DeleteRemoteDeviceList(ctx, user)
	}
	lists, err := s.store.RemoteDeviceLists(ctx, []id.UserID{user})
	if err != nil {
		return internal("remote device list", err)
	}
	l := lists[user]
	var pos int64
	err = s.store.WithTx(ctx, func(ctx context.Context) error {
		var err error
		if pos, err = s.deviceListChanged(ctx, user); err != nil {
			return err
		}
		if l != nil && !l.Stale {
			return s.store.ApplyRemoteCrossSigning(ctx, user, master, selfSigning, pos)
		}
		return s.store.MarkRemoteDeviceListStale(ctx, user, pos)
	})
	if err != nil {
		return internal("signing key update", err)
	}
	s.publish(ctx, user, pos)
	return nil
}

// resync fetches user's list again in the background (/user/devices).
func (s *Service) resync(user id.UserID) {
	if s.opts.Remote == nil {
		return
	}
	s.resyncs.mu.Lock()
	if s.resyncs.running == nil {
		s.resyncs.running = map[id.UserID]chan struct{}{}
		s.resyncs.slots = make(chan struct{}, resyncConcurrency)
	}
	if s.resyncs.running[user] != nil || len(s.resyncs.running) >= maxResyncs {
		// Beyond maxResyncs (a server sending the updates of a crowd at
		// once), the list stays as it is: stale or none, fetched when a
		// client asks for the user's keys.
		s.resyncs.mu.Unlock()
		return
	}
	done := make(chan struct{})
	s.resyncs.running[user] = done
	slots := s.resyncs.slots
	s.resyncs.mu.Unlock()
	go func() {
		defer func() {
			s.resyncs.mu.Lock()
			delete(s.resyncs.running, user)
			s.resyncs.mu.Unlock()
			close(done)
		}()
		slots <- struct{}{}
		defer func() { <-slots }()
		ctx, cancel := context.WithTimeout(context.Background(), resyncTimeout)
		defer cancel()
		if err := s.resyncNow(ctx, user); err != nil {
			s.log.Info("device list resync failed", "user", user, "err", err)
		}
	}()
}

// resyncing reports whether a resync of user's list runs in this process.
func (s *Service) resyncing(user id.UserID) bool {
	s.resyncs.mu.Lock()
	defer s.resyncs.mu.Unlock()
	return s.resyncs.running[user] != nil
}

// awaitResyncs waits (at most resyncWait) for the resyncs running of
// users: a key query during one is answered from the list it brings
// rather than by asking the user's server too.
func (s *Service) awaitResyncs(ctx context.Context, users []id.UserID) {
	var waits []chan struct{}
	s.resyncs.mu.Lock()
	for _, u := range users {
		if ch := s.resyncs.running[u]; ch != nil {
			waits = append(waits, ch)
		}
	}
	s.resyncs.mu.Unlock()
	if len(waits) == 0 {
		return
	}
	timer := time.NewTimer(resyncWait)
	defer timer.Stop()
	for _, ch := range waits {
		select {
		case <-ch:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// resyncNow fetches and stores user's list, again when a change raced it.
func (s *Service) resyncNow(ctx context.Context, user id.UserID) error {
	for range resyncAttempts {
		lists, err := s.store.RemoteDeviceLists(ctx, []id.UserID{user})
		if err != nil {
			return err
		}
		var mark int64
		if l := lists[user]; l != nil {
			mark = l.Mark
		}
		fetched := s.notifier.Current()[stream.Events]
		ans, err := s.opts.Remote.UserDevices(ctx, user.Homeserver(), user)
		if err != nil {
			return err
		}
		if ans.UserID != user {
			return errors.New("the answer is about " + string(ans.UserID))
		}
		l := &storage.RemoteDeviceList{UserID: user, StreamID: ans.StreamID, FetchedPos: fetched}
		if checkRemoteKey(ans.MasterKey, user, "") {
			l.MasterKey = ans.MasterKey
		}
		if checkRemoteKey(ans.SelfSigningKey, user, "") {
			l.SelfSigningKey = ans.SelfSigningKey
		}
		for _, d := range ans.Devices {
			if d.DeviceID == "" || !types.ValidText(string(d.DeviceID)) || !types.ValidText(d.DisplayName) {
				continue
			}
			rd := &storage.RemoteDevice{DeviceID: d.DeviceID, DisplayName: d.DisplayName}
			if !isNull(d.Keys) && checkRemoteKey(d.Keys, user, d.DeviceID) {
				rd.KeyJSON = d.Keys
			}
			l.Devices = append(l.Devices, rd)
		}
		if wrote, err := s.store.PutRemoteDeviceList(ctx, l, mark); err != nil || wrote {
			return err
		}
	}
	return errors.New("the list kept changing")
}

// cachedRemote answers from the stored lists the users of want it can, and
// returns the others (to ask their servers), the stored lists' marks of
// those worth keeping a list of (they share a room with a local user; a
// user missing from keep is not), and the events position to store with
// what comes back.
func (s *Service) cachedRemote(ctx context.Context, want map[id.UserID][]id.DeviceID, resp *QueryResponse) (
	ask map[id.UserID][]id.DeviceID, keep map[id.UserID]int64, fetched int64) {
	ask = map[id.UserID][]id.DeviceID{}
	keep = map[id.UserID]int64{}
	fetched = s.notifier.Current()[stream.Events]
	var users []id.UserID
	for u := range want {
		if !s.isLocal(u) {
			users = append(users, u)
		}
	}
	if len(users) == 0 {
		return ask, keep, fetched
	}
	s.awaitResyncs(ctx, users)
	fetched = s.notifier.Current()[stream.Events]
	fail := func(err error) (map[id.UserID][]id.DeviceID, map[id.UserID]int64, int64) {
		// Without the copies, every server is asked.
		s.log.WarnContext(ctx, "remote device lists", "err", err)
		for _, u := range users {
			ask[u] = want[u]
		}
		return ask, map[id.UserID]int64{}, fetched
	}
	lists, err := s.store.RemoteDeviceLists(ctx, users)
	if err != nil {
		return fail(err)
	}
	shared, err := s.store.RemoteUsersSharedSince(ctx, users)
	if err != nil {
		return fail(err)
	}
	for _, u := range users {
		l := lists[u]
		since, sharing := shared[u]
		switch {
		case !sharing:
			if l != nil {
				if err := s.store.DeleteRemoteDeviceList(ctx, u); err != nil {
					s.log.WarnContext(ctx, "forgetting a remote device list", "user", u, "err", err)
				}
			}
			ask[u] = want[u]
		case l != nil && !l.Stale && since <= l.FetchedPos:
			devs := map[id.DeviceID]json.RawMessage{}
			for _, d := range l.Devices {
				if d.KeyJSON != nil && (len(want[u]) == 0 || slices.Contains(want[u], d.DeviceID)) {
					devs[d.DeviceID] = d.KeyJSON
				}
			}
			resp.DeviceKeys[u] = devs
			if l.MasterKey != nil {
				resp.MasterKeys[u] = l.MasterKey
			}
			if l.SelfSigningKey != nil {
				resp.SelfSigningKeys[u] = l.SelfSigningKey
			}
		default:
			ask[u] = want[u]
			if len(want[u]) == 0 { // a whole list comes back
				keep[u] = 0
				if l != nil {
					keep[u] = l.Mark
				}
			}
		}
	}
	return ask, keep, fetched
}

// keepRemote stores the whole lists a server answered for the users of
// keep (their marks as read before asking).
func (s *Service) keepRemote(ctx context.Context, ans *RemoteKeysAnswer, keep map[id.UserID]int64, fetched int64) {
	for u, devs := range ans.DeviceKeys {
		mark, ok := keep[u]
		if !ok || s.resyncing(u) {
			continue // a resync's list, with its stream ID, is on its way
		}
		l := &storage.RemoteDeviceList{UserID: u, FetchedPos: fetched}
		for d, k := range devs {
			if checkRemoteKey(k, u, d) {
				l.Devices = append(l.Devices, &storage.RemoteDevice{DeviceID: d, KeyJSON: k})
			}
		}
		slices.SortFunc(l.Devices, func(a, b *storage.RemoteDevice) int { return cmp.Compare(a.DeviceID, b.DeviceID) })
		if k := ans.MasterKeys[u]; checkRemoteKey(k, u, "") {
			l.MasterKey = k
		}
		if k := ans.SelfSigningKeys[u]; checkRemoteKey(k, u, "") {
			l.SelfSigningKey = k
		}
		if _, err := s.store.PutRemoteDeviceList(ctx, l, mark); err != nil {
			s.log.WarnContext(ctx, "storing a remote device list", "user", u, "err", err)
		}
	}
}

// mergeRemoteSignatures adds to the master keys of other servers' users in
// resp the caller's signatures of them (by their user-signing key), which
// this server keeps: the users' servers never see them, and nobody but the
// caller may.
func (s *Service) mergeRemoteSignatures(ctx context.Context, caller id.UserID, resp *QueryResponse) error {
	if caller == "" {
		return nil
	}
	var users []id.UserID
	for u := range resp.MasterKeys {
		if !s.isLocal(u) {
			users = append(users, u)
		}
	}
	if len(users) == 0 {
		return nil
	}
	sigs, err := s.store.KeySignaturesOf(ctx, users)
	if err != nil {
		return internal("signatures of remote keys", err)
	}
	mine := map[id.UserID][]*storage.KeySignature{}
	for _, sg := range sigs {
		if sg.SignerUserID == caller && sg.TargetKeyID == publicKey(resp.MasterKeys[sg.TargetUserID]) {
			mine[sg.TargetUserID] = append(mine[sg.TargetUserID], sg)
		}
	}
	for u, sgs := range mine {
		resp.MasterKeys[u] = mergeSignatures(resp.MasterKeys[u], sgs, nil)
	}
	return nil
}

// remoteMasterKey is the master key of another server's user, as a key
// query answers it (from the copy of their list, else their server); nil
// if none.
func (s *Service) remoteMasterKey(ctx context.Context, user id.UserID) json.RawMessage {
	resp := newQueryResponse()
	s.queryRemote(ctx, map[id.UserID][]id.DeviceID{user: nil}, resp)
	return resp.MasterKeys[user]
}
