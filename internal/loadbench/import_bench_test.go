package loadbench

import (
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/tributary-hs/tributary/internal/pgtest"
	"github.com/tributary-hs/tributary/internal/testserver"
)

// importMessages is how many messages an import benchmark's export holds:
// 20,000, or what the environment variable env says.
func importMessages(env string) int {
	n := 20_000
	if s := os.Getenv(env); s != "" {
		n, _ = strconv.Atoi(s)
	}
	return n
}

var importSummary = regexp.MustCompile(`Imported (\d+) messages \((\d+) events\)`)

// benchImport runs `tributary args…` (an import of an export of messages
// messages) into a stopped server's fresh data, on SQLite and on
// PostgreSQL, and reports messages and events per second from the
// command's start to its end.
func benchImport(b *testing.B, messages int, args ...string) {
	for _, db := range []string{"sqlite", "postgres"} {
		b.Run(db, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				dir := b.TempDir()
				run := args
				if db == "postgres" {
					run = append(append([]string{}, args...), "--database-url", pgtest.URL(b))
				}
				b.StartTimer()
				start := time.Now()
				out, err := testserver.RunCLI(b, dir, "localhost", "", nil, run...)
				took := time.Since(start)
				if err != nil {
					b.Fatalf("import: %v\n%s", err, out)
				}
				got := importSummary.FindStringSubmatch(out)
				if got == nil || got[1] != strconv.Itoa(messages) {
					b.Fatalf("imported what?\n%s", out)
				}
				events, _ := strconv.Atoi(got[2])
				b.ReportMetric(float64(messages)/took.Seconds(), "msgs/s")
				b.ReportMetric(float64(events)/took.Seconds(), "events/s")
			}
		})
	}
}
