package storagetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// laterTests: appservice queues and lists, ephemeral ranges, event history
// and aliases, OpenID tokens and account restrictions.
var laterTests = []struct {
	name string
	fn   func(t *testing.T, s storage.Store)
}{
	{"AppServices/TxnCarriesEphemeral", testAppServiceTxnEphemeral},
	{"AppServices/Cursor", testAppServiceCursor},
	{"InterestQueues/Kinds", testInterestQueueKinds},
	{"Ephemeral/ReceiptsRange", testReceiptsRange},
	{"Ephemeral/ToDeviceRange", testToDeviceRange},
	{"Ephemeral/Presence", testPresence},
	{"Events/History", testEventHistory},
	{"Events/Aliases", testEventAliases},
	{"Tokens/OpenID", testOpenIDTokens},
	{"AppServices/RoomLists", testAppServiceRoomLists},
	{"Accounts/Restrictions", testAccountRestrictions},
}

func testAppServiceTxnEphemeral(t *testing.T, s storage.Store) {
	c := ctx(t)
	bridge := storage.Consumer{Kind: "appservice", ID: "bridge"}
	txn, err := s.OpenTxn(c, bridge, 7, []int64{0, 0, 3, 4, 5, 6, 7})
	must(t, err)
	got, err := s.TxnInFlight(c, bridge)
	must(t, err)
	eq(t, "txn id", got.TxnID, txn.TxnID)
	eq(t, "last pos", got.LastPos, int64(7))
	if !slices.Equal(got.Extra, []int64{0, 0, 3, 4, 5, 6, 7}) {
		t.Fatalf("ephemeral positions %v", got.Extra)
	}
	must(t, s.AckTxn(c, got))
	cur, err := s.QueueCursor(c, bridge)
	must(t, err)
	if !slices.Equal(cur, []int64{0, 0, 3, 4, 5, 6, 7}) {
		t.Fatalf("cursor after ack %v", cur)
	}
	// A transaction without ephemeral data leaves the cursor alone.
	plain, err := s.OpenTxn(c, bridge, 9, nil)
	must(t, err)
	got, err = s.TxnInFlight(c, bridge)
	must(t, err)
	if got.Extra != nil || got.TxnID != plain.TxnID || got.TxnID <= txn.TxnID {
		t.Fatalf("plain txn %+v (first was %d)", got, txn.TxnID)
	}
	must(t, s.AckTxn(c, got))
	cur, err = s.QueueCursor(c, bridge)
	must(t, err)
	eq(t, "cursor kept", cur[6], int64(7))
	_, err = s.TxnInFlight(c, bridge)
	wantErr(t, err, storage.ErrNotFound, "txn after ack")
}

func testAppServiceCursor(t *testing.T, s storage.Store) {
	c := ctx(t)
	as := func(id string) storage.Consumer { return storage.Consumer{Kind: "appservice", ID: id} }
	_, err := s.QueueCursor(c, as("nobody"))
	wantErr(t, err, storage.ErrNotFound, "cursor before set")
	must(t, s.SetQueueCursor(c, as("a"), []int64{1, 2}))
	must(t, s.SetQueueCursor(c, as("a"), []int64{3, 4}))
	must(t, s.SetQueueCursor(c, as("b"), []int64{5}))
	must(t, s.SetQueueCursor(c, storage.Consumer{Kind: "plugin", ID: "a"}, []int64{9}))
	cur, err := s.QueueCursor(c, as("a"))
	must(t, err)
	if !slices.Equal(cur, []int64{3, 4}) {
		t.Fatalf("cursor %v", cur)
	}
}

