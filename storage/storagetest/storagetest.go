// Package storagetest is the conformance suite every storage backend passes:
// each backend's tests call Run with a function opening a fresh, migrated,
// empty store.
package storagetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/types"
	"github.com/tributary-hs/tributary/storage"
)

// Run runs the suite. open must return a fresh, migrated, empty store for
// each call and arrange (t.Cleanup) for it to be closed.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	for _, tc := range append([]struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"Backend", testBackend},

		{"Rooms/ManyAtOnce", testRoomsManyAtOnce},
		{"Rooms/TimelinesManyAtOnce", testTimelinesManyAtOnce},
		{"Rooms/StateEventsManyAtOnce", testStateEventsManyAtOnce},
		{"Rooms/StatesManyAtOnce", testStatesManyAtOnce},

		{"Accounts/CreateGet", testAccountCreateGet},
		{"Accounts/Duplicate", testAccountDuplicate},
		{"Accounts/GetMissing", testAccountGetMissing},
		{"Accounts/ListCount", testAccountListCount},
		{"Accounts/SetPasswordHash", testAccountSetPassword},
		{"Accounts/SetAdmin", testAccountSetAdmin},
		{"Accounts/Deactivate", testAccountDeactivate},

		{"Devices/UpsertNew", testDeviceUpsertNew},
		{"Devices/Create", testDeviceCreate},
		{"Devices/UpsertExisting", testDeviceUpsertExisting},
		{"Devices/GetMissing", testDeviceGetMissing},
		{"Devices/List", testDeviceList},
		{"Devices/Rename", testDeviceRename},
		{"Text/RefusedAlike", testTextRefusedAlike},
		{"Media/Admin", testMediaAdmin},
		{"Devices/LastSeen", testDeviceLastSeen},
		{"Devices/DeleteDevices", testDeleteDevices},
		{"Devices/DeleteAllDevicesExcept", testDeleteAllDevicesExcept},
		{"Devices/DeleteAllDevices", testDeleteAllDevices},
		{"Devices/DeleteDeviceTokens", testDeleteDeviceTokens},

		{"Tokens/AccessCRUD", testAccessTokenCRUD},
		{"Tokens/DeleteAccessTokensByRefresh", testDeleteAccessTokensByRefresh},
		{"Tokens/ClearPrevRefresh", testClearPrevRefresh},
		{"Tokens/RefreshCRUD", testRefreshTokenCRUD},
		{"Tokens/LoginSingleUse", testLoginTokenSingleUse},
		{"Tokens/DeleteExpired", testDeleteExpiredTokens},

		{"Profiles/SetOverwrite", testProfileSetOverwrite},
		{"Profiles/NilDeletes", testProfileNilDeletes},
		{"Profiles/UnknownUser", testProfileUnknownUser},
		{"Profiles/DeleteProfile", testDeleteProfile},
		{"Profiles/FieldOfMany", testProfileFieldOfMany},

		{"AccountData/GlobalAndRoom", testAccountDataGlobalAndRoom},
		{"AccountData/Overwrite", testAccountDataOverwrite},
		{"AccountData/StreamIncreases", testAccountDataStreamIncreases},
		{"AccountData/Since", testAccountDataSince},
		{"AccountData/Missing", testAccountDataMissing},

		{"UIA/CreateGet", testUIACreateGet},
		{"UIA/Update", testUIAUpdate},
		{"UIA/Delete", testUIADelete},
		{"UIA/DeleteBefore", testUIADeleteBefore},

		{"RegistrationTokens/CreateGet", testRegTokenCreateGet},
		{"RegistrationTokens/Duplicate", testRegTokenDuplicate},
		{"RegistrationTokens/List", testRegTokenList},
		{"RegistrationTokens/Update", testRegTokenUpdate},
		{"RegistrationTokens/Delete", testRegTokenDelete},
		{"RegistrationTokens/UseLimited", testRegTokenUseLimited},
		{"RegistrationTokens/UsePendingCounts", testRegTokenUsePending},
		{"RegistrationTokens/UseExpired", testRegTokenUseExpired},
		{"RegistrationTokens/UseUnlimited", testRegTokenUseUnlimited},

		{"Meta", testMeta},

		{"WithTx/Commit", testTxCommit},
		{"WithTx/Rollback", testTxRollback},
		{"WithTx/NestedJoins", testTxNested},
		{"WithTx/Panic", testTxPanic},
		{"WithTx/ConflictKeepsTxUsable", testTxConflictUsable},

		{"Concurrency/AccountDataStream", testConcurrentAccountData},
		{"Concurrency/ReadsDuringWrites", testConcurrentReadsWrites},
	}, slices.Concat(roomTests, keyTests, laterTests, searchTests, pusherTests, delayedTests, serverKeyTests, federationTests,
		outlierTests, bridgeTests)...) {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// ctx bounds every test so that a deadlock fails instead of hanging. The
// bound is no performance goal: the bulk tests (5,000 members) take tens
// of seconds under the race detector on a busy 2-core machine.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func ptr(v int64) *int64 { return &v }

func testBackend(t *testing.T, s storage.Store) {
	if b := s.Backend(); b != "sqlite" && b != "postgres" {
		t.Fatalf("Backend() = %q", b)
	}
}

// ---- accounts ----

func newAccount(s storage.Store, t *testing.T, userID string) *storage.Account {
	t.Helper()
	a := &storage.Account{UserID: id.UserID(userID), Localpart: userID[1:2], PasswordHash: "hash-" + userID, CreatedAt: 1000}
	must(t, s.CreateAccount(ctx(t), a))
	return a
}

func testAccountCreateGet(t *testing.T, s storage.Store) {
	c := ctx(t)
	want := storage.Account{
		UserID: "@alice:example.org", Localpart: "alice", PasswordHash: "$2a$hash",
		IsAdmin: true, Deactivated: false, UserType: "bot", AppServiceID: "bridge", CreatedAt: 1700000000123,
	}
	a := want
	must(t, s.CreateAccount(c, &a))
	got, err := s.GetAccount(c, want.UserID)
	must(t, err)
	eq(t, "account", *got, want)

	plain := storage.Account{UserID: "@bob:example.org", Localpart: "bob", CreatedAt: 5}
	must(t, s.CreateAccount(c, &plain))
	got, err = s.GetAccount(c, plain.UserID)
	must(t, err)
	eq(t, "account", *got, plain)
}

func testAccountDuplicate(t *testing.T, s storage.Store) {
	c := ctx(t)
	newAccount(s, t, "@alice:example.org")
	err := s.CreateAccount(c, &storage.Account{UserID: "@alice:example.org", Localpart: "alice", PasswordHash: "other", CreatedAt: 2})
	wantErr(t, err, storage.ErrConflict, "CreateAccount of a taken user ID")
	got, err := s.GetAccount(c, "@alice:example.org")
	must(t, err)
	eq(t, "password hash after the refused duplicate", got.PasswordHash, "hash-@alice:example.org")
	n, err := s.CountAccounts(c)
	must(t, err)
	eq(t, "CountAccounts", n, 1)
}

func testAccountGetMissing(t *testing.T, s storage.Store) {
	_, err := s.GetAccount(ctx(t), "@nobody:example.org")
	wantErr(t, err, storage.ErrNotFound, "GetAccount of a missing user")
}

func testAccountListCount(t *testing.T, s storage.Store) {
	c := ctx(t)
	list, err := s.ListAccounts(c)
	must(t, err)
	eq(t, "accounts in an empty store", len(list), 0)
	n, err := s.CountAccounts(c)
	must(t, err)
	eq(t, "CountAccounts of an empty store", n, 0)

	for _, user := range []string{"@carol:example.org", "@alice:example.org", "@bob:example.org"} {
		newAccount(s, t, user)
	}
	list, err = s.ListAccounts(c)
	must(t, err)
	var ids []id.UserID
	for _, a := range list {
		ids = append(ids, a.UserID)
	}
	if want := []id.UserID{"@alice:example.org", "@bob:example.org", "@carol:example.org"}; !slices.Equal(ids, want) {
		t.Fatalf("ListAccounts = %v, want %v", ids, want)
	}
	eq(t, "listed account", list[1].PasswordHash, "hash-@bob:example.org")
	n, err = s.CountAccounts(c)
	must(t, err)
	eq(t, "CountAccounts", n, 3)
}

func testAccountSetPassword(t *testing.T, s storage.Store) {
	c := ctx(t)
	newAccount(s, t, "@alice:example.org")
	newAccount(s, t, "@bob:example.org")
	must(t, s.SetPasswordHash(c, "@alice:example.org", "new-hash"))
	a, err := s.GetAccount(c, "@alice:example.org")
	must(t, err)
	eq(t, "password hash", a.PasswordHash, "new-hash")
	b, err := s.GetAccount(c, "@bob:example.org")
	must(t, err)
	eq(t, "other user's password hash", b.PasswordHash, "hash-@bob:example.org")
	wantErr(t, s.SetPasswordHash(c, "@nobody:example.org", "x"), storage.ErrNotFound, "SetPasswordHash of a missing user")
}

func testAccountSetAdmin(t *testing.T, s storage.Store) {
	c := ctx(t)
	newAccount(s, t, "@alice:example.org")
	must(t, s.SetAdmin(c, "@alice:example.org", true))
	a, err := s.GetAccount(c, "@alice:example.org")
	must(t, err)
	eq(t, "IsAdmin", a.IsAdmin, true)
	must(t, s.SetAdmin(c, "@alice:example.org", false))
	a, err = s.GetAccount(c, "@alice:example.org")
	must(t, err)
	eq(t, "IsAdmin", a.IsAdmin, false)
	wantErr(t, s.SetAdmin(c, "@nobody:example.org", true), storage.ErrNotFound, "SetAdmin of a missing user")
}

func testAccountDeactivate(t *testing.T, s storage.Store) {
	c := ctx(t)
	orig := newAccount(s, t, "@alice:example.org")
	must(t, s.SetAdmin(c, orig.UserID, true))
	must(t, s.DeactivateAccount(c, orig.UserID))
	a, err := s.GetAccount(c, orig.UserID)
	must(t, err)
	eq(t, "Deactivated", a.Deactivated, true)
	eq(t, "PasswordHash", a.PasswordHash, "")
	eq(t, "IsAdmin (untouched)", a.IsAdmin, true)
	eq(t, "CreatedAt (untouched)", a.CreatedAt, orig.CreatedAt)
	n, err := s.CountAccounts(c)
	must(t, err)
	eq(t, "CountAccounts (deactivated accounts remain)", n, 1)
	wantErr(t, s.DeactivateAccount(c, "@nobody:example.org"), storage.ErrNotFound, "DeactivateAccount of a missing user")
}

// ---- devices ----

const alice, bob = "@alice:example.org", "@bob:example.org"

func testDeviceUpsertNew(t *testing.T, s storage.Store) {
	c := ctx(t)
	want := storage.Device{UserID: alice, DeviceID: "DEV1", DisplayName: "Phone", LastSeenIP: "10.0.0.1", LastSeenTS: 42, CreatedAt: 40}
	d := want
	must(t, s.UpsertDevice(c, &d))
	got, err := s.GetDevice(c, alice, "DEV1")
	must(t, err)
	eq(t, "device", *got, want)
}

func testDeviceCreate(t *testing.T, s storage.Store) {
	c := ctx(t)
	want := storage.Device{UserID: alice, DeviceID: "DEV1", DisplayName: "Bridge", CreatedAt: 40}
	d := want
	created, err := s.CreateDevice(c, &d)
	must(t, err)
	eq(t, "created a new device", created, true)
	created, err = s.CreateDevice(c, &storage.Device{UserID: alice, DeviceID: "DEV1", DisplayName: "Other", CreatedAt: 99})
	must(t, err)
	eq(t, "created an existing device", created, false)
	got, err := s.GetDevice(c, alice, "DEV1")
	must(t, err)
	eq(t, "device after a second create", *got, want)
	created, err = s.CreateDevice(c, &storage.Device{UserID: bob, DeviceID: "DEV1", CreatedAt: 41})
	must(t, err)
	eq(t, "created another user's device of the same ID", created, true)
}

func testDeviceUpsertExisting(t *testing.T, s storage.Store) {
	c := ctx(t)
	named := storage.Device{UserID: alice, DeviceID: "NAMED", DisplayName: "Phone", LastSeenIP: "10.0.0.1", LastSeenTS: 42, CreatedAt: 40}
	must(t, s.UpsertDevice(c, &named))
	must(t, s.UpsertDevice(c, &storage.Device{UserID: alice, DeviceID: "NAMED", DisplayName: "Other name", CreatedAt: 99}))
	got, err := s.GetDevice(c, alice, "NAMED")
	must(t, err)
	eq(t, "device upserted again", *got, named)

	unnamed := storage.Device{UserID: alice, DeviceID: "UNNAMED", CreatedAt: 50}
	must(t, s.UpsertDevice(c, &unnamed))
	must(t, s.UpsertDevice(c, &storage.Device{UserID: alice, DeviceID: "UNNAMED", CreatedAt: 99}))
	got, err = s.GetDevice(c, alice, "UNNAMED")
	must(t, err)
	eq(t, "display name after an upsert without one", got.DisplayName, "")
	must(t, s.UpsertDevice(c, &storage.Device{UserID: alice, DeviceID: "UNNAMED", DisplayName: "Laptop", CreatedAt: 99}))
	got, err = s.GetDevice(c, alice, "UNNAMED")
	must(t, err)
	eq(t, "filled-in display name", got.DisplayName, "Laptop")
	eq(t, "CreatedAt (kept)", got.CreatedAt, 50)

	list, err := s.ListDevices(c, alice)
	must(t, err)
	eq(t, "devices after upserts", len(list), 2)
}

func testDeviceGetMissing(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.UpsertDevice(c, &storage.Device{UserID: alice, DeviceID: "DEV1", CreatedAt: 1}))
	_, err := s.GetDevice(c, alice, "DEV2")
	wantErr(t, err, storage.ErrNotFound, "GetDevice of a missing device")
	_, err = s.GetDevice(c, bob, "DEV1")
	wantErr(t, err, storage.ErrNotFound, "GetDevice of another user's device ID")
}

