package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// sqlStore is the one implementation of Store, on database/sql, for both
// SQLite (embedded, one file) and PostgreSQL (several nodes sharing one
// database); d holds what differs between them.
type sqlStore struct {
	d    *dialect
	name string // the SQLite file, or PostgreSQL's host:port/database; never a password
	// w runs writes, r reads. They are the same pool for PostgreSQL;
	// for SQLite w is the single writer connection and r read-only
	// connections beside it (see openSQLite).
	w, r *sql.DB
}

var _ Store = (*sqlStore)(nil)

// migrate applies the dialect's migrations not yet applied, each in a
// transaction of its own that first takes the migration lock and reads
// what is applied: another node may have applied it since we looked.
func (s *sqlStore) migrate(ctx context.Context) error {
	ms, err := loadMigrations(s.d.name)
	if err != nil {
		return err
	}
	for _, m := range ms {
		err := s.write(ctx, func(tx *sql.Tx) error {
			if s.d.lockMigrations != "" {
				if _, err := tx.ExecContext(ctx, s.d.lockMigrations); err != nil {
					return fmt.Errorf("lock: %w", err)
				}
			}
			if _, err := tx.ExecContext(ctx, s.d.migrationsTable); err != nil {
				return err
			}
			applied, err := appliedMigrations(ctx, tx)
			if err != nil {
				return err
			}
			if err := checkApplied(applied, ms); err != nil {
				return err
			}
			if _, ok := applied[m.version]; ok {
				return nil
			}
			// No arguments: several statements in one call.
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, s.d.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
				m.version, m.name, s.d.time(time.Now()))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %04d_%s: %w", m.version, m.name, err)
		}
	}
	return nil
}

func appliedMigrations(ctx context.Context, tx *sql.Tx) (map[int]string, error) {
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

// write runs fn in one write transaction and commits it: durable when
// write returns nil.
func (s *sqlStore) write(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, s.d.tx)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// exec runs one statement outside a transaction.
func (s *sqlStore) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return s.w.ExecContext(ctx, s.d.rebind(q), args...)
}

func (s *sqlStore) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return s.r.QueryContext(ctx, s.d.rebind(q), args...)
}

func (s *sqlStore) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return s.r.QueryRowContext(ctx, s.d.rebind(q), args...)
}

// affected is ErrNotFound when a statement changed no row.
func affected(res sql.Result, err error) error {
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

func (s *sqlStore) insertEvent(ctx context.Context, tx *sql.Tx, ev Event) error {
	_, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO events (time, message_id, kind, actor, detail) VALUES (?, ?, ?, ?, ?)`),
		s.d.time(ev.Time), ev.MessageID, ev.Kind, ev.Actor, ev.Detail)
	if err != nil {
		return fmt.Errorf("event: %w", err)
	}
	return nil
}

func (s *sqlStore) Hold(ctx context.Context, m *Message, ev Event) error {
	row, err := prepareHold(m, &ev)
	if err != nil {
		return fmt.Errorf("store: hold %s: %w", idOf(m), err)
	}
	var notified any
	if !m.NotifiedAt.IsZero() {
		notified = s.d.time(m.NotifiedAt)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO messages
	(id, queue_id, sender, subject, recipients, raw, size, state, node, created_at, updated_at, expires_at, notified_at)
	VALUES (?, ?, ?, ?, `+s.d.jsonArg+`, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (id) DO NOTHING`),
			m.ID, m.QueueID, m.Sender, m.Subject, string(row.recipients), row.raw, m.Size, string(m.State), m.Node,
			s.d.time(m.CreatedAt), s.d.time(m.UpdatedAt), s.d.time(m.ExpiresAt), notified)
		if err := affected(res, err); errors.Is(err, ErrNotFound) {
			return ErrExists
		} else if err != nil {
			return err
		}
		return s.insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return fmt.Errorf("store: hold %s: %w", m.ID, err)
	}
	return nil
}

