package registry

import (
	"testing"

	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"
)

// A silent registration (an import's identity) owns its namespace — it is
// exclusive — but no event is said to concern it, so none is queued for it.
func TestSilent(t *testing.T) {
	reg := func(asID, prefix string) *appservice.Registration {
		return &appservice.Registration{ID: asID, AppToken: asID + "-as", ServerToken: asID + "-hs", SenderLocalpart: asID + "bot",
			Namespaces: appservice.Namespaces{UserIDs: []appservice.Namespace{{Regex: "@" + prefix + ".*:hs", Exclusive: true}}}}
	}
	r, err := LoadWith(nil, "hs", []Internal{{Source: "a", Reg: reg("loud", "loud_")},
		{Source: "b", Reg: reg("quiet", "quiet_"), Silent: true}})
	if err != nil {
		t.Fatal(err)
	}
	if as := r.ExclusiveUser(id.UserID("@quiet_x:hs")); as == nil || as.Reg.ID != "quiet" {
		t.Fatalf("the silent namespace is not exclusive: %v", as)
	}
	if !r.OwnsUser("quiet", "@quiet_x:hs") {
		t.Fatal("the silent appservice does not own its ghost")
	}
	if got := r.Owners("@quiet_x:hs"); len(got) != 0 {
		t.Fatalf("events of a silent appservice's ghost concern %v", got)
	}
	if got := r.Owners("@loud_x:hs"); len(got) != 1 || got[0] != "loud" {
		t.Fatalf("owners of a ghost: %v", got)
	}
}