func testDeviceList(t *testing.T, s storage.Store) {
	c := ctx(t)
	list, err := s.ListDevices(c, alice)
	must(t, err)
	eq(t, "devices of a user without any", len(list), 0)
	for _, dev := range []id.DeviceID{"CCC", "AAA", "BBB"} {
		must(t, s.UpsertDevice(c, &storage.Device{UserID: alice, DeviceID: dev, DisplayName: "d " + dev.String(), CreatedAt: 1}))
	}
	must(t, s.UpsertDevice(c, &storage.Device{UserID: bob, DeviceID: "ABC", CreatedAt: 1}))
	list, err = s.ListDevices(c, alice)
	must(t, err)
	var ids []id.DeviceID
	for _, d := range list {
		eq(t, "listed device's user", d.UserID, alice)
		eq(t, "listed device's name", d.DisplayName, "d "+d.DeviceID.String())
		ids = append(ids, d.DeviceID)
	}
	if want := []id.DeviceID{"AAA", "BBB", "CCC"}; !slices.Equal(ids, want) {
		t.Fatalf("ListDevices = %v, want %v", ids, want)
	}
}

func testDeviceRename(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.UpsertDevice(c, &storage.Device{UserID: alice, DeviceID: "DEV1", DisplayName: "Phone", CreatedAt: 1}))
	must(t, s.UpsertDevice(c, &storage.Device{UserID: bob, DeviceID: "DEV1", DisplayName: "Bob's", CreatedAt: 1}))
	must(t, s.SetDeviceDisplayName(c, alice, "DEV1", "Tablet"))
	got, err := s.GetDevice(c, alice, "DEV1")
	must(t, err)
	eq(t, "display name", got.DisplayName, "Tablet")
	got, err = s.GetDevice(c, bob, "DEV1")
	must(t, err)
	eq(t, "other user's display name", got.DisplayName, "Bob's")
	must(t, s.SetDeviceDisplayName(c, alice, "DEV1", ""))
	got, err = s.GetDevice(c, alice, "DEV1")
	must(t, err)
	eq(t, "cleared display name", got.DisplayName, "")

	wantErr(t, s.SetDeviceDisplayName(c, alice, "NOPE", "x"), storage.ErrNotFound, "SetDeviceDisplayName of a missing device")
	wantErr(t, s.SetDeviceDisplayName(c, "@nobody:example.org", "DEV1", "x"), storage.ErrNotFound, "SetDeviceDisplayName of a missing user")
}

