-- The dashboard and HTTP API's shared state, SQLite dialect. Keep in step
-- with ../postgres/0002_dashboard.sql: same tables, columns and meaning.
-- Times are INTEGER microseconds since the Unix epoch, UTC.

-- Local dashboard users. hash is a PHC password hash string.
CREATE TABLE users (
	name       TEXT    NOT NULL PRIMARY KEY,
	role       TEXT    NOT NULL CHECK (role IN ('admin', 'auditor')),
	hash       TEXT    NOT NULL CHECK (hash <> ''),
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;

-- Logged-in sessions. id is the hex SHA-256 of the cookie's secret, never
-- the secret. A user's sessions end with the user (the writer connection
-- runs with foreign_keys=on).
CREATE TABLE sessions (
	id         TEXT    NOT NULL PRIMARY KEY,
	user_name  TEXT    NOT NULL REFERENCES users (name) ON DELETE CASCADE,
	csrf       TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;

-- DeleteUser's cascade; PurgeSessions.
CREATE INDEX sessions_user_idx ON sessions (user_name);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

-- API tokens: the id in clear, the hex SHA-256 of the secret.
CREATE TABLE api_tokens (
	id         TEXT    NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL DEFAULT '',
	hash       TEXT    NOT NULL,
	created_by TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL
) STRICT;

CREATE INDEX api_tokens_created_idx ON api_tokens (created_at, id);

-- Allow and deny rules added at run time.
CREATE TABLE policy_rules (
	id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
	kind       TEXT    NOT NULL CHECK (kind IN ('allow', 'deny')),
	pattern    TEXT    NOT NULL CHECK (pattern <> ''),
	note       TEXT    NOT NULL DEFAULT '',
	created_by TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	UNIQUE (kind, pattern)
) STRICT;

CREATE INDEX policy_rules_created_idx ON policy_rules (created_at, id);

-- Recipient decisions per UTC day (its midnight), verdict and action. The
-- primary key serves DecisionCounts' range and order.
CREATE TABLE decision_counts (
	day     INTEGER NOT NULL CHECK (day % 86400000000 = 0),
	verdict TEXT    NOT NULL,
	action  TEXT    NOT NULL,
	n       INTEGER NOT NULL CHECK (n >= 0),
	PRIMARY KEY (day, verdict, action)
) STRICT, WITHOUT ROWID;

-- Saved audit and scan results. json and html are gzip-compressed like
-- messages.raw, with their uncompressed sizes; they come last so that
-- listing reads no more than the row's head.
CREATE TABLE reports (
	id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
	kind       TEXT    NOT NULL CHECK (kind IN ('audit', 'scan')),
	title      TEXT    NOT NULL DEFAULT '',
	created_by TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	json_size  INTEGER NOT NULL CHECK (json_size >= 0),
	html_size  INTEGER NOT NULL CHECK (html_size >= 0),
	json       BLOB    NOT NULL,
	html       BLOB    NOT NULL
) STRICT;

-- ListReports: newest first, optionally of one kind.
CREATE INDEX reports_created_idx ON reports (created_at DESC, id DESC);
CREATE INDEX reports_kind_created_idx ON reports (kind, created_at DESC, id DESC);
