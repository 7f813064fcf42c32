package rooms

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix/federation"
	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/core/events"
	"github.com/tributary-hs/tributary/core/push"
	"github.com/tributary-hs/tributary/storage/sqlite"
)

// processCPU is the CPU time (user and system) the test process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSendOneRoom measures the room service's side of a send (no
// HTTP): 1 and 16 senders into one public room of 16 local members with
// push rules, on SQLite; CPU per send is of the whole process, the writer,
// signing, push rules and SQLite included.
func BenchmarkSendOneRoom(b *testing.B) {
	for _, senders := range []int{1, 16} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			ctx := context.Background()
			store, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "rooms.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { store.Close() })
			pusher, err := push.New(store, nil)
			if err != nil {
				b.Fatal(err)
			}
			s, err := New(store, Options{ServerName: "example.org", Pusher: pusher,
				Signer: events.NewSigner("example.org", federation.GenerateSigningKey())})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(s.Stop)
			users := make([]id.UserID, 16)
			for i := range users {
				users[i] = id.UserID(fmt.Sprintf("@user%d:example.org", i))
			}
			roomID, err := s.CreateRoom(ctx, &CreateRequest{Creator: users[0], Preset: "public_chat"})
			if err != nil {
				b.Fatal(err)
			}
			for _, u := range users[1:] {
				if _, err := s.ChangeMembership(ctx, &MembershipRequest{RoomID: roomID, Sender: u, Target: u, Membership: "join"}); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start, cpu0 := time.Now(), processCPU()
			for g := range senders {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						if _, err := s.Send(ctx, &SendRequest{RoomID: roomID, Sender: users[g], Type: "m.room.message",
							TxnID: fmt.Sprintf("t%d", i), Content: fmt.Appendf(nil, `{"msgtype":"m.text","body":"message %d"}`, i)}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed, cpu := time.Since(start), processCPU()-cpu0
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "sends/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "CPU-µs/send")
		})
	}
}
