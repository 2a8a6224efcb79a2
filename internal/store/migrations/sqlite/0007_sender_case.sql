-- Senders counted once whatever their case, SQLite dialect. Keep in step
-- with ../postgres/0007_sender_case.sql.
--
-- correspondent_senders counts the distinct senders who wrote to a domain,
-- the evidence learning weighs. Alice@ and alice@ are one person; stray now
-- records senders in lower case, and this folds what older versions
-- recorded (SQLite's lower() folds ASCII letters only).
INSERT OR IGNORE INTO correspondent_senders (domain, sender)
	SELECT domain, lower(sender) FROM correspondent_senders WHERE sender <> lower(sender);
DELETE FROM correspondent_senders WHERE sender <> lower(sender);
