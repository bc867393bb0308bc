-- Rollback of 0005.push_observability.
DROP INDEX IF EXISTS outbox_unacked_at_idx;
ALTER TABLE outbox DROP COLUMN IF EXISTS traceparent;
