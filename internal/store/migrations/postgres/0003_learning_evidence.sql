-- Evidence for learned trust and per-sender allows, PostgreSQL dialect.
-- Keep in step with ../sqlite/0003_learning_evidence.sql.

-- Distinct UTC days on which a domain was delivered to, counted for
-- Correspondent.Days: learning trusts a domain only after several senders
-- on several days.
CREATE TABLE correspondent_days (
	domain text NOT NULL REFERENCES correspondents (domain) ON DELETE CASCADE,
	day    date NOT NULL,
	PRIMARY KEY (domain, day)
);

-- What is known of the days before this table: the first and the last.
INSERT INTO correspondent_days (domain, day)
	SELECT domain, (first_seen AT TIME ZONE 'UTC')::date FROM correspondents
	UNION
	SELECT domain, (last_seen AT TIME ZONE 'UTC')::date FROM correspondents
	ON CONFLICT DO NOTHING;

-- One sender may write to one flagged recipient address: a held message
-- released as typed. Narrower than any allow rule, and never learned
-- organisation-wide.
CREATE TABLE sender_allows (
	id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	sender     text        NOT NULL CHECK (sender <> ''),
	recipient  text        NOT NULL CHECK (recipient <> ''),
	note       text        NOT NULL DEFAULT '',
	created_by text        NOT NULL DEFAULT '',
	created_at timestamptz NOT NULL,
	UNIQUE (sender, recipient)
);

CREATE INDEX sender_allows_created_idx ON sender_allows (created_at, id);
