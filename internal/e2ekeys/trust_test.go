//go:build goolm

package e2ekeys

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestCrossSigningVerification: alice and bob publish cross-signing keys
// with the crypto package, alice signs her device, bob signs alice's master
// key; a fresh device of bob, knowing only what the server says, trusts
// alice and her device.
func TestCrossSigningVerification(t *testing.T) {
	srv := start(t)
	alice := newIdleE2EEClient(t, register(t, srv, "alice"))
	bob := newIdleE2EEClient(t, register(t, srv, "bob"))
	ctx := t.Context()
	noUIA := func(*mautrix.RespUserInteractive) any {
		t.Fatal("the first upload of cross-signing keys asked for UIA")
		return nil
	}
	for _, c := range []*e2eeClient{alice, bob} {
		keys, err := c.mach.GenerateCrossSigningKeys()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.mach.PublishCrossSigningKeys(ctx, keys, noUIA); err != nil {
			t.Fatalf("%s publishes cross-signing keys: %v", c.cli.UserID, err)
		}
		if err := c.mach.SignOwnDevice(ctx, c.mach.OwnIdentity()); err != nil {
			t.Fatalf("%s signs their device: %v", c.cli.UserID, err)
		}
	}
	aliceMaster := alice.mach.CrossSigningKeys.MasterKey.PublicKey()
	// Bob fetches alice's keys from the server and signs her master key.
	if _, err := bob.mach.FetchKeys(ctx, []id.UserID{alice.cli.UserID}, true); err != nil {
		t.Fatal(err)
	}
	pub, err := bob.mach.GetCrossSigningPublicKeys(ctx, alice.cli.UserID)
	if err != nil || pub == nil || pub.MasterKey != aliceMaster {
		t.Fatalf("bob's view of alice's master key: %+v, %v", pub, err)
	}
	if err := bob.mach.SignUser(ctx, alice.cli.UserID, aliceMaster); err != nil {
		t.Fatalf("bob signs alice: %v", err)
	}

	// A new device of bob learns everything from the server.
	bob2 := newIdleE2EEClient(t, login(t, srv, "bob"))
	// The new device has bob's cross-signing private keys, as after
	// restoring them from secret storage: since mautrix v0.33 a device
	// trusts other users only once it trusts its own master key.
	bob2.mach.CrossSigningKeys = bob.mach.CrossSigningKeys
	if _, err := bob2.mach.FetchKeys(ctx, []id.UserID{bob.cli.UserID}, true); err != nil {
		t.Fatal(err)
	}
	devs, err := bob2.mach.FetchKeys(ctx, []id.UserID{alice.cli.UserID}, true)
	if err != nil {
		t.Fatal(err)
	}
	trusted, err := bob2.mach.IsUserTrusted(ctx, alice.cli.UserID)
	if err != nil || !trusted {
		t.Fatalf("bob's new device does not trust alice: %v", err)
	}
	dev := devs[alice.cli.UserID][alice.cli.DeviceID]
	if dev == nil {
		t.Fatalf("alice's device missing from %v", devs)
	}
	if trust, err := bob2.mach.ResolveTrustContext(ctx, dev); err != nil || trust < id.TrustStateCrossSignedUntrusted {
		t.Fatalf("alice's device trust %s (%v), want cross-signed", trust, err)
	}
	// Bob's own first device is cross-signed for his new one too.
	bobDev, err := bob2.mach.GetOrFetchDevice(ctx, bob.cli.UserID, bob.cli.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if trust, err := bob2.mach.ResolveTrustContext(ctx, bobDev); err != nil || trust < id.TrustStateCrossSignedUntrusted {
		t.Fatalf("bob's first device trust %s (%v), want cross-signed", trust, err)
	}
}

// TestBackupRestore: alice backs up the Megolm session of a message; her
// third device restores it from the backup and decrypts the history.
func TestBackupRestore(t *testing.T) {
	srv := start(t)
	alice := newE2EEClient(t, register(t, srv, "alice"))
	bob := newE2EEClient(t, register(t, srv, "bob"))
	ctx := t.Context()
	room := encryptedRoom(t, alice, bob)
	eventID := alice.send(t, room, "history to restore")
	bob.message(t, room, "history to restore")

	// Alice's backup: a new version with her backup public key, and the
	// inbound copy of her own outbound session, encrypted to it.
	backupKey, err := backup.NewMegolmBackupKey()
	if err != nil {
		t.Fatal(err)
	}
	pubKey := id.Ed25519(base64.RawStdEncoding.EncodeToString(backupKey.PublicKey().Bytes()))
	created, err := alice.cli.CreateKeyBackupVersion(ctx, &mautrix.ReqRoomKeysVersionCreate[backup.MegolmAuthData]{
		Algorithm: id.KeyBackupAlgorithmMegolmBackupV1, AuthData: backup.MegolmAuthData{PublicKey: pubKey}})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := alice.cli.GetEvent(ctx, room, eventID)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Content.ParseRaw(raw.Type); err != nil {
		t.Fatal(err)
	}
	enc := raw.Content.AsEncrypted()
	igs, err := alice.mach.CryptoStore.GetGroupSession(ctx, room, enc.SessionID)
	if err != nil || igs == nil {
		t.Fatalf("alice's inbound copy of her session: %v", err)
	}
	first := igs.Internal.FirstKnownIndex()
	exported, err := igs.Internal.Export(first)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := backup.EncryptSessionData(backupKey, backup.MegolmSessionData{Algorithm: id.AlgorithmMegolmV1,
		ForwardingKeyChain: []string{}, SenderClaimedKeys: backup.SenderClaimedKeys{Ed25519: igs.SigningKey},
		SenderKey: igs.SenderKey, SessionKey: string(exported)})
	if err != nil {
		t.Fatal(err)
	}
	sealedJSON, err := json.Marshal(sealed)
	if err != nil {
		t.Fatal(err)
	}
	upd, err := alice.cli.PutKeysInBackupForRoomAndSession(ctx, created.Version, room, enc.SessionID, &mautrix.ReqKeyBackupData{
		FirstMessageIndex: int(first), IsVerified: true, SessionData: sealedJSON})
	if err != nil || upd.Count != 1 {
		t.Fatalf("backing up: %+v %v", upd, err)
	}

	// Alice's third device (after bob's and her first) restores and decrypts.
	alice3 := newE2EEClient(t, login(t, srv, "alice"))
	version, err := alice3.mach.DownloadAndStoreLatestKeyBackup(alice3.cli.Log.WithContext(ctx), backupKey)
	if err != nil || version != created.Version {
		t.Fatalf("restore: version %q, %v", version, err)
	}
	hist, err := alice3.cli.GetEvent(ctx, room, eventID)
	if err != nil {
		t.Fatal(err)
	}
	if err := hist.Content.ParseRaw(hist.Type); err != nil {
		t.Fatal(err)
	}
	dec, err := alice3.mach.DecryptMegolmEvent(ctx, hist)
	if err != nil {
		t.Fatalf("decrypting history with the restored key: %v", err)
	}
	if dec.Type != event.EventMessage {
		t.Fatalf("decrypted type %s", dec.Type)
	}
	_ = dec.Content.ParseRaw(dec.Type) // usually parsed already
	if body := dec.Content.AsMessage().Body; body != "history to restore" {
		t.Fatalf("decrypted %q", body)
	}
}
