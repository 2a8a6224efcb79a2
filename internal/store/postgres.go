package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgConnectTimeout bounds a connection attempt when the DSN sets no
// connect_timeout: a server that does not answer (rather than refusing) must
// not keep a caller without a deadline waiting for minutes.
const pgConnectTimeout = 10 * time.Second

// pgStore is the shared backend: several stray nodes on one database.
// Exactly-once state changes come from conditional updates
// (UPDATE … WHERE id = $id AND state = $from) under PostgreSQL's row locks,
// in the same transaction as their event.
type pgStore struct {
	pool *pgxpool.Pool
	name string // host:port/database, for errors; never the password
}

var _ Store = (*pgStore)(nil)

// readCommitted is asked for explicitly, whatever the server's default:
// under it a conditional UPDATE that lost a race waits for the winner and
// then matches no row (ErrConflict), where SERIALIZABLE would fail with a
// serialization error instead.
var readCommitted = pgx.TxOptions{IsoLevel: pgx.ReadCommitted}

func openPostgres(ctx context.Context, dsn string) (*pgStore, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
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
	s := &pgStore{name: fmt.Sprintf("%s:%d/%s", cc.Host, cc.Port, cc.Database)}
	if err := pgMigrate(ctx, cc.Copy()); err != nil {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	s.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	return s, nil
}

// pgMigrate applies the migrations on a connection of its own, holding a
// session advisory lock so that nodes starting together take turns; the
// lock goes with the connection, whatever happens.
func pgMigrate(ctx context.Context, cc *pgx.ConnConfig) error {
	ms, err := loadMigrations("postgres")
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	// One lock per schema: installations (and test runs) in different
	// schemas of one database do not wait for each other.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtextextended('stray.store.migrate:' || coalesce(current_schema(), ''), 0))`); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer     NOT NULL PRIMARY KEY,
	name       text        NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	rows, _ := conn.Query(ctx, `SELECT version, name FROM schema_migrations`)
	applied := map[int]string{}
	var v int
	var name string
	if _, err := pgx.ForEachRow(rows, []any{&v, &name}, func() error { applied[v] = name; return nil }); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := checkApplied(applied, ms); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, m := range ms {
		if _, ok := applied[m.version]; ok {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil { // no arguments: simple protocol, several statements
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %04d_%s: %w", m.version, m.name, err)
		}
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`); err != nil {
		return fmt.Errorf("migrate: unlock: %w", err)
	}
	return nil
}

func pgInsertEvent(ctx context.Context, tx pgx.Tx, ev Event) error {
	_, err := tx.Exec(ctx, `INSERT INTO events (time, message_id, kind, actor, detail) VALUES ($1, $2, $3, $4, $5)`,
		ev.Time, ev.MessageID, ev.Kind, ev.Actor, ev.Detail)
	if err != nil {
		return fmt.Errorf("event: %w", err)
	}
	return nil
}

func (s *pgStore) Hold(ctx context.Context, m *Message, ev Event) error {
	row, err := prepareHold(m, &ev)
	if err != nil {
		return fmt.Errorf("store: hold %s: %w", idOf(m), err)
	}
	var notified *time.Time
	if !m.NotifiedAt.IsZero() {
		notified = &m.NotifiedAt
	}
	err = pgx.BeginTxFunc(ctx, s.pool, readCommitted, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO messages
	(id, queue_id, sender, recipients, raw, size, state, node, created_at, updated_at, expires_at, notified_at)
	VALUES ($1, $2, $3, ($4::text)::jsonb, $5, $6, $7, $8, $9, $10, $11, $12)
	ON CONFLICT (id) DO NOTHING`,
			m.ID, m.QueueID, m.Sender, string(row.recipients), row.raw, m.Size, string(m.State), m.Node,
			m.CreatedAt, m.UpdatedAt, m.ExpiresAt, notified)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrExists
		}
		return pgInsertEvent(ctx, tx, ev)
	})
	if err != nil {
		return fmt.Errorf("store: hold %s: %w", m.ID, err)
	}
	return nil
}

