-- stray store schema, PostgreSQL dialect. Keep in step with
-- ../sqlite/0001_init.sql: same tables, columns and meaning.
-- Unqualified names: the tables go to the first schema on search_path.

-- The quarantine. raw is the whole message, gzip-compressed; recipients is
-- a JSON array of the held recipients with their findings.
CREATE TABLE messages (
	id          text        NOT NULL PRIMARY KEY,
	queue_id    text        NOT NULL DEFAULT '',
	sender      text        NOT NULL,
	recipients  jsonb       NOT NULL,
	raw         bytea       NOT NULL,
	size        bigint      NOT NULL CHECK (size >= 0),
	state       text        NOT NULL CHECK (state IN ('held', 'releasing', 'released', 'discarded', 'expired')),
	node        text        NOT NULL DEFAULT '',
	created_at  timestamptz NOT NULL,
	updated_at  timestamptz NOT NULL,
	expires_at  timestamptz NOT NULL,
	notified_at timestamptz
);
-- raw is already compressed: do not let TOAST try again.
ALTER TABLE messages ALTER COLUMN raw SET STORAGE EXTERNAL;

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
	id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	time       timestamptz NOT NULL,
	message_id text        NOT NULL DEFAULT '',
	kind       text        NOT NULL,
	actor      text        NOT NULL DEFAULT '',
	detail     text        NOT NULL DEFAULT ''
);

CREATE INDEX events_message_idx ON events (message_id, time DESC, id DESC);
CREATE INDEX events_time_idx ON events (time DESC, id DESC);
CREATE INDEX events_kind_idx ON events (kind, time DESC, id DESC);

-- Learned recipient domains.
CREATE TABLE correspondents (
	domain     text        NOT NULL PRIMARY KEY,
	deliveries bigint      NOT NULL CHECK (deliveries >= 0),
	first_seen timestamptz NOT NULL,
	last_seen  timestamptz NOT NULL
);

CREATE INDEX correspondents_deliveries_idx ON correspondents (deliveries DESC, domain);

-- Distinct senders per domain, counted for Correspondent.Senders.
CREATE TABLE correspondent_senders (
	domain text NOT NULL REFERENCES correspondents (domain) ON DELETE CASCADE,
	sender text NOT NULL,
	PRIMARY KEY (domain, sender)
);
