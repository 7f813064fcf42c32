package e2efed

import (
	"bytes"
	"net/http"
	"testing"

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