const pgMessageCols = `id, queue_id, sender, recipients::text, size, state, node, created_at, updated_at, expires_at, notified_at, release_action, release_to::text`

func scanPGMessage(sc pgx.Row, raw *[]byte) (*Message, error) {
	var (
		m                Message
		rcpts, state     string
		notified         *time.Time
		relAction, relTo string
		dest             = []any{&m.ID, &m.QueueID, &m.Sender, &rcpts, &m.Size, &state, &m.Node, &m.CreatedAt, &m.UpdatedAt, &m.ExpiresAt, &notified, &relAction, &relTo}
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
	m.CreatedAt, m.UpdatedAt, m.ExpiresAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC(), m.ExpiresAt.UTC()
	if notified != nil {
		m.NotifiedAt = notified.UTC()
	}
	return &m, nil
}

func (s *pgStore) Get(ctx context.Context, id string) (*Message, error) {
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("store: get: %w", err)
	}
	var raw []byte
	m, err := scanPGMessage(s.pool.QueryRow(ctx, `SELECT `+pgMessageCols+`, raw FROM messages WHERE id = $1`, id), &raw)
	if err := lookup(err, pgx.ErrNoRows, "get %s", id); err != nil {
		return nil, err
	}
	if m.Raw, err = decompress(raw, m.Size); err != nil {
		return nil, fmt.Errorf("store: get %s: %w", id, err)
	}
	return m, nil
}

// pgArgs collects query arguments and hands out their placeholders.
type pgArgs []any

func (a *pgArgs) add(v any) string {
	*a = append(*a, v)
	return fmt.Sprintf("$%d", len(*a))
}

