package loadbench

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/tributary-hs/tributary/internal/discordexport"
	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// BenchmarkDiscordImport measures `tributary import discord` of a generated
// DiscordChatExporter export into a stopped server's fresh data: messages
// per second from the command's start (checking the files, building the
// space, rooms, ghosts and history) to its end. Files are not downloaded
// (--no-download: they stay links). 20,000 messages by default;
// TRIBUTARY_BENCH_DISCORD_MESSAGES=1000000 for the goal (≥ 20,000
// messages/s on SQLite).
func BenchmarkDiscordImport(b *testing.B) {
	n := 20_000
	if s := os.Getenv("TRIBUTARY_BENCH_DISCORD_MESSAGES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	export := filepath.Join(b.TempDir(), "export")
	m, err := discordexport.WriteDir(export, discordexport.Options{Seed: 1, Messages: n, Users: 200, Channels: 20,
		Categories: 4, Threads: 40, DMs: 10})
	if err != nil {
		b.Fatal(err)
	}
	summary := regexp.MustCompile(`Imported (\d+) messages \((\d+) events\)`)
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			var args []string
			for range b.N {
				b.StopTimer()
				dir := b.TempDir()
				if db == "postgres" {
					args = []string{"--database-url", pgtest.URL(b)}
				}
				b.StartTimer()
				start := time.Now()
				out, err := testserver.RunCLI(b, dir, "localhost", "", nil,
					append([]string{"import", "discord", export, "--no-download"}, args...)...)
				took := time.Since(start)
				if err != nil {
					b.Fatalf("import: %v\n%s", err, out)
				}
				got := summary.FindStringSubmatch(out)
				if got == nil || got[1] != strconv.Itoa(m.Messages) {
					b.Fatalf("imported what?\n%s", out)
				}
				events, _ := strconv.Atoi(got[2])
				b.ReportMetric(float64(m.Messages)/took.Seconds(), "msgs/s")
				b.ReportMetric(float64(events)/took.Seconds(), "events/s")
			}
		})
	}
}