// Text PostgreSQL cannot hold (NUL, invalid UTF-8) is refused by both
// engines, in writes and reads, with the same 400; JSON holding the escape
// \u0000 is stored.
func testTextRefusedAlike(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.UpsertDevice(c, &storage.Device{UserID: alice, DeviceID: "DEV1", DisplayName: "Phone", CreatedAt: 1}))
	for _, bad := range []string{"a\x00b", "a\xffb", "\xc0\x80"} {
		for what, err := range map[string]error{
			"device name":       s.SetDeviceDisplayName(c, alice, "DEV1", bad),
			"new device":        s.UpsertDevice(c, &storage.Device{UserID: alice, DeviceID: id.DeviceID(bad), CreatedAt: 1}),
			"account data type": func() error { _, err := s.PutAccountData(c, alice, "", bad, json.RawMessage(`{}`)); return err }(),
			"device lookup":     func() error { _, err := s.GetDevice(c, alice, id.DeviceID(bad)); return err }(),
			"account lookup":    func() error { _, err := s.GetAccount(c, id.UserID(bad)); return err }(),
		} {
			if me, ok := types.AsError(err); !ok || me.Status != 400 || me.Code != types.CodeInvalidParam {
				t.Errorf("%s %q: %v, want 400 M_INVALID_PARAM", what, bad, err)
			}
		}
	}
	got, err := s.GetDevice(c, alice, "DEV1")
	must(t, err)
	eq(t, "display name", got.DisplayName, "Phone")
	_, err = s.PutAccountData(c, alice, "", "com.example.nul", json.RawMessage(`{"a":"\u0000"}`))
	must(t, err)
	e, err := s.GetAccountData(c, alice, "", "com.example.nul")
	must(t, err)
	eq(t, "account data with an escaped NUL", string(e.Content), `{"a":"\u0000"}`)
}

func testDeviceLastSeen(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.UpsertDevice(c, &storage.Device{UserID: alice, DeviceID: "DEV1", DisplayName: "Phone", CreatedAt: 1}))
	must(t, s.SetDeviceLastSeen(c, alice, "DEV1", "192.0.2.7", 12345))
	got, err := s.GetDevice(c, alice, "DEV1")
	must(t, err)
	eq(t, "device", *got, storage.Device{UserID: alice, DeviceID: "DEV1", DisplayName: "Phone", LastSeenIP: "192.0.2.7", LastSeenTS: 12345, CreatedAt: 1})

	// On a missing device it must not create one (the error is unspecified).
	_ = s.SetDeviceLastSeen(c, alice, "NOPE", "192.0.2.8", 1)
	_, err = s.GetDevice(c, alice, "NOPE")
	wantErr(t, err, storage.ErrNotFound, "GetDevice after SetDeviceLastSeen of a missing device")
}

// withTokens creates a device with one access and one refresh token, named
// after the user and device.
func withTokens(t *testing.T, s storage.Store, userID, deviceID string) {
	t.Helper()
	c := ctx(t)
	user, dev := id.UserID(userID), id.DeviceID(deviceID)
	must(t, s.UpsertDevice(c, &storage.Device{UserID: user, DeviceID: dev, CreatedAt: 1}))
	must(t, s.CreateAccessToken(c, &storage.AccessToken{TokenHash: "at-" + userID + deviceID, UserID: user, DeviceID: dev,
		RefreshHash: "rt-" + userID + deviceID, CreatedAt: 1}))
	must(t, s.CreateRefreshToken(c, &storage.RefreshToken{TokenHash: "rt-" + userID + deviceID, UserID: user, DeviceID: dev, CreatedAt: 1}))
}

// hasDevice reports whether the device, its access token and its refresh
// token exist, failing unless all three agree.
func hasDevice(t *testing.T, s storage.Store, userID, deviceID string) bool {
	t.Helper()
	c := ctx(t)
	exists := func(err error, what string) bool {
		t.Helper()
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("%s: %v", what, err)
		}
		return err == nil
	}
	_, err := s.GetDevice(c, id.UserID(userID), id.DeviceID(deviceID))
	dev := exists(err, "GetDevice")
	_, err = s.GetAccessToken(c, "at-"+userID+deviceID)
	at := exists(err, "GetAccessToken")
	_, err = s.GetRefreshToken(c, "rt-"+userID+deviceID)
	rt := exists(err, "GetRefreshToken")
	if dev != at || dev != rt {
		t.Fatalf("%s %s: device exists %v, access token %v, refresh token %v", userID, deviceID, dev, at, rt)
	}
	return dev
}

func testDeleteDevices(t *testing.T, s storage.Store) {
	c := ctx(t)
	for _, d := range []string{"D1", "D2", "D3"} {
		withTokens(t, s, alice, d)
	}
	withTokens(t, s, bob, "D1")

	must(t, s.DeleteDevices(c, alice, []id.DeviceID{"D1", "D2", "UNKNOWN"}))
	eq(t, "alice D1 exists", hasDevice(t, s, alice, "D1"), false)
	eq(t, "alice D2 exists", hasDevice(t, s, alice, "D2"), false)
	eq(t, "alice D3 exists", hasDevice(t, s, alice, "D3"), true)
	eq(t, "bob D1 exists", hasDevice(t, s, bob, "D1"), true)

	must(t, s.DeleteDevices(c, alice, nil))
	must(t, s.DeleteDevices(c, alice, []id.DeviceID{}))
	must(t, s.DeleteDevices(c, "@nobody:example.org", []id.DeviceID{"D3"}))
	eq(t, "alice D3 exists", hasDevice(t, s, alice, "D3"), true)
}

func testDeleteAllDevicesExcept(t *testing.T, s storage.Store) {
	c := ctx(t)
	for _, d := range []string{"D1", "D2", "D3"} {
		withTokens(t, s, alice, d)
	}
	withTokens(t, s, bob, "D1")
	must(t, s.DeleteAllDevices(c, alice, "D2"))
	eq(t, "alice D1 exists", hasDevice(t, s, alice, "D1"), false)
	eq(t, "alice D2 exists", hasDevice(t, s, alice, "D2"), true)
	eq(t, "alice D3 exists", hasDevice(t, s, alice, "D3"), false)
	eq(t, "bob D1 exists", hasDevice(t, s, bob, "D1"), true)
	list, err := s.ListDevices(c, alice)
	must(t, err)
	eq(t, "alice's devices", len(list), 1)
}

func testDeleteAllDevices(t *testing.T, s storage.Store) {
	c := ctx(t)
	for _, d := range []string{"D1", "D2"} {
		withTokens(t, s, alice, d)
	}
	withTokens(t, s, bob, "D1")
	must(t, s.DeleteAllDevices(c, alice, ""))
	eq(t, "alice D1 exists", hasDevice(t, s, alice, "D1"), false)
	eq(t, "alice D2 exists", hasDevice(t, s, alice, "D2"), false)
	eq(t, "bob D1 exists", hasDevice(t, s, bob, "D1"), true)
	list, err := s.ListDevices(c, alice)
	must(t, err)
	eq(t, "alice's devices", len(list), 0)
	must(t, s.DeleteAllDevices(c, "@nobody:example.org", ""))
}

