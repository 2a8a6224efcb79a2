package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite" // also registers the "sqlite" database/sql driver
	sqlite3 "modernc.org/sqlite/lib"
)

// sqliteBusyTimeout is how long a write waits for another process (say
// `stray quarantine release` next to `stray serve`) to finish its own; the
// caller's context still ends the wait earlier.
const sqliteBusyTimeout = 10 * time.Second

// sqliteStore is the embedded backend: one database file in WAL mode with
// synchronous=FULL, so a commit is on disk when it returns.
//
// All writes go through w, a pool of exactly one connection: writers queue
// in database/sql instead of fighting over SQLite's lock, and every write
// transaction begins IMMEDIATE (takes the write lock up front), so two
// processes on one file wait for each other (busy_timeout) instead of
// failing with a deadlock on lock upgrade. Reads go through r, several
// read-only connections that WAL lets run beside the writer.
type sqliteStore struct {
	path string
	w    *sql.DB
	r    *sql.DB
}

var _ Store = (*sqliteStore)(nil)

// openSQLite opens (creating and migrating) a database. Several processes
// may open a new database at once: switching it to WAL takes a lock that
// SQLite does not wait for, so a busy open is tried again until ctx ends.
func openSQLite(ctx context.Context, path string) (*sqliteStore, error) {
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

func openSQLiteOnce(ctx context.Context, path string) (_ *sqliteStore, err error) {
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

	s := &sqliteStore{path: abs}
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

func (s *sqliteStore) migrate(ctx context.Context) error {
	ms, err := loadMigrations("sqlite")
	if err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL,
	applied_at INTEGER NOT NULL
) STRICT`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range ms {
		err := s.write(ctx, func(tx *sql.Tx) error {
			// Read inside the write transaction: another process may
			// have applied it since we looked.
			applied, err := sqliteApplied(ctx, tx)
			if err != nil {
				return err
			}
			if err := checkApplied(applied, ms); err != nil {
				return err
			}
			if _, ok := applied[m.version]; ok {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, time.Now().UnixMicro())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %04d_%s: %w", m.version, m.name, err)
		}
	}
	return nil
}

func sqliteApplied(ctx context.Context, tx *sql.Tx) (map[int]string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT version, name FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	applied := map[int]string{}
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			return nil, err
		}
		applied[v] = name
	}
	return applied, rows.Err()
}

// write runs fn in one IMMEDIATE transaction on the writer connection and
// commits it: durable when write returns nil.
func (s *sqliteStore) write(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func sqliteInsertEvent(ctx context.Context, tx *sql.Tx, ev Event) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO events (time, message_id, kind, actor, detail) VALUES (?, ?, ?, ?, ?)`,
		micros(ev.Time), ev.MessageID, ev.Kind, ev.Actor, ev.Detail)
	if err != nil {
		return fmt.Errorf("event: %w", err)
	}
	return nil
}

