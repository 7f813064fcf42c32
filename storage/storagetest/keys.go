package storagetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// keyTests are the cases of Keys.
var keyTests = []struct {
	name string
	fn   func(t *testing.T, s storage.Store)
}{
	{"Keys/DeviceKeys", testDeviceKeys},
	{"Keys/OneTimeKeys", testOneTimeKeys},
	{"Keys/OneTimeKeysUploadOrder", testOneTimeKeysUploadOrder},
	{"Keys/FallbackKeys", testFallbackKeys},
	{"Keys/CrossSigningAndSignatures", testCrossSigning},
	{"Keys/DeviceListChanges", testDeviceListChanges},
	{"Keys/BackupVersions", testBackupVersions},
	{"Keys/BackupKeys", testBackupKeys},
	{"Keys/DehydratedDevice", testDehydratedDevice},
	{"Keys/UsersSharingRoom", testUsersSharingRoom},
	{"Keys/RemoteDeviceLists", testRemoteDeviceLists},
	{"Keys/RemoteUsersSharedSince", testRemoteUsersSharedSince},
	{"Concurrency/ClaimOneTimeKeys", testConcurrentClaims},
}

const (
	kAlice id.UserID = "@alice:example.org"
	kBob   id.UserID = "@bob:example.org"
)

func otk(user id.UserID, dev id.DeviceID, alg, kid, js string) *storage.OneTimeKey {
	return &storage.OneTimeKey{UserID: user, DeviceID: dev, Algorithm: alg, KeyID: kid, KeyJSON: json.RawMessage(js)}
}

func testDeviceKeys(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.PutDeviceKeys(c, kAlice, "A1", json.RawMessage(`{"v":1}`)))
	must(t, s.PutDeviceKeys(c, kAlice, "A1", json.RawMessage(`{"v":2}`)))
	must(t, s.PutDeviceKeys(c, kAlice, "A2", json.RawMessage(`{"v":3}`)))
	must(t, s.PutDeviceKeys(c, kBob, "B1", json.RawMessage(`{"v":4}`)))
	got, err := s.DeviceKeysOf(c, []id.UserID{kAlice})
	must(t, err)
	eq(t, "count", len(got), 2)
	eq(t, "replaced", string(got[0].KeyJSON), `{"v":2}`)
	eq(t, "second", got[1].DeviceID, "A2")
	none, err := s.DeviceKeysOf(c, nil)
	must(t, err)
	eq(t, "none", len(none), 0)

	must(t, s.PutOneTimeKeys(c, []*storage.OneTimeKey{otk(kAlice, "A1", "signed_curve25519", "k1", `{}`)}))
	must(t, s.PutFallbackKey(c, otk(kAlice, "A1", "signed_curve25519", "f1", `{}`)))
	must(t, s.PutKeySignature(c, &storage.KeySignature{SignerUserID: kAlice, SignerKeyID: "ed25519:SSK",
		TargetUserID: kAlice, TargetKeyID: "A1", Signature: "sig"}))
	must(t, s.DeleteDeviceKeys(c, kAlice, []id.DeviceID{"A1", "missing"}))
	got, err = s.DeviceKeysOf(c, []id.UserID{kAlice, kBob})
	must(t, err)
	eq(t, "after delete", len(got), 2)
	counts, err := s.CountOneTimeKeys(c, kAlice, "A1")
	must(t, err)
	eq(t, "otks deleted", counts["signed_curve25519"], 0)
	types, err := s.UnusedFallbackKeyTypes(c, kAlice, "A1")
	must(t, err)
	eq(t, "fallback deleted", len(types), 0)
	sigs, err := s.KeySignaturesOf(c, []id.UserID{kAlice})
	must(t, err)
	eq(t, "signatures deleted", len(sigs), 0)
}

