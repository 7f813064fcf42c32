package inbound

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/ephemeral"
	"github.com/tributary-hs/tributary/core/keys"
)

// recorder is the Ephemeral and Keys of an API under test: it records
// what reaches it.
type recorder struct {
	Keys
	calls []string
}

func (r *recorder) SetTyping(context.Context, id.RoomID, id.UserID, bool, time.Duration) error {
	r.calls = append(r.calls, "typing")
	return nil
}

func (r *recorder) SetReceipt(context.Context, id.RoomID, id.UserID, string, id.EventID, string) error {
	r.calls = append(r.calls, "receipt")
	return nil
}

func (r *recorder) SetRemotePresence(_ context.Context, origin string, p *ephemeral.RemotePresence) error {
	r.calls = append(r.calls, "presence "+origin+" "+string(p.UserID))
	return nil
}

func (r *recorder) DeliverRemoteToDevice(_ context.Context, origin string, sender id.UserID, evType, messageID string,
	_ map[id.UserID]map[string]json.RawMessage) error {
	r.calls = append(r.calls, "to-device "+origin+" "+string(sender)+" "+evType+" "+messageID)
	return nil
}

func (r *recorder) RemoteDeviceListUpdate(_ context.Context, origin string, u *keys.DeviceListUpdate) error {
	r.calls = append(r.calls, "device "+origin+" "+string(u.UserID)+" "+string(u.DeviceID))
	return nil
}

func (r *recorder) RemoteSigningKeyUpdate(_ context.Context, origin string, user id.UserID, master, _ json.RawMessage) error {
	r.calls = append(r.calls, "signing "+origin+" "+string(user)+" "+string(master))
	return nil
}

// Each EDU type reaches its service with the origin (which checks that the
// origin owns the users); content of the wrong shape reaches nothing and
// fails nothing; unknown types are ignored.
func TestProcessEDU(t *testing.T) {
	for _, tc := range []struct {
		typ, content string
		want         []string
	}{
		{"m.presence", `{"push":[{"user_id":"@c:o","presence":"online","last_active_ago":5},{"user_id":"@d:o","presence":"offline"}]}`,
			[]string{"presence o @c:o", "presence o @d:o"}},
		{"m.presence", `{"push":null}`, nil},
		{"m.presence", `{"push":{"user_id":"@c:o"}}`, nil},
		{"m.presence", `[]`, nil},
		{"m.direct_to_device", `{"sender":"@c:o","type":"m.room_key_request","message_id":"m1","messages":{"@a:here":{"*":{}}}}`,
			[]string{"to-device o @c:o m.room_key_request m1"}},
		{"m.direct_to_device", `{"sender":"@c:o","messages":[1]}`, nil},
		{"m.direct_to_device", `null`, nil},
		{"m.device_list_update", `{"user_id":"@c:o","device_id":"D","stream_id":3,"prev_id":[2],"keys":{"user_id":"@c:o"}}`,
			[]string{"device o @c:o D"}},
		{"m.device_list_update", `{"user_id":"@c:o","device_id":"D","stream_id":"3"}`, nil},
		{"m.device_list_update", `"x"`, nil},
		{"m.signing_key_update", `{"user_id":"@c:o","master_key":{"user_id":"@c:o"}}`,
			[]string{`signing o @c:o {"user_id":"@c:o"}`}},
		{"m.signing_key_update", `{"user_id":5}`, nil},
		{"org.example.unknown", `{"a":1}`, nil},
	} {
		rec := &recorder{}
		a := New(nil, nil, Options{Ephemeral: rec, Keys: rec})
		a.processEDU(t.Context(), "o", tc.typ, []byte(tc.content))
		if len(rec.calls) != len(tc.want) {
			t.Errorf("%s %s: calls %q, want %q", tc.typ, tc.content, rec.calls, tc.want)
			continue
		}
		for i := range tc.want {
			if rec.calls[i] != tc.want[i] {
				t.Errorf("%s %s: calls %q, want %q", tc.typ, tc.content, rec.calls, tc.want)
			}
		}
	}
	// Without the services, nothing is taken and nothing fails.
	New(nil, nil, Options{}).processEDU(t.Context(), "o", "m.presence", []byte(`{"push":[{"user_id":"@c:o"}]}`))
}
