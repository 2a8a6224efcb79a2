-- stray store schema, SQLite dialect. Keep in step with
-- ../postgres/0001_init.sql: same tables, columns and meaning.
-- Times are INTEGER microseconds since the Unix epoch, UTC.

-- The quarantine. raw is the whole message, gzip-compressed; recipients is
-- a JSON array of the held recipients with their findings.
CREATE TABLE messages (
	id          TEXT    NOT NULL PRIMARY KEY,
	queue_id    TEXT    NOT NULL DEFAULT '',
	sender      TEXT    NOT NULL,
	recipients  TEXT    NOT NULL CHECK (json_valid(recipients)),
	raw         BLOB    NOT NULL,
	size        INTEGER NOT NULL CHECK (size >= 0),
	state       TEXT    NOT NULL CHECK (state IN ('held', 'releasing', 'released', 'discarded', 'expired')),
	node        TEXT    NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	notified_at INTEGER
) STRICT;

-- List: newest first, optionally by state or sender.
CREATE INDEX messages_created_idx ON messages (created_at DESC, id DESC);
CREATE INDEX messages_state_created_idx ON messages (state, created_at DESC, id DESC);
CREATE INDEX messages_sender_created_idx ON messages (sender, created_at DESC, id DESC);
-- Due: held past expiry, releasing for too long.
CREATE INDEX messages_held_expires_idx ON messages (expires_at) WHERE state = 'held';
CREATE INDEX messages_releasing_updated_idx ON messages (updated_at) WHERE state = 'releasing';

-- The audit trail. Deliberately no foreign key to messages: it records
-- decisions about mail that was never held, and it outlives purged messages.
CREATE TABLE events (
	id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
	time       INTEGER NOT NULL,
	message_id TEXT    NOT NULL DEFAULT '',
	kind       TEXT    NOT NULL,
	actor      TEXT    NOT NULL DEFAULT '',
	detail     TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX events_message_idx ON events (message_id, time DESC, id DESC);
CREATE INDEX events_time_idx ON events (time DESC, id DESC);
CREATE INDEX events_kind_idx ON events (kind, time DESC, id DESC);

-- Learned recipient domains.
CREATE TABLE correspondents (
	domain     TEXT    NOT NULL PRIMARY KEY,
	deliveries INTEGER NOT NULL CHECK (deliveries >= 0),
	first_seen INTEGER NOT NULL,
	last_seen  INTEGER NOT NULL
) STRICT;

CREATE INDEX correspondents_deliveries_idx ON correspondents (deliveries DESC, domain);

-- Distinct senders per domain, counted for Correspondent.Senders.
CREATE TABLE correspondent_senders (
	domain TEXT NOT NULL REFERENCES correspondents (domain) ON DELETE CASCADE,
	sender TEXT NOT NULL,
	PRIMARY KEY (domain, sender)
) STRICT, WITHOUT ROWID;
