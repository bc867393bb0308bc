-- Rollback of 0012.call_follow_up.
DROP INDEX IF EXISTS calls_ringing_unit;
ALTER TABLE calls DROP COLUMN IF EXISTS follow_up_until;
DROP TABLE IF EXISTS call_snapshots;
