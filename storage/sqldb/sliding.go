package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"maunium.net/go/mautrix/id"

	"github.com/tributary-hs/tributary/storage"
)

var _ storage.SlidingReader = (*DB)(nil)

func (db *DB) LastEventPos(ctx context.Context, roomID id.RoomID, upto int64, types []string) (int64, error) {
	q := `SELECT stream_pos FROM events WHERE room_id = $1 AND rejected = 0 AND soft_failed = 0 AND outlier = 0 AND stream_pos <= $2`
	args := []any{roomID, upto}
	if len(types) > 0 {
		ph := make([]string, len(types))
		for i, t := range types {
			args = append(args, t)
			ph[i] = "$" + strconv.Itoa(len(args))
		}
		q += ` AND type IN (` + strings.Join(ph, ", ") + `)`
	}
	q += ` ORDER BY stream_pos DESC LIMIT 1`
	var pos int64
	err := db.r(ctx).QueryRowContext(ctx, q, args...).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return pos, err
}