// Queues of different kinds with the same consumer ID are apart: each
// has its own events, transactions (IDs counting per kind) and cursor.
func testInterestQueueKinds(t *testing.T, s storage.Store) {
	c := ctx(t)
	as := storage.Consumer{Kind: "appservice", ID: "x"}
	plugin := storage.Consumer{Kind: "plugin", ID: "x"}
	room := id.RoomID("!queues:x")
	var writes []*storage.EventWrite
	for i := range 3 {
		queued := []storage.Consumer{as}
		if i != 1 {
			queued = append(queued, plugin)
		}
		writes = append(writes, &storage.EventWrite{Event: &storage.Event{EventID: id.EventID(fmt.Sprintf("$q%d", i)), RoomID: room,
			Type: "m.room.message", Sender: "@u:x", JSON: []byte(`{}`)}, Queued: queued})
	}
	must(t, s.PersistEvents(c, writes))
	asPending, err := s.PendingFor(c, as, 10)
	must(t, err)
	plPending, err := s.PendingFor(c, plugin, 10)
	must(t, err)
	p := []int64{writes[0].Event.StreamPos, writes[1].Event.StreamPos, writes[2].Event.StreamPos}
	if !slices.Equal(asPending, p) || !slices.Equal(plPending, []int64{p[0], p[2]}) {
		t.Fatalf("pending: appservice %v, plugin %v (positions %v)", asPending, plPending, p)
	}
	t1, err := s.OpenTxn(c, plugin, p[0], nil)
	must(t, err)
	if _, err := s.TxnInFlight(c, as); err == nil {
		t.Fatal("a plugin's transaction is in flight for the appservice of the same ID")
	}
	must(t, s.AckTxn(c, t1))
	plPending, err = s.PendingFor(c, plugin, 10)
	must(t, err)
	asPending, err = s.PendingFor(c, as, 10)
	must(t, err)
	if !slices.Equal(plPending, []int64{p[2]}) || len(asPending) != 3 {
		t.Fatalf("after the plugin's ack: plugin %v, appservice %v", plPending, asPending)
	}
	t2, err := s.OpenTxn(c, plugin, p[2], nil)
	must(t, err)
	if t2.TxnID <= t1.TxnID {
		t.Fatalf("transaction IDs went %d → %d", t1.TxnID, t2.TxnID)
	}
}

func testReceiptsRange(t *testing.T, s storage.Store) {
	c := ctx(t)
	var positions []int64
	for i, room := range []id.RoomID{"!a:x", "!b:x", "!c:x"} {
		pos, err := s.PutReceipt(c, &storage.Receipt{RoomID: room, UserID: "@u:x", Type: "m.read",
			EventID: id.EventID("$e" + room), TS: int64(i)})
		must(t, err)
		positions = append(positions, pos)
	}
	rs, err := s.ReceiptsRange(c, positions[0], positions[2], 10)
	must(t, err)
	if len(rs) != 2 || rs[0].RoomID != "!b:x" || rs[1].RoomID != "!c:x" || rs[1].StreamPos != positions[2] {
		t.Fatalf("receipts in range: %+v", rs)
	}
	rs, err = s.ReceiptsRange(c, 0, positions[2], 1)
	must(t, err)
	if len(rs) != 1 || rs[0].RoomID != "!a:x" {
		t.Fatalf("receipts with limit 1: %+v", rs)
	}
}

func testToDeviceRange(t *testing.T, s storage.Store) {
	c := ctx(t)
	content := json.RawMessage(`{"k":1}`)
	last, err := s.QueueToDevice(c, "@s:x", "SD", "m.test", "t1", []*storage.ToDeviceMessage{
		{UserID: "@a:x", DeviceID: "A", Sender: "@s:x", Type: "m.test", Content: content},
		{UserID: "@b:x", DeviceID: "B", Sender: "@s:x", Type: "m.test", Content: content},
		{UserID: "@c:x", DeviceID: "C", Sender: "@s:x", Type: "m.test", Content: content},
	})
	must(t, err)
	msgs, err := s.ToDeviceRange(c, last-2, last, 10)
	must(t, err)
	if len(msgs) != 2 || msgs[0].UserID != "@b:x" || msgs[1].DeviceID != "C" || string(msgs[1].Content) != `{"k":1}` {
		t.Fatalf("to-device in range: %+v", msgs)
	}
	msgs, err = s.ToDeviceRange(c, 0, last, 2)
	must(t, err)
	if len(msgs) != 2 || msgs[0].UserID != "@a:x" {
		t.Fatalf("to-device with limit: %+v", msgs)
	}
}

// testEventHistory: history batches take negative positions, each batch
// below the one before, in order within the batch, and never touch the
// timeline's stream.
func testEventHistory(t *testing.T, s storage.Store) {
	c := ctx(t)
	persist(t, s, ev(roomA, "$live1", "m.room.message"), ev(roomA, "$live2", "m.room.message"))
	maxBefore, err := s.MaxStreamPos(c)
	must(t, err)
	history := func(evs ...*storage.Event) {
		writes := bare(evs...)
		for _, w := range writes {
			w.History = true
		}
		must(t, s.PersistEvents(c, writes))
	}
	h1, h2 := ev(roomA, "$h1", "m.room.message"), ev(roomA, "$h2", "m.room.message")
	history(h1, h2)
	history(ev(roomA, "$older1", "m.room.message"), ev(roomA, "$older2", "m.room.message"))
	if h1.StreamPos >= 0 || h2.StreamPos != h1.StreamPos+1 {
		t.Fatalf("history positions %d, %d", h1.StreamPos, h2.StreamPos)
	}
	maxAfter, err := s.MaxStreamPos(c)
	must(t, err)
	eq(t, "timeline position after history", maxAfter, maxBefore)
	evs, err := s.RoomEvents(c, roomA, farPos, 0, true, 100)
	must(t, err)
	eqList(t, "room read backwards", ids(evs), []id.EventID{"$live2", "$live1", "$h2", "$h1", "$older2", "$older1"})
	mixed := bare(ev(roomA, "$x1", "m.room.message"), ev(roomA, "$x2", "m.room.message"))
	mixed[1].History = true
	if err := s.PersistEvents(c, mixed); err == nil {
		t.Fatal("a batch mixing history and timeline events was stored")
	}
}