func (s *sqlStore) messageCols() string {
	return `id, queue_id, sender, subject, ` + fmt.Sprintf(s.d.jsonText, "recipients") +
		`, size, state, node, created_at, updated_at, expires_at, notified_at, release_action, ` + fmt.Sprintf(s.d.jsonText, "release_to")
}

func scanMessage(sc interface{ Scan(...any) error }, raw *[]byte) (*Message, error) {
	var (
		m                Message
		rcpts, state     string
		relAction, relTo string
		dest             = []any{&m.ID, &m.QueueID, &m.Sender, &m.Subject, &rcpts, &m.Size, &state, &m.Node,
			at(&m.CreatedAt), at(&m.UpdatedAt), at(&m.ExpiresAt), at(&m.NotifiedAt), &relAction, &relTo}
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
	return &m, nil
}

func (s *sqlStore) Get(ctx context.Context, id string) (*Message, error) {
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("store: get: %w", err)
	}
	var raw []byte
	m, err := scanMessage(s.queryRow(ctx, `SELECT `+s.messageCols()+`, raw FROM messages WHERE id = ?`, id), &raw)
	if err := lookup(err, sql.ErrNoRows, "get %s", id); err != nil {
		return nil, err
	}
	if m.Raw, err = decompress(raw, m.Size); err != nil {
		return nil, fmt.Errorf("store: get %s: %w", id, err)
	}
	return m, nil
}

func (s *sqlStore) List(ctx context.Context, f Filter) ([]Message, error) {
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
		// Plain substring tests, not LIKE: '%' and '_' in the search
		// are literal.
		where = append(where, `(`+s.d.instr+`(lower(sender), ?) > 0 OR `+s.d.recipientMatches+`)`)
		args = append(args, f.Search, f.Search)
	}
	if f.IDPrefix != "" {
		// substr, not LIKE: '_' is a wildcard there and valid in an id.
		where = append(where, "substr(id, 1, ?) = ?")
		args = append(args, len(f.IDPrefix), f.IDPrefix)
	}
	if !f.Before.IsZero() && f.BeforeID != "" {
		where = append(where, "(created_at < ? OR created_at = ? AND id < ?)")
		args = append(args, s.d.time(f.Before), s.d.time(f.Before), f.BeforeID)
	} else if !f.Before.IsZero() {
		where = append(where, "created_at < ?")
		args = append(args, s.d.time(f.Before))
	}
	q := `SELECT ` + s.messageCols() + ` FROM messages`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, f.Limit)

	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	defer rows.Close()
	return collect(rows, "list", func(r rowIter) (Message, error) {
		m, err := scanMessage(r, nil)
		if err != nil {
			return Message{}, err
		}
		return *m, nil
	})
}

func (s *sqlStore) Transition(ctx context.Context, id string, from, to State, ev Event) error {
	if err := prepareTransition(id, from, to, &ev); err != nil {
		return fmt.Errorf("store: transition %s: %w", id, err)
	}
	return s.transition(ctx, id, from, to, ev, "")
}

func (s *sqlStore) ClaimRelease(ctx context.Context, id string, rel Release, ev Event) error {
	rcpts, err := prepareClaim(id, rel, &ev)
	if err != nil {
		return fmt.Errorf("store: claim release %s: %w", id, err)
	}
	return s.transition(ctx, id, StateHeld, StateReleasing, ev, `, release_action = ?, release_to = `+s.d.jsonArg, rel.Action, string(rcpts))
}

