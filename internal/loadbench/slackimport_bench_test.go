package loadbench

import (
	"path/filepath"
	"testing"

	"github.com/tributary-hs/tributary/internal/slackexport"
)

// BenchmarkSlackImport measures `tributary import slack` of a generated
// export into a stopped server's fresh data: messages per second from the
// command's start (checking the archive, building the rooms, ghosts and
// history) to its end. 20,000 messages by default;
// TRIBUTARY_BENCH_SLACK_MESSAGES=1000000 for the goal (≥ 20,000
// messages/s on SQLite).
func BenchmarkSlackImport(b *testing.B) {
	export := filepath.Join(b.TempDir(), "export.zip")
	m, err := slackexport.WriteFile(export, slackexport.Options{Seed: 1,
		Messages: importMessages("TRIBUTARY_BENCH_SLACK_MESSAGES"), Users: 200, Channels: 20, Private: 6, DMs: 30, MPIMs: 4})
	if err != nil {
		b.Fatal(err)
	}
	benchImport(b, m.Messages, "import", "slack", export, "--no-avatars")
}
