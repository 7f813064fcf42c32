package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"time"
)

// The writer's commits append pages to the write-ahead log; a checkpoint
// copies them into the database file, with an fsync of the log before and
// of the database after. SQLite checkpoints in the commit that takes the
// log past wal_autocheckpoint, and that commit, and every send waiting
// behind it in its room, waits: in BenchmarkSendEvents/sqlite/senders=16
// a twelfth of the commits checkpointed, and their fsyncs (7 ms each at
// the median, 39 at worst) held the room's writer 17% of the time.
//
// The checkpointer copies the log on a connection of its own instead
// (PASSIVE: it never waits for the writer or readers, nor they for it),
// once the log holds checkpointPages not yet copied. Only the writer
// starts the log over from its beginning, when everything in it was
// copied as its transaction begins, and it then fsyncs the log's new
// header: one fsync in a commit for checkpointPages, where the commit
// that checkpointed had three and the copying. A writer that commits
// without pause may never find a background pass complete; it keeps an
// autocheckpoint, at a longer log, for that.

const (
	// checkpointPages is the backlog of the log that starts a pass,
	// writerCheckpointPages the writer's own autocheckpoint (256 MiB of
	// log), checkpointPoll how often the backlog is looked at.
	//
	// The writer's checkpoint, which starts the log over, holds its room's
	// sends for its fsyncs (12 ms at the median here): at 16,384 pages a
	// sustained load of 16 senders met one every ~0.9 s, 3% of the time;
	// at 65,536 a quarter as often (BenchmarkSendEvents/sqlite/
	// senders=16, four alternations: 3,227 → 3,357 events/s). Readers
	// look up only the part of the log not yet copied, so its length
	// costs them nothing; a restart after a crash reads it all once.
	checkpointPages       = 4000
	writerCheckpointPages = 65536
	checkpointPoll        = 250 * time.Millisecond
)

// checkpointer runs PASSIVE checkpoints in the background until closed.
type checkpointer struct {
	db    *sql.DB
	shm   *os.File
	pages int // the backlog that starts a pass
	// stop ends run, which closes done.
	stop context.CancelFunc
	done chan struct{}
}

// startCheckpointer checkpoints the database at path, through db (a
// connection of its own), whenever the log holds pages not yet copied.
func startCheckpointer(db *sql.DB, path string, pages int) (*checkpointer, error) {
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	// The writer has the database open in WAL mode: its index exists.
	shm, err := os.Open(path + "-shm")
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	c := &checkpointer{db: db, shm: shm, pages: pages, stop: stop, done: make(chan struct{})}
	go c.run(ctx)
	return c, nil
}

func (c *checkpointer) run(ctx context.Context) {
	defer close(c.done)
	ticker := time.NewTicker(checkpointPoll)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if n, err := c.backlog(); err != nil || n < c.pages {
			continue
		}
		if _, err := c.pass(ctx); err != nil && ctx.Err() == nil {
			slog.Warn("background checkpoint of the SQLite log", "error", err)
		}
	}
}

// backlog is how many pages of the log are not yet copied, from the
// header of the log's index (the -shm file, whose layout SQLite documents
// in walformat.html): mxFrame, the log's last frame, at offset 16 and
// nBackfill, the last one copied, at offset 96, in the machine's byte
// order. The read takes no lock: a torn read only moves a pass.
func (c *checkpointer) backlog() (int, error) {
	var b [100]byte
	if _, err := c.shm.ReadAt(b[:], 0); err != nil {
		return 0, err
	}
	last, copied := binary.NativeEndian.Uint32(b[16:20]), binary.NativeEndian.Uint32(b[96:100])
	if copied >= last {
		return 0, nil
	}
	return int(last - copied), nil
}

// pass copies what it can of the log and reports how long the log is.
func (c *checkpointer) pass(ctx context.Context) (int, error) {
	var busy, logPages, copied int
	err := c.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logPages, &copied)
	return logPages, err
}

// Close stops the checkpointer and closes its connection.
func (c *checkpointer) Close() error {
	c.stop()
	<-c.done
	return errors.Join(c.shm.Close(), c.db.Close())
}