// testEventAliases: an alias is stored with its event, resolves both ways,
// and is taken once (a second use fails its whole batch).
func testEventAliases(t *testing.T, s storage.Store) {
	c := ctx(t)
	writes := bare(ev(roomA, "$real1", "m.room.message"), ev(roomA, "$real2", "m.room.message"))
	writes[0].Alias = "$name1:bridge"
	must(t, s.PersistEvents(c, writes))
	m, err := s.ResolveEventAliases(c, []id.EventID{"$name1:bridge", "$unknown:bridge"})
	must(t, err)
	if len(m) != 1 || m["$name1:bridge"] != "$real1" {
		t.Fatalf("resolved %v", m)
	}
	m, err = s.EventAliases(c, []id.EventID{"$real1", "$real2"})
	must(t, err)
	if len(m) != 1 || m["$real1"] != "$name1:bridge" {
		t.Fatalf("aliases %v", m)
	}
	again := bare(ev(roomA, "$real3", "m.room.message"))
	again[0].Alias = "$name1:bridge"
	wantErr(t, s.PersistEvents(c, again), storage.ErrConflict, "an alias stored twice")
	_, err = s.GetEvent(c, "$real3")
	wantErr(t, err, storage.ErrNotFound, "event of the failed batch")
	// A big batch's aliases go in several statements: the taken one in
	// the last fails the batch all the same, leaving none of it.
	var big []*storage.Event
	for i := range 3000 {
		big = append(big, ev(roomA, id.EventID(fmt.Sprintf("$big%d", i)), "m.room.message"))
	}
	bigWrites := bare(big...)
	for i, w := range bigWrites {
		w.Alias = id.EventID(fmt.Sprintf("$bigname%d:bridge", i))
	}
	bigWrites[len(bigWrites)-1].Alias = "$name1:bridge"
	wantErr(t, s.PersistEvents(c, bigWrites), storage.ErrConflict, "a big batch with a taken alias")
	m, err = s.ResolveEventAliases(c, []id.EventID{"$bigname0:bridge", "$bigname2998:bridge"})
	must(t, err)
	if len(m) != 0 {
		t.Fatalf("aliases of the failed batch kept: %v", m)
	}
	_, err = s.GetEvent(c, "$big0")
	wantErr(t, err, storage.ErrNotFound, "event of the failed big batch")
	bigWrites[len(bigWrites)-1].Alias = ""
	must(t, s.PersistEvents(c, bigWrites))
	m, err = s.ResolveEventAliases(c, []id.EventID{"$bigname0:bridge", "$bigname2998:bridge"})
	must(t, err)
	if len(m) != 2 || m["$bigname2998:bridge"] != "$big2998" {
		t.Fatalf("aliases of the big batch: %v", m)
	}
}

func testOpenIDTokens(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.PutOpenIDToken(c, "hash1", "@a:x", 2000))
	user, err := s.OpenIDTokenUser(c, "hash1", 1999)
	must(t, err)
	eq(t, "user", user, "@a:x")
	_, err = s.OpenIDTokenUser(c, "hash1", 2000)
	wantErr(t, err, storage.ErrNotFound, "expired token")
	_, err = s.OpenIDTokenUser(c, "other", 0)
	wantErr(t, err, storage.ErrNotFound, "unknown token")
	must(t, s.DeleteExpiredTokens(c, 2001))
	_, err = s.OpenIDTokenUser(c, "hash1", 0)
	wantErr(t, err, storage.ErrNotFound, "token after the expired ones were deleted")
}