// transition moves id from one state to another with ev, setting also the
// columns of set (", col = ?…") to args.
func (s *sqlStore) transition(ctx context.Context, id string, from, to State, ev Event, set string, args ...any) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		// PostgreSQL: under READ COMMITTED a concurrent transition of
		// the same row blocks here until the first commits, then
		// re-checks the WHERE clause against the new row: only one of
		// them matches. SQLite: there is one writer at a time.
		res, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE messages SET state = ?, updated_at = ?`+set+` WHERE id = ? AND state = ?`),
			append(append([]any{string(to), s.d.time(ev.Time)}, args...), id, string(from))...)
		if err := affected(res, err); errors.Is(err, ErrNotFound) {
			return s.conflict(ctx, tx, id, "")
		} else if err != nil {
			return err
		}
		return s.insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return fmt.Errorf("store: transition %s %s→%s: %w", id, from, to, err)
	}
	return nil
}

// conflict tells why a conditional update of id matched no row: there is
// no such message (ErrNotFound), or it is in another state (ErrConflict).
func (s *sqlStore) conflict(ctx context.Context, tx *sql.Tx, id, or string) error {
	var cur string
	err := tx.QueryRowContext(ctx, s.d.rebind(`SELECT state FROM messages WHERE id = ?`), id).Scan(&cur)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: it is %s%s", ErrConflict, cur, or)
}

func (s *sqlStore) RetryRelease(ctx context.Context, id string, staleBefore time.Time, ev Event) error {
	if err := prepareRetry(id, staleBefore, &ev); err != nil {
		return fmt.Errorf("store: retry release %s: %w", id, err)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		// As in transition: a concurrent retry blocks on the row, then
		// re-checks updated_at against the committed value and misses.
		res, err := tx.ExecContext(ctx, s.d.rebind(`UPDATE messages SET updated_at = ? WHERE id = ? AND state = 'releasing' AND updated_at < ?`),
			s.d.time(ev.Time), id, s.d.time(stamp(staleBefore)))
		if err := affected(res, err); errors.Is(err, ErrNotFound) {
			return s.conflict(ctx, tx, id, ", or not stale")
		} else if err != nil {
			return err
		}
		return s.insertEvent(ctx, tx, ev)
	})
	if err != nil {
		return fmt.Errorf("store: retry release %s: %w", id, err)
	}
	return nil
}

func (s *sqlStore) ClaimWarnNotice(ctx context.Context, sender, domain string, at time.Time) (bool, error) {
	day, err := prepareWarnNotice(sender, domain, at)
	if err != nil {
		return false, fmt.Errorf("store: claim warn notice: %w", err)
	}
	res, err := s.exec(ctx, `INSERT INTO warn_notices (sender, domain, day) VALUES (?, ?, ?)
	ON CONFLICT (sender, domain) DO UPDATE SET day = excluded.day WHERE warn_notices.day < excluded.day`,
		sender, domain, s.d.time(day))
	if err := affected(res, err); errors.Is(err, ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("store: claim warn notice: %w", err)
	}
	return true, nil
}

func (s *sqlStore) MarkNotified(ctx context.Context, id string, at time.Time) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("store: mark notified: %w", err)
	}
	if at.IsZero() {
		at = nowStamp()
	}
	if err := affected(s.exec(ctx, `UPDATE messages SET notified_at = ? WHERE id = ?`, s.d.time(stamp(at)), id)); err != nil {
		return fmt.Errorf("store: mark notified %s: %w", id, err)
	}
	return nil
}

func (s *sqlStore) Due(ctx context.Context, now, staleBefore time.Time, limit int) (expired, stale []string, err error) {
	if limit < 0 {
		return nil, nil, fmt.Errorf("store: due: negative limit %d", limit)
	}
	if limit == 0 {
		limit = defaultDueLimit
	}
	expired, err = s.ids(ctx, `SELECT id FROM messages WHERE state = 'held' AND expires_at < ? ORDER BY expires_at, id LIMIT ?`, s.d.time(stamp(now)), limit)
	if err != nil {
		return nil, nil, fmt.Errorf("store: due: %w", err)
	}
	stale, err = s.ids(ctx, `SELECT id FROM messages WHERE state = 'releasing' AND updated_at < ? ORDER BY updated_at, id LIMIT ?`, s.d.time(stamp(staleBefore)), limit)
	if err != nil {
		return nil, nil, fmt.Errorf("store: due: %w", err)
	}
	return expired, stale, nil
}

func (s *sqlStore) ids(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return collect(rows, "ids", func(r rowIter) (string, error) {
		var id string
		err := r.Scan(&id)
		return id, err
	})
}

func (s *sqlStore) AddEvent(ctx context.Context, ev Event) error {
	if err := prepareEvent(&ev); err != nil {
		return fmt.Errorf("store: add event: %w", err)
	}
	if _, err := s.exec(ctx, `INSERT INTO events (time, message_id, kind, actor, detail) VALUES (?, ?, ?, ?, ?)`,
		s.d.time(ev.Time), ev.MessageID, ev.Kind, ev.Actor, ev.Detail); err != nil {
		return fmt.Errorf("store: add event: %w", err)
	}
	return nil
}

func (s *sqlStore) Events(ctx context.Context, f EventFilter) ([]Event, error) {
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
		args = append(args, s.d.time(f.Since))
	}
	q := `SELECT id, time, message_id, kind, actor, detail FROM events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += ` ORDER BY time DESC, id DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	defer rows.Close()
	return collect(rows, "events", func(r rowIter) (Event, error) {
		var ev Event
		err := r.Scan(&ev.ID, at(&ev.Time), &ev.MessageID, &ev.Kind, &ev.Actor, &ev.Detail)
		return ev, err
	})
}

// values repeats row n times, for a VALUES list of n rows.
func values(n int, row string) string {
	return row + strings.Repeat(", "+row, n-1)
}

func (s *sqlStore) AddDeliveries(ctx context.Context, sender string, domains []string, at time.Time) error {
	ds, err := prepareDeliveries(sender, domains)
	if err != nil {
		return fmt.Errorf("store: add deliveries: %w", err)
	}
	if at.IsZero() {
		at = nowStamp()
	}
	cs := make([]DeliveryCount, len(ds))
	for i, d := range ds {
		cs[i] = DeliveryCount{Domain: d, Sender: sender, N: 1, First: at, Last: at}
	}
	if err := s.addDeliveryCounts(ctx, cs); err != nil {
		return fmt.Errorf("store: add deliveries: %w", err)
	}
	return nil
}

func (s *sqlStore) AddDeliveryCounts(ctx context.Context, counts []DeliveryCount) error {
	if err := s.addDeliveryCounts(ctx, counts); err != nil {
		return fmt.Errorf("store: add delivery counts: %w", err)
	}
	return nil
}

// deliveryRows is how many rows one statement of addDeliveryCounts
// takes: 3,000 parameters at most, far below SQLite's and PostgreSQL's
// limits.
const deliveryRows = 1000

func (s *sqlStore) addDeliveryCounts(ctx context.Context, counts []DeliveryCount) error {
	b, err := prepareDeliveryCounts(counts)
	if err != nil {
		return err
	}
	if len(b.domains) == 0 {
		return nil
	}
	// Each statement takes its rows sorted and one row per key (an upsert
	// cannot touch a row twice): concurrent deliveries on PostgreSQL lock
	// rows in one order.
	return s.write(ctx, func(tx *sql.Tx) error {
		for rows := range slices.Chunk(b.domains, deliveryRows) {
			args := make([]any, 0, 4*len(rows))
			for _, d := range rows {
				args = append(args, d.domain, s.d.time(d.first), s.d.time(d.last), d.n)
			}
			if _, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO correspondents (domain, first_seen, last_seen, deliveries) VALUES `+
				values(len(rows), "(?, ?, ?, ?)")+`
	ON CONFLICT (domain) DO UPDATE SET deliveries = correspondents.deliveries + excluded.deliveries,
		first_seen = `+s.d.least+`(correspondents.first_seen, excluded.first_seen),
		last_seen = `+s.d.greatest+`(correspondents.last_seen, excluded.last_seen)`), args...); err != nil {
				return err
			}
		}
		for rows := range slices.Chunk(b.days, deliveryRows) {
			args := make([]any, 0, 2*len(rows))
			for _, d := range rows {
				args = append(args, d.domain, s.d.time(d.day))
			}
			if _, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO correspondent_days (domain, day) VALUES `+values(len(rows), "(?, ?)")+` ON CONFLICT DO NOTHING`), args...); err != nil {
				return err
			}
		}
		for rows := range slices.Chunk(b.senders, deliveryRows) {
			args := make([]any, 0, 2*len(rows))
			for _, d := range rows {
				args = append(args, d.domain, d.sender)
			}
			if _, err := tx.ExecContext(ctx, s.d.rebind(`INSERT INTO correspondent_senders (domain, sender) VALUES `+values(len(rows), "(?, ?)")+` ON CONFLICT DO NOTHING`), args...); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *sqlStore) Correspondents(ctx context.Context, limit int) ([]Correspondent, error) {
	if limit < 0 {
		return nil, fmt.Errorf("store: correspondents: negative limit %d", limit)
	}
	q := `SELECT c.domain, c.deliveries,
	(SELECT count(*) FROM correspondent_senders s WHERE s.domain = c.domain),
	(SELECT count(*) FROM correspondent_days d WHERE d.domain = c.domain),
	c.first_seen, c.last_seen
FROM correspondents c ORDER BY c.deliveries DESC, c.domain`
	var args []any
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: correspondents: %w", err)
	}
	defer rows.Close()
	return collect(rows, "correspondents", func(r rowIter) (Correspondent, error) {
		var c Correspondent
		err := r.Scan(&c.Domain, &c.Deliveries, &c.Senders, &c.Days, at(&c.FirstSeen), at(&c.LastSeen))
		return c, err
	})
}

func (s *sqlStore) PutUser(ctx context.Context, u *User) error {
	if err := prepareUser(u); err != nil {
		return fmt.Errorf("store: put user: %w", err)
	}
	var created time.Time
	err := s.w.QueryRowContext(ctx, s.d.rebind(`INSERT INTO users (name, role, hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (name) DO UPDATE SET role = excluded.role, hash = excluded.hash, updated_at = excluded.updated_at
	RETURNING created_at`),
		u.Name, string(u.Role), u.Hash, s.d.time(u.CreatedAt), s.d.time(u.UpdatedAt)).Scan(at(&created))
	if err != nil {
		return fmt.Errorf("store: put user %s: %w", u.Name, err)
	}
	u.CreatedAt = created
	return nil
}

// users.name is bytewise in both (PostgreSQL: COLLATE "C").
const userCols = `name, role, hash, created_at, updated_at`

func scanUser(sc interface{ Scan(...any) error }) (User, error) {
	var (
		u    User
		role string
	)
	err := sc.Scan(&u.Name, &role, &u.Hash, at(&u.CreatedAt), at(&u.UpdatedAt))
	u.Role = Role(role)
	return u, err
}

func (s *sqlStore) GetUser(ctx context.Context, name string) (*User, error) {
	if err := checkUserName("user name", name); err != nil {
		return nil, fmt.Errorf("store: get user: %w", notFoundIf(err))
	}
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE name = ?`, name))
	if err := lookup(err, sql.ErrNoRows, "get user %s", name); err != nil {
		return nil, err
	}
	return &u, nil
}

