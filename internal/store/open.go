package store

import (
	"context"
	"fmt"

	"github.com/stray-mail/stray/internal/store/dsn"
)

// Open opens the store that dsn names, creating and migrating its schema as
// needed. The grammar is package dsn's (the config's store key is checked
// with the same):
//
//	sqlite:/var/lib/stray/stray.db   SQLite file (also sqlite:///var/…, sqlite:rel.db)
//	/var/lib/stray/stray.db          a bare path ending in .db, .sqlite or .sqlite3
//	postgres://user@host:5432/db?sslmode=verify-full   PostgreSQL (also postgresql://)
//
// PostgreSQL DSNs take every libpq URL parameter pgx knows, among them
// search_path=SCHEMA to keep stray's tables in a schema of their own and
// connect_timeout (default 10 s), and pgxpool's pool_max_conns (default: 4
// or the number of CPUs if more), pool_max_conn_lifetime and
// pool_max_conn_idle_time. ctx bounds the opening and the migrations, not
// the life of the store.
func Open(ctx context.Context, dsn string) (Store, error) {
	kind, target, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	switch kind {
	case kindSQLite:
		s, err := openSQLite(ctx, target)
		if err != nil {
			return nil, fmt.Errorf("store: open sqlite %s: %w", target, err)
		}
		return s, nil
	default:
		s, err := openPostgres(ctx, target)
		if err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		return s, nil
	}
}

const (
	kindSQLite   = string(dsn.SQLite)
	kindPostgres = string(dsn.Postgres)
)

// parseDSN tells the backend a DSN names, and what to hand it: the file
// path for SQLite, the DSN itself for PostgreSQL. The grammar is package
// dsn's, the one the config's store key is validated with.
func parseDSN(s string) (kind, target string, err error) {
	d, err := dsn.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("store: DSN %w", err)
	}
	return string(d.Kind), d.Target, nil
}

// RedactDSN returns dsn with its passwords replaced by "xxxxx", for logs,
// errors and the dashboard (dsn.Redact).
func RedactDSN(s string) string { return dsn.Redact(s) }
