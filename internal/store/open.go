package store

import (
	"context"
	"fmt"
	"net/url"
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
	return "", "", fmt.Errorf("store: unrecognised DSN %q: want sqlite:PATH, PATH.db or postgres://…", RedactDSN(dsn))
}

// RedactDSN returns dsn with its passwords replaced by "xxxxx", for logs,
// errors and the dashboard: the password of URL userinfo
// (postgres://user:PASSWORD@host/db), every query parameter or key=value
// setting whose name contains "password" (?password=…, sslpassword=…,
// "host=db password='…'"), and the part after a colon in a bare
// user:password@host. SQLite paths are returned as they are.
func RedactDSN(dsn string) string {
	if strings.Contains(dsn, "://") {
		scheme, rest, _ := strings.Cut(dsn, "://")
		return scheme + "://" + redactURLRest(rest)
	}
	if strings.HasPrefix(dsn, "sqlite:") {
		return dsn
	}
	if strings.Contains(dsn, "=") {
		return redactKeyValues(dsn)
	}
	return redactUserinfo(dsn)
}

const hidden = "xxxxx"

// redactURLRest redacts what follows "scheme://": the query's password
// parameters, then userinfo. Both passes err on the side of hiding: a raw
// '?' or '@' in a password must not let it through.
func redactURLRest(rest string) string {
	if path, query, ok := strings.Cut(rest, "?"); ok {
		parts := strings.Split(query, "&")
		for i, p := range parts {
			k, _, ok := strings.Cut(p, "=")
			if !ok {
				continue
			}
			name, err := url.QueryUnescape(k)
			if err != nil {
				name = k
			}
			if isPasswordKey(name) {
				parts[i] = k + "=" + hidden
			}
		}
		rest = path + "?" + strings.Join(parts, "&")
	}
	return redactUserinfo(rest)
}

// redactUserinfo hides what lies between the first ':' and the last '@'
// (user:PASSWORD@host); a password may hold a raw '@' or '/'.
func redactUserinfo(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s
	}
	colon := strings.IndexByte(s[:at], ':')
	if colon < 0 {
		return s
	}
	return s[:colon+1] + hidden + s[at:]
}

// redactKeyValues hides the values of password keys in a libpq
// "key=value key='quoted value'" string. A string it cannot read is cut
// after its first "password".
func redactKeyValues(s string) string {
	var b strings.Builder
	i := 0
	skipSpace := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	for {
		start := i
		skipSpace()
		b.WriteString(s[start:i])
		if i >= len(s) {
			return b.String()
		}
		k := i
		for i < len(s) && s[i] != '=' && !isSpace(s[i]) {
			i++
		}
		key := s[k:i]
		skipSpace()
		if i >= len(s) || s[i] != '=' {
			return cutAtPassword(s)
		}
		i++
		skipSpace()
		v := i
		if i < len(s) && s[i] == '\'' {
			i++
			for i < len(s) && s[i] != '\'' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(s) {
				return cutAtPassword(s)
			}
			i++
		} else {
			for i < len(s) && !isSpace(s[i]) {
				i++
			}
		}
		// A value that names a password ("host= password=…", where
		// libpq reads "password=…" as host's value) is hidden too.
		if isPasswordKey(key) || isPasswordKey(s[v:i]) {
			b.WriteString(key + "=" + hidden)
		} else {
			b.WriteString(key + "=" + s[v:i])
		}
	}
}

func cutAtPassword(s string) string {
	if i := indexPassword(s); i >= 0 {
		return s[:i] + "password=" + hidden
	}
	return redactUserinfo(s)
}

func isPasswordKey(k string) bool { return indexPassword(k) >= 0 }

// indexPassword is the byte offset of "password" in s, ASCII case
// ignored, or -1.
func indexPassword(s string) int {
	const word = "password"
	for i := 0; i+len(word) <= len(s); i++ {
		j := 0
		for j < len(word) && s[i+j]|0x20 == word[j] {
			j++
		}
		if j == len(word) {
			return i
		}
	}
	return -1
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}