func (s *sqliteStore) Hold(ctx context.Context, m *Message, ev Event) error {
	row, err := prepareHold(m, &ev)
	if err != nil {
		return fmt.Errorf("store: hold %s: %w", idOf(m), err)
	}
	var notified any
	if !m.NotifiedAt.IsZero() {
		notified = micros(m.NotifiedAt)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO messages
	(id, queue_id, sender, recipients, raw, size, state, node, created_at, updated_at, expires_at, notified_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (id) DO NOTHING`,
			m.ID, m.QueueID, m.Sender, string(row.recipients), row.raw, m.Size, string(m.State), m.Node,
			micros(m.CreatedAt), micros(m.UpdatedAt), micros(m.ExpiresAt), notified)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrExists
		}
		return sqliteInsertEvent(ctx, tx, ev)
	})
	if err != nil {
		return fmt.Errorf("store: hold %s: %w", m.ID, err)
	}
	return nil
}

const sqliteMessageCols = `id, queue_id, sender, recipients, size, state, node, created_at, updated_at, expires_at, notified_at, release_action, release_to`

func scanSQLiteMessage(sc interface{ Scan(...any) error }, raw *[]byte) (*Message, error) {
	var (
		m                         Message
		rcpts, state              string
		created, updated, expires int64
		notified                  sql.NullInt64
		relAction, relTo          string
		dest                      = []any{&m.ID, &m.QueueID, &m.Sender, &rcpts, &m.Size, &state, &m.Node, &created, &updated, &expires, &notified, &relAction, &relTo}
	)
	if raw != nil {
		dest = append(dest, raw)
	}
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(rcpts), &m.Recipients); err != nil {
		return nil, fmt.Errorf("recipients: %w", err)
	}
	var err error
	if m.Release, err = decodeRelease(relAction, relTo); err != nil {
		return nil, err
	}
	m.State = State(state)
	m.CreatedAt, m.UpdatedAt, m.ExpiresAt = fromMicros(created), fromMicros(updated), fromMicros(expires)
	if notified.Valid {
		m.NotifiedAt = fromMicros(notified.Int64)
	}
	return &m, nil
}

func (s *sqliteStore) Get(ctx context.Context, id string) (*Message, error) {
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("store: get: %w", err)
	}
	var raw []byte
	m, err := scanSQLiteMessage(s.r.QueryRowContext(ctx, `SELECT `+sqliteMessageCols+`, raw FROM messages WHERE id = ?`, id), &raw)
	if err := lookup(err, sql.ErrNoRows, "get %s", id); err != nil {
		return nil, err
	}
	if m.Raw, err = decompress(raw, m.Size); err != nil {
		return nil, fmt.Errorf("store: get %s: %w", id, err)
	}
	return m, nil
}

func (s *sqliteStore) List(ctx context.Context, f Filter) ([]Message, error) {
	if err := prepareList(&f); err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	var (
		where []string
		args  []any
	)
	if len(f.States) > 0 {
		where = append(where, "state IN (?"+strings.Repeat(", ?", len(f.States)-1)+")")
		for _, st := range f.States {
			args = append(args, string(st))
		}
	}
	if f.Sender != "" {
		where = append(where, "sender = ?")
		args = append(args, f.Sender)
	}
	if f.Search != "" {
		// instr, not LIKE: '%' and '_' in the search are literal.
		where = append(where, `(instr(lower(sender), ?) > 0 OR EXISTS (
	SELECT 1 FROM json_each(messages.recipients) r WHERE instr(lower(r.value ->> '$.address'), ?) > 0))`)
		args = append(args, f.Search, f.Search)
	}
	if f.IDPrefix != "" {
		// substr, not LIKE: '_' is a wildcard there and valid in an id.
		where = append(where, "substr(id, 1, ?) = ?")
		args = append(args, len(f.IDPrefix), f.IDPrefix)
	}
	if !f.Before.IsZero() && f.BeforeID != "" {
		where = append(where, "(created_at < ? OR created_at = ? AND id < ?)")
		args = append(args, micros(f.Before), micros(f.Before), f.BeforeID)
	} else if !f.Before.IsZero() {
		where = append(where, "created_at < ?")
		args = append(args, micros(f.Before))
	}
	q := `SELECT ` + sqliteMessageCols + ` FROM messages`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, f.Limit)

	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	defer rows.Close()
	return collect(rows, "list", func(r rowIter) (Message, error) {
		m, err := scanSQLiteMessage(r, nil)
		if err != nil {
			return Message{}, err
		}
		return *m, nil
	})
}

func (s *sqliteStore) Transition(ctx context.Context, id string, from, to State, ev Event) error {
	if err := prepareTransition(id, from, to, &ev); err != nil {
		return fmt.Errorf("store: transition %s: %w", id, err)
	}
	return s.transition(ctx, id, from, to, ev, "")
}

func (s *sqliteStore) ClaimRelease(ctx context.Context, id string, rel Release, ev Event) error {
	rcpts, err := prepareClaim(id, rel, &ev)
	if err != nil {
		return fmt.Errorf("store: claim release %s: %w", id, err)
	}
	return s.transition(ctx, id, StateHeld, StateReleasing, ev, `, release_action = ?, release_to = ?`, rel.Action, string(rcpts))
}

// transition moves id from one state to another with ev, setting also the
// columns of set (", col = ?…") to args.
func (s *sqliteStore) transition(ctx context.Context, id string, from, to State, ev Event, set string, args ...any) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET state = ?, updated_at = ?`+set+` WHERE id = ? AND state = ?`,
			append(append([]any{string(to), micros(ev.Time)}, args...), id, string(from))...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			var cur string
			err := tx.QueryRowContext(ctx, `SELECT state FROM messages WHERE id = ?`, id).Scan(&cur)
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: it is %s", ErrConflict, cur)
		}
		return sqliteInsertEvent(ctx, tx, ev)
	})
	if err != nil {
		return fmt.Errorf("store: transition %s %s→%s: %w", id, from, to, err)
	}
	return nil
}

