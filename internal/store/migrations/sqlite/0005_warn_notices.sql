-- Warn notices, SQLite dialect. Keep in step with
-- ../postgres/0005_warn_notices.sql.
--
-- A sender whose message went to a recipient stray warned about is told
-- after the fact, at most once per recipient domain a day (UTC): day is the
-- last day they were told (INTEGER microseconds of UTC midnight). One row
-- per sender and domain.
CREATE TABLE warn_notices (
	sender TEXT    NOT NULL,
	domain TEXT    NOT NULL,
	day    INTEGER NOT NULL,
	PRIMARY KEY (sender, domain)
) STRICT, WITHOUT ROWID;