func testDeleteDeviceTokens(t *testing.T, s storage.Store) {
	c := ctx(t)
	withTokens(t, s, alice, "D1")
	withTokens(t, s, alice, "D2")
	withTokens(t, s, bob, "D1")
	must(t, s.DeleteDeviceTokens(c, alice, "D1"))
	_, err := s.GetDevice(c, alice, "D1")
	must(t, err) // the device stays
	_, err = s.GetAccessToken(c, "at-"+alice+"D1")
	wantErr(t, err, storage.ErrNotFound, "access token of the device")
	_, err = s.GetRefreshToken(c, "rt-"+alice+"D1")
	wantErr(t, err, storage.ErrNotFound, "refresh token of the device")
	eq(t, "alice D2 exists", hasDevice(t, s, alice, "D2"), true)
	eq(t, "bob D1 exists", hasDevice(t, s, bob, "D1"), true)
}

// ---- tokens ----

func testAccessTokenCRUD(t *testing.T, s storage.Store) {
	c := ctx(t)
	want := storage.AccessToken{TokenHash: "h1", UserID: alice, DeviceID: "D1", ExpiresAt: 9000,
		RefreshHash: "r2", PrevRefreshHash: "r1", CreatedAt: 100}
	tok := want
	must(t, s.CreateAccessToken(c, &tok))
	got, err := s.GetAccessToken(c, "h1")
	must(t, err)
	eq(t, "access token", *got, want)

	err = s.CreateAccessToken(c, &storage.AccessToken{TokenHash: "h1", UserID: bob, DeviceID: "D9", CreatedAt: 1})
	wantErr(t, err, storage.ErrConflict, "CreateAccessToken with a taken hash")
	got, err = s.GetAccessToken(c, "h1")
	must(t, err)
	eq(t, "access token after the refused duplicate", *got, want)

	must(t, s.CreateAccessToken(c, &storage.AccessToken{TokenHash: "h2", UserID: alice, DeviceID: "D1", CreatedAt: 1}))
	must(t, s.DeleteAccessToken(c, "h1"))
	_, err = s.GetAccessToken(c, "h1")
	wantErr(t, err, storage.ErrNotFound, "GetAccessToken after delete")
	_, err = s.GetAccessToken(c, "h2")
	must(t, err)
	must(t, s.DeleteAccessToken(c, "h1")) // deleting a missing token is not an error
}

func testDeleteAccessTokensByRefresh(t *testing.T, s storage.Store) {
	c := ctx(t)
	for _, at := range []storage.AccessToken{
		{TokenHash: "a", UserID: alice, DeviceID: "D1", RefreshHash: "r1", CreatedAt: 1},
		{TokenHash: "b", UserID: alice, DeviceID: "D1", RefreshHash: "r1", CreatedAt: 2},
		{TokenHash: "c", UserID: alice, DeviceID: "D1", RefreshHash: "r2", PrevRefreshHash: "r1", CreatedAt: 3},
		{TokenHash: "d", UserID: alice, DeviceID: "D1", CreatedAt: 4}, // issued without a refresh token
	} {
		must(t, s.CreateAccessToken(c, &at))
	}
	must(t, s.DeleteAccessTokensByRefresh(c, "r1"))
	for hash, want := range map[string]bool{"a": false, "b": false, "c": true, "d": true} {
		_, err := s.GetAccessToken(c, hash)
		if want {
			must(t, err)
		} else {
			wantErr(t, err, storage.ErrNotFound, "token "+hash)
		}
	}
	// No access token was issued with "no refresh token".
	must(t, s.DeleteAccessTokensByRefresh(c, ""))
	_, err := s.GetAccessToken(c, "d")
	must(t, err)
}

func testClearPrevRefresh(t *testing.T, s storage.Store) {
	c := ctx(t)
	tok := storage.AccessToken{TokenHash: "a", UserID: alice, DeviceID: "D1", ExpiresAt: 5, RefreshHash: "r2", PrevRefreshHash: "r1", CreatedAt: 1}
	must(t, s.CreateAccessToken(c, &tok))
	other := storage.AccessToken{TokenHash: "b", UserID: alice, DeviceID: "D1", RefreshHash: "r3", PrevRefreshHash: "r1", CreatedAt: 1}
	must(t, s.CreateAccessToken(c, &other))
	must(t, s.ClearPrevRefresh(c, "a"))
	got, err := s.GetAccessToken(c, "a")
	must(t, err)
	want := tok
	want.PrevRefreshHash = ""
	eq(t, "access token", *got, want)
	got, err = s.GetAccessToken(c, "b")
	must(t, err)
	eq(t, "other access token", *got, other)
}

func testRefreshTokenCRUD(t *testing.T, s storage.Store) {
	c := ctx(t)
	want := storage.RefreshToken{TokenHash: "r2", UserID: alice, DeviceID: "D1", PrevHash: "r1", CreatedAt: 77}
	tok := want
	must(t, s.CreateRefreshToken(c, &tok))
	got, err := s.GetRefreshToken(c, "r2")
	must(t, err)
	eq(t, "refresh token", *got, want)
	err = s.CreateRefreshToken(c, &storage.RefreshToken{TokenHash: "r2", UserID: bob, DeviceID: "X", CreatedAt: 1})
	wantErr(t, err, storage.ErrConflict, "CreateRefreshToken with a taken hash")
	_, err = s.GetRefreshToken(c, "r1")
	wantErr(t, err, storage.ErrNotFound, "GetRefreshToken of a missing token")
	must(t, s.DeleteRefreshToken(c, "r2"))
	_, err = s.GetRefreshToken(c, "r2")
	wantErr(t, err, storage.ErrNotFound, "GetRefreshToken after delete")
	must(t, s.DeleteRefreshToken(c, "r2"))
}

func testLoginTokenSingleUse(t *testing.T, s storage.Store) {
	c := ctx(t)
	want := storage.LoginToken{TokenHash: "l1", UserID: alice, ExpiresAt: 5000}
	tok := want
	must(t, s.CreateLoginToken(c, &tok))
	must(t, s.CreateLoginToken(c, &storage.LoginToken{TokenHash: "l2", UserID: bob, ExpiresAt: 5000}))
	wantErr(t, s.CreateLoginToken(c, &storage.LoginToken{TokenHash: "l1", UserID: bob, ExpiresAt: 1}), storage.ErrConflict,
		"CreateLoginToken with a taken hash")
	got, err := s.ConsumeLoginToken(c, "l1")
	must(t, err)
	eq(t, "consumed login token", *got, want)
	_, err = s.ConsumeLoginToken(c, "l1")
	wantErr(t, err, storage.ErrNotFound, "second ConsumeLoginToken")
	_, err = s.ConsumeLoginToken(c, "never")
	wantErr(t, err, storage.ErrNotFound, "ConsumeLoginToken of a missing token")
	got, err = s.ConsumeLoginToken(c, "l2")
	must(t, err)
	eq(t, "other login token's user", got.UserID, bob)
}

func testDeleteExpiredTokens(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.CreateLoginToken(c, &storage.LoginToken{TokenHash: "l-old", UserID: alice, ExpiresAt: 100}))
	must(t, s.CreateLoginToken(c, &storage.LoginToken{TokenHash: "l-new", UserID: alice, ExpiresAt: 300}))
	for _, at := range []storage.AccessToken{
		{TokenHash: "a-old", UserID: alice, DeviceID: "D1", ExpiresAt: 100, CreatedAt: 1},
		{TokenHash: "a-new", UserID: alice, DeviceID: "D1", ExpiresAt: 300, CreatedAt: 1},
		{TokenHash: "a-forever", UserID: alice, DeviceID: "D1", ExpiresAt: 0, CreatedAt: 1},
	} {
		must(t, s.CreateAccessToken(c, &at))
	}
	must(t, s.CreateRefreshToken(c, &storage.RefreshToken{TokenHash: "r", UserID: alice, DeviceID: "D1", CreatedAt: 1}))

	must(t, s.DeleteExpiredTokens(c, 200))

	_, err := s.GetAccessToken(c, "a-old")
	wantErr(t, err, storage.ErrNotFound, "expired access token")
	for _, h := range []string{"a-new", "a-forever"} {
		_, err := s.GetAccessToken(c, h)
		must(t, err)
	}
	_, err = s.GetRefreshToken(c, "r")
	must(t, err)
	_, err = s.ConsumeLoginToken(c, "l-old")
	wantErr(t, err, storage.ErrNotFound, "expired login token")
	_, err = s.ConsumeLoginToken(c, "l-new")
	must(t, err)
}

