package sqldb

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
)

// Query is one statement a store ran, with its arguments.
type Query struct {
	SQL  string
	Args []any
}

// QueryLog collects the statements run with a context made by WithQueryLog.
// The query plan test uses it to find the SQL behind each storage method
// without a second copy of it.
type QueryLog struct {
	mu      sync.Mutex
	queries []Query
}

type queryLogKey struct{}

// WithQueryLog returns a context whose statements are added to log.
func WithQueryLog(ctx context.Context, log *QueryLog) context.Context {
	return context.WithValue(ctx, queryLogKey{}, log)
}

// Queries returns the statements logged so far, each distinct SQL text once
// (with the arguments of its first run).
func (l *QueryLog) Queries() []Query {
	l.mu.Lock()
	defer l.mu.Unlock()
	seen := map[string]bool{}
	var out []Query
	for _, q := range l.queries {
		if !seen[q.SQL] {
			seen[q.SQL] = true
			out = append(out, q)
		}
	}
	return out
}

func logQuery(ctx context.Context, query string, args []any) {
	if l, ok := ctx.Value(queryLogKey{}).(*QueryLog); ok {
		l.mu.Lock()
		l.queries = append(l.queries, Query{SQL: query, Args: append([]any(nil), args...)})
		l.mu.Unlock()
	}
}

// Plan is what the engine plans for one statement.
type Plan struct {
	// Lines of EXPLAIN QUERY PLAN (SQLite) or EXPLAIN (PostgreSQL).
	Lines []string
	// Scans maps each table read whole (a full scan of the table or of
	// one of its indexes) to its number of rows.
	Scans map[string]int64
}

func (p *Plan) String() string { return strings.Join(p.Lines, "\n") }

var (
	// fromTable finds "FROM t x", "JOIN t AS x": SQLite's plans name a
	// table by its alias.
	fromTable = regexp.MustCompile(`(?i)\b(?:FROM|JOIN)\s+([a-z_][a-z0-9_]*)(?:\s+(?:AS\s+)?([a-z_][a-z0-9_]*))?`)
	// sqliteScan is a full scan in EXPLAIN QUERY PLAN ("SEARCH" uses an index).
	sqliteScan = regexp.MustCompile(`^SCAN ([a-z_][a-z0-9_]*)`)
	// pgScan is a full scan in PostgreSQL's EXPLAIN.
	pgScan = regexp.MustCompile(`\bSeq Scan on ([a-z_][a-z0-9_]*)`)
	// notAlias are keywords fromTable may take for an alias.
	notAlias = map[string]bool{"where": true, "on": true, "join": true, "left": true, "inner": true, "cross": true,
		"order": true, "group": true, "limit": true, "union": true, "using": true, "natural": true}
)

// Explain plans query (with args, as it would run) and reports the tables
// it would scan whole. It runs on the writer connection, which sees the
// statistics of an Analyze at once.
func (db *DB) Explain(ctx context.Context, query string, args ...any) (*Plan, error) {
	prefix, scan := "EXPLAIN QUERY PLAN ", sqliteScan
	if db.dialect.Name() == "postgres" {
		prefix, scan = "EXPLAIN ", pgScan
	}
	rows, err := db.writer.QueryContext(ctx, prefix+query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	p := &Plan{Scans: map[string]int64{}}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		p.Lines = append(p.Lines, fmt.Sprint(vals[len(vals)-1])) // SQLite: id, parent, notused, detail
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	aliases := map[string]string{}
	for _, m := range fromTable.FindAllStringSubmatch(query, -1) {
		table, alias := strings.ToLower(m[1]), strings.ToLower(m[2])
		aliases[table] = table
		if alias != "" && !notAlias[alias] {
			aliases[alias] = table
		}
	}
	for _, line := range p.Lines {
		m := scan.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		table, ok := aliases[strings.ToLower(m[1])]
		if !ok {
			table = strings.ToLower(m[1])
		}
		var n int64
		// A common table expression is no table: its count fails.
		if err := db.writer.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n); err == nil {
			p.Scans[table] = n
		}
	}
	return p, nil
}

// Analyze gathers the planner's statistics (ANALYZE, which both engines
// know). The server never runs it on SQLite: its queries are written to
// need no statistics.
func (db *DB) Analyze(ctx context.Context) error {
	_, err := db.writer.ExecContext(ctx, `ANALYZE`)
	return err
}
