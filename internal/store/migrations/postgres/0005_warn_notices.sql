-- Warn notices, PostgreSQL dialect. Keep in step with
-- ../sqlite/0005_warn_notices.sql.
--
-- A sender whose message went to a recipient stray warned about is told
-- after the fact, at most once per recipient domain a day (UTC): day is the
-- last day they were told (UTC midnight). One row per sender and domain.
CREATE TABLE warn_notices (
	sender text        NOT NULL,
	domain text        NOT NULL,
	day    timestamptz NOT NULL,
	PRIMARY KEY (sender, domain)
);
