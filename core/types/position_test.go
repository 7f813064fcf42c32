package types

import "testing"

func TestParsePosition(t *testing.T) {
	for _, tc := range []struct {
		in       string
		negative bool
		want     int64
		ok       bool
	}{
		{"0", false, 0, true},
		{"12", false, 12, true},
		{"1795000000000", false, 1795000000000, true},
		{"9007199254740991", false, MaxPosition, true},
		{"-5", true, -5, true},
		{"-9007199254740991", true, -MaxPosition, true},
		{"9007199254740992", false, 0, false},
		{"9223372036854775807", false, 0, false},
		{"99999999999999999999", false, 0, false},
		{"-5", false, 0, false},
		{"-0", true, 0, false},
		{"-", true, 0, false},
		{"", false, 0, false},
		{"+5", false, 0, false},
		{"05", false, 0, false},
		{"5x", false, 0, false},
		{"5 ", false, 0, false},
		{" 5", false, 0, false},
		{"0x1", false, 0, false},
		{"1e3", false, 0, false},
		{"٣", false, 0, false},
	} {
		got, ok := ParsePosition(tc.in, tc.negative)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParsePosition(%q, %v) = %d, %v; want %d, %v", tc.in, tc.negative, got, ok, tc.want, tc.ok)
		}
	}
}