func testOneTimeKeys(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.PutOneTimeKeys(c, []*storage.OneTimeKey{
		otk(kAlice, "A1", "signed_curve25519", "k1", `{"key":"1"}`),
		otk(kAlice, "A1", "signed_curve25519", "k2", `{"key":"2"}`),
		otk(kAlice, "A1", "curve25519", "k3", `"3"`),
	}))
	// The same key again is fine; a different key under the same ID is not,
	// and nothing of that batch is stored.
	must(t, s.PutOneTimeKeys(c, []*storage.OneTimeKey{otk(kAlice, "A1", "signed_curve25519", "k1", `{"key":"1"}`)}))
	err := s.PutOneTimeKeys(c, []*storage.OneTimeKey{
		otk(kAlice, "A1", "signed_curve25519", "k9", `{"key":"9"}`),
		otk(kAlice, "A1", "signed_curve25519", "k1", `{"key":"other"}`),
	})
	wantErr(t, err, storage.ErrConflict, "different key, same ID")
	counts, err := s.CountOneTimeKeys(c, kAlice, "A1")
	must(t, err)
	eq(t, "signed count", counts["signed_curve25519"], 2)
	eq(t, "curve count", counts["curve25519"], 1)

	k, err := s.ClaimOneTimeKey(c, kAlice, "A1", "signed_curve25519")
	must(t, err)
	eq(t, "claimed id", k.KeyID, "k1")
	eq(t, "claimed json", string(k.KeyJSON), `{"key":"1"}`)
	k, err = s.ClaimOneTimeKey(c, kAlice, "A1", "signed_curve25519")
	must(t, err)
	eq(t, "claimed id 2", k.KeyID, "k2")
	_, err = s.ClaimOneTimeKey(c, kAlice, "A1", "signed_curve25519")
	wantErr(t, err, storage.ErrNotFound, "exhausted")
	_, err = s.ClaimOneTimeKey(c, kBob, "A1", "curve25519")
	wantErr(t, err, storage.ErrNotFound, "other user")
}

// Keys are claimed oldest upload first, whatever their IDs; a key uploaded
// again keeps its place.
func testOneTimeKeysUploadOrder(t *testing.T, s storage.Store) {
	c := ctx(t)
	const alg = "signed_curve25519"
	must(t, s.PutOneTimeKeys(c, []*storage.OneTimeKey{otk(kAlice, "A1", alg, "zz", `{"key":"zz"}`)}))
	must(t, s.PutOneTimeKeys(c, []*storage.OneTimeKey{
		otk(kAlice, "A1", alg, "mm", `{"key":"mm"}`), otk(kAlice, "A1", "curve25519", "cc", `"cc"`)}))
	must(t, s.PutOneTimeKeys(c, []*storage.OneTimeKey{otk(kAlice, "A1", alg, "aa", `{"key":"aa"}`)}))
	must(t, s.PutOneTimeKeys(c, []*storage.OneTimeKey{otk(kAlice, "A1", alg, "zz", `{"key":"zz"}`)}))
	// Another device's uploads do not interleave with A1's.
	must(t, s.PutOneTimeKeys(c, []*storage.OneTimeKey{otk(kAlice, "A2", alg, "00", `{"key":"00"}`)}))
	var got []string
	for range 3 {
		k, err := s.ClaimOneTimeKey(c, kAlice, "A1", alg)
		must(t, err)
		got = append(got, k.KeyID)
	}
	eqList(t, "claim order", got, []string{"zz", "mm", "aa"})
	// Uploads after the device ran out come after what is left.
	must(t, s.PutOneTimeKeys(c, []*storage.OneTimeKey{otk(kAlice, "A1", alg, "a0", `{"key":"a0"}`)}))
	must(t, s.PutOneTimeKeys(c, []*storage.OneTimeKey{otk(kAlice, "A1", alg, "9z", `{"key":"9z"}`)}))
	got = nil
	for range 2 {
		k, err := s.ClaimOneTimeKey(c, kAlice, "A1", alg)
		must(t, err)
		got = append(got, k.KeyID)
	}
	eqList(t, "claim order after running out", got, []string{"a0", "9z"})
}

