package rooms

import (
	"reflect"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/push"
	"github.com/tributary-hs/tributary/storage"
)

// TestPushRows: most members notified gives a default and a row for each
// member who differs (not notified, highlighted, ignoring the sender);
// most not notified gives a row per notified member.
func TestPushRows(t *testing.T) {
	const sender, a, b, c, d, e, f = id.UserID("@s:x"), id.UserID("@a:x"), id.UserID("@b:x"), id.UserID("@c:x"),
		id.UserID("@d:x"), id.UserID("@e:x"), id.UserID("@f:x")
	users := []id.UserID{a, sender, b, c, d, f}
	def, rows := pushRows(users, []id.UserID{e}, []push.Outcome{{User: a, Notify: true},
		{User: c, Notify: true, Highlight: true}, {User: d, Notify: true}, {User: f, Notify: true}}, sender, "main")
	if def == nil || def.ThreadID != "main" || def.Highlight {
		t.Fatalf("default: %+v", def)
	}
	want := []storage.PushAction{{UserID: b, ThreadID: "main", Silent: true}, {UserID: c, ThreadID: "main", Highlight: true},
		{UserID: e, ThreadID: "main", Silent: true}}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("rows:\n got %+v\nwant %+v", rows, want)
	}

	def, rows = pushRows(users, nil, []push.Outcome{{User: c, Notify: true, Highlight: true}, {User: d, Notify: true}}, sender, "$root")
	want = []storage.PushAction{{UserID: c, ThreadID: "$root", Highlight: true}, {UserID: d, ThreadID: "$root"}}
	if def != nil || !reflect.DeepEqual(rows, want) {
		t.Fatalf("few notified: default %+v, rows %+v", def, rows)
	}
}
