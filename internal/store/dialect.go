package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite" // also registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect is what really differs between the two databases. The queries
// (sqlstore.go) are written once, in the SQL both speak, with '?'
// placeholders; what they cannot share comes from here.
type dialect struct {
	name string // the migrations' directory: "sqlite" or "postgres"

	// numbered placeholders ($1, $2…) instead of '?'.
	numbered bool
	// micros stores times as Unix microseconds (SQLite's INTEGER
	// columns) rather than as timestamptz and date.
	micros bool
	// tx is what write transactions ask for.
	tx *sql.TxOptions

	jsonArg  string // a JSON parameter
	jsonText string // a JSON column as text: fmt verb %s for the column
	instr    string // the position of a substring, 0 if absent: instr(s, sub)
	least    string // the smaller of two values
	greatest string
	// recipientMatches is a condition: an address of messages.recipients
	// contains the (lower-case) parameter.
	recipientMatches string

	// migrationsTable creates schema_migrations; lockMigrations, run first
	// in each migration's transaction, keeps nodes that start together
	// from migrating at once ("" where the write transaction is the lock).
	migrationsTable string
	lockMigrations  string

	// foreignKeyViolation tells an insert that named a row that is not
	// there (a session for a deleted user).
	foreignKeyViolation func(error) bool
}

// sqliteDialect: one writer at a time (the write transaction begins
// IMMEDIATE), times in microseconds, JSON as text.
var sqliteDialect = dialect{
	name:             "sqlite",
	micros:           true,
	jsonArg:          "?",
	jsonText:         "%s",
	instr:            "instr",
	least:            "min",
	greatest:         "max",
	recipientMatches: `EXISTS (SELECT 1 FROM json_each(messages.recipients) r WHERE instr(lower(r.value ->> '$.address'), ?) > 0)`,
	migrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL,
	applied_at INTEGER NOT NULL
) STRICT`,
	foreignKeyViolation: func(err error) bool {
		var se *sqlite.Error
		return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	},
}

// postgresDialect: several nodes at once. Exactly-once state changes come
// from conditional updates (UPDATE … WHERE id = ? AND state = ?) under
// row locks, in the same transaction as their event. READ COMMITTED is
// asked for explicitly, whatever the server's default: under it a
// conditional UPDATE that lost a race waits for the winner and then
// matches no row (ErrConflict), where SERIALIZABLE would fail with a
// serialization error instead.
var postgresDialect = dialect{
	name:             "postgres",
	numbered:         true,
	tx:               &sql.TxOptions{Isolation: sql.LevelReadCommitted},
	jsonArg:          "(?::text)::jsonb",
	jsonText:         "%s::text",
	instr:            "strpos",
	least:            "LEAST",
	greatest:         "GREATEST",
	recipientMatches: `EXISTS (SELECT 1 FROM jsonb_array_elements(messages.recipients) r WHERE strpos(lower(r ->> 'address'), ?) > 0)`,
	migrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer     NOT NULL PRIMARY KEY,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`,
	// One lock per schema: installations (and test runs) in different
	// schemas of one database do not wait for each other. A transaction
	// lock goes with the transaction, whatever happens.
	lockMigrations: `SELECT pg_advisory_xact_lock(hashtextextended('stray.store.migrate:' || coalesce(current_schema(), ''), 0))`,
	foreignKeyViolation: func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "23503" // foreign_key_violation
	},
}

// rebind turns q's '?' placeholders into the dialect's. The queries are
// stray's own and hold no '?' but placeholders.
func (d *dialect) rebind(q string) string {
	if !d.numbered || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] != '?' {
			b.WriteByte(q[i])
			continue
		}
		n++
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// time encodes t for a time or date column.
func (d *dialect) time(t time.Time) any {
	if d.micros {
		return t.UnixMicro()
	}
	return t
}

// timeCol scans a stored time into t, in UTC: Unix microseconds (SQLite),
// a timestamptz or date (PostgreSQL), or NULL (the zero time).
type timeCol struct{ t *time.Time }

func at(t *time.Time) timeCol { return timeCol{t} }

func (c timeCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.t = time.Time{}
	case int64:
		*c.t = time.UnixMicro(v).UTC()
	case time.Time:
		*c.t = v.UTC()
	default:
		return fmt.Errorf("time column holds %T", src)
	}
	return nil
}