func (s *sqlStore) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.query(ctx, `SELECT `+userCols+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	defer rows.Close()
	return collect(rows, "list users", func(r rowIter) (User, error) { return scanUser(r) })
}

// DeleteUser deletes the user's sessions too, in the same statement: ON
// DELETE CASCADE (SQLite's writer has foreign_keys=on).
func (s *sqlStore) DeleteUser(ctx context.Context, name string) error {
	if err := checkUserName("user name", name); err != nil {
		return fmt.Errorf("store: delete user: %w", notFoundIf(err))
	}
	if err := affected(s.exec(ctx, `DELETE FROM users WHERE name = ?`, name)); err != nil {
		return fmt.Errorf("store: delete user %s: %w", name, err)
	}
	return nil
}

func (s *sqlStore) CreateSession(ctx context.Context, se *Session) error {
	if err := prepareSession(se); err != nil {
		return fmt.Errorf("store: create session: %w", err)
	}
	// The foreign key, not a prior check, finds a missing user: it also
	// catches a DeleteUser on another node that commits meanwhile.
	err := affected(s.exec(ctx, `INSERT INTO sessions (id, user_name, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (id) DO NOTHING`,
		se.ID, se.User, se.CSRF, s.d.time(se.CreatedAt), s.d.time(se.ExpiresAt)))
	switch {
	case err != nil && s.d.foreignKeyViolation(err):
		err = fmt.Errorf("user %s: %w", se.User, ErrNotFound)
	case errors.Is(err, ErrNotFound):
		err = fmt.Errorf("session id: %w", ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store: create session for %s: %w", se.User, err)
	}
	return nil
}

func (s *sqlStore) GetSession(ctx context.Context, id string, now time.Time) (*Session, error) {
	if err := checkHex64("session id", id); err != nil {
		return nil, fmt.Errorf("store: get session: %w", notFoundIf(err))
	}
	se := Session{ID: id}
	err := s.queryRow(ctx, `SELECT user_name, csrf, created_at, expires_at FROM sessions WHERE id = ? AND expires_at > ?`,
		id, s.d.time(nowOr(now))).Scan(&se.User, &se.CSRF, at(&se.CreatedAt), at(&se.ExpiresAt))
	if err := lookup(err, sql.ErrNoRows, "get session"); err != nil {
		return nil, err
	}
	return &se, nil
}

func (s *sqlStore) DeleteSession(ctx context.Context, id string) error {
	if err := checkHex64("session id", id); err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	if _, err := s.exec(ctx, `DELETE FROM sessions WHERE id = ?`, id); err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	return nil
}

func (s *sqlStore) PurgeSessions(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, s.d.time(nowOr(now)))
	if err != nil {
		return 0, fmt.Errorf("store: purge sessions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: purge sessions: %w", err)
	}
	return n, nil
}