// ---- profiles ----

func testProfileSetOverwrite(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.SetProfileField(c, alice, "displayname", json.RawMessage(`"Alice"`)))
	must(t, s.SetProfileField(c, alice, "avatar_url", json.RawMessage(`"mxc://example.org/abc"`)))
	must(t, s.SetProfileField(c, alice, "m.tz", json.RawMessage(`{"tz":"Europe/Paris","n":[1,2]}`)))
	must(t, s.SetProfileField(c, bob, "displayname", json.RawMessage(`"Bob"`)))
	must(t, s.SetProfileField(c, alice, "displayname", json.RawMessage(`"Alice Liddell"`)))
	p, err := s.GetProfile(c, alice)
	must(t, err)
	want := map[string]string{
		"displayname": `"Alice Liddell"`,
		"avatar_url":  `"mxc://example.org/abc"`,
		"m.tz":        `{"tz":"Europe/Paris","n":[1,2]}`,
	}
	eq(t, "profile fields", len(p), len(want))
	for k, v := range want {
		eq(t, "profile field "+k, string(p[k]), v)
	}
}

func testProfileNilDeletes(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.SetProfileField(c, alice, "displayname", json.RawMessage(`"Alice"`)))
	must(t, s.SetProfileField(c, alice, "avatar_url", json.RawMessage(`"mxc://example.org/abc"`)))
	must(t, s.SetProfileField(c, alice, "displayname", nil))
	must(t, s.SetProfileField(c, alice, "never-set", nil))
	p, err := s.GetProfile(c, alice)
	must(t, err)
	if _, ok := p["displayname"]; ok || len(p) != 1 || string(p["avatar_url"]) != `"mxc://example.org/abc"` {
		t.Fatalf("profile after deleting displayname = %s", fmtProfile(p))
	}
}

func fmtProfile(p map[string]json.RawMessage) string {
	b, _ := json.Marshal(p)
	return string(b)
}

func testProfileUnknownUser(t *testing.T, s storage.Store) {
	p, err := s.GetProfile(ctx(t), "@nobody:example.org")
	must(t, err)
	if p == nil || len(p) != 0 {
		t.Fatalf("GetProfile of an unknown user = %#v, want an empty map", p)
	}
}

func testDeleteProfile(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.SetProfileField(c, alice, "displayname", json.RawMessage(`"Alice"`)))
	must(t, s.SetProfileField(c, alice, "avatar_url", json.RawMessage(`"mxc://x/y"`)))
	must(t, s.SetProfileField(c, bob, "displayname", json.RawMessage(`"Bob"`)))
	must(t, s.DeleteProfile(c, alice))
	p, err := s.GetProfile(c, alice)
	must(t, err)
	if p == nil || len(p) != 0 {
		t.Fatalf("profile after DeleteProfile = %s", fmtProfile(p))
	}
	p, err = s.GetProfile(c, bob)
	must(t, err)
	eq(t, "other user's displayname", string(p["displayname"]), `"Bob"`)
	must(t, s.DeleteProfile(c, "@nobody:example.org"))
}

func testProfileFieldOfMany(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.SetProfileField(c, alice, "displayname", json.RawMessage(`"Alice"`)))
	must(t, s.SetProfileField(c, alice, "avatar_url", json.RawMessage(`"mxc://x/y"`)))
	must(t, s.SetProfileField(c, bob, "avatar_url", json.RawMessage(`"mxc://x/b"`)))
	names, err := s.GetProfileFields(c, "displayname", []id.UserID{alice, bob, "@nobody:example.org"})
	must(t, err)
	if len(names) != 1 || string(names[alice]) != `"Alice"` {
		t.Fatalf("display names = %v", names)
	}
	avatars, err := s.GetProfileFields(c, "avatar_url", []id.UserID{alice, bob})
	must(t, err)
	if len(avatars) != 2 || string(avatars[bob]) != `"mxc://x/b"` {
		t.Fatalf("avatars = %v", avatars)
	}
	none, err := s.GetProfileFields(c, "displayname", nil)
	must(t, err)
	eq(t, "no users", len(none), 0)
	// More users than one query takes.
	many := make([]id.UserID, 2500)
	for i := range many {
		many[i] = id.UserID(fmt.Sprintf("@u%d:example.org", i))
	}
	must(t, s.SetProfileField(c, many[2400], "displayname", json.RawMessage(`"Late"`)))
	names, err = s.GetProfileFields(c, "displayname", append(many, alice))
	must(t, err)
	if len(names) != 2 || string(names[many[2400]]) != `"Late"` {
		t.Fatalf("display names of 2501 users = %v", names)
	}
}

// ---- account data ----

func testAccountDataGlobalAndRoom(t *testing.T, s storage.Store) {
	c := ctx(t)
	const room = "!room:example.org"
	pg, err := s.PutAccountData(c, alice, "", "m.tag", json.RawMessage(`{"scope":"global"}`))
	must(t, err)
	pr, err := s.PutAccountData(c, alice, room, "m.tag", json.RawMessage(`{"scope":"room"}`))
	must(t, err)
	g, err := s.GetAccountData(c, alice, "", "m.tag")
	must(t, err)
	eq(t, "global entry", fmt.Sprint(g.UserID, g.RoomID, g.Type, string(g.Content), g.StreamPos),
		fmt.Sprint(alice, "", "m.tag", `{"scope":"global"}`, pg))
	r, err := s.GetAccountData(c, alice, room, "m.tag")
	must(t, err)
	eq(t, "room entry", fmt.Sprint(r.UserID, r.RoomID, r.Type, string(r.Content), r.StreamPos),
		fmt.Sprint(alice, room, "m.tag", `{"scope":"room"}`, pr))
	_, err = s.GetAccountData(c, alice, "!other:example.org", "m.tag")
	wantErr(t, err, storage.ErrNotFound, "account data of another room")
}

func testAccountDataOverwrite(t *testing.T, s storage.Store) {
	c := ctx(t)
	p1, err := s.PutAccountData(c, alice, "", "m.direct", json.RawMessage(`{"v":1}`))
	must(t, err)
	p2, err := s.PutAccountData(c, alice, "", "m.direct", json.RawMessage(`{"v":2}`))
	must(t, err)
	if p2 <= p1 {
		t.Fatalf("overwrite took position %d after %d", p2, p1)
	}
	e, err := s.GetAccountData(c, alice, "", "m.direct")
	must(t, err)
	eq(t, "content", string(e.Content), `{"v":2}`)
	eq(t, "stream position", e.StreamPos, p2)
	all, err := s.AccountDataSince(c, alice, 0)
	must(t, err)
	eq(t, "entries after an overwrite", len(all), 1)
}

func testAccountDataStreamIncreases(t *testing.T, s storage.Store) {
	c := ctx(t)
	var last int64
	for i, w := range []struct {
		user id.UserID
		room id.RoomID
		typ  string
	}{
		{alice, "", "a"}, {bob, "", "a"}, {alice, "!r:x", "a"}, {alice, "", "a"}, {bob, "!r:x", "b"}, {"@carol:x", "", "c"},
	} {
		pos, err := s.PutAccountData(c, w.user, w.room, w.typ, json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)))
		must(t, err)
		if pos <= last {
			t.Fatalf("write %d took stream position %d after %d", i, pos, last)
		}
		last = pos
	}
}

