package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/tributary-hs/tributary/internal/testserver"
)

// rooms.default_version sets the version of rooms created without one
// (12 by default, as the spec recommends) and what /capabilities says;
// a version the server cannot make stops it at start.
func TestDefaultRoomVersionSetting(t *testing.T) {
	srv := startOpen(t)
	alice := register(t, srv, "alice", defaultPassword)
	caps, err := alice.Capabilities(t.Context())
	if err != nil || caps.RoomVersions == nil || caps.RoomVersions.Default != "12" {
		t.Fatalf("default capabilities: %+v %v", caps.RoomVersions, err)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tributary.yaml"), []byte("rooms:\n  default_version: \"10\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := testserver.Start(t, testserver.Options{DataDir: dir, Args: openArgs})
	bob := register(t, old, "bob", defaultPassword)
	caps, err = bob.Capabilities(t.Context())
	if err != nil || caps.RoomVersions == nil || caps.RoomVersions.Default != "10" {
		t.Fatalf("capabilities with default_version 10: %+v %v", caps.RoomVersions, err)
	}
	room, err := bob.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{})
	if err != nil {
		t.Fatal(err)
	}
	var create event.CreateEventContent
	if err := bob.StateEvent(t.Context(), room.RoomID, event.StateCreate, "", &create); err != nil {
		t.Fatal(err)
	}
	if create.RoomVersion != "10" {
		t.Fatalf("room version %q, want 10", create.RoomVersion)
	}
	// Naming one still wins.
	room, err = bob.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{RoomVersion: "12"})
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.StateEvent(t.Context(), room.RoomID, event.StateCreate, "", &create); err != nil || create.RoomVersion != "12" {
		t.Fatalf("room version %q (%v), want 12", create.RoomVersion, err)
	}

	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "tributary.yaml"), []byte("rooms:\n  default_version: \"99\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(testserver.Binary(t), "serve", "--data-dir", bad, "--listen", "127.0.0.1:0",
		"--server-name", "localhost").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "99") {
		t.Fatalf("serve with default_version 99: %v\n%s", err, out)
	}
}