func (s *sqlStore) PutToken(ctx context.Context, t *Token) error {
	if err := prepareToken(t); err != nil {
		return fmt.Errorf("store: put token: %w", err)
	}
	err := affected(s.exec(ctx, `INSERT INTO api_tokens (id, name, hash, created_by, created_at) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (id) DO NOTHING`,
		t.ID, t.Name, t.Hash, t.CreatedBy, s.d.time(t.CreatedAt)))
	if errors.Is(err, ErrNotFound) {
		err = ErrExists
	}
	if err != nil {
		return fmt.Errorf("store: put token %s: %w", t.ID, err)
	}
	return nil
}

const tokenCols = `id, name, hash, created_by, created_at`

func scanToken(sc interface{ Scan(...any) error }) (Token, error) {
	var t Token
	err := sc.Scan(&t.ID, &t.Name, &t.Hash, &t.CreatedBy, at(&t.CreatedAt))
	return t, err
}

func (s *sqlStore) GetToken(ctx context.Context, id string) (*Token, error) {
	if err := checkTokenID(id); err != nil {
		return nil, fmt.Errorf("store: get token: %w", notFoundIf(err))
	}
	t, err := scanToken(s.queryRow(ctx, `SELECT `+tokenCols+` FROM api_tokens WHERE id = ?`, id))
	if err := lookup(err, sql.ErrNoRows, "get token %s", id); err != nil {
		return nil, err
	}
	return &t, nil
}

