package e2efed

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// alice of A downloads media bob uploaded on B: A fetches it once with the
// authenticated federation download (multipart/mixed) and keeps it; it is
// served from A afterwards, B gone. Media B does not have is a 404, media
// of a server that does not answer a 502; the legacy unauthenticated
// endpoint does not serve remote media.
func TestRemoteMediaDownload(t *testing.T) {
	a, b := start(t), start(t)
	ctx := t.Context()
	alice := register(t, a, "alice")
	bob := register(t, b, "bob")
	data := bytes.Repeat([]byte("tributary media "), 1000)
	up, err := bob.UploadBytesWithName(ctx, data, "text/plain", "notes.txt")
	if err != nil {
		t.Fatal(err)
	}
	get := func(what string) []byte {
		t.Helper()
		got, err := alice.DownloadBytes(ctx, up.ContentURI)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return got
	}
	if got := get("first download"); !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes, want %d", len(got), len(data))
	}
	_, err = alice.DownloadBytes(ctx, id.ContentURI{Homeserver: b.Opts.ServerName, FileID: "doesNotExist"})
	if httpErr, ok := err.(mautrix.HTTPError); !ok || httpErr.Response == nil || httpErr.Response.StatusCode != http.StatusNotFound {
		t.Fatalf("media B does not have: %v", err)
	}
	b.Kill()
	if got := get("download with B gone"); !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes from the cache, want %d", len(got), len(data))
	}
	_, err = alice.DownloadBytes(ctx, id.ContentURI{Homeserver: b.Opts.ServerName, FileID: "neverFetched"})
	if httpErr, ok := err.(mautrix.HTTPError); !ok || httpErr.Response == nil || httpErr.Response.StatusCode != http.StatusBadGateway {
		t.Fatalf("media of a server that is gone: %v", err)
	}
	code, _ := a.DoRaw(t, http.MethodGet, "/_matrix/media/v3/download/"+b.Opts.ServerName+"/"+up.ContentURI.FileID, "", nil)
	if code != http.StatusNotFound {
		t.Fatalf("legacy download of remote media: %d", code)
	}
}

// An admin of A purges A's cache of other servers' media
// (POST /_synapse/admin/v1/purge_media_cache): what was fetched before
// before_ts goes (a later one stays), so with B gone A has it no more;
// its own media stay. Non-admins are refused.
func TestAdminPurgeRemoteMediaCache(t *testing.T) {
	a, b := start(t), start(t)
	ctx := t.Context()
	if out, err := a.Run(t, "", "user", "add", "admin", "--password", "admin password", "--admin"); err != nil {
		t.Fatalf("user add admin: %v\n%s", err, out)
	}
	res, err := a.Client(t).Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, Password: "admin password",
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "admin"}})
	if err != nil {
		t.Fatal(err)
	}
	alice := register(t, a, "alice")
	bob := register(t, b, "bob")
	own, err := alice.UploadBytesWithName(ctx, []byte("alice's own"), "text/plain", "own.txt")
	if err != nil {
		t.Fatal(err)
	}
	up, err := bob.UploadBytesWithName(ctx, []byte("bob's media"), "text/plain", "bob.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.DownloadBytes(ctx, up.ContentURI); err != nil {
		t.Fatal(err)
	}
	purge := func(token string, before int64) (int, map[string]any) {
		t.Helper()
		st, body := a.DoRaw(t, "POST", fmt.Sprintf("/_synapse/admin/v1/purge_media_cache?before_ts=%d", before), token, nil)
		var out map[string]any
		_ = json.Unmarshal(body, &out)
		return st, out
	}
	if st, body := purge(alice.AccessToken, time.Now().Add(time.Hour).UnixMilli()); st != http.StatusForbidden || body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("a non-admin: %d %v", st, body)
	}
	if st, body := purge(res.AccessToken, 1); st != http.StatusOK || body["deleted"] != float64(0) {
		t.Fatalf("nothing fetched before 1970: %d %v", st, body)
	}
	if st, body := purge(res.AccessToken, time.Now().Add(time.Hour).UnixMilli()); st != http.StatusOK || body["deleted"] != float64(1) {
		t.Fatalf("purge everything fetched until now: %d %v", st, body)
	}
	b.Kill()
	_, err = alice.DownloadBytes(ctx, up.ContentURI)
	if httpErr, ok := err.(mautrix.HTTPError); !ok || httpErr.Response == nil || httpErr.Response.StatusCode != http.StatusBadGateway {
		t.Fatalf("the purged media with B gone: %v", err)
	}
	if got, err := alice.DownloadBytes(ctx, own.ContentURI); err != nil || string(got) != "alice's own" {
		t.Fatalf("local media after the purge: %q %v", got, err)
	}
}
