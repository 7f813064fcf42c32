package events

import (
	"encoding/json/v2"
	"errors"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation/eventauth"

	"maunium.net/go/mautrix/federation/pdu"
	"maunium.net/go/mautrix/id"
)

// The creator's first join of a v1–v10 room is allowed by rule 5.3.1; a
// stranger's join straight after the create event is not.
func TestAuthorizeCreatorJoinInContentCreatorVersions(t *testing.T) {
	s, _ := testSigner(t)
	for _, rv := range []id.RoomVersion{id.RoomV3, id.RoomV6, id.RoomV10} {
		t.Run(string(rv), func(t *testing.T) {
			room := id.RoomID("!r:example.org")
			create, _, err := s.Build(rv, room, &Proto{Type: "m.room.create", StateKey: strp(""), Sender: "@alice:example.org",
				Content: map[string]any{"room_version": rv, "creator": "@alice:example.org"}, OriginServerTS: 1}, nil, nil, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			get := func(ids []id.EventID) ([]*pdu.PDU, error) {
				out := make([]*pdu.PDU, len(ids))
				for i, x := range ids {
					if x == create.InternalMeta.EventID {
						out[i] = create
					}
				}
				return out, nil
			}
			join := func(user id.UserID) *pdu.PDU {
				ev, _, err := s.Build(rv, room, &Proto{Type: "m.room.member", StateKey: strp(string(user)), Sender: user,
					Content: map[string]any{"membership": "join"}, OriginServerTS: 2},
					[]id.EventID{create.InternalMeta.EventID}, []id.EventID{create.InternalMeta.EventID}, 2, nil)
				if err != nil {
					t.Fatal(err)
				}
				return ev
			}
			if err := Authorize(rv, join("@alice:example.org"), get, nil); err != nil {
				t.Fatalf("creator's first join refused: %v", err)
			}
			err = Authorize(rv, join("@mallory:example.org"), get, nil)
			if err == nil {
				t.Fatal("a stranger's join right after the create event was allowed")
			}
		})
	}
}

// chain builds a room's events in order, each authorised against the state
// before it, as the room pipeline does.
type chain struct {
	t      *testing.T
	s      *Signer
	rv     id.RoomVersion
	room   id.RoomID
	events map[id.EventID]*pdu.PDU
	state  map[pdu.StateKey]id.EventID
	last   id.EventID
	depth  int64
	getKey pdu.GetKeyFunc
}

func (c *chain) get(ids []id.EventID) ([]*pdu.PDU, error) {
	out := make([]*pdu.PDU, len(ids))
	for i, x := range ids {
		out[i] = c.events[x]
	}
	return out, nil
}

// add builds, authorises and (if allowed) applies an event; it returns the
// authorisation error.
func (c *chain) add(typ string, stateKey *string, sender id.UserID, content map[string]any) error {
	c.t.Helper()
	raw, _ := json.Marshal(content)
	probe := &pdu.PDU{Type: typ, StateKey: stateKey, Sender: sender, Content: raw}
	var auth []id.EventID
	for _, k := range probe.AuthEventSelection(c.rv) {
		if e, ok := c.state[k]; ok {
			auth = append(auth, e)
		}
	}
	var prev []id.EventID
	if c.last != "" {
		prev = []id.EventID{c.last}
	}
	c.depth++
	ev, _, err := c.s.Build(c.rv, c.room, &Proto{Type: typ, StateKey: stateKey, Sender: sender, Content: content,
		OriginServerTS: c.depth}, prev, auth, c.depth, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if typ == "m.room.create" && c.rv.RoomIDIsCreateEventID() {
		c.room = RoomIDFromCreate(ev.InternalMeta.EventID)
	}
	c.events[ev.InternalMeta.EventID] = ev
	if err := Authorize(c.rv, ev, c.get, c.getKey); err != nil {
		return err
	}
	if stateKey != nil {
		c.state[pdu.StateKey{Type: typ, StateKey: *stateKey}] = ev.InternalMeta.EventID
	}
	c.last = ev.InternalMeta.EventID
	return nil
}

func TestAuthorizeKicksAndBans(t *testing.T) {
	s, _ := testSigner(t)
	for _, rv := range []id.RoomVersion{id.RoomV10, id.RoomV12} {
		t.Run(string(rv), func(t *testing.T) {
			c := &chain{t: t, s: s, rv: rv, room: "!kb:example.org", events: map[id.EventID]*pdu.PDU{},
				state: map[pdu.StateKey]id.EventID{}}
			alice, bob, carol := id.UserID("@alice:example.org"), id.UserID("@bob:example.org"), id.UserID("@carol:example.org")
			if rv.RoomIDIsCreateEventID() {
				c.room = ""
			}
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			create := map[string]any{"room_version": rv}
			if rv.CreatorInContent() {
				create["creator"] = alice
			}
			must(c.add("m.room.create", strp(""), alice, create))
			must(c.add("m.room.member", strp(string(alice)), alice, map[string]any{"membership": "join"}))
			users := map[string]any{}
			if !rv.PrivilegedRoomCreators() {
				users[string(alice)] = 100
			}
			must(c.add("m.room.power_levels", strp(""), alice, map[string]any{"users": users, "kick": 50, "ban": 50}))
			must(c.add("m.room.join_rules", strp(""), alice, map[string]any{"join_rule": "public"}))
			must(c.add("m.room.member", strp(string(bob)), bob, map[string]any{"membership": "join"}))
			must(c.add("m.room.member", strp(string(carol)), carol, map[string]any{"membership": "join"}))

			if err := c.add("m.room.member", strp(string(alice)), bob, map[string]any{"membership": "ban"}); err == nil {
				t.Fatal("a user without power banned the admin")
			}
			must(c.add("m.room.member", strp(string(bob)), alice, map[string]any{"membership": "leave"})) // kick
			if err := c.add("m.room.member", strp(string(carol)), bob, map[string]any{"membership": "ban"}); err == nil {
				t.Fatal("a kicked user banned someone")
			}
			must(c.add("m.room.member", strp(string(carol)), alice, map[string]any{"membership": "ban"}))
			if err := c.add("m.room.member", strp(string(carol)), carol, map[string]any{"membership": "join"}); err == nil {
				t.Fatal("a banned user rejoined")
			}
		})
	}
}

// A restricted join checked against a room state (checks 5 and 6 on receipt
// of a PDU) whose entries differ from the join's own auth_events: rule 5.2
// verifies the authorising server's signature on the event as signed, so
// the check must not run on a clone carrying other auth_events (whose
// redacted form, and so signature, differs).
func TestAuthorizeAgainstStateRestrictedJoin(t *testing.T) {
	s, key := testSigner(t)
	getKey := func(server string, kid id.KeyID, _ time.Time) (id.SigningKey, time.Time, error) {
		if server != "example.org" || kid != key.ID {
			return "", time.Time{}, errors.New("unknown key")
		}
		return key.Pub, time.Now().Add(time.Hour), nil
	}
	for _, rv := range []id.RoomVersion{id.RoomV10, id.RoomV12} {
		t.Run(string(rv), func(t *testing.T) {
			c := &chain{t: t, s: s, rv: rv, room: "!rj:example.org", events: map[id.EventID]*pdu.PDU{},
				state: map[pdu.StateKey]id.EventID{}, getKey: getKey}
			if rv.RoomIDIsCreateEventID() {
				c.room = ""
			}
			alice, carol := id.UserID("@alice:example.org"), id.UserID("@carol:example.org")
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			create := map[string]any{"room_version": rv}
			if rv.CreatorInContent() {
				create["creator"] = alice
			}
			must(c.add("m.room.create", strp(""), alice, create))
			must(c.add("m.room.member", strp(string(alice)), alice, map[string]any{"membership": "join"}))
			users := map[string]any{}
			if !rv.PrivilegedRoomCreators() {
				users[string(alice)] = 100
			}
			must(c.add("m.room.power_levels", strp(""), alice, map[string]any{"users": users, "invite": 50}))
			must(c.add("m.room.join_rules", strp(""), alice, map[string]any{"join_rule": "restricted",
				"allow": []any{map[string]any{"type": "m.room_membership", "room_id": "!space:example.org"}}}))
			must(c.add("m.room.member", strp(string(carol)), carol, map[string]any{"membership": "join",
				"join_authorised_via_users_server": alice}))
			join := c.events[c.last]
			must(c.add("m.room.power_levels", strp(""), alice, map[string]any{"users": users, "invite": 50, "kick": 60}))

			// The current state without carol's own membership, so rule 5.3.5.2 is
			// reached too; its power levels event is not the join's.
			var authIDs []id.EventID
			for _, k := range join.AuthEventSelection(rv) {
				if e, ok := c.state[k]; ok && k.StateKey != string(carol) {
					authIDs = append(authIDs, e)
				}
			}
			if err := AuthorizeAgainst(rv, join, authIDs, c.get, getKey); err != nil {
				t.Fatalf("restricted join refused against the current state: %v", err)
			}

			// A join naming an authoriser whose server did not sign it fails rule 5.2.
			forged := join.Clone()
			forged.Content, _ = json.Marshal(map[string]any{"membership": "join",
				"join_authorised_via_users_server": "@bob:elsewhere.example"})
			err := AuthorizeAgainst(rv, forged, authIDs, c.get, getKey)
			if !errors.Is(err, eventauth.ErrNotSignedByAuthoriser) {
				t.Fatalf("join authorised by an unsigned server: %v", err)
			}
		})
	}
}