func (s *sqlStore) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := s.query(ctx, `SELECT `+tokenCols+` FROM api_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list tokens: %w", err)
	}
	defer rows.Close()
	return collect(rows, "list tokens", func(r rowIter) (Token, error) { return scanToken(r) })
}

func (s *sqlStore) DeleteToken(ctx context.Context, id string) error {
	if err := checkTokenID(id); err != nil {
		return fmt.Errorf("store: delete token: %w", notFoundIf(err))
	}
	if err := affected(s.exec(ctx, `DELETE FROM api_tokens WHERE id = ?`, id)); err != nil {
		return fmt.Errorf("store: delete token %s: %w", id, err)
	}
	return nil
}

// insertID runs an INSERT … ON CONFLICT DO NOTHING RETURNING id: the new
// row's id, or ErrExists.
func (s *sqlStore) insertID(ctx context.Context, q string, args ...any) (int64, error) {
	var id int64
	err := s.w.QueryRowContext(ctx, s.d.rebind(q), args...).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrExists
	}
	return id, err
}

func (s *sqlStore) AddRule(ctx context.Context, r *Rule) error {
	if err := prepareRule(r); err != nil {
		return fmt.Errorf("store: add rule: %w", err)
	}
	id, err := s.insertID(ctx, `INSERT INTO policy_rules (kind, pattern, note, created_by, created_at) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (kind, pattern) DO NOTHING RETURNING id`,
		r.Kind, r.Pattern, r.Note, r.CreatedBy, s.d.time(r.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: add rule %s %s: %w", r.Kind, r.Pattern, err)
	}
	r.ID = id
	return nil
}

func (s *sqlStore) ListRules(ctx context.Context) ([]Rule, error) {
	rows, err := s.query(ctx, `SELECT id, kind, pattern, note, created_by, created_at FROM policy_rules ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list rules: %w", err)
	}
	defer rows.Close()
	return collect(rows, "list rules", func(rw rowIter) (Rule, error) {
		var r Rule
		err := rw.Scan(&r.ID, &r.Kind, &r.Pattern, &r.Note, &r.CreatedBy, at(&r.CreatedAt))
		return r, err
	})
}

