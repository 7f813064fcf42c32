package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// Media administration: list a user's media, usage per user, quarantine
// (served to nobody; protected media escape it), delete one, delete old
// media (the stored content goes when nothing else refers to it).
func TestAdminMedia(t *testing.T) {
	srv := startOpen(t)
	adm := adminClient(t, srv)
	tok := adm.Client.AccessToken
	ctx := t.Context()
	alice := register(t, srv, "alice", defaultPassword)
	bob := register(t, srv, "bob", defaultPassword)
	upload := func(cli *mautrix.Client, content string) id.ContentURI {
		t.Helper()
		resp, err := cli.UploadBytesWithName(ctx, []byte(content), "text/plain", "file.txt")
		if err != nil {
			t.Fatal(err)
		}
		return resp.ContentURI
	}
	download := func(uri id.ContentURI) int {
		t.Helper()
		st, _ := srv.DoRaw(t, "GET", "/_matrix/client/v1/media/download/"+uri.Homeserver+"/"+uri.FileID, alice.AccessToken, nil)
		return st
	}
	stored := func(content string) bool {
		sum := sha256.Sum256([]byte(content))
		sha := hex.EncodeToString(sum[:])
		_, err := os.Stat(filepath.Join(srv.DataDir, "media", sha[:2], sha[2:4], sha))
		return err == nil
	}
	a, b := upload(alice, "alice's first"), upload(alice, "alice's second, longer")
	c := upload(bob, "bob's")

	st, body := srv.Do(t, "GET", "/_synapse/admin/v1/users/@alice:localhost/media?order_by=media_length&dir=b", tok, nil)
	wantStatus(t, "alice's media", st, body, http.StatusOK, "")
	list, _ := body["media"].([]any)
	if len(list) != 2 || body["total"] != float64(2) || list[0].(map[string]any)["media_id"] != b.FileID {
		t.Fatalf("alice's media, longest first: %v", body)
	}
	st, body = srv.Do(t, "GET", "/_synapse/admin/v1/statistics/users/media", tok, nil)
	wantStatus(t, "usage", st, body, http.StatusOK, "")
	if users, _ := body["users"].([]any); len(users) != 2 || users[0].(map[string]any)["user_id"] != "@alice:localhost" ||
		users[0].(map[string]any)["media_count"] != float64(2) {
		t.Fatalf("usage: %v", body)
	}

	// Quarantine.
	st, body = srv.Do(t, "POST", "/_synapse/admin/v1/media/quarantine/localhost/"+a.FileID, tok, map[string]any{})
	wantStatus(t, "quarantine", st, body, http.StatusOK, "")
	if got := download(a); got != http.StatusNotFound {
		t.Fatalf("download of quarantined media: %d", got)
	}
	st, body = srv.Do(t, "POST", "/_synapse/admin/v1/media/protect/"+c.FileID, tok, map[string]any{})
	wantStatus(t, "protect", st, body, http.StatusOK, "")
	st, body = srv.Do(t, "POST", "/_synapse/admin/v1/user/@bob:localhost/media/quarantine", tok, map[string]any{})
	wantStatus(t, "quarantine bob's", st, body, http.StatusOK, "")
	if body["num_quarantined"] != float64(0) || download(c) != http.StatusOK {
		t.Fatalf("bob's protected media was quarantined: %v", body)
	}
	st, body = srv.Do(t, "POST", "/_synapse/admin/v1/media/unquarantine/localhost/"+a.FileID, tok, map[string]any{})
	wantStatus(t, "unquarantine", st, body, http.StatusOK, "")
	if got := download(a); got != http.StatusOK {
		t.Fatalf("download after unquarantine: %d", got)
	}

	// Delete one: the record and its content.
	if !stored("alice's second, longer") {
		t.Fatal("the upload's content is not in the media store")
	}
	st, body = srv.Do(t, "DELETE", "/_synapse/admin/v1/media/localhost/"+b.FileID, tok, nil)
	wantStatus(t, "delete one", st, body, http.StatusOK, "")
	if download(b) != http.StatusNotFound || stored("alice's second, longer") {
		t.Fatal("deleted media is still served or stored")
	}
	st, body = srv.Do(t, "DELETE", "/_synapse/admin/v1/media/localhost/"+b.FileID, tok, nil)
	wantStatus(t, "delete it again", st, body, http.StatusNotFound, "M_NOT_FOUND")
	st, body = srv.Do(t, "DELETE", "/_synapse/admin/v1/media/elsewhere.example/abc", tok, nil)
	wantStatus(t, "remote media", st, body, http.StatusBadRequest, "M_INVALID_PARAM")

	// Delete old media: the protected stays.
	st, body = srv.Do(t, "POST", fmt.Sprintf("/_synapse/admin/v1/media/delete?before_ts=%d", time.Now().Add(time.Hour).UnixMilli()), tok, map[string]any{})
	wantStatus(t, "delete old", st, body, http.StatusOK, "")
	if deleted, _ := body["deleted_media"].([]any); len(deleted) != 1 || deleted[0] != a.FileID {
		t.Fatalf("deleted old media: %v", body)
	}
	if download(a) != http.StatusNotFound || download(c) != http.StatusOK {
		t.Fatal("after deleting old media")
	}
	st, body = srv.Do(t, "POST", "/_synapse/admin/v1/media/delete", tok, map[string]any{})
	wantStatus(t, "delete old without before_ts", st, body, http.StatusBadRequest, "M_MISSING_PARAM")
	for _, path := range []string{"/_synapse/admin/v1/users/@bob:localhost/media", "/_synapse/admin/v1/statistics/users/media"} {
		st, body = srv.Do(t, "GET", path, bob.AccessToken, nil)
		wantStatus(t, path+" by a non-admin", st, body, http.StatusForbidden, "M_FORBIDDEN")
	}
}