func testAccountDataSince(t *testing.T, s storage.Store) {
	c := ctx(t)
	put := func(user id.UserID, room id.RoomID, typ, content string) int64 {
		t.Helper()
		pos, err := s.PutAccountData(c, user, room, typ, json.RawMessage(content))
		must(t, err)
		return pos
	}
	p1 := put(alice, "", "t1", `1`)
	put(bob, "", "t1", `"bob"`)
	p2 := put(alice, "!r:x", "t2", `2`)
	p3 := put(alice, "", "t3", `3`)
	p4 := put(alice, "", "t1", `4`) // t1 moves to the end

	check := func(since int64, want ...string) {
		t.Helper()
		got, err := s.AccountDataSince(c, alice, since)
		must(t, err)
		var types []string
		var prev int64
		for _, e := range got {
			eq(t, "entry user", e.UserID, alice)
			if e.StreamPos <= since || e.StreamPos <= prev {
				t.Fatalf("AccountDataSince(%d): position %d out of order or not after since", since, e.StreamPos)
			}
			prev = e.StreamPos
			types = append(types, e.RoomID.String()+"/"+e.Type+"="+string(e.Content))
		}
		if !slices.Equal(types, want) {
			t.Fatalf("AccountDataSince(%d) = %v, want %v", since, types, want)
		}
	}
	check(0, "!r:x/t2=2", "/t3=3", "/t1=4")
	check(p1, "!r:x/t2=2", "/t3=3", "/t1=4")
	check(p2, "/t3=3", "/t1=4")
	check(p3, "/t1=4")
	check(p4)
	got, err := s.AccountDataSince(c, "@nobody:x", 0)
	must(t, err)
	eq(t, "entries of a user without any", len(got), 0)
}

func testAccountDataMissing(t *testing.T, s storage.Store) {
	c := ctx(t)
	_, err := s.GetAccountData(c, alice, "", "m.direct")
	wantErr(t, err, storage.ErrNotFound, "GetAccountData in an empty store")
	_, err = s.PutAccountData(c, alice, "", "m.direct", json.RawMessage(`{}`))
	must(t, err)
	_, err = s.GetAccountData(c, bob, "", "m.direct")
	wantErr(t, err, storage.ErrNotFound, "GetAccountData of another user")
	_, err = s.GetAccountData(c, alice, "", "m.other")
	wantErr(t, err, storage.ErrNotFound, "GetAccountData of another type")
}

// ---- UIA sessions ----

func testUIACreateGet(t *testing.T, s storage.Store) {
	c := ctx(t)
	want := storage.UIASession{SessionID: "s1", UserID: alice, Endpoint: "/_matrix/client/v3/delete_devices",
		Data: json.RawMessage(`{"completed":["m.login.password"]}`), CreatedAt: 1234}
	sess := want
	must(t, s.CreateUIASession(c, &sess))
	must(t, s.CreateUIASession(c, &storage.UIASession{SessionID: "s2", Endpoint: "/register", Data: json.RawMessage(`{}`), CreatedAt: 1}))
	got, err := s.GetUIASession(c, "s1")
	must(t, err)
	eq(t, "session", fmt.Sprint(got.SessionID, got.UserID, got.Endpoint, string(got.Data), got.CreatedAt),
		fmt.Sprint(want.SessionID, want.UserID, want.Endpoint, string(want.Data), want.CreatedAt))
	got, err = s.GetUIASession(c, "s2")
	must(t, err)
	eq(t, "registration session's user", got.UserID, "")
	wantErr(t, s.CreateUIASession(c, &storage.UIASession{SessionID: "s1", Endpoint: "/x", Data: json.RawMessage(`{}`), CreatedAt: 1}),
		storage.ErrConflict, "CreateUIASession with a taken ID")
	_, err = s.GetUIASession(c, "nope")
	wantErr(t, err, storage.ErrNotFound, "GetUIASession of a missing session")
}

func testUIAUpdate(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.CreateUIASession(c, &storage.UIASession{SessionID: "s1", UserID: alice, Endpoint: "/e", Data: json.RawMessage(`{"n":0}`), CreatedAt: 10}))
	must(t, s.UpdateUIASession(c, "s1", json.RawMessage(`{"n":1}`)))
	got, err := s.GetUIASession(c, "s1")
	must(t, err)
	eq(t, "data", string(got.Data), `{"n":1}`)
	eq(t, "endpoint (kept)", got.Endpoint, "/e")
	eq(t, "created at (kept)", got.CreatedAt, 10)
	wantErr(t, s.UpdateUIASession(c, "nope", json.RawMessage(`{}`)), storage.ErrNotFound, "UpdateUIASession of a missing session")
	_, err = s.GetUIASession(c, "nope")
	wantErr(t, err, storage.ErrNotFound, "GetUIASession after updating a missing session")
}

func testUIADelete(t *testing.T, s storage.Store) {
	c := ctx(t)
	for _, id := range []string{"s1", "s2"} {
		must(t, s.CreateUIASession(c, &storage.UIASession{SessionID: id, Endpoint: "/e", Data: json.RawMessage(`{}`), CreatedAt: 10}))
	}
	must(t, s.DeleteUIASession(c, "s1"))
	_, err := s.GetUIASession(c, "s1")
	wantErr(t, err, storage.ErrNotFound, "GetUIASession after delete")
	_, err = s.GetUIASession(c, "s2")
	must(t, err)
	must(t, s.DeleteUIASession(c, "s1"))
}

func testUIADeleteBefore(t *testing.T, s storage.Store) {
	c := ctx(t)
	for id, at := range map[string]int64{"old": 100, "edge": 200, "new": 300} {
		must(t, s.CreateUIASession(c, &storage.UIASession{SessionID: id, Endpoint: "/e", Data: json.RawMessage(`{}`), CreatedAt: at}))
	}
	must(t, s.DeleteUIASessionsBefore(c, 200))
	_, err := s.GetUIASession(c, "old")
	wantErr(t, err, storage.ErrNotFound, "session created before the cut-off")
	for _, id := range []string{"edge", "new"} {
		_, err := s.GetUIASession(c, id)
		must(t, err)
	}
}

// ---- registration tokens ----

func fmtRegToken(r *storage.RegistrationToken) string {
	f := func(p *int64) string {
		if p == nil {
			return "nil"
		}
		return fmt.Sprint(*p)
	}
	return fmt.Sprintf("{%s uses=%s pending=%d completed=%d expiry=%s}", r.Token, f(r.UsesAllowed), r.Pending, r.Completed, f(r.ExpiryTime))
}

func getRegToken(t *testing.T, s storage.Store, token string) *storage.RegistrationToken {
	t.Helper()
	r, err := s.GetRegistrationToken(ctx(t), token)
	must(t, err)
	return r
}

func testRegTokenCreateGet(t *testing.T, s storage.Store) {
	c := ctx(t)
	full := &storage.RegistrationToken{Token: "full", UsesAllowed: ptr(5), Pending: 1, Completed: 2, ExpiryTime: ptr(1700000000000)}
	must(t, s.CreateRegistrationToken(c, full))
	bare := &storage.RegistrationToken{Token: "bare"}
	must(t, s.CreateRegistrationToken(c, bare))
	eq(t, "token", fmtRegToken(getRegToken(t, s, "full")), fmtRegToken(full))
	eq(t, "token", fmtRegToken(getRegToken(t, s, "bare")), fmtRegToken(bare))
	_, err := s.GetRegistrationToken(c, "nope")
	wantErr(t, err, storage.ErrNotFound, "GetRegistrationToken of a missing token")
}

func testRegTokenDuplicate(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.CreateRegistrationToken(c, &storage.RegistrationToken{Token: "tok", UsesAllowed: ptr(1)}))
	wantErr(t, s.CreateRegistrationToken(c, &storage.RegistrationToken{Token: "tok"}), storage.ErrConflict, "CreateRegistrationToken of a taken token")
	eq(t, "token after the refused duplicate", fmtRegToken(getRegToken(t, s, "tok")), "{tok uses=1 pending=0 completed=0 expiry=nil}")
}

