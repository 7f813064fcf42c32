package keys

import (
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

func TestPlaceUpdate(t *testing.T) {
	list := func(streamID int64, stale bool) *storage.RemoteDeviceList {
		return &storage.RemoteDeviceList{StreamID: streamID, Stale: stale}
	}
	for _, tc := range []struct {
		name          string
		l             *storage.RemoteDeviceList
		streamID      int64
		prev          []int64
		seen, applies bool
	}{
		{"no list", nil, 5, []int64{4}, false, false},
		{"a list without a stream ID", list(0, false), 5, []int64{4}, false, false},
		{"a stale list", list(4, true), 5, []int64{4}, false, false},
		{"the next update", list(4, false), 5, []int64{4}, false, true},
		{"an update after one the snapshot holds", list(10, false), 15, []int64{7}, false, true},
		{"two prev IDs, both held", list(10, false), 15, []int64{9, 10}, false, true},
		{"a lost update", list(4, false), 7, []int64{6}, false, false},
		{"one of two prev IDs lost", list(10, false), 15, []int64{10, 12}, false, false},
		{"no prev_id", list(4, false), 5, nil, false, false},
		{"a retried update", list(5, false), 5, []int64{4}, true, false},
		{"an older update", list(9, false), 5, []int64{4}, true, false},
	} {
		seen, applies := placeUpdate(tc.l, tc.streamID, tc.prev)
		if seen != tc.seen || applies != tc.applies {
			t.Errorf("%s: seen %v applies %v, want %v %v", tc.name, seen, applies, tc.seen, tc.applies)
		}
	}
}

func TestCheckRemoteKey(t *testing.T) {
	for _, tc := range []struct {
		name   string
		raw    string
		device string
		ok     bool
	}{
		{"device keys", `{"user_id":"@c:x","device_id":"D","keys":{}}`, "D", true},
		{"another device's", `{"user_id":"@c:x","device_id":"E"}`, "D", false},
		{"another user's", `{"user_id":"@m:x","device_id":"D"}`, "D", false},
		{"a cross-signing key", `{"user_id":"@c:x","usage":["master"]}`, "", true},
		{"not an object", `["@c:x"]`, "", false},
		{"not JSON", `{"user_id":"@c:x"`, "", false},
	} {
		if got := checkRemoteKey(json.RawMessage(tc.raw), "@c:x", id.DeviceID(tc.device)); got != tc.ok {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.ok)
		}
	}
}
