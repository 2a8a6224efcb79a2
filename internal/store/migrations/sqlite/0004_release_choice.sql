-- The release a sender chose, SQLite dialect. Keep in step with
-- ../postgres/0004_release_choice.sql.
--
-- Stored with the move to releasing (ClaimRelease), so a retry after a
-- crash repeats the choice: release_action is 'release' (as typed) or
-- 'fix' (to the suggested addresses), '' before any claim; release_to is
-- a JSON array of the addresses the message is re-injected to.
ALTER TABLE messages ADD COLUMN release_action TEXT NOT NULL DEFAULT ''
	CHECK (release_action IN ('', 'release', 'fix'));
ALTER TABLE messages ADD COLUMN release_to TEXT NOT NULL DEFAULT '[]'
	CHECK (json_valid(release_to));