func (s *sqliteStore) RetryRelease(ctx context.Context, id string, staleBefore time.Time, ev Event) error {
	if err := prepareRetry(id, staleBefore, &ev); err != nil {
		return fmt.Errorf("store: retry release %s: %w", id, err)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET updated_at = ? WHERE id = ? AND state = 'releasing' AND updated_at < ?`,
			micros(ev.Time), id, micros(stamp(staleBefore)))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			var cur string
			err := tx.QueryRowContext(ctx, `SELECT state FROM messages WHERE id = ?`, id).Scan(&cur)
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: it is %s, or not stale", ErrConflict, cur)
		}
		return sqliteInsertEvent(ctx, tx, ev)
	})
	if err != nil {
		return fmt.Errorf("store: retry release %s: %w", id, err)
	}
	return nil
}

func (s *sqliteStore) ClaimWarnNotice(ctx context.Context, sender, domain string, at time.Time) (bool, error) {
	day, err := prepareWarnNotice(sender, domain, at)
	if err != nil {
		return false, fmt.Errorf("store: claim warn notice: %w", err)
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO warn_notices (sender, domain, day) VALUES (?, ?, ?)
	ON CONFLICT (sender, domain) DO UPDATE SET day = excluded.day WHERE warn_notices.day < excluded.day`,
		sender, domain, micros(day))
	if err != nil {
		return false, fmt.Errorf("store: claim warn notice: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: claim warn notice: %w", err)
	}
	return n == 1, nil
}

func (s *sqliteStore) MarkNotified(ctx context.Context, id string, at time.Time) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("store: mark notified: %w", err)
	}
	if at.IsZero() {
		at = nowStamp()
	}
	res, err := s.w.ExecContext(ctx, `UPDATE messages SET notified_at = ? WHERE id = ?`, micros(stamp(at)), id)
	if err != nil {
		return fmt.Errorf("store: mark notified %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: mark notified %s: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("store: mark notified %s: %w", id, ErrNotFound)
	}
	return nil
}

func (s *sqliteStore) Due(ctx context.Context, now, staleBefore time.Time, limit int) (expired, stale []string, err error) {
	if limit < 0 {
		return nil, nil, fmt.Errorf("store: due: negative limit %d", limit)
	}
	if limit == 0 {
		limit = defaultDueLimit
	}
	expired, err = s.ids(ctx, `SELECT id FROM messages WHERE state = 'held' AND expires_at < ? ORDER BY expires_at, id LIMIT ?`, micros(stamp(now)), limit)
	if err != nil {
		return nil, nil, fmt.Errorf("store: due: %w", err)
	}
	stale, err = s.ids(ctx, `SELECT id FROM messages WHERE state = 'releasing' AND updated_at < ? ORDER BY updated_at, id LIMIT ?`, micros(stamp(staleBefore)), limit)
	if err != nil {
		return nil, nil, fmt.Errorf("store: due: %w", err)
	}
	return expired, stale, nil
}

func (s *sqliteStore) ids(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func (s *sqliteStore) AddEvent(ctx context.Context, ev Event) error {
	if err := prepareEvent(&ev); err != nil {
		return fmt.Errorf("store: add event: %w", err)
	}
	if err := s.write(ctx, func(tx *sql.Tx) error { return sqliteInsertEvent(ctx, tx, ev) }); err != nil {
		return fmt.Errorf("store: add event: %w", err)
	}
	return nil
}

func (s *sqliteStore) Events(ctx context.Context, f EventFilter) ([]Event, error) {
	if err := prepareEvents(&f); err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	var (
		where []string
		args  []any
	)
	if f.MessageID != "" {
		where = append(where, "message_id = ?")
		args = append(args, f.MessageID)
	}
	if f.Kind != "" {
		where = append(where, "kind = ?")
		args = append(args, f.Kind)
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, micros(f.Since))
	}
	q := `SELECT id, time, message_id, kind, actor, detail FROM events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += ` ORDER BY time DESC, id DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	defer rows.Close()
	return collect(rows, "events", func(r rowIter) (Event, error) {
		var ev Event
		var t int64
		err := r.Scan(&ev.ID, &t, &ev.MessageID, &ev.Kind, &ev.Actor, &ev.Detail)
		ev.Time = fromMicros(t)
		return ev, err
	})
}

