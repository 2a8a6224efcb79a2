-- Evidence for learned trust and per-sender allows, SQLite dialect. Keep in
-- step with ../postgres/0003_learning_evidence.sql.

-- Distinct UTC days (the microseconds of their midnight) on which a domain
-- was delivered to, counted for Correspondent.Days: learning trusts a
-- domain only after several senders on several days.
CREATE TABLE correspondent_days (
	domain TEXT    NOT NULL REFERENCES correspondents (domain) ON DELETE CASCADE,
	day    INTEGER NOT NULL CHECK (day % 86400000000 = 0),
	PRIMARY KEY (domain, day)
) STRICT, WITHOUT ROWID;

-- What is known of the days before this table: the first and the last.
INSERT OR IGNORE INTO correspondent_days (domain, day)
	SELECT domain, first_seen - (first_seen % 86400000000) FROM correspondents WHERE first_seen >= 0;
INSERT OR IGNORE INTO correspondent_days (domain, day)
	SELECT domain, last_seen - (last_seen % 86400000000) FROM correspondents WHERE last_seen >= 0;

-- One sender may write to one flagged recipient address: a held message
-- released as typed. Narrower than any allow rule, and never learned
-- organisation-wide.
CREATE TABLE sender_allows (
	id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
	sender     TEXT    NOT NULL CHECK (sender <> ''),
	recipient  TEXT    NOT NULL CHECK (recipient <> ''),
	note       TEXT    NOT NULL DEFAULT '',
	created_by TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	UNIQUE (sender, recipient)
) STRICT;

CREATE INDEX sender_allows_created_idx ON sender_allows (created_at, id);