func (s *sqlStore) DeleteRule(ctx context.Context, id int64) error {
	if err := affected(s.exec(ctx, `DELETE FROM policy_rules WHERE id = ?`, id)); err != nil {
		return fmt.Errorf("store: delete rule %d: %w", id, err)
	}
	return nil
}

func (s *sqlStore) AddSenderAllow(ctx context.Context, a *SenderAllow) error {
	if err := prepareSenderAllow(a); err != nil {
		return fmt.Errorf("store: add sender allow: %w", err)
	}
	id, err := s.insertID(ctx, `INSERT INTO sender_allows (sender, recipient, note, created_by, created_at) VALUES (?, ?, ?, ?, ?)
	ON CONFLICT (sender, recipient) DO NOTHING RETURNING id`,
		a.Sender, a.Recipient, a.Note, a.CreatedBy, s.d.time(a.CreatedAt))
	if err != nil {
		return fmt.Errorf("store: add sender allow %s → %s: %w", a.Sender, a.Recipient, err)
	}
	a.ID = id
	return nil
}

func (s *sqlStore) ListSenderAllows(ctx context.Context) ([]SenderAllow, error) {
	rows, err := s.query(ctx, `SELECT id, sender, recipient, note, created_by, created_at FROM sender_allows ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list sender allows: %w", err)
	}
	defer rows.Close()
	return collect(rows, "list sender allows", func(rw rowIter) (SenderAllow, error) {
		var a SenderAllow
		err := rw.Scan(&a.ID, &a.Sender, &a.Recipient, &a.Note, &a.CreatedBy, at(&a.CreatedAt))
		return a, err
	})
}

func (s *sqlStore) DeleteSenderAllow(ctx context.Context, id int64) error {
	if err := affected(s.exec(ctx, `DELETE FROM sender_allows WHERE id = ?`, id)); err != nil {
		return fmt.Errorf("store: delete sender allow %d: %w", id, err)
	}
	return nil
}

func (s *sqlStore) AddDecisionCounts(ctx context.Context, counts []DecisionCount) error {
	cs, err := prepareDecisionCounts(counts)
	if err != nil {
		return fmt.Errorf("store: add decision counts: %w", err)
	}
	if len(cs) == 0 {
		return nil
	}
	// cs is sorted, one entry per key: on PostgreSQL concurrent callers
	// lock rows in one order, and an upsert that meets a row another
	// transaction is writing waits for it, then adds to the committed n.
	args := make([]any, 0, 4*len(cs))
	for _, c := range cs {
		args = append(args, s.d.time(c.Day), c.Verdict, c.Action, c.N)
	}
	_, err = s.exec(ctx, `INSERT INTO decision_counts (day, verdict, action, n) VALUES `+values(len(cs), "(?, ?, ?, ?)")+`
	ON CONFLICT (day, verdict, action) DO UPDATE SET n = decision_counts.n + excluded.n`, args...)
	if err != nil {
		return fmt.Errorf("store: add decision counts: %w", err)
	}
	return nil
}

func (s *sqlStore) DecisionCounts(ctx context.Context, since time.Time) ([]DecisionCount, error) {
	q, args := `SELECT day, verdict, action, n FROM decision_counts`, []any{}
	if !since.IsZero() {
		q += ` WHERE day >= ?`
		args = append(args, s.d.time(day(since)))
	}
	// verdict and action are bytewise in both (PostgreSQL: COLLATE "C").
	rows, err := s.query(ctx, q+` ORDER BY day, verdict, action`, args...)
	if err != nil {
		return nil, fmt.Errorf("store: decision counts: %w", err)
	}
	defer rows.Close()
	return collect(rows, "decision counts", func(r rowIter) (DecisionCount, error) {
		var c DecisionCount
		err := r.Scan(at(&c.Day), &c.Verdict, &c.Action, &c.N)
		c.Day = day(c.Day)
		return c, err
	})
}

func (s *sqlStore) AddReport(ctx context.Context, r *Report) error {
	row, err := prepareReport(r)
	if err != nil {
		return fmt.Errorf("store: add report: %w", err)
	}
	var id int64
	err = s.w.QueryRowContext(ctx, s.d.rebind(`INSERT INTO reports (kind, title, created_by, created_at, json, json_size, html, html_size)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		r.Kind, r.Title, r.CreatedBy, s.d.time(r.CreatedAt), row.json, len(r.JSON), row.html, len(r.HTML)).Scan(&id)
	if err != nil {
		return fmt.Errorf("store: add report: %w", err)
	}
	r.ID = id
	return nil
}

