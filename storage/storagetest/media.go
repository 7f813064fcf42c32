package storagetest

import (
	"fmt"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

// Media records as the admin API lists, deletes, quarantines and protects
// them.
func testMediaAdmin(t *testing.T, s storage.Store) {
	c := ctx(t)
	userID := func(local string) id.UserID { return id.UserID("@" + local + ":example.org") }
	put := func(id string, user string, size, created int64, sha string) {
		t.Helper()
		must(t, s.CreateMedia(c, &storage.Media{MediaID: id, UserID: userID(user), ContentType: "image/png", UploadName: id + ".png",
			Size: size, SHA256: sha, CreatedAt: created}))
	}
	put("m1", "alice", 100, 10, "sha-a")
	put("m2", "alice", 300, 20, "sha-b")
	put("m3", "bob", 200, 30, "sha-a") // the same content as m1
	// A cached copy of another server's media, fetched at a real time:
	// not this server's, in no local list or usage.
	must(t, s.CreateMedia(c, &storage.Media{MediaID: "remote/elsewhere.example/r1", ContentType: "image/png", Size: 500,
		SHA256: "sha-r", CreatedAt: 1_700_000_000_000}))
	must(t, s.CreateMedia(c, &storage.Media{MediaID: "pending", UserID: userID("bob"), CreatedAt: 40, PendingUntil: 99}))
	must(t, s.PutThumbnail(c, &storage.Thumbnail{MediaID: "m2", Width: 32, Height: 32, Method: "scale", ContentType: "image/png",
		Size: 10, SHA256: "sha-t"}))
	ids := func(ms []*storage.Media) string {
		var out []string
		for _, m := range ms {
			out = append(out, m.MediaID)
		}
		return fmt.Sprint(out)
	}
	ms, total, err := s.ListMedia(c, storage.MediaQuery{UserID: userID("alice"), OrderBy: "media_length", Desc: true})
	must(t, err)
	eq(t, "alice's media by size, largest first", ids(ms)+fmt.Sprint(total), "[m2 m1]2")
	ms, total, err = s.ListMedia(c, storage.MediaQuery{BeforeTS: 30, SizeGT: 150})
	must(t, err)
	eq(t, "media before 30 larger than 150", ids(ms)+fmt.Sprint(total), "[m2]1")
	ms, total, err = s.ListMedia(c, storage.MediaQuery{Remote: true, BeforeTS: 1_800_000_000_000})
	must(t, err)
	eq(t, "remote media fetched before a time", ids(ms)+fmt.Sprint(total), "[remote/elsewhere.example/r1]1")
	ms, total, err = s.ListMedia(c, storage.MediaQuery{Remote: true, BeforeTS: 1_600_000_000_000})
	must(t, err)
	eq(t, "remote media fetched before an earlier time", ids(ms)+fmt.Sprint(total), "[]0")
	ms, total, err = s.ListMedia(c, storage.MediaQuery{BeforeTS: 1_800_000_000_000})
	must(t, err)
	eq(t, "local media before a time", ids(ms)+fmt.Sprint(total), "[m1 m2 m3]3")
	ms, total, err = s.ListMedia(c, storage.MediaQuery{Offset: 1, Limit: 1})
	must(t, err)
	eq(t, "everyone's, second page of one (pending uploads left out)", ids(ms)+fmt.Sprint(total), "[m2]3")

	usage, n, err := s.MediaUsageByUser(c, 0, 10)
	must(t, err)
	eq(t, "usage", fmt.Sprint(usage, n), fmt.Sprint([]storage.MediaUsage{{UserID: userID("alice"), Count: 2, Bytes: 400},
		{UserID: userID("bob"), Count: 1, Bytes: 200}}, 2))

	// Protected media escape quarantine.
	must(t, s.ProtectMedia(c, "m3", true))
	q, err := s.QuarantineMedia(c, []string{"m1", "m3", "unknown"}, userID("admin"))
	must(t, err)
	eq(t, "quarantined", q, 1)
	m, err := s.GetMedia(c, "m1")
	must(t, err)
	eq(t, "m1 quarantined by", m.QuarantinedBy, userID("admin"))
	m, err = s.GetMedia(c, "m3")
	must(t, err)
	eq(t, "m3 protected, not quarantined", fmt.Sprintf("%v/%q", m.Protected, m.QuarantinedBy), `true/""`)
	q, err = s.QuarantineMedia(c, []string{"m1"}, "")
	must(t, err)
	eq(t, "released", q, 1)
	wantErr(t, s.ProtectMedia(c, "unknown", true), storage.ErrNotFound, "ProtectMedia of unknown media")

	// Deleting: content still used by another record stays.
	gone, err := s.DeleteMedia(c, []string{"m1", "m2", "unknown"})
	must(t, err)
	eq(t, "unreferenced contents", fmt.Sprint(gone), "[sha-b sha-t]")
	_, err = s.GetMedia(c, "m2")
	wantErr(t, err, storage.ErrNotFound, "GetMedia of deleted media")
	th, err := s.Thumbnails(c, "m2")
	must(t, err)
	eq(t, "thumbnails of deleted media", len(th), 0)
	gone, err = s.DeleteMedia(c, []string{"m3"})
	must(t, err)
	eq(t, "the last record of sha-a", fmt.Sprint(gone), "[sha-a]")
}