func (s *sqliteStore) AddDeliveries(ctx context.Context, sender string, domains []string, at time.Time) error {
	ds, err := prepareDeliveries(sender, domains)
	if err != nil {
		return fmt.Errorf("store: add deliveries: %w", err)
	}
	if len(ds) == 0 {
		return nil
	}
	if at.IsZero() {
		at = nowStamp()
	}
	t := micros(stamp(at))
	err = s.write(ctx, func(tx *sql.Tx) error {
		for _, d := range ds {
			if _, err := tx.ExecContext(ctx, `INSERT INTO correspondents (domain, deliveries, first_seen, last_seen) VALUES (?, 1, ?, ?)
	ON CONFLICT (domain) DO UPDATE SET deliveries = deliveries + 1,
		first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)`, d, t, t); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO correspondent_days (domain, day) VALUES (?, ?) ON CONFLICT DO NOTHING`, d, micros(day(at))); err != nil {
				return err
			}
			if sender == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO correspondent_senders (domain, sender) VALUES (?, ?) ON CONFLICT DO NOTHING`, d, sender); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: add deliveries: %w", err)
	}
	return nil
}

func (s *sqliteStore) Correspondents(ctx context.Context, limit int) ([]Correspondent, error) {
	if limit < 0 {
		return nil, fmt.Errorf("store: correspondents: negative limit %d", limit)
	}
	if limit == 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.r.QueryContext(ctx, `SELECT c.domain, c.deliveries,
	(SELECT count(*) FROM correspondent_senders s WHERE s.domain = c.domain),
	(SELECT count(*) FROM correspondent_days d WHERE d.domain = c.domain),
	c.first_seen, c.last_seen
FROM correspondents c ORDER BY c.deliveries DESC, c.domain LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: correspondents: %w", err)
	}
	defer rows.Close()
	return collect(rows, "correspondents", func(r rowIter) (Correspondent, error) {
		var c Correspondent
		var first, last int64
		err := r.Scan(&c.Domain, &c.Deliveries, &c.Senders, &c.Days, &first, &last)
		c.FirstSeen, c.LastSeen = fromMicros(first), fromMicros(last)
		return c, err
	})
}

func (s *sqliteStore) PutUser(ctx context.Context, u *User) error {
	if err := prepareUser(u); err != nil {
		return fmt.Errorf("store: put user: %w", err)
	}
	var created int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO users (name, role, hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (name) DO UPDATE SET role = excluded.role, hash = excluded.hash, updated_at = excluded.updated_at
	RETURNING created_at`,
			u.Name, string(u.Role), u.Hash, micros(u.CreatedAt), micros(u.UpdatedAt)).Scan(&created)
	})
	if err != nil {
		return fmt.Errorf("store: put user %s: %w", u.Name, err)
	}
	u.CreatedAt = fromMicros(created)
	return nil
}

const sqliteUserCols = `name, role, hash, created_at, updated_at`

func scanSQLiteUser(sc interface{ Scan(...any) error }) (User, error) {
	var (
		u                User
		role             string
		created, updated int64
	)
	err := sc.Scan(&u.Name, &role, &u.Hash, &created, &updated)
	u.Role, u.CreatedAt, u.UpdatedAt = Role(role), fromMicros(created), fromMicros(updated)
	return u, err
}