func testFallbackKeys(t *testing.T, s storage.Store) {
	c := ctx(t)
	_, err := s.ClaimFallbackKey(c, kAlice, "A1", "signed_curve25519")
	wantErr(t, err, storage.ErrNotFound, "no fallback")
	must(t, s.PutFallbackKey(c, otk(kAlice, "A1", "signed_curve25519", "f1", `{"key":"f1"}`)))
	types, err := s.UnusedFallbackKeyTypes(c, kAlice, "A1")
	must(t, err)
	eqList(t, "unused", types, []string{"signed_curve25519"})
	k, err := s.ClaimFallbackKey(c, kAlice, "A1", "signed_curve25519")
	must(t, err)
	eq(t, "fallback id", k.KeyID, "f1")
	eq(t, "not used before", k.Used, false)
	k, err = s.ClaimFallbackKey(c, kAlice, "A1", "signed_curve25519")
	must(t, err)
	eq(t, "used now", k.Used, true)
	types, err = s.UnusedFallbackKeyTypes(c, kAlice, "A1")
	must(t, err)
	eq(t, "none unused", len(types), 0)
	// Re-uploading the same key keeps it used; a new key is unused.
	must(t, s.PutFallbackKey(c, otk(kAlice, "A1", "signed_curve25519", "f1", `{"key":"f1"}`)))
	types, _ = s.UnusedFallbackKeyTypes(c, kAlice, "A1")
	eq(t, "same key stays used", len(types), 0)
	must(t, s.PutFallbackKey(c, otk(kAlice, "A1", "signed_curve25519", "f2", `{"key":"f2"}`)))
	types, _ = s.UnusedFallbackKeyTypes(c, kAlice, "A1")
	eqList(t, "new key unused", types, []string{"signed_curve25519"})
}

func testCrossSigning(t *testing.T, s storage.Store) {
	c := ctx(t)
	keys, err := s.CrossSigningKeys(c, kAlice)
	must(t, err)
	eq(t, "none", len(keys), 0)
	must(t, s.PutCrossSigningKey(c, kAlice, "master", json.RawMessage(`{"m":1}`)))
	must(t, s.PutCrossSigningKey(c, kAlice, "master", json.RawMessage(`{"m":2}`)))
	must(t, s.PutCrossSigningKey(c, kAlice, "self_signing", json.RawMessage(`{"s":1}`)))
	keys, err = s.CrossSigningKeys(c, kAlice)
	must(t, err)
	eq(t, "count", len(keys), 2)
	eq(t, "master replaced", string(keys["master"]), `{"m":2}`)

	sig := &storage.KeySignature{SignerUserID: kBob, SignerKeyID: "ed25519:USK", TargetUserID: kAlice,
		TargetKeyID: "MASTERPUB", Signature: "s1"}
	must(t, s.PutKeySignature(c, sig))
	sig.Signature = "s2"
	must(t, s.PutKeySignature(c, sig))
	must(t, s.PutKeySignature(c, &storage.KeySignature{SignerUserID: kAlice, SignerKeyID: "ed25519:SSK",
		TargetUserID: kAlice, TargetKeyID: "A1", Signature: "s3"}))
	sigs, err := s.KeySignaturesOf(c, []id.UserID{kAlice})
	must(t, err)
	eq(t, "signatures", len(sigs), 2)
	eq(t, "first target", sigs[0].TargetKeyID, "A1")
	eq(t, "replaced", sigs[1].Signature, "s2")
	sigs, err = s.KeySignaturesOf(c, []id.UserID{kBob})
	must(t, err)
	eq(t, "bob has none", len(sigs), 0)
}

func testDeviceListChanges(t *testing.T, s storage.Store) {
	c := ctx(t)
	start, err := s.MaxDeviceListPos(c)
	must(t, err)
	p1, err := s.AddDeviceListChange(c, kAlice)
	must(t, err)
	p2, err := s.AddDeviceListChange(c, kBob)
	must(t, err)
	p3, err := s.AddDeviceListChange(c, kAlice)
	must(t, err)
	if !(start < p1 && p1 < p2 && p2 < p3) {
		t.Fatalf("positions do not increase: %d %d %d %d", start, p1, p2, p3)
	}
	max, err := s.MaxDeviceListPos(c)
	must(t, err)
	eq(t, "max", max, p3)
	users, err := s.DeviceListChanges(c, start, p3)
	must(t, err)
	eqList(t, "all", users, []id.UserID{kAlice, kBob})
	users, err = s.DeviceListChanges(c, p1, p2)
	must(t, err)
	eqList(t, "window", users, []id.UserID{kBob})
	// A window before a user's latest change still shows the earlier one.
	users, err = s.DeviceListChanges(c, start, p1)
	must(t, err)
	eqList(t, "earlier change", users, []id.UserID{kAlice})
	users, err = s.DeviceListChanges(c, p3, p3)
	must(t, err)
	eq(t, "empty", len(users), 0)
}