func (s *pgStore) List(ctx context.Context, f Filter) ([]Message, error) {
	if err := prepareList(&f); err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	var (
		where []string
		args  pgArgs
	)
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, st := range f.States {
			states[i] = string(st)
		}
		where = append(where, "state = ANY("+args.add(states)+")")
	}
	if f.Sender != "" {
		where = append(where, "sender = "+args.add(f.Sender))
	}
	if f.Search != "" {
		p := args.add(f.Search)
		// strpos, not LIKE: '%' and '_' in the search are literal.
		where = append(where, `(strpos(lower(sender), `+p+`) > 0 OR EXISTS (
	SELECT 1 FROM jsonb_array_elements(messages.recipients) r WHERE strpos(lower(r ->> 'address'), `+p+`) > 0))`)
	}
	if f.IDPrefix != "" {
		// substr, not LIKE: '_' is a wildcard there and valid in an id.
		where = append(where, "substr(id, 1, "+args.add(len(f.IDPrefix))+") = "+args.add(f.IDPrefix))
	}
	if !f.Before.IsZero() && f.BeforeID != "" {
		b := args.add(f.Before)
		where = append(where, "(created_at < "+b+" OR created_at = "+b+" AND id < "+args.add(f.BeforeID)+")")
	} else if !f.Before.IsZero() {
		where = append(where, "created_at < "+args.add(f.Before))
	}
	q := `SELECT ` + pgMessageCols + ` FROM messages`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ` + args.add(f.Limit)

	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list: %w", err)
	}
	defer rows.Close()
	return collect(rows, "list", func(r rowIter) (Message, error) {
		m, err := scanPGMessage(r, nil)
		if err != nil {
			return Message{}, err
		}
		return *m, nil
	})
}

func (s *pgStore) Transition(ctx context.Context, id string, from, to State, ev Event) error {
	if err := prepareTransition(id, from, to, &ev); err != nil {
		return fmt.Errorf("store: transition %s: %w", id, err)
	}
	return s.transition(ctx, id, from, to, ev, "")
}

func (s *pgStore) ClaimRelease(ctx context.Context, id string, rel Release, ev Event) error {
	rcpts, err := prepareClaim(id, rel, &ev)
	if err != nil {
		return fmt.Errorf("store: claim release %s: %w", id, err)
	}
	return s.transition(ctx, id, StateHeld, StateReleasing, ev, `, release_action = $5, release_to = ($6::text)::jsonb`, rel.Action, string(rcpts))
}

// transition moves id from one state to another with ev, setting also the
// columns of set (", col = $5…") to args.
func (s *pgStore) transition(ctx context.Context, id string, from, to State, ev Event, set string, args ...any) error {
	err := pgx.BeginTxFunc(ctx, s.pool, readCommitted, func(tx pgx.Tx) error {
		// Under READ COMMITTED a concurrent transition of the same row
		// blocks here until the first commits, then re-checks the WHERE
		// clause against the new row: only one of them matches.
		tag, err := tx.Exec(ctx, `UPDATE messages SET state = $1, updated_at = $2`+set+` WHERE id = $3 AND state = $4`,
			append([]any{string(to), ev.Time, id, string(from)}, args...)...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var cur string
			err := tx.QueryRow(ctx, `SELECT state FROM messages WHERE id = $1`, id).Scan(&cur)
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: it is %s", ErrConflict, cur)
		}
		return pgInsertEvent(ctx, tx, ev)
	})
	if err != nil {
		return fmt.Errorf("store: transition %s %s→%s: %w", id, from, to, err)
	}
	return nil
}

func (s *pgStore) RetryRelease(ctx context.Context, id string, staleBefore time.Time, ev Event) error {
	if err := prepareRetry(id, staleBefore, &ev); err != nil {
		return fmt.Errorf("store: retry release %s: %w", id, err)
	}
	err := pgx.BeginTxFunc(ctx, s.pool, readCommitted, func(tx pgx.Tx) error {
		// As in transition: a concurrent retry blocks on the row, then
		// re-checks updated_at against the committed value and misses.
		tag, err := tx.Exec(ctx, `UPDATE messages SET updated_at = $1 WHERE id = $2 AND state = 'releasing' AND updated_at < $3`,
			ev.Time, id, stamp(staleBefore))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var cur string
			err := tx.QueryRow(ctx, `SELECT state FROM messages WHERE id = $1`, id).Scan(&cur)
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: it is %s, or not stale", ErrConflict, cur)
		}
		return pgInsertEvent(ctx, tx, ev)
	})
	if err != nil {
		return fmt.Errorf("store: retry release %s: %w", id, err)
	}
	return nil
}

func (s *pgStore) ClaimWarnNotice(ctx context.Context, sender, domain string, at time.Time) (bool, error) {
	day, err := prepareWarnNotice(sender, domain, at)
	if err != nil {
		return false, fmt.Errorf("store: claim warn notice: %w", err)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO warn_notices (sender, domain, day) VALUES ($1, $2, $3)
	ON CONFLICT (sender, domain) DO UPDATE SET day = excluded.day WHERE warn_notices.day < excluded.day`,
		sender, domain, day)
	if err != nil {
		return false, fmt.Errorf("store: claim warn notice: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

func (s *pgStore) MarkNotified(ctx context.Context, id string, at time.Time) error {
	if err := checkID(id); err != nil {
		return fmt.Errorf("store: mark notified: %w", err)
	}
	if at.IsZero() {
		at = nowStamp()
	}
	tag, err := s.pool.Exec(ctx, `UPDATE messages SET notified_at = $1 WHERE id = $2`, stamp(at), id)
	if err != nil {
		return fmt.Errorf("store: mark notified %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: mark notified %s: %w", id, ErrNotFound)
	}
	return nil
}

func (s *pgStore) Due(ctx context.Context, now, staleBefore time.Time, limit int) (expired, stale []string, err error) {
	if limit < 0 {
		return nil, nil, fmt.Errorf("store: due: negative limit %d", limit)
	}
	if limit == 0 {
		limit = defaultDueLimit
	}
	expired, err = s.ids(ctx, `SELECT id FROM messages WHERE state = 'held' AND expires_at < $1 ORDER BY expires_at, id LIMIT $2`, stamp(now), limit)
	if err != nil {
		return nil, nil, fmt.Errorf("store: due: %w", err)
	}
	stale, err = s.ids(ctx, `SELECT id FROM messages WHERE state = 'releasing' AND updated_at < $1 ORDER BY updated_at, id LIMIT $2`, stamp(staleBefore), limit)
	if err != nil {
		return nil, nil, fmt.Errorf("store: due: %w", err)
	}
	return expired, stale, nil
}

func (s *pgStore) ids(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if len(ids) == 0 {
		ids = nil
	}
	return ids, err
}

func (s *pgStore) AddEvent(ctx context.Context, ev Event) error {
	if err := prepareEvent(&ev); err != nil {
		return fmt.Errorf("store: add event: %w", err)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO events (time, message_id, kind, actor, detail) VALUES ($1, $2, $3, $4, $5)`,
		ev.Time, ev.MessageID, ev.Kind, ev.Actor, ev.Detail)
	if err != nil {
		return fmt.Errorf("store: add event: %w", err)
	}
	return nil
}

func (s *pgStore) Events(ctx context.Context, f EventFilter) ([]Event, error) {
	if err := prepareEvents(&f); err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	var (
		where []string
		args  pgArgs
	)
	if f.MessageID != "" {
		where = append(where, "message_id = "+args.add(f.MessageID))
	}
	if f.Kind != "" {
		where = append(where, "kind = "+args.add(f.Kind))
	}
	if !f.Since.IsZero() {
		where = append(where, "time >= "+args.add(f.Since))
	}
	q := `SELECT id, time, message_id, kind, actor, detail FROM events`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += ` ORDER BY time DESC, id DESC LIMIT ` + args.add(f.Limit)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: events: %w", err)
	}
	defer rows.Close()
	return collect(rows, "events", func(r rowIter) (Event, error) {
		var ev Event
		err := r.Scan(&ev.ID, &ev.Time, &ev.MessageID, &ev.Kind, &ev.Actor, &ev.Detail)
		ev.Time = ev.Time.UTC()
		return ev, err
	})
}

func (s *pgStore) AddDeliveries(ctx context.Context, sender string, domains []string, at time.Time) error {
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
	at = stamp(at)
	err = pgx.BeginTxFunc(ctx, s.pool, readCommitted, func(tx pgx.Tx) error {
		// ds is sorted: concurrent deliveries lock rows in one order.
		var b pgx.Batch
		for _, d := range ds {
			b.Queue(`INSERT INTO correspondents (domain, deliveries, first_seen, last_seen) VALUES ($1, 1, $2, $2)
	ON CONFLICT (domain) DO UPDATE SET deliveries = correspondents.deliveries + 1,
		first_seen = LEAST(correspondents.first_seen, excluded.first_seen),
		last_seen = GREATEST(correspondents.last_seen, excluded.last_seen)`, d, at)
			b.Queue(`INSERT INTO correspondent_days (domain, day) VALUES ($1, $2) ON CONFLICT DO NOTHING`, d, pgDate(day(at)))
			if sender != "" {
				b.Queue(`INSERT INTO correspondent_senders (domain, sender) VALUES ($1, $2) ON CONFLICT DO NOTHING`, d, sender)
			}
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return fmt.Errorf("store: add deliveries: %w", err)
	}
	return nil
}

func (s *pgStore) Correspondents(ctx context.Context, limit int) ([]Correspondent, error) {
	if limit < 0 {
		return nil, fmt.Errorf("store: correspondents: negative limit %d", limit)
	}
	var lim any // NULL: LIMIT ALL
	if limit > 0 {
		lim = limit
	}
	rows, err := s.pool.Query(ctx, `SELECT c.domain, c.deliveries,
	(SELECT count(*) FROM correspondent_senders s WHERE s.domain = c.domain),
	(SELECT count(*) FROM correspondent_days d WHERE d.domain = c.domain),
	c.first_seen, c.last_seen
FROM correspondents c ORDER BY c.deliveries DESC, c.domain LIMIT $1::bigint`, lim)
	if err != nil {
		return nil, fmt.Errorf("store: correspondents: %w", err)
	}
	defer rows.Close()
	return collect(rows, "correspondents", func(r rowIter) (Correspondent, error) {
		var c Correspondent
		err := r.Scan(&c.Domain, &c.Deliveries, &c.Senders, &c.Days, &c.FirstSeen, &c.LastSeen)
		c.FirstSeen, c.LastSeen = c.FirstSeen.UTC(), c.LastSeen.UTC()
		return c, err
	})
}

// pgForeignKeyViolation is SQLSTATE foreign_key_violation.
const pgForeignKeyViolation = "23503"

// pgCode is the SQLSTATE of a PostgreSQL error, "" for any other error.
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// pgAffected is ErrNotFound when a statement changed no row.
func pgAffected(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

func (s *pgStore) PutUser(ctx context.Context, u *User) error {
	if err := prepareUser(u); err != nil {
		return fmt.Errorf("store: put user: %w", err)
	}
	var created time.Time
	err := s.pool.QueryRow(ctx, `INSERT INTO users (name, role, hash, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (name) DO UPDATE SET role = excluded.role, hash = excluded.hash, updated_at = excluded.updated_at
	RETURNING created_at`,
		u.Name, string(u.Role), u.Hash, u.CreatedAt, u.UpdatedAt).Scan(&created)
	if err != nil {
		return fmt.Errorf("store: put user %s: %w", u.Name, err)
	}
	u.CreatedAt = created.UTC()
	return nil
}

const pgUserCols = `name, role, hash, created_at, updated_at`

func scanPGUser(sc pgx.Row) (User, error) {
	var (
		u    User
		role string
	)
	err := sc.Scan(&u.Name, &role, &u.Hash, &u.CreatedAt, &u.UpdatedAt)
	u.Role, u.CreatedAt, u.UpdatedAt = Role(role), u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	return u, err
}

func (s *pgStore) GetUser(ctx context.Context, name string) (*User, error) {
	if err := checkUserName("user name", name); err != nil {
		return nil, fmt.Errorf("store: get user: %w", notFoundIf(err))
	}
	u, err := scanPGUser(s.pool.QueryRow(ctx, `SELECT `+pgUserCols+` FROM users WHERE name = $1`, name))
	if err := lookup(err, pgx.ErrNoRows, "get user %s", name); err != nil {
		return nil, err
	}
	return &u, nil
}

func (s *pgStore) ListUsers(ctx context.Context) ([]User, error) {
	// users.name is COLLATE "C": bytewise, as SQLite orders it.
	rows, err := s.pool.Query(ctx, `SELECT `+pgUserCols+` FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("store: list users: %w", err)
	}
	defer rows.Close()
	return collect(rows, "list users", func(r rowIter) (User, error) { return scanPGUser(r) })
}

func (s *pgStore) DeleteUser(ctx context.Context, name string) error {
	if err := checkUserName("user name", name); err != nil {
		return fmt.Errorf("store: delete user: %w", notFoundIf(err))
	}
	// The sessions go with it: ON DELETE CASCADE.
	if err := pgAffected(s.pool.Exec(ctx, `DELETE FROM users WHERE name = $1`, name)); err != nil {
		return fmt.Errorf("store: delete user %s: %w", name, err)
	}
	return nil
}

func (s *pgStore) CreateSession(ctx context.Context, se *Session) error {
	if err := prepareSession(se); err != nil {
		return fmt.Errorf("store: create session: %w", err)
	}
	// The foreign key, not a prior check, finds a missing user: it also
	// catches a DeleteUser on another node that commits meanwhile.
	err := pgAffected(s.pool.Exec(ctx, `INSERT INTO sessions (id, user_name, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (id) DO NOTHING`,
		se.ID, se.User, se.CSRF, se.CreatedAt, se.ExpiresAt))
	switch {
	case pgCode(err) == pgForeignKeyViolation:
		err = fmt.Errorf("user %s: %w", se.User, ErrNotFound)
	case errors.Is(err, ErrNotFound):
		err = fmt.Errorf("session id: %w", ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store: create session for %s: %w", se.User, err)
	}
	return nil
}

func (s *pgStore) GetSession(ctx context.Context, id string, now time.Time) (*Session, error) {
	if err := checkHex64("session id", id); err != nil {
		return nil, fmt.Errorf("store: get session: %w", notFoundIf(err))
	}
	se := Session{ID: id}
	err := s.pool.QueryRow(ctx, `SELECT user_name, csrf, created_at, expires_at FROM sessions WHERE id = $1 AND expires_at > $2`,
		id, nowOr(now)).Scan(&se.User, &se.CSRF, &se.CreatedAt, &se.ExpiresAt)
	if err := lookup(err, pgx.ErrNoRows, "get session"); err != nil {
		return nil, err
	}
	se.CreatedAt, se.ExpiresAt = se.CreatedAt.UTC(), se.ExpiresAt.UTC()
	return &se, nil
}

func (s *pgStore) DeleteSession(ctx context.Context, id string) error {
	if err := checkHex64("session id", id); err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE id = $1`, id); err != nil {
		return fmt.Errorf("store: delete session: %w", err)
	}
	return nil
}

func (s *pgStore) PurgeSessions(ctx context.Context, now time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1`, nowOr(now))
	if err != nil {
		return 0, fmt.Errorf("store: purge sessions: %w", err)
	}
	return tag.RowsAffected(), nil
}

func (s *pgStore) PutToken(ctx context.Context, t *Token) error {
	if err := prepareToken(t); err != nil {
		return fmt.Errorf("store: put token: %w", err)
	}
	err := pgAffected(s.pool.Exec(ctx, `INSERT INTO api_tokens (id, name, hash, created_by, created_at) VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (id) DO NOTHING`,
		t.ID, t.Name, t.Hash, t.CreatedBy, t.CreatedAt))
	if errors.Is(err, ErrNotFound) {
		err = ErrExists
	}
	if err != nil {
		return fmt.Errorf("store: put token %s: %w", t.ID, err)
	}
	return nil
}

const pgTokenCols = `id, name, hash, created_by, created_at`

func scanPGToken(sc pgx.Row) (Token, error) {
	var t Token
	err := sc.Scan(&t.ID, &t.Name, &t.Hash, &t.CreatedBy, &t.CreatedAt)
	t.CreatedAt = t.CreatedAt.UTC()
	return t, err
}

func (s *pgStore) GetToken(ctx context.Context, id string) (*Token, error) {
	if err := checkTokenID(id); err != nil {
		return nil, fmt.Errorf("store: get token: %w", notFoundIf(err))
	}
	t, err := scanPGToken(s.pool.QueryRow(ctx, `SELECT `+pgTokenCols+` FROM api_tokens WHERE id = $1`, id))
	if err := lookup(err, pgx.ErrNoRows, "get token %s", id); err != nil {
		return nil, err
	}
	return &t, nil
}

func (s *pgStore) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+pgTokenCols+` FROM api_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list tokens: %w", err)
	}
	defer rows.Close()
	return collect(rows, "list tokens", func(r rowIter) (Token, error) { return scanPGToken(r) })
}

func (s *pgStore) DeleteToken(ctx context.Context, id string) error {
	if err := checkTokenID(id); err != nil {
		return fmt.Errorf("store: delete token: %w", notFoundIf(err))
	}
	if err := pgAffected(s.pool.Exec(ctx, `DELETE FROM api_tokens WHERE id = $1`, id)); err != nil {
		return fmt.Errorf("store: delete token %s: %w", id, err)
	}
	return nil
}

func (s *pgStore) AddRule(ctx context.Context, r *Rule) error {
	if err := prepareRule(r); err != nil {
		return fmt.Errorf("store: add rule: %w", err)
	}
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO policy_rules (kind, pattern, note, created_by, created_at) VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (kind, pattern) DO NOTHING RETURNING id`,
		r.Kind, r.Pattern, r.Note, r.CreatedBy, r.CreatedAt).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		err = ErrExists
	}
	if err != nil {
		return fmt.Errorf("store: add rule %s %s: %w", r.Kind, r.Pattern, err)
	}
	r.ID = id
	return nil
}