func (s *sqliteStore) GetUser(ctx context.Context, name string) (*User, error) {
	if err := checkUserName("user name", name); err != nil {
		return nil, fmt.Errorf("store: get user: %w", notFoundIf(err))
	}
	u, err := scanSQLiteUser(s.r.QueryRowContext(ctx, `SELECT `+sqliteUserCols+` FROM users WHERE name = ?`, name))
	if err := lookup(err, sql.ErrNoRows, "get user %s", name); err != nil {
		return nil, err
	}
	return &u, nil
}

func (s *sqliteStore) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+sqliteUserCols+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	defer rows.Close()
	return collect(rows, "list users", func(r rowIter) (User, error) { return scanSQLiteUser(r) })
}

// DeleteUser relies on the writer's foreign_keys=on to delete the user's
// sessions (ON DELETE CASCADE) in the same statement.
func (s *sqliteStore) DeleteUser(ctx context.Context, name string) error {
	if err := checkUserName("user name", name); err != nil {
		return fmt.Errorf("store: delete user: %w", notFoundIf(err))
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		return sqliteAffected(tx.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name))
	})
	if err != nil {
		return fmt.Errorf("store: delete user %s: %w", name, err)
	}
	return nil
}

// sqliteAffected is ErrNotFound when a statement changed no row.
func sqliteAffected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

func (s *sqliteStore) CreateSession(ctx context.Context, se *Session) error {
	if err := prepareSession(se); err != nil {
		return fmt.Errorf("store: create session: %w", err)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		// The write transaction holds SQLite's write lock: nobody can
		// delete the user between this check and the insert.
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE name = ?`, se.User).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user %s: %w", se.User, ErrNotFound)
		}
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO sessions (id, user_name, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (id) DO NOTHING`,
			se.ID, se.User, se.CSRF, micros(se.CreatedAt), micros(se.ExpiresAt))
		if err := sqliteAffected(res, err); errors.Is(err, ErrNotFound) {
			return fmt.Errorf("session id: %w", ErrExists)
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: create session for %s: %w", se.User, err)
	}
	return nil
}

func (s *sqliteStore) GetSession(ctx context.Context, id string, now time.Time) (*Session, error) {
	if err := checkHex64("session id", id); err != nil {
		return nil, fmt.Errorf("store: get session: %w", notFoundIf(err))
	}
	var (
		se               = Session{ID: id}
		created, expires int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT user_name, csrf, created_at, expires_at FROM sessions WHERE id = ? AND expires_at > ?`,
		id, micros(nowOr(now))).Scan(&se.User, &se.CSRF, &created, &expires)
	if err := lookup(err, sql.ErrNoRows, "get session"); err != nil {
		return nil, err
	}
	se.CreatedAt, se.ExpiresAt = fromMicros(created), fromMicros(expires)
	return &se, nil
}

func (s *sqliteStore) DeleteSession(ctx context.Context, id string) error {
	if err := checkHex64("session id", id); err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	return nil
}

func (s *sqliteStore) PurgeSessions(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, micros(nowOr(now)))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: purge sessions: %w", err)
	}
	return n, nil
}

func (s *sqliteStore) PutToken(ctx context.Context, t *Token) error {
	if err := prepareToken(t); err != nil {
		return fmt.Errorf("store: put token: %w", err)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO api_tokens (id, name, hash, created_by, created_at) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (id) DO NOTHING`,
			t.ID, t.Name, t.Hash, t.CreatedBy, micros(t.CreatedAt))
		if err := sqliteAffected(res, err); errors.Is(err, ErrNotFound) {
			return ErrExists
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: put token %s: %w", t.ID, err)
	}
	return nil
}

const sqliteTokenCols = `id, name, hash, created_by, created_at`

func scanSQLiteToken(sc interface{ Scan(...any) error }) (Token, error) {
	var (
		t       Token
		created int64
	)
	err := sc.Scan(&t.ID, &t.Name, &t.Hash, &t.CreatedBy, &created)
	t.CreatedAt = fromMicros(created)
	return t, err
}

func (s *sqliteStore) GetToken(ctx context.Context, id string) (*Token, error) {
	if err := checkTokenID(id); err != nil {
		return nil, fmt.Errorf("store: get token: %w", notFoundIf(err))
	}
	t, err := scanSQLiteToken(s.r.QueryRowContext(ctx, `SELECT `+sqliteTokenCols+` FROM api_tokens WHERE id = ?`, id))
	if err := lookup(err, sql.ErrNoRows, "get token %s", id); err != nil {
		return nil, err
	}
	return &t, nil
}

