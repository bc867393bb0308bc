-- Rollback of 0004.event_order.
ALTER TABLE call_events DROP COLUMN IF EXISTS n;