func (s *pgStore) ListRules(ctx context.Context) ([]Rule, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, kind, pattern, note, created_by, created_at FROM policy_rules ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list rules: %w", err)
	}
	defer rows.Close()
	return collect(rows, "list rules", func(rw rowIter) (Rule, error) {
		var r Rule
		err := rw.Scan(&r.ID, &r.Kind, &r.Pattern, &r.Note, &r.CreatedBy, &r.CreatedAt)
		r.CreatedAt = r.CreatedAt.UTC()
		return r, err
	})
}

func (s *pgStore) DeleteRule(ctx context.Context, id int64) error {
	if err := pgAffected(s.pool.Exec(ctx, `DELETE FROM policy_rules WHERE id = $1`, id)); err != nil {
		return fmt.Errorf("store: delete rule %d: %w", id, err)
	}
	return nil
}

func (s *pgStore) AddSenderAllow(ctx context.Context, a *SenderAllow) error {
	if err := prepareSenderAllow(a); err != nil {
		return fmt.Errorf("store: add sender allow: %w", err)
	}
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO sender_allows (sender, recipient, note, created_by, created_at) VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (sender, recipient) DO NOTHING RETURNING id`,
		a.Sender, a.Recipient, a.Note, a.CreatedBy, a.CreatedAt).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		err = ErrExists
	}
	if err != nil {
		return fmt.Errorf("store: add sender allow %s → %s: %w", a.Sender, a.Recipient, err)
	}
	a.ID = id
	return nil
}

func (s *pgStore) ListSenderAllows(ctx context.Context) ([]SenderAllow, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, sender, recipient, note, created_by, created_at FROM sender_allows ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: list sender allows: %w", err)
	}
	defer rows.Close()
	return collect(rows, "list sender allows", func(rw rowIter) (SenderAllow, error) {
		var a SenderAllow
		err := rw.Scan(&a.ID, &a.Sender, &a.Recipient, &a.Note, &a.CreatedBy, &a.CreatedAt)
		a.CreatedAt = a.CreatedAt.UTC()
		return a, err
	})
}

func (s *pgStore) DeleteSenderAllow(ctx context.Context, id int64) error {
	if err := pgAffected(s.pool.Exec(ctx, `DELETE FROM sender_allows WHERE id = $1`, id)); err != nil {
		return fmt.Errorf("store: delete sender allow %d: %w", id, err)
	}
	return nil
}

func (s *pgStore) AddDecisionCounts(ctx context.Context, counts []DecisionCount) error {
	cs, err := prepareDecisionCounts(counts)
	if err != nil {
		return fmt.Errorf("store: add decision counts: %w", err)
	}
	if len(cs) == 0 {
		return nil
	}
	err = pgx.BeginTxFunc(ctx, s.pool, readCommitted, func(tx pgx.Tx) error {
		// cs is sorted: concurrent callers lock rows in one order. Under
		// READ COMMITTED an upsert that meets a row another transaction
		// is inserting or updating waits for it and then adds to the
		// committed count.
		var b pgx.Batch
		for _, c := range cs {
			b.Queue(`INSERT INTO decision_counts (day, verdict, action, n) VALUES ($1, $2, $3, $4)
	ON CONFLICT (day, verdict, action) DO UPDATE SET n = decision_counts.n + excluded.n`,
				pgDate(c.Day), c.Verdict, c.Action, c.N)
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return fmt.Errorf("store: add decision counts: %w", err)
	}
	return nil
}

// pgDate is a UTC midnight as a date parameter.
func pgDate(t time.Time) pgtype.Date {
	return pgtype.Date{Time: t, Valid: true}
}

func (s *pgStore) DecisionCounts(ctx context.Context, since time.Time) ([]DecisionCount, error) {
	from := pgtype.Date{InfinityModifier: pgtype.NegativeInfinity, Valid: true}
	if !since.IsZero() {
		from = pgDate(day(since))
	}
	// verdict and action are COLLATE "C": bytewise, as SQLite orders them.
	rows, err := s.pool.Query(ctx, `SELECT day, verdict, action, n FROM decision_counts WHERE day >= $1 ORDER BY day, verdict, action`, from)
	if err != nil {
		return nil, fmt.Errorf("store: decision counts: %w", err)
	}
	defer rows.Close()
	return collect(rows, "decision counts", func(r rowIter) (DecisionCount, error) {
		var (
			c DecisionCount
			d pgtype.Date
		)
		if err := r.Scan(&d, &c.Verdict, &c.Action, &c.N); err != nil {
			return c, err
		}
		if !d.Valid || d.InfinityModifier != pgtype.Finite {
			return c, fmt.Errorf("day is not a date")
		}
		c.Day = day(d.Time)
		return c, nil
	})
}

func (s *pgStore) AddReport(ctx context.Context, r *Report) error {
	row, err := prepareReport(r)
	if err != nil {
		return fmt.Errorf("store: add report: %w", err)
	}
	var id int64
	err = s.pool.QueryRow(ctx, `INSERT INTO reports (kind, title, created_by, created_at, json, json_size, html, html_size)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		r.Kind, r.Title, r.CreatedBy, r.CreatedAt, row.json, len(r.JSON), row.html, len(r.HTML)).Scan(&id)
	if err != nil {
		return fmt.Errorf("store: add report: %w", err)
	}
	r.ID = id
	return nil
}

