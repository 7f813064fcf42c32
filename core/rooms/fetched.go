package rooms

// Events this server asked another server for in bulk — the state and auth
// chain of a send_join answer, the state fetched to fill a gap — checked
// together before any is stored: checks 1–3 on receipt of a PDU (format,
// signatures, content hash) and check 4 (each allowed by its own auth
// events, found among the others or stored here). They run on all cores
// with one lookup of each server key for the whole set: a room of 10,000
// members is 10,000 signatures.
//
// The set is taken or refused whole: a resident server answers with state
// it accepted, so one event that fails is a server not to trust with the
// rest, and the caller asks another one.

import (
	"bytes"
	"context"
	"encoding/json/jsontext"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
)

// fetchedSet is a checked set of another server's events of one room.
type fetchedSet struct {
	rv   id.RoomVersion
	byID map[id.EventID]*received
	// order lists the events as first given (the state, then the rest).
	order []id.EventID
}

func (f *fetchedSet) get(eid id.EventID) *received { return f.byID[eid] }

// errBadAnswer marks a fetched set refused for one of its events.
var errBadAnswer = errors.New("bad answer")

// keyMemo answers each (server, key ID) once for a whole set.
type keyMemo struct {
	mu    sync.Mutex
	inner pdu.GetKeyFunc
	found map[[2]string]keyAnswer
}

type keyAnswer struct {
	key        id.SigningKey
	validUntil time.Time
	err        error
}

func (m *keyMemo) get(server string, keyID id.KeyID, minValidUntil time.Time) (id.SigningKey, time.Time, error) {
	k := [2]string{server, string(keyID)}
	// Under the lock: concurrent workers wait for the one lookup.
	m.mu.Lock()
	defer m.mu.Unlock()
	if a, ok := m.found[k]; ok && (a.err != nil || !a.validUntil.Before(minValidUntil)) {
		return a.key, a.validUntil, a.err
	}
	// Unknown, or known to expire before this event: the ring decides
	// whether to fetch again.
	key, until, err := m.inner(server, keyID, minValidUntil)
	m.found[k] = keyAnswer{key, until, err}
	return key, until, err
}

// parallel runs fn on each index on all cores; the first error wins.
func parallel(n int, fn func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		for i := range n {
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  int
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if first != nil || next >= n {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// checkFetched parses and checks events origin sent for roomID (room
// version rv): checks 1–3 of each, then check 4 with auth events from the
// set or from storage. A hash mismatch makes the event its redacted copy
// (as on receipt of a PDU); anything else refused refuses the set,
// wrapping errBadAnswer. Events repeated in raws are taken once; ids are
// the events' IDs in the order of raws.
func (s *Service) checkFetched(ctx context.Context, origin string, rv id.RoomVersion, roomID id.RoomID,
	raws []jsontext.Value) (set *fetchedSet, ids []id.EventID, err error) {
	recs := make([]*received, len(raws))
	memo := &keyMemo{inner: s.keyFunc(ctx), found: map[[2]string]keyAnswer{}}
	err = parallel(len(raws), func(i int) error {
		rec, err := parseFetched(origin, rv, roomID, raws[i])
		if err != nil {
			return err
		}
		if err := s.checkSignaturesWith(rec, memo.get); err != nil {
			return fmt.Errorf("%w: event %s: signature: %w", errBadAnswer, rec.eventID(), err)
		}
		if err := rec.checkHash(); err != nil {
			return fmt.Errorf("%w: event %s: %w", errBadAnswer, rec.eventID(), err)
		}
		recs[i] = rec
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	set = &fetchedSet{rv: rv, byID: make(map[id.EventID]*received, len(recs))}
	ids = make([]id.EventID, len(recs))
	for i, rec := range recs {
		ids[i] = rec.eventID()
		if _, ok := set.byID[rec.eventID()]; !ok {
			set.byID[rec.eventID()] = rec
			set.order = append(set.order, rec.eventID())
		}
	}
	if err := s.checkFetchedAuth(ctx, set); err != nil {
		return nil, nil, err
	}
	return set, ids, nil
}

// parseFetched is check 1 of a fetched event: valid for the room's
// version, and of the room (a v12 create event names it by its own ID).
func parseFetched(origin string, rv id.RoomVersion, roomID id.RoomID, raw jsontext.Value) (*received, error) {
	compact := jsontext.Value(bytes.Clone(raw))
	if err := compact.Compact(); err != nil || compact.Kind() != '{' {
		return nil, fmt.Errorf("%w: an event is not a JSON object", errBadAnswer)
	}
	if len(compact) > events.MaxPDUBytes {
		return nil, fmt.Errorf("%w: an event is larger than %d bytes", errBadAnswer, events.MaxPDUBytes)
	}
	rec, err := parseReceived(origin, rv, compact)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadAnswer, err)
	}
	if rec.ev.Type == "m.room.create" && rv.RoomIDIsCreateEventID() {
		if got := events.RoomIDFromCreate(rec.eventID()); got != roomID {
			return nil, fmt.Errorf("%w: the create event %s is that of room %s", errBadAnswer, rec.eventID(), got)
		}
		if gjson.GetBytes(compact, "room_id").Exists() {
			return nil, fmt.Errorf("%w: the create event of room version %s has a room_id", errBadAnswer, rv)
		}
		rec.roomID, rec.ev.RoomID = roomID, ""
		return rec, nil
	}
	if rec.roomID != roomID {
		return nil, fmt.Errorf("%w: event %s is of room %s", errBadAnswer, rec.eventID(), rec.roomID)
	}
	return rec, nil
}

// checkFetchedAuth is check 4 for every event of the set: allowed by its
// auth events, which are in the set or stored here.
func (s *Service) checkFetchedAuth(ctx context.Context, set *fetchedSet) error {
	var stored map[id.EventID]*pdu.PDU
	var need []id.EventID
	seen := map[id.EventID]bool{}
	for _, eid := range set.order {
		for _, a := range set.byID[eid].ev.AuthEvents {
			if set.byID[a] == nil && !seen[a] {
				seen[a] = true
				need = append(need, a)
			}
		}
	}
	if len(need) > 0 {
		ps, err := s.loadPDUs(ctx, need)
		if err != nil {
			return err
		}
		stored = make(map[id.EventID]*pdu.PDU, len(ps))
		for _, p := range ps {
			if p != nil {
				stored[p.InternalMeta.EventID] = p
			}
		}
	}
	// Auth events from the set, those cited read above, and any other the
	// rules ask for (the create event of a room v12, which no event cites)
	// from storage.
	get := func(ids []id.EventID) ([]*pdu.PDU, error) {
		out := make([]*pdu.PDU, len(ids))
		var rest []id.EventID
		for i, eid := range ids {
			if r := set.byID[eid]; r != nil {
				out[i] = r.ev
			} else if p := stored[eid]; p != nil {
				out[i] = p
			} else {
				rest = append(rest, eid)
			}
		}
		if len(rest) == 0 {
			return out, nil
		}
		loaded, err := s.loadPDUs(ctx, rest)
		if err != nil {
			return nil, err
		}
		j := 0
		for i, eid := range ids {
			if out[i] == nil && j < len(rest) && rest[j] == eid {
				out[i] = loaded[j]
				j++
			}
		}
		return out, nil
	}
	return parallel(len(set.order), func(i int) error {
		rec := set.byID[set.order[i]]
		if err := events.Authorize(set.rv, rec.ev, get, s.getKey); err != nil {
			return fmt.Errorf("%w: event %s is not allowed by its auth events: %w", errBadAnswer, rec.eventID(), err)
		}
		return nil
	})
}