func testBackupVersions(t *testing.T, s storage.Store) {
	c := ctx(t)
	_, err := s.GetBackupVersion(c, kAlice, "")
	wantErr(t, err, storage.ErrNotFound, "no backup")
	v1, err := s.CreateBackupVersion(c, kAlice, "m.megolm_backup.v1.curve25519-aes-sha2", json.RawMessage(`{"a":1}`))
	must(t, err)
	v2, err := s.CreateBackupVersion(c, kAlice, "m.megolm_backup.v1.curve25519-aes-sha2", json.RawMessage(`{"a":2}`))
	must(t, err)
	if v1 == v2 {
		t.Fatal("versions must differ")
	}
	bv, err := s.GetBackupVersion(c, kAlice, "")
	must(t, err)
	eq(t, "latest", bv.Version, v2)
	must(t, s.UpdateBackupVersion(c, kAlice, v1, json.RawMessage(`{"a":3}`)))
	bv, err = s.GetBackupVersion(c, kAlice, v1)
	must(t, err)
	eq(t, "updated", string(bv.AuthData), `{"a":3}`)
	wantErr(t, s.UpdateBackupVersion(c, kAlice, "99", nil), storage.ErrNotFound, "update missing")
	wantErr(t, s.UpdateBackupVersion(c, kAlice, "nope", nil), storage.ErrNotFound, "update malformed")
	_, err = s.GetBackupVersion(c, kBob, v1)
	wantErr(t, err, storage.ErrNotFound, "other user's version")

	must(t, s.DeleteBackupVersion(c, kAlice, v2))
	wantErr(t, s.DeleteBackupVersion(c, kAlice, v2), storage.ErrNotFound, "delete twice")
	bv, err = s.GetBackupVersion(c, kAlice, "")
	must(t, err)
	eq(t, "latest after delete", bv.Version, v1)
	_, err = s.GetBackupVersion(c, kAlice, v2)
	wantErr(t, err, storage.ErrNotFound, "deleted version")
	// Versions are not reused after a delete.
	v3, err := s.CreateBackupVersion(c, kAlice, "alg", json.RawMessage(`{}`))
	must(t, err)
	if v3 == v2 || v3 == v1 {
		t.Fatalf("version %s reused", v3)
	}
}

func testBackupKeys(t *testing.T, s storage.Store) {
	c := ctx(t)
	v, err := s.CreateBackupVersion(c, kAlice, "alg", json.RawMessage(`{}`))
	must(t, err)
	put := func(room id.RoomID, session string, fmi int64) {
		t.Helper()
		must(t, s.PutBackupKey(c, &storage.BackupKey{UserID: kAlice, Version: v, RoomID: room, SessionID: session,
			FirstMessageIndex: fmi, ForwardedCount: 1, IsVerified: true, SessionData: json.RawMessage(`{"d":1}`)}))
	}
	put("!r1", "s1", 5)
	put("!r1", "s2", 0)
	put("!r2", "s3", 0)
	put("!r1", "s1", 2) // replaces
	bv, err := s.GetBackupVersion(c, kAlice, v)
	must(t, err)
	eq(t, "etag advanced", bv.Etag, 4)
	n, err := s.CountBackupKeys(c, kAlice, v)
	must(t, err)
	eq(t, "count", n, 3)
	all, err := s.BackupKeys(c, kAlice, v, "", "")
	must(t, err)
	eq(t, "all", len(all), 3)
	eq(t, "replaced fmi", all[0].FirstMessageIndex, 2)
	eq(t, "verified", all[0].IsVerified, true)
	eq(t, "forwarded", all[0].ForwardedCount, 1)
	eq(t, "data", string(all[0].SessionData), `{"d":1}`)
	room, err := s.BackupKeys(c, kAlice, v, "!r1", "")
	must(t, err)
	eq(t, "room", len(room), 2)
	one, err := s.BackupKeys(c, kAlice, v, "!r1", "s2")
	must(t, err)
	eq(t, "session", len(one), 1)

	must(t, s.DeleteBackupKeys(c, kAlice, v, "!r1", "s2"))
	n, _ = s.CountBackupKeys(c, kAlice, v)
	eq(t, "after session delete", n, 2)
	must(t, s.DeleteBackupKeys(c, kAlice, v, "!r1", ""))
	n, _ = s.CountBackupKeys(c, kAlice, v)
	eq(t, "after room delete", n, 1)
	must(t, s.DeleteBackupKeys(c, kAlice, v, "", ""))
	n, _ = s.CountBackupKeys(c, kAlice, v)
	eq(t, "after delete all", n, 0)
	bv, _ = s.GetBackupVersion(c, kAlice, v)
	if bv.Etag <= 4 {
		t.Fatalf("etag did not advance on delete: %d", bv.Etag)
	}
	put("!r1", "s1", 0)
	must(t, s.DeleteBackupVersion(c, kAlice, v))
	n, _ = s.CountBackupKeys(c, kAlice, v)
	eq(t, "keys of deleted version", n, 0)
	wantErr(t, s.PutBackupKey(c, &storage.BackupKey{UserID: kAlice, Version: "x", RoomID: "!r", SessionID: "s",
		SessionData: json.RawMessage(`{}`)}), storage.ErrNotFound, "malformed version")
}

