package keys

import (
	"encoding/json"
	"testing"

	"github.com/tributary-hs/tributary/storage"
)

func TestBetterBackupKey(t *testing.T) {
	k := func(verified bool, fmi, fc int64) *storage.BackupKey {
		return &storage.BackupKey{IsVerified: verified, FirstMessageIndex: fmi, ForwardedCount: fc}
	}
	for _, tc := range []struct {
		name     string
		new, old *storage.BackupKey
		want     bool
	}{
		{"verified beats unverified", k(true, 9, 9), k(false, 0, 0), true},
		{"unverified never beats verified", k(false, 0, 0), k(true, 9, 9), false},
		{"lower index", k(false, 1, 5), k(false, 2, 0), true},
		{"higher index", k(false, 3, 0), k(false, 2, 5), false},
		{"fewer forwards", k(true, 2, 0), k(true, 2, 1), true},
		{"more forwards", k(true, 2, 2), k(true, 2, 1), false},
		{"equal keeps the stored one", k(true, 2, 1), k(true, 2, 1), false},
	} {
		if got := better(tc.new, tc.old); got != tc.want {
			t.Errorf("%s: better = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSameKey(t *testing.T) {
	a := json.RawMessage(`{"user_id":"@a:x","keys":{"ed25519:K":"K"},"signatures":{"@a:x":{"ed25519:D":"s1"}},"unsigned":{"n":1}}`)
	b := json.RawMessage(`{ "keys": {"ed25519:K": "K"}, "user_id": "@a:x", "signatures": {"@b:x": {"ed25519:E": "s2"}} }`)
	c := json.RawMessage(`{"user_id":"@a:x","keys":{"ed25519:K":"L"}}`)
	if !sameKey(a, b) {
		t.Error("the same key with other signatures and layout is not the same")
	}
	if sameKey(a, c) {
		t.Error("different keys are the same")
	}
	if sameKey(a, json.RawMessage(`[]`)) {
		t.Error("not an object is the same")
	}
}

func TestParseKeyMap(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys map[string]json.RawMessage
		ok   bool
	}{
		{"unsigned curve25519", map[string]json.RawMessage{"curve25519:A": json.RawMessage(`"key"`)}, true},
		{"no colon", map[string]json.RawMessage{"curve25519": json.RawMessage(`"key"`)}, false},
		{"empty key ID", map[string]json.RawMessage{"curve25519:": json.RawMessage(`"key"`)}, false},
		{"signed as a string", map[string]json.RawMessage{"signed_curve25519:A": json.RawMessage(`"key"`)}, false},
		{"object without key", map[string]json.RawMessage{"other:A": json.RawMessage(`{"x":1}`)}, false},
		{"number", map[string]json.RawMessage{"other:A": json.RawMessage(`5`)}, false},
		{"signed without device key", map[string]json.RawMessage{"signed_curve25519:A": json.RawMessage(`{"key":"k"}`)}, false},
	} {
		_, err := parseKeyMap(tc.keys, "@a:x", "D", "", "one_time_keys")
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
