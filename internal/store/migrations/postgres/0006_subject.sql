-- The held message's Subject, PostgreSQL dialect. Keep in step with
-- ../sqlite/0006_subject.sql.
--
-- The quarantine lists held messages without reading their content; the
-- Subject is what administrators and senders recognise a message by. It is
-- taken from the header when the message is held (decoded, at most 200
-- characters); older rows have none.
ALTER TABLE messages ADD COLUMN subject TEXT NOT NULL DEFAULT '';