func testDehydratedDevice(t *testing.T, s storage.Store) {
	c := ctx(t)
	_, err := s.GetDehydratedDevice(c, kAlice)
	wantErr(t, err, storage.ErrNotFound, "none yet")
	_, err = s.DeleteDehydratedDevice(c, kAlice)
	wantErr(t, err, storage.ErrNotFound, "delete none")
	old, err := s.PutDehydratedDevice(c, &storage.DehydratedDevice{UserID: kAlice, DeviceID: "D1", DeviceData: json.RawMessage(`{"a":1}`)})
	must(t, err)
	eq(t, "nothing replaced", old, "")
	old, err = s.PutDehydratedDevice(c, &storage.DehydratedDevice{UserID: kAlice, DeviceID: "D2", DeviceData: json.RawMessage(`{"a":2}`)})
	must(t, err)
	eq(t, "replaced", old, "D1")
	d, err := s.GetDehydratedDevice(c, kAlice)
	must(t, err)
	eq(t, "device", d.DeviceID, "D2")
	eq(t, "data", string(d.DeviceData), `{"a":2}`)
	_, err = s.GetDehydratedDevice(c, kBob)
	wantErr(t, err, storage.ErrNotFound, "other user")
	d, err = s.DeleteDehydratedDevice(c, kAlice)
	must(t, err)
	eq(t, "deleted", d.DeviceID, "D2")
	_, err = s.GetDehydratedDevice(c, kAlice)
	wantErr(t, err, storage.ErrNotFound, "after delete")
}

func testUsersSharingRoom(t *testing.T, s storage.Store) {
	c := ctx(t)
	const dave, eve = "@dave:example.org", "@eve:example.org"
	var writes []*storage.EventWrite
	for _, m := range []struct {
		room       id.RoomID
		user       id.UserID
		membership string
	}{
		{roomA, kAlice, "join"}, {roomA, kBob, "join"}, {roomA, carol, "invite"},
		{roomB, dave, "join"}, {roomB, kAlice, "leave"}, {roomB, eve, "join"},
	} {
		e := memberEv(m.room, id.EventID("$"+string(m.room)+string(m.user)), m.user, m.membership)
		writes = append(writes, &storage.EventWrite{Event: e,
			CurrentState: []storage.StateEntry{{Type: "m.room.member", StateKey: string(m.user), EventID: e.EventID}}})
	}
	must(t, s.PersistEvents(c, writes))
	got, err := s.UsersSharingRoom(c, kAlice, []id.UserID{kBob, carol, dave, eve, "@nobody:example.org"})
	must(t, err)
	eqList(t, "sharing with alice", got, []id.UserID{kBob})
	got, err = s.UsersSharingRoom(c, dave, []id.UserID{kAlice, eve, dave})
	must(t, err)
	eqList(t, "sharing with dave", got, []id.UserID{dave, eve})
	got, err = s.UsersSharingRoom(c, kAlice, nil)
	must(t, err)
	eq(t, "no candidates", len(got), 0)
}

