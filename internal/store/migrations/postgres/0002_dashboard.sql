-- The dashboard and HTTP API's shared state, PostgreSQL dialect. Keep in
-- step with ../sqlite/0002_dashboard.sql: same tables, columns and meaning.
-- Text that is listed in its order is COLLATE "C" (bytewise), the order
-- SQLite gives it, whatever the database's default collation.

-- Local dashboard users. hash is a PHC password hash string.
CREATE TABLE users (
	name       text COLLATE "C" NOT NULL PRIMARY KEY,
	role       text        NOT NULL CHECK (role IN ('admin', 'auditor')),
	hash       text        NOT NULL CHECK (hash <> ''),
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);

-- Logged-in sessions. id is the hex SHA-256 of the cookie's secret, never
-- the secret. A user's sessions end with the user.
CREATE TABLE sessions (
	id         text        NOT NULL PRIMARY KEY,
	user_name  text COLLATE "C" NOT NULL REFERENCES users (name) ON DELETE CASCADE,
	csrf       text        NOT NULL,
	created_at timestamptz NOT NULL,
	expires_at timestamptz NOT NULL
);

-- DeleteUser's cascade; PurgeSessions.
CREATE INDEX sessions_user_idx ON sessions (user_name);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

-- API tokens: the id in clear, the hex SHA-256 of the secret.
CREATE TABLE api_tokens (
	id         text        NOT NULL PRIMARY KEY,
	name       text        NOT NULL DEFAULT '',
	hash       text        NOT NULL,
	created_by text        NOT NULL DEFAULT '',
	created_at timestamptz NOT NULL
);

CREATE INDEX api_tokens_created_idx ON api_tokens (created_at, id);

-- Allow and deny rules added at run time.
CREATE TABLE policy_rules (
	id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind       text        NOT NULL CHECK (kind IN ('allow', 'deny')),
	pattern    text        NOT NULL CHECK (pattern <> ''),
	note       text        NOT NULL DEFAULT '',
	created_by text        NOT NULL DEFAULT '',
	created_at timestamptz NOT NULL,
	UNIQUE (kind, pattern)
);

CREATE INDEX policy_rules_created_idx ON policy_rules (created_at, id);

-- Recipient decisions per UTC day, verdict and action. A day is a date
-- here (SQLite: the microseconds of its UTC midnight). The primary key
-- serves DecisionCounts' range and order.
CREATE TABLE decision_counts (
	day     date             NOT NULL,
	verdict text COLLATE "C" NOT NULL,
	action  text COLLATE "C" NOT NULL,
	n       bigint           NOT NULL CHECK (n >= 0),
	PRIMARY KEY (day, verdict, action)
);

-- Saved audit and scan results. json and html are gzip-compressed like
-- messages.raw, with their uncompressed sizes.
CREATE TABLE reports (
	id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind       text        NOT NULL CHECK (kind IN ('audit', 'scan')),
	title      text        NOT NULL DEFAULT '',
	created_by text        NOT NULL DEFAULT '',
	created_at timestamptz NOT NULL,
	json_size  bigint      NOT NULL CHECK (json_size >= 0),
	html_size  bigint      NOT NULL CHECK (html_size >= 0),
	json       bytea       NOT NULL,
	html       bytea       NOT NULL
);
-- Already compressed: do not let TOAST try again.
ALTER TABLE reports ALTER COLUMN json SET STORAGE EXTERNAL;
ALTER TABLE reports ALTER COLUMN html SET STORAGE EXTERNAL;

-- ListReports: newest first, optionally of one kind.
CREATE INDEX reports_created_idx ON reports (created_at DESC, id DESC);
CREATE INDEX reports_kind_created_idx ON reports (kind, created_at DESC, id DESC);