// sqliteBusyTimeout is how long a write waits for another process (say
// `stray quarantine release` next to `stray serve`) to finish its own; the
// caller's context still ends the wait earlier.
const sqliteBusyTimeout = 10 * time.Second

// openSQLite opens (creating and migrating) a database file in WAL mode with
// synchronous=FULL, so a commit is on disk when it returns.
//
// All writes go through w, a pool of exactly one connection: writers queue
// in database/sql instead of fighting over SQLite's lock, and every write
// transaction begins IMMEDIATE (takes the write lock up front), so two
// processes on one file wait for each other (busy_timeout) instead of
// failing with a deadlock on lock upgrade. Reads go through r, several
// read-only connections that WAL lets run beside the writer.
//
// Several processes may open a new database at once: switching it to WAL
// takes a lock that SQLite does not wait for, so a busy open is tried again
// until ctx ends.
func openSQLite(ctx context.Context, path string) (*sqlStore, error) {
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		s, err := openSQLiteOnce(ctx, path)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqlite3.SQLITE_BUSY {
			return s, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
}

func openSQLiteOnce(ctx context.Context, path string) (_ *sqlStore, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, err
	}
	if err := createPrivate(abs); err != nil {
		return nil, err
	}

	// A URI so that any path works: SQLite ends the path at '?' or '#'.
	uri := "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(abs)
	busy := fmt.Sprint(sqliteBusyTimeout.Milliseconds())

	s := &sqlStore{d: &sqliteDialect, name: abs}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.w, err = sql.Open("sqlite", uri+"?_txlock=immediate&_busy_timeout="+busy+
		"&_foreign_keys=on&_journal_mode=WAL&_synchronous=FULL")
	if err != nil {
		return nil, err
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)

	// Trust but verify: a file system without shared memory support
	// silently keeps the rollback journal.
	var mode string
	var sync int
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, err
	}
	if err := s.w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return nil, err
	}
	if !strings.EqualFold(mode, "wal") || sync != 2 {
		return nil, fmt.Errorf("journal_mode=%s synchronous=%d, want wal and 2 (FULL)", mode, sync)
	}
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}

	s.r, err = sql.Open("sqlite", uri+"?_busy_timeout="+busy+"&_foreign_keys=on&_query_only=on")
	if err != nil {
		return nil, err
	}
	s.r.SetMaxOpenConns(4)
	s.r.SetMaxIdleConns(4)
	if err := s.r.PingContext(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// createPrivate creates the database file if it is not there, readable by
// its owner only (SQLite would use 0644, and it gives the -wal and -shm files
// the main file's mode), and syncs the directory so that the new name
// survives a power cut. An existing file is left as it is.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// pgConnectTimeout bounds a connection attempt when the DSN sets no
// connect_timeout: a server that does not answer (rather than refusing) must
// not keep a caller without a deadline waiting for minutes.
const pgConnectTimeout = 10 * time.Second

// openPostgres opens a pool of connections to the database dsn names and
// migrates it. The DSN's pool parameters keep the meaning pgxpool gives
// them: pool_max_conns (default: the larger of 4 and the number of CPUs),
// pool_max_conn_lifetime (1 h) and pool_max_conn_idle_time (30 min);
// database/sql has no pool_min_conns nor pool_health_check_period (the
// stdlib driver checks a connection that has been idle before reusing it).
func openPostgres(ctx context.Context, dsn string) (_ *sqlStore, err error) {
	cfg, err := pgxpool.ParseConfig(dsn) // for its grammar only: the pool is database/sql's
	if err != nil {
		return nil, err
	}
	cc := cfg.ConnConfig
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = pgConnectTimeout
		d := &net.Dialer{Timeout: pgConnectTimeout, KeepAlive: 5 * time.Minute}
		cc.DialFunc = d.DialContext
	}
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = "stray"
	}
	name := fmt.Sprintf("%s:%d/%s", cc.Host, cc.Port, cc.Database)
	db := stdlib.OpenDB(*cc)
	db.SetMaxOpenConns(int(cfg.MaxConns))
	db.SetMaxIdleConns(int(cfg.MaxConns))
	db.SetConnMaxLifetime(cfg.MaxConnLifetime)
	db.SetConnMaxIdleTime(cfg.MaxConnIdleTime)
	s := &sqlStore{d: &postgresDialect, name: name, w: db, r: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}