// Concurrent claims hand out each one-time key once.
func testConcurrentClaims(t *testing.T, s storage.Store) {
	c := ctx(t)
	var keys []*storage.OneTimeKey
	for i := range 20 {
		keys = append(keys, otk(kAlice, "A1", "signed_curve25519", fmt.Sprintf("k%02d", i), `{}`))
	}
	must(t, s.PutOneTimeKeys(c, keys))
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				k, err := s.ClaimOneTimeKey(c, kAlice, "A1", "signed_curve25519")
				if errors.Is(err, storage.ErrNotFound) {
					continue
				} else if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got[k.KeyID]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	eq(t, "keys handed out", len(got), 20)
	for id, n := range got {
		if n != 1 {
			t.Fatalf("key %s handed out %d times", id, n)
		}
	}
}

// A remote user's list: replaced whole unless a change was heard of since
// the fetch began (the mark), updated per device and cross-signing key,
// marked stale, forgotten.
func testRemoteDeviceLists(t *testing.T, s storage.Store) {
	c := ctx(t)
	const rob id.UserID = "@rob:remote.example"
	got, err := s.RemoteDeviceLists(c, []id.UserID{rob})
	must(t, err)
	eq(t, "none yet", len(got), 0)
	l := &storage.RemoteDeviceList{UserID: rob, StreamID: 7, FetchedPos: 40, MasterKey: json.RawMessage(`{"m":1}`),
		Devices: []*storage.RemoteDevice{{DeviceID: "R1", KeyJSON: json.RawMessage(`{"k":1}`), DisplayName: "phone"},
			{DeviceID: "R2"}}}
	wrote, err := s.PutRemoteDeviceList(c, l, 5)
	must(t, err)
	eq(t, "a mark that is not there", wrote, false)
	wrote, err = s.PutRemoteDeviceList(c, l, 0)
	must(t, err)
	eq(t, "first fetch", wrote, true)
	got, err = s.RemoteDeviceLists(c, []id.UserID{rob, kAlice})
	must(t, err)
	g := got[rob]
	if g == nil || len(got) != 1 {
		t.Fatalf("lists: %v", got)
	}
	eq(t, "stream id", g.StreamID, int64(7))
	eq(t, "fetched", g.FetchedPos, int64(40))
	eq(t, "stale", g.Stale, false)
	eq(t, "master", string(g.MasterKey), `{"m":1}`)
	eq(t, "self-signing", len(g.SelfSigningKey), 0)
	eq(t, "devices", len(g.Devices), 2)
	eq(t, "keys", string(g.Devices[0].KeyJSON), `{"k":1}`)
	eq(t, "name", g.Devices[0].DisplayName, "phone")
	eq(t, "no keys", len(g.Devices[1].KeyJSON), 0)

	must(t, s.ApplyRemoteDeviceUpdate(c, rob, &storage.RemoteDevice{DeviceID: "R3", KeyJSON: json.RawMessage(`{"k":3}`)}, false, 9, 11))
	must(t, s.ApplyRemoteDeviceUpdate(c, rob, &storage.RemoteDevice{DeviceID: "R2"}, true, 10, 12))
	must(t, s.ApplyRemoteCrossSigning(c, rob, nil, json.RawMessage(`{"s":1}`), 13))
	wantErr(t, s.ApplyRemoteDeviceUpdate(c, kAlice, &storage.RemoteDevice{DeviceID: "X"}, false, 1, 1), storage.ErrNotFound, "update without a list")
	wantErr(t, s.ApplyRemoteCrossSigning(c, kAlice, nil, nil, 1), storage.ErrNotFound, "keys without a list")
	got, err = s.RemoteDeviceLists(c, []id.UserID{rob})
	must(t, err)
	g = got[rob]
	eq(t, "stream id after updates", g.StreamID, int64(10))
	eq(t, "mark after updates", g.Mark, int64(13))
	eq(t, "master kept", string(g.MasterKey), `{"m":1}`)
	eq(t, "self-signing set", string(g.SelfSigningKey), `{"s":1}`)
	eq(t, "devices after updates", len(g.Devices), 2)
	eq(t, "R1 then R3", string(g.Devices[1].DeviceID), "R3")

	// A fetch begun before mark 13 does not overwrite; one after it does.
	wrote, err = s.PutRemoteDeviceList(c, &storage.RemoteDeviceList{UserID: rob}, 12)
	must(t, err)
	eq(t, "an old fetch", wrote, false)
	must(t, s.MarkRemoteDeviceListStale(c, rob, 14))
	must(t, s.MarkRemoteDeviceListStale(c, kBob, 15))
	got, err = s.RemoteDeviceLists(c, []id.UserID{rob, kBob})
	must(t, err)
	eq(t, "stale", got[rob].Stale, true)
	eq(t, "stale keeps devices", len(got[rob].Devices), 2)
	eq(t, "a stale list made", got[kBob].Stale, true)
	eq(t, "its mark", got[kBob].Mark, int64(15))
	wrote, err = s.PutRemoteDeviceList(c, &storage.RemoteDeviceList{UserID: rob, StreamID: 20,
		Devices: []*storage.RemoteDevice{{DeviceID: "R9"}}}, 14)
	must(t, err)
	eq(t, "a resync", wrote, true)
	got, err = s.RemoteDeviceLists(c, []id.UserID{rob})
	must(t, err)
	eq(t, "fresh again", got[rob].Stale, false)
	eq(t, "mark kept", got[rob].Mark, int64(14))
	eq(t, "replaced devices", len(got[rob].Devices), 1)
	eq(t, "no master any more", len(got[rob].MasterKey), 0)

	// A list without a stream ID (from /user/keys/query) does not replace
	// a current one with one; it does replace a stale one.
	wrote, err = s.PutRemoteDeviceList(c, &storage.RemoteDeviceList{UserID: rob}, 14)
	must(t, err)
	eq(t, "a list without a stream ID", wrote, false)
	must(t, s.MarkRemoteDeviceListStale(c, rob, 16))
	wrote, err = s.PutRemoteDeviceList(c, &storage.RemoteDeviceList{UserID: rob}, 16)
	must(t, err)
	eq(t, "a list without a stream ID over a stale one", wrote, true)

	must(t, s.DeleteRemoteDeviceList(c, rob))
	got, err = s.RemoteDeviceLists(c, []id.UserID{rob})
	must(t, err)
	eq(t, "forgotten", len(got), 0)
}

