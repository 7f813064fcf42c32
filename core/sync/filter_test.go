package sync

import (
	"testing"

	"github.com/tributary-hs/tributary/core/types"
)

// Lists of room and user IDs in a filter must hold room and user IDs
// (Synapse's filter schema); any server's users may be named.
func TestParseFilterIDs(t *testing.T) {
	for _, ok := range []string{
		`{}`,
		`{"room":{"rooms":["!a:localhost"],"not_rooms":[],"timeline":{"senders":["@b:remote.example","@OLD=name:remote.example"]}}}`,
		`{"presence":{"not_senders":["@c:localhost"]},"account_data":{"types":["m.x"]}}`,
		`{"room":{"state":{"rooms":["!opaque"],"not_senders":["@d:[::1]:8448"]}}}`,
	} {
		if _, err := ParseFilter([]byte(ok)); err != nil {
			t.Errorf("ParseFilter(%s): %v", ok, err)
		}
	}
	for _, bad := range []string{
		`{"room":{"rooms":"!a:localhost"}}`,
		`{"room":{"rooms":[""]}}`,
		`{"room":{"not_rooms":["#alias:localhost"]}}`,
		`{"room":{"timeline":{"rooms":[1]}}}`,
		`{"room":{"ephemeral":{"senders":["alice"]}}}`,
		`{"room":{"account_data":{"not_senders":["@:localhost"]}}}`,
		`{"room":{"state":{"senders":["@a b:localhost"]}}}`,
		`{"presence":{"senders":["@a"]}}`,
		`{"account_data":{"senders":{}}}`,
	} {
		_, err := ParseFilter([]byte(bad))
		if me, ok := types.AsError(err); !ok || me.Code != types.CodeBadJSON || me.Status != 400 {
			t.Errorf("ParseFilter(%s): %v, want 400 M_BAD_JSON", bad, err)
		}
	}
}
