package rooms

import (
	"encoding/json"
	"reflect"
	"testing"

	"maunium.net/go/mautrix/id"
)

// rewriteRefs swaps the references an appservice made through its aliases
// for the real events, by bytes where it can and by decoding where the
// bytes do not say it plainly; the content means the same either way.
func TestRewriteRefs(t *testing.T) {
	m := map[id.EventID]id.EventID{"$root:b": "$REAL_ROOT", "$last:b": "$REAL_LAST"}
	for _, tc := range []struct{ name, in, want string }{
		{"a reaction", `{"m.relates_to":{"rel_type":"m.annotation","event_id":"$root:b","key":"x"}}`,
			`{"m.relates_to":{"rel_type":"m.annotation","event_id":"$REAL_ROOT","key":"x"}}`},
		{"a thread's first reply names the root twice",
			`{"body":"hi","m.relates_to":{"rel_type":"m.thread","event_id":"$root:b","m.in_reply_to":{"event_id":"$root:b"}}}`,
			`{"body":"hi","m.relates_to":{"rel_type":"m.thread","event_id":"$REAL_ROOT","m.in_reply_to":{"event_id":"$REAL_ROOT"}}}`},
		{"a later reply", `{"m.relates_to":{"rel_type":"m.thread","event_id":"$root:b","m.in_reply_to":{"event_id":"$last:b"}}}`,
			`{"m.relates_to":{"rel_type":"m.thread","event_id":"$REAL_ROOT","m.in_reply_to":{"event_id":"$REAL_LAST"}}}`},
		{"an escaped ID", `{"m.relates_to":{"event_id":"\u0024root:b"}}`, `{"m.relates_to":{"event_id":"$REAL_ROOT"}}`},
		{"the ID in the body too", `{"body":"\"$root:b\"","m.relates_to":{"event_id":"$root:b"}}`,
			`{"body":"\"$root:b\"","m.relates_to":{"event_id":"$REAL_ROOT"}}`},
		{"the ID as a key", `{"$root:b":1,"m.relates_to":{"event_id":"$root:b"}}`,
			`{"$root:b":1,"m.relates_to":{"event_id":"$REAL_ROOT"}}`},
		{"an unknown reference", `{"m.relates_to":{"event_id":"$other:b"}}`, `{"m.relates_to":{"event_id":"$other:b"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := rewriteRefs([]byte(tc.in), m)
			var a, b any
			if err := json.Unmarshal(got, &a); err != nil {
				t.Fatalf("%s: %v", got, err)
			}
			_ = json.Unmarshal([]byte(tc.want), &b)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}
