package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
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

func openSQLite(ctx context.Context, path string) (_ *sqliteStore, err error) {
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

const sqliteMessageCols = `id, queue_id, sender, recipients, size, state, node, created_at, updated_at, expires_at, notified_at`

func scanSQLiteMessage(sc interface{ Scan(...any) error }, raw *[]byte) (*Message, error) {
	var (
		m                         Message
		rcpts, state              string
		created, updated, expires int64
		notified                  sql.NullInt64
		dest                      = []any{&m.ID, &m.QueueID, &m.Sender, &rcpts, &m.Size, &state, &m.Node, &created, &updated, &expires, &notified}
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
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: get %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get %s: %w", id, err)
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
	if !f.Before.IsZero() {
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
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET state = ?, updated_at = ? WHERE id = ? AND state = ?`,
			string(to), micros(ev.Time), id, string(from))
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
	c.first_seen, c.last_seen
FROM correspondents c ORDER BY c.deliveries DESC, c.domain LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: correspondents: %w", err)
	}
	defer rows.Close()
	return collect(rows, "correspondents", func(r rowIter) (Correspondent, error) {
		var c Correspondent
		var first, last int64
		err := r.Scan(&c.Domain, &c.Deliveries, &c.Senders, &first, &last)
		c.FirstSeen, c.LastSeen = fromMicros(first), fromMicros(last)
		return c, err
	})
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