func testRegTokenList(t *testing.T, s storage.Store) {
	c := ctx(t)
	list, err := s.ListRegistrationTokens(c)
	must(t, err)
	eq(t, "tokens in an empty store", len(list), 0)
	for _, tok := range []string{"ccc", "aaa", "bbb"} {
		must(t, s.CreateRegistrationToken(c, &storage.RegistrationToken{Token: tok, UsesAllowed: ptr(int64(len(tok)))}))
	}
	list, err = s.ListRegistrationTokens(c)
	must(t, err)
	var got []string
	for _, r := range list {
		got = append(got, fmtRegToken(r))
	}
	want := []string{
		"{aaa uses=3 pending=0 completed=0 expiry=nil}",
		"{bbb uses=3 pending=0 completed=0 expiry=nil}",
		"{ccc uses=3 pending=0 completed=0 expiry=nil}",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ListRegistrationTokens = %v, want %v", got, want)
	}
}

func testRegTokenUpdate(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.CreateRegistrationToken(c, &storage.RegistrationToken{Token: "tok", UsesAllowed: ptr(1), Completed: 1}))
	must(t, s.UpdateRegistrationToken(c, &storage.RegistrationToken{Token: "tok", UsesAllowed: ptr(10), ExpiryTime: ptr(5000)}))
	eq(t, "updated token", fmtRegToken(getRegToken(t, s, "tok")), "{tok uses=10 pending=0 completed=1 expiry=5000}")
	must(t, s.UpdateRegistrationToken(c, &storage.RegistrationToken{Token: "tok"}))
	eq(t, "updated token", fmtRegToken(getRegToken(t, s, "tok")), "{tok uses=nil pending=0 completed=1 expiry=nil}")
	wantErr(t, s.UpdateRegistrationToken(c, &storage.RegistrationToken{Token: "nope", UsesAllowed: ptr(1)}), storage.ErrNotFound,
		"UpdateRegistrationToken of a missing token")
	_, err := s.GetRegistrationToken(c, "nope")
	wantErr(t, err, storage.ErrNotFound, "GetRegistrationToken after updating a missing token")
}

func testRegTokenDelete(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.CreateRegistrationToken(c, &storage.RegistrationToken{Token: "a"}))
	must(t, s.CreateRegistrationToken(c, &storage.RegistrationToken{Token: "b"}))
	must(t, s.DeleteRegistrationToken(c, "a"))
	_, err := s.GetRegistrationToken(c, "a")
	wantErr(t, err, storage.ErrNotFound, "GetRegistrationToken after delete")
	getRegToken(t, s, "b")
	wantErr(t, s.DeleteRegistrationToken(c, "a"), storage.ErrNotFound, "DeleteRegistrationToken of a missing token")
}

func testRegTokenUseLimited(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.CreateRegistrationToken(c, &storage.RegistrationToken{Token: "two", UsesAllowed: ptr(2)}))
	must(t, s.UseRegistrationToken(c, "two", 1000))
	eq(t, "completed", getRegToken(t, s, "two").Completed, 1)
	must(t, s.UseRegistrationToken(c, "two", 1000))
	eq(t, "completed", getRegToken(t, s, "two").Completed, 2)
	wantErr(t, s.UseRegistrationToken(c, "two", 1000), storage.ErrNotFound, "third use of a two-use token")
	eq(t, "completed after a refused use", getRegToken(t, s, "two").Completed, 2)
	wantErr(t, s.UseRegistrationToken(c, "nope", 1000), storage.ErrNotFound, "UseRegistrationToken of a missing token")

	must(t, s.CreateRegistrationToken(c, &storage.RegistrationToken{Token: "zero", UsesAllowed: ptr(0)}))
	wantErr(t, s.UseRegistrationToken(c, "zero", 1000), storage.ErrNotFound, "use of a zero-use token")
}

func testRegTokenUsePending(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.CreateRegistrationToken(c, &storage.RegistrationToken{Token: "tok", UsesAllowed: ptr(2), Pending: 1}))
	must(t, s.UseRegistrationToken(c, "tok", 1000))
	wantErr(t, s.UseRegistrationToken(c, "tok", 1000), storage.ErrNotFound, "use beyond uses_allowed counting pending ones")
	eq(t, "token", fmtRegToken(getRegToken(t, s, "tok")), "{tok uses=2 pending=1 completed=1 expiry=nil}")
}

func testRegTokenUseExpired(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.CreateRegistrationToken(c, &storage.RegistrationToken{Token: "tok", ExpiryTime: ptr(5000)}))
	must(t, s.UseRegistrationToken(c, "tok", 4999))
	wantErr(t, s.UseRegistrationToken(c, "tok", 6000), storage.ErrNotFound, "use of an expired token")
	eq(t, "completed", getRegToken(t, s, "tok").Completed, 1)
}

func testRegTokenUseUnlimited(t *testing.T, s storage.Store) {
	c := ctx(t)
	must(t, s.CreateRegistrationToken(c, &storage.RegistrationToken{Token: "tok"}))
	for range 25 {
		must(t, s.UseRegistrationToken(c, "tok", 1<<40))
	}
	eq(t, "token", fmtRegToken(getRegToken(t, s, "tok")), "{tok uses=nil pending=0 completed=25 expiry=nil}")
}

// ---- meta ----

func testMeta(t *testing.T, s storage.Store) {
	c := ctx(t)
	_, err := s.GetMeta(c, "server_name")
	wantErr(t, err, storage.ErrNotFound, "GetMeta of a missing key")
	must(t, s.SetMeta(c, "server_name", "example.org"))
	must(t, s.SetMeta(c, "other", "x"))
	v, err := s.GetMeta(c, "server_name")
	must(t, err)
	eq(t, "meta value", v, "example.org")
	must(t, s.SetMeta(c, "server_name", "example.com"))
	v, err = s.GetMeta(c, "server_name")
	must(t, err)
	eq(t, "overwritten meta value", v, "example.com")
	v, err = s.GetMeta(c, "other")
	must(t, err)
	eq(t, "other meta value", v, "x")
}

// ---- transactions ----

func testTxCommit(t *testing.T, s storage.Store) {
	c := ctx(t)
	var pos int64
	err := s.WithTx(c, func(c context.Context) error {
		if err := s.CreateAccount(c, &storage.Account{UserID: alice, Localpart: "alice", CreatedAt: 1}); err != nil {
			return err
		}
		// Reads inside the transaction see its writes.
		if _, err := s.GetAccount(c, alice); err != nil {
			return fmt.Errorf("read own write in tx: %w", err)
		}
		if err := s.SetMeta(c, "k", "v"); err != nil {
			return err
		}
		var err error
		pos, err = s.PutAccountData(c, alice, "", "t", json.RawMessage(`{}`))
		return err
	})
	must(t, err)
	_, err = s.GetAccount(c, alice)
	must(t, err)
	v, err := s.GetMeta(c, "k")
	must(t, err)
	eq(t, "meta", v, "v")
	e, err := s.GetAccountData(c, alice, "", "t")
	must(t, err)
	eq(t, "stream position", e.StreamPos, pos)
}

var errBoom = errors.New("boom")

func testTxRollback(t *testing.T, s storage.Store) {
	c := ctx(t)
	before, err := s.PutAccountData(c, bob, "", "t", json.RawMessage(`{}`))
	must(t, err)
	err = s.WithTx(c, func(c context.Context) error {
		if err := s.CreateAccount(c, &storage.Account{UserID: alice, Localpart: "alice", CreatedAt: 1}); err != nil {
			return err
		}
		if err := s.SetMeta(c, "k", "v"); err != nil {
			return err
		}
		if _, err := s.PutAccountData(c, alice, "", "t", json.RawMessage(`{}`)); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", errBoom)
	})
	wantErr(t, err, errBoom, "WithTx")
	_, err = s.GetAccount(c, alice)
	wantErr(t, err, storage.ErrNotFound, "account written in a rolled back transaction")
	_, err = s.GetMeta(c, "k")
	wantErr(t, err, storage.ErrNotFound, "meta written in a rolled back transaction")
	_, err = s.GetAccountData(c, alice, "", "t")
	wantErr(t, err, storage.ErrNotFound, "account data written in a rolled back transaction")
	// The store keeps working after a rollback.
	after, err := s.PutAccountData(c, bob, "", "t", json.RawMessage(`{}`))
	must(t, err)
	if after <= before {
		t.Fatalf("stream position %d after rollback, was %d", after, before)
	}
	newAccount(s, t, alice)
}

