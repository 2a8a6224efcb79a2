// Package dsn is the one grammar of stray's store setting: the config's
// store key is validated with Parse, and the store opens what Parse
// returns, so that a value the config accepts is exactly one the store
// opener takes.
//
//	sqlite:PATH               a SQLite file (sqlite:///abs/path and
//	                          sqlite://rel/path are read the same way)
//	PATH.db, PATH.sqlite, PATH.sqlite3
//	                          a bare SQLite file path with one of these endings
//	postgres://…, postgresql://…
//	                          PostgreSQL, a libpq URL (pgx reads its parameters)
//
// Anything else is refused, among them an in-memory or URI SQLite database
// (sqlite::memory:, sqlite:file:…), a bare path with another ending (write
// sqlite:PATH), and libpq's "host=… user=…" form (write a URL). It parses;
// it never opens anything. Errors never show a password (Redact).
package dsn

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Kind is the backend a DSN names.
type Kind string

const (
	SQLite   Kind = "sqlite"
	Postgres Kind = "postgres"
)

// DSN is a parsed store setting.
type DSN struct {
	Kind Kind
	// Target is what the backend is handed: the file path for SQLite, the
	// URL as written for PostgreSQL.
	Target string
}

// Forms names the accepted forms, for errors and help texts.
const Forms = "sqlite:PATH, PATH.db or postgres://…"

// sqliteEndings are the endings a bare path needs to be read as SQLite.
var sqliteEndings = []string{".db", ".sqlite", ".sqlite3"}

// Parse reads a store setting. Its errors name the setting with its
// password hidden.
func Parse(s string) (DSN, error) {
	switch {
	case s == "":
		return DSN{}, fmt.Errorf("empty: want %s", Forms)
	case strings.ContainsRune(s, 0):
		return DSN{}, errors.New("contains a NUL byte")
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		if _, err := url.Parse(s); err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // url.Error repeats the URL, password and all
			}
			return DSN{}, fmt.Errorf("%q: not a PostgreSQL URL: %v", Redact(s), err)
		}
		return DSN{Kind: Postgres, Target: s}, nil
	case strings.HasPrefix(s, "sqlite:"):
		p := strings.TrimPrefix(s, "sqlite:")
		p = strings.TrimPrefix(p, "//") // sqlite:///abs/path, sqlite://rel/path
		if p == "" {
			return DSN{}, fmt.Errorf("%q names no file", s)
		}
		if p == ":memory:" || strings.HasPrefix(p, "file:") {
			return DSN{}, fmt.Errorf("%q: want a plain file path (an in-memory or URI database is not durable or not supported)", s)
		}
		return DSN{Kind: SQLite, Target: p}, nil
	case !strings.Contains(s, "://") && hasSQLiteEnding(s):
		return DSN{Kind: SQLite, Target: s}, nil
	case !strings.Contains(s, "://") && !strings.Contains(s, "=") && !strings.Contains(s, "@"):
		return DSN{}, fmt.Errorf("unrecognised %q: a bare path must end in .db, .sqlite or .sqlite3; write sqlite:%s", s, s)
	}
	return DSN{}, fmt.Errorf("unrecognised %q: want %s", Redact(s), Forms)
}

func hasSQLiteEnding(s string) bool {
	for _, e := range sqliteEndings {
		if strings.HasSuffix(s, e) {
			return true
		}
	}
	return false
}

// Redact returns dsn with its passwords replaced by "xxxxx", for logs,
// errors and the dashboard: the password of URL userinfo
// (postgres://user:PASSWORD@host/db), every query parameter or key=value
// setting whose name contains "password" (?password=…, sslpassword=…,
// "host=db password='…'"), and the part after a colon in a bare
// user:password@host. SQLite paths are returned as they are.
func Redact(dsn string) string {
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
