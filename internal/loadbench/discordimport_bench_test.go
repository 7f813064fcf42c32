package loadbench

import (
	"path/filepath"
	"testing"

	"github.com/tributary-hs/tributary/internal/discordexport"
)

// BenchmarkDiscordImport measures `tributary import discord` of a generated
// DiscordChatExporter export into a stopped server's fresh data: messages
// per second from the command's start (checking the files, building the
// space, rooms, ghosts and history) to its end. Files are not downloaded
// (--no-download: they stay links). 20,000 messages by default;
// TRIBUTARY_BENCH_DISCORD_MESSAGES=1000000 for the goal (≥ 20,000
// messages/s on SQLite).
func BenchmarkDiscordImport(b *testing.B) {
	export := filepath.Join(b.TempDir(), "export")
	m, err := discordexport.WriteDir(export, discordexport.Options{Seed: 1,
		Messages: importMessages("TRIBUTARY_BENCH_DISCORD_MESSAGES"), Users: 200, Channels: 20, Categories: 4, Threads: 40, DMs: 10})
	if err != nil {
		b.Fatal(err)
	}
	benchImport(b, m.Messages, "import", "discord", export, "--no-download")
}