// A remote user shares a room with local users (accounts) since the later
// of their join and the first local join, the earliest over rooms.
func testRemoteUsersSharedSince(t *testing.T, s storage.Store) {
	c := ctx(t)
	const rob, rita id.UserID = "@rob:remote.example", "@rita:remote.example"
	for _, u := range []id.UserID{kAlice, kBob} {
		must(t, s.CreateAccount(c, &storage.Account{UserID: u, Localpart: u.Localpart(), CreatedAt: 1}))
	}
	pos := map[string]int64{}
	for _, m := range []struct {
		room       id.RoomID
		user       id.UserID
		membership string
	}{
		{roomA, rob, "join"}, {roomA, kAlice, "join"}, {roomB, kBob, "join"}, {roomB, rob, "join"},
		{roomB, kAlice, "join"}, {roomB, rita, "join"}, {roomA, rita, "leave"}, {"!c:example.org", carol, "join"},
	} {
		e := memberEv(m.room, id.EventID("$"+string(m.room)+string(m.user)), m.user, m.membership)
		must(t, s.PersistEvents(c, []*storage.EventWrite{{Event: e,
			CurrentState: []storage.StateEntry{{Type: "m.room.member", StateKey: string(m.user), EventID: e.EventID}}}}))
		pos[string(m.room)+string(m.user)] = e.StreamPos
	}
	got, err := s.RemoteUsersSharedSince(c, []id.UserID{rob, rita, carol, "@nobody:remote.example"})
	must(t, err)
	eq(t, "users", len(got), 2)
	// roomA: since alice's join; roomB: since bob's... rob's later join.
	eq(t, "rob", got[rob], min(pos[string(roomA)+string(kAlice)], pos[string(roomB)+string(rob)]))
	eq(t, "rita (roomB only)", got[rita], pos[string(roomB)+string(rita)])
	// More users than one statement takes, the first chunk sharing nothing.
	many := make([]id.UserID, 0, 501)
	for i := range 500 {
		many = append(many, id.UserID(fmt.Sprintf("@nobody%d:remote.example", i)))
	}
	got, err = s.RemoteUsersSharedSince(c, append(many, rob))
	must(t, err)
	eq(t, "rob after 500 strangers", got[rob], min(pos[string(roomA)+string(kAlice)], pos[string(roomB)+string(rob)]))
}