const pgReportCols = `id, kind, title, created_by, created_at`

func scanPGReport(sc pgx.Row, bodies ...any) (Report, error) {
	var r Report
	err := sc.Scan(append([]any{&r.ID, &r.Kind, &r.Title, &r.CreatedBy, &r.CreatedAt}, bodies...)...)
	r.CreatedAt = r.CreatedAt.UTC()
	return r, err
}

func (s *pgStore) ListReports(ctx context.Context, kind string, limit int) ([]Report, error) {
	limit, err := prepareReportList(kind, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list reports: %w", err)
	}
	var (
		args pgArgs
		q    = `SELECT ` + pgReportCols + ` FROM reports`
	)
	if kind != "" {
		q += ` WHERE kind = ` + args.add(kind)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ` + args.add(limit)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: list reports: %w", err)
	}
	defer rows.Close()
	return collect(rows, "list reports", func(r rowIter) (Report, error) { return scanPGReport(r) })
}

func (s *pgStore) GetReport(ctx context.Context, id int64) (*Report, error) {
	var (
		j, h         []byte
		jsize, hsize int64
	)
	r, err := scanPGReport(s.pool.QueryRow(ctx, `SELECT `+pgReportCols+`, json, json_size, html, html_size FROM reports WHERE id = $1`, id),
		&j, &jsize, &h, &hsize)
	if err := lookup(err, pgx.ErrNoRows, "get report %d", id); err != nil {
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

// Ping writes an event in a transaction that it rolls back: the server
// answers, is not a read-only standby, and lets us insert.
func (s *pgStore) Ping(ctx context.Context) error {
	tx, err := s.pool.BeginTx(ctx, readCommitted)
	if err != nil {
		return fmt.Errorf("store: ping %s: %w", s.name, err)
	}
	defer tx.Rollback(ctx)
	if err := pgInsertEvent(ctx, tx, Event{Time: nowStamp(), Kind: "ping"}); err != nil {
		return fmt.Errorf("store: ping %s: %w", s.name, err)
	}
	return nil
}

func (s *pgStore) Close() error {
	s.pool.Close()
	return nil
}