func testTxNested(t *testing.T, s storage.Store) {
	c := ctx(t)
	// A nested call that succeeds is rolled back with the outer transaction.
	err := s.WithTx(c, func(c context.Context) error {
		if err := s.SetMeta(c, "outer", "1"); err != nil {
			return err
		}
		if err := s.WithTx(c, func(c context.Context) error {
			if _, err := s.GetMeta(c, "outer"); err != nil {
				return fmt.Errorf("inner transaction does not see the outer one's write: %w", err)
			}
			return s.SetMeta(c, "inner", "1")
		}); err != nil {
			return err
		}
		// DeleteDevices uses WithTx itself.
		if err := s.DeleteDevices(c, alice, []id.DeviceID{"X"}); err != nil {
			return err
		}
		return errBoom
	})
	wantErr(t, err, errBoom, "WithTx")
	for _, k := range []string{"outer", "inner"} {
		_, err := s.GetMeta(c, k)
		wantErr(t, err, storage.ErrNotFound, "meta "+k+" after the outer transaction rolled back")
	}

	// A nested call's error reaches the outer call.
	err = s.WithTx(c, func(c context.Context) error {
		return s.WithTx(c, func(c context.Context) error { return errBoom })
	})
	wantErr(t, err, errBoom, "WithTx with a failing nested call")

	// Both commit together.
	must(t, s.WithTx(c, func(c context.Context) error {
		if err := s.SetMeta(c, "outer", "2"); err != nil {
			return err
		}
		return s.WithTx(c, func(c context.Context) error { return s.SetMeta(c, "inner", "2") })
	}))
	for _, k := range []string{"outer", "inner"} {
		v, err := s.GetMeta(c, k)
		must(t, err)
		eq(t, "meta "+k, v, "2")
	}
}

func testTxPanic(t *testing.T, s storage.Store) {
	c := ctx(t)
	func() {
		defer func() {
			if r := recover(); r != errBoom {
				t.Fatalf("recovered %v, want the panic to reach the caller", r)
			}
		}()
		_ = s.WithTx(c, func(c context.Context) error {
			if err := s.SetMeta(c, "k", "v"); err != nil {
				return err
			}
			panic(errBoom)
		})
	}()
	_, err := s.GetMeta(c, "k")
	wantErr(t, err, storage.ErrNotFound, "meta written before a panic")
	// The connection the transaction held is free again.
	must(t, s.SetMeta(c, "k", "after"))
	must(t, s.WithTx(c, func(c context.Context) error { return s.SetMeta(c, "k2", "after") }))
}

// testTxConflictUsable: ErrConflict inside a transaction is an answer, not a
// broken transaction (PostgreSQL aborts a transaction on any error).
func testTxConflictUsable(t *testing.T, s storage.Store) {
	c := ctx(t)
	newAccount(s, t, alice)
	must(t, s.CreateRegistrationToken(c, &storage.RegistrationToken{Token: "tok"}))
	must(t, s.CreateUIASession(c, &storage.UIASession{SessionID: "s", Endpoint: "/e", Data: json.RawMessage(`{}`), CreatedAt: 1}))
	must(t, s.CreateAccessToken(c, &storage.AccessToken{TokenHash: "a", UserID: alice, DeviceID: "D", CreatedAt: 1}))
	must(t, s.CreateRefreshToken(c, &storage.RefreshToken{TokenHash: "r", UserID: alice, DeviceID: "D", CreatedAt: 1}))
	must(t, s.CreateLoginToken(c, &storage.LoginToken{TokenHash: "l", UserID: alice, ExpiresAt: 1}))
	must(t, s.WithTx(c, func(c context.Context) error {
		for what, err := range map[string]error{
			"CreateAccount":           s.CreateAccount(c, &storage.Account{UserID: alice, Localpart: "alice", CreatedAt: 2}),
			"CreateRegistrationToken": s.CreateRegistrationToken(c, &storage.RegistrationToken{Token: "tok"}),
			"CreateUIASession":        s.CreateUIASession(c, &storage.UIASession{SessionID: "s", Endpoint: "/e", Data: json.RawMessage(`{}`), CreatedAt: 1}),
			"CreateAccessToken":       s.CreateAccessToken(c, &storage.AccessToken{TokenHash: "a", UserID: bob, DeviceID: "D", CreatedAt: 1}),
			"CreateRefreshToken":      s.CreateRefreshToken(c, &storage.RefreshToken{TokenHash: "r", UserID: bob, DeviceID: "D", CreatedAt: 1}),
			"CreateLoginToken":        s.CreateLoginToken(c, &storage.LoginToken{TokenHash: "l", UserID: bob, ExpiresAt: 1}),
		} {
			wantErr(t, err, storage.ErrConflict, what+" of a taken key inside a transaction")
		}
		return s.SetMeta(c, "after-conflict", "ok")
	}))
	v, err := s.GetMeta(c, "after-conflict")
	must(t, err)
	eq(t, "meta written after the conflicts", v, "ok")
}

// ---- concurrency ----

func testConcurrentAccountData(t *testing.T, s storage.Store) {
	c := ctx(t)
	const writers, writes = 16, 20
	positions := make([][]int64, writers)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			user := id.UserID(fmt.Sprintf("@user%02d:example.org", w))
			for i := range writes {
				pos, err := s.PutAccountData(c, user, "", fmt.Sprintf("t%02d", i), json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)))
				if err != nil {
					errs <- fmt.Errorf("writer %d write %d: %w", w, i, err)
					return
				}
				positions[w] = append(positions[w], pos)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for w, ps := range positions {
		for i, p := range ps {
			if p <= 0 || seen[p] {
				t.Fatalf("writer %d write %d got position %d: not positive or already taken", w, i, p)
			}
			if i > 0 && p <= ps[i-1] {
				t.Fatalf("writer %d: position %d after %d", w, p, ps[i-1])
			}
			seen[p] = true
		}
	}
	eq(t, "distinct positions", len(seen), writers*writes)
	for w := range writers {
		entries, err := s.AccountDataSince(c, id.UserID(fmt.Sprintf("@user%02d:example.org", w)), 0)
		must(t, err)
		eq(t, "entries of a writer", len(entries), writes)
		for i, e := range entries {
			eq(t, "entry position", e.StreamPos, positions[w][i])
		}
	}
}

// testConcurrentReadsWrites runs readers against writers; with -race it
// also checks the store is safe for concurrent use.
func testConcurrentReadsWrites(t *testing.T, s storage.Store) {
	c := ctx(t)
	newAccount(s, t, alice)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 4 {
		wg.Go(func() {
			for i := range 15 {
				dev := id.DeviceID(fmt.Sprintf("W%dD%d", w, i))
				if err := s.UpsertDevice(c, &storage.Device{UserID: alice, DeviceID: dev, CreatedAt: int64(i)}); err != nil {
					errs <- err
					return
				}
				if err := s.WithTx(c, func(c context.Context) error {
					return s.SetDeviceDisplayName(c, alice, dev, "n")
				}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for range 15 {
				if _, err := s.ListDevices(c, alice); err != nil {
					errs <- err
					return
				}
				if _, err := s.GetAccount(c, alice); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	list, err := s.ListDevices(c, alice)
	must(t, err)
	eq(t, "devices", len(list), 60)
	for _, d := range list {
		eq(t, "display name of "+d.DeviceID.String(), d.DisplayName, "n")
	}
}