const reportCols = `id, kind, title, created_by, created_at`

func scanReport(sc interface{ Scan(...any) error }, bodies ...any) (Report, error) {
	var r Report
	err := sc.Scan(append([]any{&r.ID, &r.Kind, &r.Title, &r.CreatedBy, at(&r.CreatedAt)}, bodies...)...)
	return r, err
}

func (s *sqlStore) ListReports(ctx context.Context, kind string, limit int) ([]Report, error) {
	limit, err := prepareReportList(kind, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list reports: %w", err)
	}
	q, args := `SELECT `+reportCols+` FROM reports`, []any{}
	if kind != "" {
		q += ` WHERE kind = ?`
		args = append(args, kind)
	}
	rows, err := s.query(ctx, q+` ORDER BY created_at DESC, id DESC LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("store: list reports: %w", err)
	}
	defer rows.Close()
	return collect(rows, "list reports", func(r rowIter) (Report, error) { return scanReport(r) })
}

func (s *sqlStore) GetReport(ctx context.Context, id int64) (*Report, error) {
	var (
		j, h         []byte
		jsize, hsize int64
	)
	r, err := scanReport(s.queryRow(ctx, `SELECT `+reportCols+`, json, json_size, html, html_size FROM reports WHERE id = ?`, id),
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

// Ping writes an event in a write transaction that it rolls back: the
// database answers, is not a read-only standby, and is not locked out by
// another process; then it checks the readers.
func (s *sqlStore) Ping(ctx context.Context) error {
	tx, err := s.w.BeginTx(ctx, s.d.tx)
	if err != nil {
		return fmt.Errorf("store: ping %s: %w", s.name, err)
	}
	defer tx.Rollback()
	if err := s.insertEvent(ctx, tx, Event{Time: nowStamp(), Kind: "ping"}); err != nil {
		return fmt.Errorf("store: ping %s: %w", s.name, err)
	}
	if s.r != s.w {
		if err := s.r.PingContext(ctx); err != nil {
			return fmt.Errorf("store: ping %s: %w", s.name, err)
		}
	}
	return nil
}

func (s *sqlStore) Close() error {
	var errs []error
	if s.r != nil && s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close %s: %w", s.name, err)
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
