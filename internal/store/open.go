package store

import (
	"context"
	"fmt"
	"strings"
)

// Open opens the store that dsn names, creating and migrating its schema as
// needed:
//
//	sqlite:/var/lib/stray/stray.db   SQLite file (also sqlite:///var/…, sqlite:rel.db)
//	/var/lib/stray/stray.db          a bare path ending in .db, .sqlite or .sqlite3
//	postgres://user@host:5432/db?sslmode=verify-full   PostgreSQL (also postgresql://)
//
// PostgreSQL DSNs take every libpq URL parameter pgx knows, among them
// search_path=SCHEMA to keep stray's tables in a schema of their own,
// connect_timeout (default 10 s) and pool_max_conns. ctx bounds the opening
// and the migrations, not the life of the store.
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
	kindSQLite   = "sqlite"
	kindPostgres = "postgres"
)

// parseDSN tells the backend a DSN names, and what to hand it: the file
// path for SQLite, the DSN itself for PostgreSQL.
func parseDSN(dsn string) (kind, target string, err error) {
	switch {
	case dsn == "":
		return "", "", fmt.Errorf("store: empty DSN: want sqlite:PATH, PATH.db or postgres://…")
	case strings.ContainsRune(dsn, 0):
		return "", "", fmt.Errorf("store: DSN contains a NUL byte")
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return kindPostgres, dsn, nil
	case strings.HasPrefix(dsn, "sqlite:"):
		p := strings.TrimPrefix(dsn, "sqlite:")
		p = strings.TrimPrefix(p, "//") // sqlite:///abs/path, sqlite://rel/path
		if p == "" {
			return "", "", fmt.Errorf("store: DSN %q names no file", dsn)
		}
		if p == ":memory:" || strings.HasPrefix(p, "file:") {
			return "", "", fmt.Errorf("store: DSN %q: want a plain file path (an in-memory or URI database is not durable or not supported)", dsn)
		}
		return kindSQLite, p, nil
	case !strings.Contains(dsn, "://") &&
		(strings.HasSuffix(dsn, ".db") || strings.HasSuffix(dsn, ".sqlite") || strings.HasSuffix(dsn, ".sqlite3")):
		return kindSQLite, dsn, nil
	}
	return "", "", fmt.Errorf("store: unrecognised DSN %q: want sqlite:PATH, PATH.db or postgres://…", redactDSN(dsn))
}

// redactDSN hides a password that a mistyped DSN may carry, for errors:
// everything before the last '@' (user and password), and everything after
// a "password" key.
func redactDSN(dsn string) string {
	if i := strings.LastIndexByte(dsn, '@'); i >= 0 {
		scheme := ""
		if j := strings.Index(dsn, "://"); j >= 0 && j < i {
			scheme = dsn[:j+3]
		}
		return scheme + "…@" + dsn[i+1:]
	}
	if i := strings.Index(strings.ToLower(dsn), "password"); i >= 0 {
		return dsn[:i] + "password=…"
	}
	return dsn
}