func (s *sqliteStore) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+sqliteTokenCols+` FROM api_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list tokens: %w", err)
	}
	defer rows.Close()
	return collect(rows, "list tokens", func(r rowIter) (Token, error) { return scanSQLiteToken(r) })
}

func (s *sqliteStore) DeleteToken(ctx context.Context, id string) error {
	if err := checkTokenID(id); err != nil {
		return fmt.Errorf("store: delete token: %w", notFoundIf(err))
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		return sqliteAffected(tx.ExecContext(ctx, `DELETE FROM api_tokens WHERE id = ?`, id))
	})
	if err != nil {
		return fmt.Errorf("store: delete token %s: %w", id, err)
	}
	return nil
}

func (s *sqliteStore) AddRule(ctx context.Context, r *Rule) error {
	if err := prepareRule(r); err != nil {
		return fmt.Errorf("store: add rule: %w", err)
	}
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO policy_rules (kind, pattern, note, created_by, created_at) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (kind, pattern) DO NOTHING RETURNING id`,
			r.Kind, r.Pattern, r.Note, r.CreatedBy, micros(r.CreatedAt)).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("store: add rule %s %s: %w", r.Kind, r.Pattern, err)
	}
	r.ID = id
	return nil
}

func (s *sqliteStore) ListRules(ctx context.Context) ([]Rule, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, kind, pattern, note, created_by, created_at FROM policy_rules ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list rules: %w", err)
	}
	defer rows.Close()
	return collect(rows, "list rules", func(rw rowIter) (Rule, error) {
		var (
			r       Rule
			created int64
		)
		err := rw.Scan(&r.ID, &r.Kind, &r.Pattern, &r.Note, &r.CreatedBy, &created)
		r.CreatedAt = fromMicros(created)
		return r, err
	})
}

func (s *sqliteStore) DeleteRule(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		return sqliteAffected(tx.ExecContext(ctx, `DELETE FROM policy_rules WHERE id = ?`, id))
	})
	if err != nil {
		return fmt.Errorf("store: delete rule %d: %w", id, err)
	}
	return nil
}

