-- The release a sender chose, PostgreSQL dialect. Keep in step with
-- ../sqlite/0004_release_choice.sql.
--
-- Stored with the move to releasing (ClaimRelease), so a retry after a
-- crash repeats the choice: release_action is 'release' (as typed) or
-- 'fix' (to the suggested addresses), '' before any claim; release_to is
-- a JSON array of the addresses the message is re-injected to.
ALTER TABLE messages ADD COLUMN release_action text NOT NULL DEFAULT ''
	CHECK (release_action IN ('', 'release', 'fix'));
ALTER TABLE messages ADD COLUMN release_to jsonb NOT NULL DEFAULT '[]';
