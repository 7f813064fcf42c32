package keys

import "testing"

func TestCountCacheForgetsAndRefusesStaleReads(t *testing.T) {
	var c countCache
	_, epoch := c.get("@a:x", "D")
	c.put("@a:x", "D", epoch, func(e *deviceCounts) { e.otk = map[string]int64{"signed_curve25519": 5} })
	got, _ := c.get("@a:x", "D")
	if got.otk["signed_curve25519"] != 5 {
		t.Fatalf("cached %+v", got)
	}
	// A read that began before a change is not kept.
	_, stale := c.get("@a:x", "D")
	c.forget("@a:x", "D")
	c.put("@a:x", "D", stale, func(e *deviceCounts) { e.otk = map[string]int64{"signed_curve25519": 5} })
	if got, _ := c.get("@a:x", "D"); got.otk != nil {
		t.Fatalf("a stale read was kept: %+v", got)
	}
}