func (s *sqliteStore) AddSenderAllow(ctx context.Context, a *SenderAllow) error {
	if err := prepareSenderAllow(a); err != nil {
		return fmt.Errorf("store: add sender allow: %w", err)
	}
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO sender_allows (sender, recipient, note, created_by, created_at) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (sender, recipient) DO NOTHING RETURNING id`,
			a.Sender, a.Recipient, a.Note, a.CreatedBy, micros(a.CreatedAt)).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("store: add sender allow %s → %s: %w", a.Sender, a.Recipient, err)
	}
	a.ID = id
	return nil
}

func (s *sqliteStore) ListSenderAllows(ctx context.Context) ([]SenderAllow, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, sender, recipient, note, created_by, created_at FROM sender_allows ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list sender allows: %w", err)
	}
	defer rows.Close()
	return collect(rows, "list sender allows", func(rw rowIter) (SenderAllow, error) {
		var (
			a       SenderAllow
			created int64
		)
		err := rw.Scan(&a.ID, &a.Sender, &a.Recipient, &a.Note, &a.CreatedBy, &created)
		a.CreatedAt = fromMicros(created)
		return a, err
	})
}

func (s *sqliteStore) DeleteSenderAllow(ctx context.Context, id int64) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		return sqliteAffected(tx.ExecContext(ctx, `DELETE FROM sender_allows WHERE id = ?`, id))
	})
	if err != nil {
		return fmt.Errorf("store: delete sender allow %d: %w", id, err)
	}
	return nil
}

func (s *sqliteStore) AddDecisionCounts(ctx context.Context, counts []DecisionCount) error {
	cs, err := prepareDecisionCounts(counts)
	if err != nil {
		return fmt.Errorf("store: add decision counts: %w", err)
	}
	if len(cs) == 0 {
		return nil
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		for _, c := range cs {
			if _, err := tx.ExecContext(ctx, `INSERT INTO decision_counts (day, verdict, action, n) VALUES (?, ?, ?, ?)
	ON CONFLICT (day, verdict, action) DO UPDATE SET n = n + excluded.n`,
				micros(c.Day), c.Verdict, c.Action, c.N); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: add decision counts: %w", err)
	}
	return nil
}

func (s *sqliteStore) DecisionCounts(ctx context.Context, since time.Time) ([]DecisionCount, error) {
	var from int64 = math.MinInt64
	if !since.IsZero() {
		from = micros(day(since))
	}
	rows, err := s.r.QueryContext(ctx, `SELECT day, verdict, action, n FROM decision_counts WHERE day >= ? ORDER BY day, verdict, action`, from)
	if err != nil {
		return nil, fmt.Errorf("store: decision counts: %w", err)
	}
	defer rows.Close()
	return collect(rows, "decision counts", func(r rowIter) (DecisionCount, error) {
		var (
			c DecisionCount
			d int64
		)
		err := r.Scan(&d, &c.Verdict, &c.Action, &c.N)
		c.Day = fromMicros(d)
		return c, err
	})
}

func (s *sqliteStore) AddReport(ctx context.Context, r *Report) error {
	row, err := prepareReport(r)
	if err != nil {
		return fmt.Errorf("store: add report: %w", err)
	}
	var id int64
	err = s.write(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO reports (kind, title, created_by, created_at, json, json_size, html, html_size)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			r.Kind, r.Title, r.CreatedBy, micros(r.CreatedAt), row.json, len(r.JSON), row.html, len(r.HTML)).Scan(&id)
	})
	if err != nil {
		return fmt.Errorf("store: add report: %w", err)
	}
	r.ID = id
	return nil
}

const sqliteReportCols = `id, kind, title, created_by, created_at`

func scanSQLiteReport(sc interface{ Scan(...any) error }, bodies ...any) (Report, error) {
	var (
		r       Report
		created int64
	)
	err := sc.Scan(append([]any{&r.ID, &r.Kind, &r.Title, &r.CreatedBy, &created}, bodies...)...)
	r.CreatedAt = fromMicros(created)
	return r, err
}

func (s *sqliteStore) ListReports(ctx context.Context, kind string, limit int) ([]Report, error) {
	limit, err := prepareReportList(kind, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list reports: %w", err)
	}
	q, args := `SELECT `+sqliteReportCols+` FROM reports`, []any{}
	if kind != "" {
		q += ` WHERE kind = ?`
		args = append(args, kind)
	}
	rows, err := s.r.QueryContext(ctx, q+` ORDER BY created_at DESC, id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("store: list reports: %w", err)
	}
	defer rows.Close()
	return collect(rows, "list reports", func(r rowIter) (Report, error) { return scanSQLiteReport(r) })
}

func (s *sqliteStore) GetReport(ctx context.Context, id int64) (*Report, error) {
	var (
		j, h         []byte
		jsize, hsize int64
	)
	r, err := scanSQLiteReport(s.r.QueryRowContext(ctx, `SELECT `+sqliteReportCols+`, json, json_size, html, html_size FROM reports WHERE id = ?`, id),
		&j, &jsize, &h, &hsize)
	if err := lookup(err, sql.ErrNoRows, "get report %d", id); err != nil {
		return nil, err
	}
	if r.JSON, err = bodyOf(j, jsize); err != nil {
		return nil, fmt.Errorf("store: get report %d: JSON: %w", id, err)
	}
	if r.HTML, err = bodyOf(h, hsize); err != nil {
		return nil, fmt.Errorf("store: get report %d: HTML: %w", id, err)
	}
	return &r, nil
}

// Ping takes the write lock and writes an event that it then rolls back:
// the file is there, writable, and not locked out by another process.
func (s *sqliteStore) Ping(ctx context.Context) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	defer tx.Rollback()
	if err := sqliteInsertEvent(ctx, tx, Event{Time: nowStamp(), Kind: "ping"}); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

func (s *sqliteStore) Close() error {
	var errs []error
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close %s: %w", s.path, err)
	}
	return nil
}

// idOf names m in an error even when m is nil.
func idOf(m *Message) string {
	if m == nil {
		return "<nil>"
	}
	return m.ID
}
