package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// rssFileKiB is the process's resident file pages (/proc/self/status).
func rssFileKiB(t *testing.T) int {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// The pages of the binary that starting mapped leave the process's memory
// (the test binary's, here: it starts the same way), and the process goes
// on running from them.
func TestDropStartupPages(t *testing.T) {
	before := rssFileKiB(t)
	dropStartupPages()
	after := rssFileKiB(t)
	t.Logf("resident file pages: %d KiB before, %d KiB after", before, after)
	if after >= before/2 {
		t.Fatalf("resident file pages %d KiB after dropping, %d KiB before: not even half dropped", after, before)
	}
}