func testAppServiceRoomLists(t *testing.T, s storage.Store) {
	c := ctx(t)
	irc := storage.ListedRoom{AppServiceID: "bridge", NetworkID: "irc", RoomID: "!a:x"}
	slack := storage.ListedRoom{AppServiceID: "bridge", NetworkID: "slack", RoomID: "!a:x"}
	must(t, s.SetAppServiceRoomListed(c, irc, true))
	must(t, s.SetAppServiceRoomListed(c, irc, true)) // again: no error, one row
	must(t, s.SetAppServiceRoomListed(c, slack, true))
	got, err := s.AppServiceListedRooms(c)
	must(t, err)
	if !slices.Equal(got, []storage.ListedRoom{irc, slack}) {
		t.Fatalf("listed %v", got)
	}
	must(t, s.SetAppServiceRoomListed(c, irc, false))
	got, err = s.AppServiceListedRooms(c)
	must(t, err)
	if !slices.Equal(got, []storage.ListedRoom{slack}) {
		t.Fatalf("after withdrawing: %v", got)
	}
}

func testPresence(t *testing.T, s storage.Store) {
	c := ctx(t)
	const pa, pb, pc, pd = "@pa:x", "@pb:x", "@pc:x", "@pd:x"
	set := func(user id.UserID, presence, status string) int64 {
		t.Helper()
		pos, err := s.SetPresence(c, &storage.Presence{UserID: user, Presence: presence, StatusMsg: status, LastActiveTS: 5})
		must(t, err)
		return pos
	}
	first := set(pa, "online", "")
	if first == 0 {
		t.Fatal("a first presence got no position")
	}
	if pos := set(pa, "online", ""); pos != 0 {
		t.Fatalf("an unchanged presence was written again at %d", pos)
	}
	if max, err := s.MaxPresencePos(c); err != nil || max != first {
		t.Fatalf("max position %d %v after an unchanged write, want %d", max, err, first)
	}
	second := set(pa, "online", "busy")
	if second != first+1 {
		t.Fatalf("a changed status message got position %d, want %d", second, first+1)
	}
	third := set(pb, "unavailable", "")
	fourth := set(pc, "online", "")
	fifth := set(pd, "offline", "")

	ps, err := s.PresenceSince(c, first, fifth, 2)
	must(t, err)
	if len(ps) != 2 || ps[0].UserID != pa || ps[0].StatusMsg != "busy" || ps[1].UserID != pb || ps[1].StreamPos != third {
		t.Fatalf("presence since %d (limit 2): %+v", first, ps)
	}
	ps, err = s.PresenceOf(c, []id.UserID{pc, pa, "@nobody:x"})
	must(t, err)
	if len(ps) != 2 || ps[0].UserID != pa || ps[1].UserID != pc || ps[1].StreamPos != fourth {
		t.Fatalf("presence of pc, pa, nobody: %+v", ps)
	}
	ps, err = s.PresenceNotOffline(c)
	must(t, err)
	if len(ps) != 3 || ps[0].UserID != pa || ps[1].UserID != pb || ps[2].UserID != pc {
		t.Fatalf("presence not offline: %+v", ps)
	}

	// pa and pb share !p1; pc is only invited there and joined to !p2
	// with nobody else; pd left !p1.
	var writes []*storage.EventWrite
	for _, m := range []struct {
		room, user, membership string
	}{{"!p1:x", pa, "join"}, {"!p1:x", pb, "join"}, {"!p1:x", pc, "invite"}, {"!p2:x", pc, "join"}, {"!p1:x", pd, "leave"}} {
		e := memberEv(id.RoomID(m.room), id.EventID("$"+m.room+m.user), id.UserID(m.user), m.membership)
		writes = append(writes, &storage.EventWrite{Event: e,
			CurrentState: []storage.StateEntry{{Type: "m.room.member", StateKey: m.user, EventID: e.EventID}}})
	}
	must(t, s.PersistEvents(c, writes))
	users := func(ps []*storage.Presence) []id.UserID {
		out := make([]id.UserID, len(ps))
		for i, p := range ps {
			out[i] = p.UserID
		}
		return out
	}
	ps, err = s.PresenceVisibleTo(c, pa, 0, fifth)
	must(t, err)
	eqList(t, "visible to pa", users(ps), []id.UserID{pa, pb})
	ps, err = s.PresenceVisibleTo(c, pa, second, fifth)
	must(t, err)
	eqList(t, "visible to pa after its own change", users(ps), []id.UserID{pb})
	ps, err = s.PresenceVisibleTo(c, pc, 0, fifth)
	must(t, err)
	eqList(t, "visible to pc", users(ps), []id.UserID{pc})
	ps, err = s.PresenceVisibleTo(c, pd, 0, fifth)
	must(t, err)
	eqList(t, "visible to pd", users(ps), []id.UserID{pd})
}
